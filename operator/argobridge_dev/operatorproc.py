"""A real `argobridge run` process serving one shard, for tests and benchmarks that need an operator
configured differently from the session's (a relay, other settings) next to it.

Why a process: the operator reads its settings from the environment once (handlers pick up the shard
at import), so a second configuration in the same interpreter is not possible; a separate process is
also what a deployment runs. It serves only bridges labelled `argobridge.io/shard=<shard>`, so the
session's operator (which serves unlabelled bridges) and this one never touch each other's bridges.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from argobridge_dev.controlplane import free_port
from argobridge_dev.processes import spawn, stop

SHARD_LABEL = "argobridge.io/shard"


class OperatorProcess:
    """`argobridge run` (optionally with leader election) with its own shard, health port and log."""

    def __init__(
        self,
        kubeconfig: Path | str,
        shard: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        leader_election: bool = False,
        identity: str = "operator-0",
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.shard = shard
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.health_port = free_port()
        self.identity = identity
        self.env = {
            "KUBECONFIG": self.kubeconfig,
            "POD_ID": identity,
            "ARGOBRIDGE_SHARD": shard,
            "ARGOBRIDGE_METRICS_PORT": "0",
            "ARGOBRIDGE_LOG_FORMAT": "plain",
            "ARGOBRIDGE_RESYNC_SECONDS": "3",
            **(env or {}),
        }
        self.args = ["run", f"--liveness=http://127.0.0.1:{self.health_port}/healthz", *args]
        if leader_election:
            self.args.insert(1, "--leader-election")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def labels(self) -> dict[str, str]:
        """The labels a bridge needs to be served by this operator (and by no other)."""
        return {SHARD_LABEL: self.shard}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        """Start and wait until its health endpoint answers (kopf is up and watching)."""
        # The operator's own settings come only from self.env: a test's environment (the session
        # operator's ARGOBRIDGE_* in os.environ) must not leak into this one.
        base = {key: value for key, value in os.environ.items() if not key.startswith("ARGOBRIDGE_")}
        self.process = spawn(
            [sys.executable, "-m", "argobridge.commands.cli", *self.args], self.log_path, env={**base, **self.env}
        )
        end = time.monotonic() + timeout
        while not self.healthy():
            self.alive()
            if time.monotonic() > end:
                raise RuntimeError(f"operator {self.identity} not healthy after {timeout:.0f}s; see {self.log_path}")
            time.sleep(0.2)
        return self

    def health(self, path: str = "/healthz") -> tuple[int, str] | None:
        """The health endpoint's status and body, or None while nothing answers."""
        try:
            response = httpx.get(f"http://127.0.0.1:{self.health_port}{path}", timeout=2.0)
        except httpx.HTTPError:
            return None
        return response.status_code, response.text

    def healthy(self) -> bool:
        answer = self.health()
        return answer is not None and answer[0] == 200

    def alive(self) -> bool:
        """True while it runs; raises with the end of its log once it has exited."""
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"operator {self.identity} exited:\n{self.log()[-3000:]}")
        return True

    def pause(self) -> None:
        """SIGSTOP (a frozen node, a long GC pause)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (resuming it first if paused) and wait; its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)
        stop(self.process, timeout)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> OperatorProcess:
        return self if self.process is not None else self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
