"""Ctrl-C, SIGTERM and SIGKILL stop the long-running commands at once and leave no process behind.

Each test starts the real command as a process (its real etcd and kube-apiserver included), waits for
the line that says it is up, signals it, and reads /proc for anything it started that still runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ARGOBRIDGE = str(Path(sys.executable).with_name("argobridge"))
STOP_WITHIN = 5.0  # what the issue promises a user


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, read from /proc (no psutil in the image or here)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {pid for pid in pids if alive(pid)}
        if not left:
            return left
        time.sleep(0.1)
    return {pid for pid in pids if alive(pid)}


def _as_from_a_terminal() -> None:
    """preexec_fn: SIGINT and SIGQUIT as a terminal leaves them. A shell starts a background job (`make
    test` runs this module's lane with `&`) with both ignored, an ignored SIGINT survives exec, and Python
    then never raises KeyboardInterrupt: the process would be tested for a Ctrl-C it cannot receive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def start(
    args: list[str], ready_line: str, env: dict[str, str], log: Path, timeout: float = 240.0
) -> subprocess.Popen[bytes]:
    """Start a command and wait for the line that says it is up (the log file is its stdout)."""
    out = open(log, "wb")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=_as_from_a_terminal)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_line in log.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{args} never printed {ready_line!r}:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """No reachable cluster: the commands start their own local control plane."""
    yield {**os.environ, "KUBECONFIG": str(tmp_path / "none"), "ARGOBRIDGE_METRICS_PORT": "0"}


def stop_and_check(proc: subprocess.Popen[bytes], signum: int, log: Path, figures: list[str], what: str) -> None:
    children = descendants(proc.pid)
    assert children, f"{what} started no child process; the test would prove nothing"
    started = time.monotonic()
    proc.send_signal(signum)
    try:
        code = proc.wait(timeout=STOP_WITHIN + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{what} still runs {STOP_WITHIN + 10:.0f}s after {signal.Signals(signum).name}")
    took = time.monotonic() - started
    figures.append(f"{what}: {signal.Signals(signum).name} -> exit {code} in {took:.1f}s (target {STOP_WITHIN:.0f}s)")
    left = wait_gone(children, timeout=2.0)
    assert not left, f"{what} left processes running after {signal.Signals(signum).name}: {sorted(left)}"
    assert code in (0, 130), f"{what} exited {code}:\n{log.read_text(errors='replace')[-2000:]}"
    assert took < STOP_WITHIN, f"{what} took {took:.1f}s to stop after {signal.Signals(signum).name}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_demo_stops_on_signal_and_leaves_nothing(
    signum: int, env: dict[str, str], tmp_path: Path, figures: list[str]
) -> None:
    log = tmp_path / "demo.log"
    proc = start([ARGOBRIDGE, "demo"], "press Ctrl-C to stop", env, log)
    stop_and_check(proc, signum, log, figures, "argobridge demo")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_dev_cluster_stops_on_signal_and_leaves_nothing(
    signum: int, env: dict[str, str], tmp_path: Path, figures: list[str]
) -> None:
    log = tmp_path / "dev-cluster.log"
    proc = start([ARGOBRIDGE, "dev-cluster", "--kubeconfig", str(tmp_path / "kc")], "press Ctrl-C", env, log)
    stop_and_check(proc, signum, log, figures, "argobridge dev-cluster")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_run_stops_on_signal(signum: int, env: dict[str, str], tmp_path: Path, figures: list[str]) -> None:
    """`argobridge run` against a dev-cluster: it stops within the promise and exits cleanly."""
    kubeconfig = tmp_path / "kc"
    cluster = start(
        [ARGOBRIDGE, "dev-cluster", "--kubeconfig", str(kubeconfig)], "press Ctrl-C", env, tmp_path / "cp.log"
    )
    try:
        subprocess.run(
            [ARGOBRIDGE, "install-crds"], env={**env, "KUBECONFIG": str(kubeconfig)}, check=True, capture_output=True
        )
        log = tmp_path / "run.log"
        proc = start(
            [ARGOBRIDGE, "run"], "Initial authentication has finished", {**env, "KUBECONFIG": str(kubeconfig)}, log
        )
        started = time.monotonic()
        proc.send_signal(signum)
        code = proc.wait(timeout=STOP_WITHIN + 10)
        took = time.monotonic() - started
        figures.append(f"argobridge run: {signal.Signals(signum).name} -> exit {code} in {took:.1f}s")
        assert code in (0, 130), log.read_text(errors="replace")[-2000:]
        assert took < STOP_WITHIN, f"argobridge run took {took:.1f}s to stop"
    finally:
        cluster.send_signal(signal.SIGTERM)
        cluster.wait(timeout=20)


def test_sigkilled_demo_takes_its_children_with_it(env: dict[str, str], tmp_path: Path) -> None:
    """kill -9 gives no chance to clean up: etcd and kube-apiserver must die with their parent anyway."""
    log = tmp_path / "demo.log"
    proc = start([ARGOBRIDGE, "demo"], "press Ctrl-C to stop", env, log)
    children = descendants(proc.pid)
    assert children
    proc.kill()
    proc.wait(timeout=10)
    left = wait_gone(children, timeout=STOP_WITHIN)
    assert not left, f"processes left after SIGKILL of the demo: {sorted(left)}"
