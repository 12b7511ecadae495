"""`make run` on a machine without a cluster: the mission, seen the way a new user sees it.

The real `argobridge demo` process starts everything itself (etcd, kube-apiserver, the operator, Argo CD's
notifications controller, a Backstage backend). The test reads what it printed, checks it against the
live bridge and the live Backstage it names, then presses Ctrl-C and looks for anything left running.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from kubernetes import client, config

from argobridge_dev.backstage import BackstageServer
from argobridge_dev.gobuild import ensure_built
from argobridge_dev.versions import ARGO_CD, ARGO_CD_NOTIFICATIONS
from tests.firsthour.test_signals import ARGOBRIDGE, start, stop_and_check

FIRST_RUN = 1200.0  # seconds: a cold cache builds etcd, kube-apiserver and the controller first


def go_modules(binary: Path) -> dict[str, str]:
    """The modules a Go binary was built from (`go version -m`): path -> version, and `=> replacement`."""
    out = subprocess.run(["go", "version", "-m", str(binary)], capture_output=True, text=True, check=True).stdout
    modules: dict[str, str] = {}
    last = ""
    for line in out.splitlines():
        fields = line.split("\t")
        # `mod` is the main module: Argo CD itself for the full build, the wrapper (devel) for the other.
        if len(fields) >= 4 and fields[1] in ("dep", "mod") and fields[3] != "(devel)":
            last = fields[2]
            modules[last] = fields[3]
        elif len(fields) >= 4 and fields[1] == "=>":
            modules[last] += f" => {fields[2]} {fields[3]}"
    return modules


def test_controller_only_build_is_made_of_the_full_builds_modules(figures: list[str]) -> None:
    """Same engine: every module in the controller-only binary is in the full argocd at the same version."""
    full, alone = go_modules(ensure_built(ARGO_CD)), go_modules(ensure_built(ARGO_CD_NOTIFICATIONS))
    assert alone["github.com/argoproj/argo-cd/v3"] == ARGO_CD.version
    assert alone["github.com/argoproj/notifications-engine"] == full["github.com/argoproj/notifications-engine"]
    differing = {path: (version, full.get(path)) for path, version in alone.items() if full.get(path) != version}
    assert not differing, f"modules whose version differs from the full build: {differing}"
    size = ensure_built(ARGO_CD_NOTIFICATIONS).stat().st_size, ensure_built(ARGO_CD).stat().st_size
    figures.append(
        f"controller-only argocd-notifications: {len(alone)} modules, {size[0] / 1e6:.0f} MB;"
        f" full argocd: {len(full)} modules, {size[1] / 1e6:.0f} MB"
    )


def test_demo_prints_the_failed_sync_as_alice_reads_it_then_stops_on_ctrl_c(tmp_path: Path, figures: list[str]) -> None:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "none"), "ARGOBRIDGE_METRICS_PORT": "0"}
    log = tmp_path / "demo.log"
    proc = start([ARGOBRIDGE, "demo"], "press Ctrl-C to stop", env, log, timeout=FIRST_RUN)
    try:
        out = log.read_text(errors="replace")
        head, _, notification = out.partition("=== The notification, as user:default/alice reads it")
        assert notification, f"no notification printed:\n{out[-3000:]}"
        assert "title:       shop: sync failed" in notification
        assert "link:        https://argocd.example.com/applications/argobridge-demo/shop" in notification
        assert "received by: user:default/alice" in notification
        assert "not sent to: user:default/bob, user:default/carol" in notification
        assert "owned by group:default/team-a, whose members are user:default/alice" in notification

        # What was printed is what is there: alice reads the same notification from the Backstage it named.
        port = int(re.search(r"ready in [\d.]+s at http://127\.0\.0\.1:(\d+)", head)[1])
        titles = [n["payload"]["title"] for n in BackstageServer(token="unused", port=port).notifications("alice")]
        assert "shop: sync failed" in titles
        assert BackstageServer(token="unused", port=port).notifications("bob") == []

        _, _, status = out.partition("=== kubectl get bsb -n argobridge-demo\n")
        header, row = status.splitlines()[:2]
        assert header.split()[:5] == ["NAME", "READY", "REASON", "BACKSTAGE", "SUBSCRIBED"]
        assert row.split()[:5] == ["backstage", "True", "Ready", "TokenAccepted", "1"], status[:2000]
        kubeconfig = re.search(r"export KUBECONFIG=(\S+)", out)[1]
        api = config.new_client_from_config(config_file=kubeconfig)
        bridge = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "argobridge.io", "v1alpha1", "argobridge-demo", "backstagebridges", "backstage"
        )
        ready = {c["type"]: c["status"] for c in bridge["status"]["conditions"]}
        assert ready["Ready"] == "True" and ready["BackstageReachable"] == "True"
        assert "preview --bridge" in out
        # The next step it suggests works: doctor finds nothing wrong with what the demo set up.
        doctor = subprocess.run(
            [ARGOBRIDGE, "doctor", "-n", "argobridge-demo"],
            env={**env, "KUBECONFIG": kubeconfig},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "argobridge doctor -n argobridge-demo" in out
        assert doctor.returncode == 0 and "no problems found" in doctor.stdout, doctor.stdout + doctor.stderr

        timing = re.search(r"\(([\d.]+)s after the sync failed; (\d+)s since the demo started\)", out)
        controller = re.search(r"notifications controller running \((\S+)\)", out)[1]
        figures.append(
            f"argobridge demo: notification printed {timing[2]}s after start ({timing[1]}s after the sync failed),"
            f" controller {controller}"
        )
    except BaseException:
        proc.kill()
        raise
    stop_and_check(proc, signal.SIGINT, log, figures, "argobridge demo (mission)")
