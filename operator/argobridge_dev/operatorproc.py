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
from typing import Any

import httpx

from argobridge_dev.controlplane import free_port
from argobridge_dev.processes import spawn, stop

SHARD_LABEL = "argobridge.io/shard"


class OperatorProcess:
    """`argobridge run` (optionally with leader election) with its own shard, health port and log.

    Restartable: `start()` after `kill()` or `stop()` runs it again with the same settings, appending
    to the same log (what a restarted container does).
    """

    def __init__(
        self,
        kubeconfig: Path | str,
        shard: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        namespaces: Sequence[str] = (),
        leader_election: bool = False,
        identity: str = "operator-0",
        debug: bool = False,
    ) -> None:
        port = free_port()
        args = ["run", f"--liveness=http://127.0.0.1:{port}/healthz"]
        args += ["--leader-election"] if leader_election else []
        args += ["--debug"] if debug else []
        for namespace in namespaces:
            args += ["-n", namespace]
        defaults = {
            "KUBECONFIG": str(kubeconfig),
            "POD_ID": identity,  # in the User-Agent of every request (audit logs tell replicas apart)
            "ARGOBRIDGE_SHARD": shard,
            "ARGOBRIDGE_METRICS_PORT": "0",
            "ARGOBRIDGE_LOG_FORMAT": "plain",
            "ARGOBRIDGE_RESYNC_SECONDS": "3",
        }
        self._setup(args, {**defaults, **(env or {})}, log_path, port, identity)
        self.shard = shard

    def _setup(self, args: list[str], env: dict[str, str], log_path: Path, health_port: int, identity: str) -> None:
        self.args, self.env, self.health_port, self.identity = args, env, health_port, identity
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.shard = env.get("ARGOBRIDGE_SHARD", "")
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_chart(
        cls, deployment: Mapping[str, Any], pod: str, namespace: str, kubeconfig: Path | str, log_path: Path
    ) -> OperatorProcess:
        """The chart's operator container run as pod `pod` of `namespace`: its args, its env (fieldRefs
        resolved as the kubelet would), its health port."""
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {"KUBECONFIG": str(kubeconfig)}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            else:
                path = item["valueFrom"]["fieldRef"]["fieldPath"]
                env[item["name"]] = {"metadata.name": pod, "metadata.namespace": namespace}[path]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        process = cls.__new__(cls)
        process._setup(list(container["args"]), env, log_path, int(ports["health"]), pod)
        return process

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

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs (an OOM kill, a node failure)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

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
