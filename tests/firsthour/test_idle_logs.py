"""An idle operator says nothing at INFO: kopf's routine "... succeeded." lines stay out of the log."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from argobridge.runtime.operator_main import is_routine_kopf_line
from tests.firsthour.test_signals import ARGOBRIDGE, start

IDLE_SECONDS = 15.0  # the Applications timer runs every 2 s: seven rounds that must all stay silent


@pytest.mark.parametrize(
    "message",
    [
        "Timer 'on_applications_changed' succeeded.",
        "Handler 'on_bridge_update' succeeded.",
        "Resuming is processed: 1 succeeded; 0 failed.",
    ],
)
def test_kopf_routine_lines_are_routine(message: str) -> None:
    assert is_routine_kopf_line("kopf.objects", logging.INFO, message)


@pytest.mark.parametrize(
    ("name", "level", "message"),
    [
        ("kopf.objects", logging.WARNING, "Timer 'on_resync' failed with an exception. Will retry."),
        ("argobridge.steps", logging.INFO, "Applied 12 keys to argocd-notifications-cm"),
        ("kopf.objects", logging.INFO, "Signal SIGINT is received. Operator is stopping."),
    ],
)
def test_changes_and_problems_are_not_routine(name: str, level: int, message: str) -> None:
    assert not is_routine_kopf_line(name, level, message)


def test_idle_operator_logs_nothing_routine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figures: list[str]
) -> None:
    """A bridge that is Ready and an operator left alone: its INFO output stays empty of kopf's chatter."""
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "none"), "ARGOBRIDGE_METRICS_PORT": "0"}
    kubeconfig = tmp_path / "kc"
    cluster = start(
        [ARGOBRIDGE, "dev-cluster", "--kubeconfig", str(kubeconfig)], "press Ctrl-C", env, tmp_path / "cp.log"
    )
    operator = None
    try:
        env["KUBECONFIG"] = str(kubeconfig)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        subprocess.run([ARGOBRIDGE, "install-crds"], env=env, check=True, capture_output=True)
        log = tmp_path / "run.log"
        operator = start([ARGOBRIDGE, "run"], "Initial authentication has finished", env, log)
        from argobridge_dev.demo import DEMO_NAMESPACE, apply_sample, wait_ready

        sample = apply_sample(DEMO_NAMESPACE)
        body = wait_ready(DEMO_NAMESPACE, sample["metadata"]["name"], timeout=90)
        assert body.get("status"), f"the bridge never got a status:\n{log.read_text()[-3000:]}"
        settled = len(log.read_text().splitlines())
        time.sleep(IDLE_SECONDS)  # observing an idle period: nothing happens by design, there is nothing to poll
        idle = log.read_text().splitlines()[settled:]
        figures.append(f"idle operator: {len(idle)} log lines in {IDLE_SECONDS:.0f}s")
        chatter = [line for line in idle if "succeeded." in line or " is processed: " in line]
        assert not chatter, "the idle operator logs routine lines:\n" + "\n".join(chatter[:10])
        assert all('"severity": "info"' not in line for line in idle), "INFO while idle:\n" + "\n".join(idle[:10])
    finally:
        if operator is not None:
            operator.send_signal(signal.SIGTERM)
            operator.wait(timeout=20)
        cluster.send_signal(signal.SIGTERM)
        cluster.wait(timeout=20)
