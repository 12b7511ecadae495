"""A real `argobridge relay` process for tests, benchmarks and the demo.

Why a process and not the Relay class in-process: the guarantees under test (an acknowledged item
survives SIGKILL, Argo CD is answered while Backstage hangs) are properties of the process, its SQLite
file and its sockets, which only a separate process shows honestly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from argobridge_dev.controlplane import free_port
from argobridge_dev.processes import spawn, stop


def config_entry(url: str, token: str, **extra: Any) -> dict[str, Any]:
    """One bridge's entry of the relay's config, as the operator writes it (`extra` overrides a field)."""
    return {
        "url": url,
        "token": token,
        "acceptTokens": [],
        "retryForSeconds": 3600.0,
        "attemptTimeoutSeconds": 5.0,
        "caBundle": None,
        "insecureSkipVerify": False,
        **extra,
    }


class RelayProcess:
    """`argobridge relay` on loopback ports, its data directory and log kept across restarts.

    Config comes from `config_file` (JSON object of bridge entries, see RELAY contract) or from a Secret
    (`config_secret` = "ns/name", read with `kubeconfig`).
    """

    def __init__(
        self,
        workdir: Path,
        config_file: Path | None = None,
        config_secret: str | None = None,
        kubeconfig: Path | str | None = None,
        replica: str = "relay-0",
        shutdown_delay: float = 0.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "relay.log"
        self.config_file = config_file
        self.config_secret = config_secret
        self.kubeconfig = kubeconfig
        self.replica = replica
        self.shutdown_delay = shutdown_delay
        self.port = free_port()
        self.status_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL Argo CD's webhook service points to (ARGOBRIDGE_RELAY_URL)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def status_url(self) -> str:
        """Base URL of the status port (ARGOBRIDGE_RELAY_STATUS_URLS)."""
        return f"http://127.0.0.1:{self.status_port}"

    def write_config(self, bridges: dict[str, dict[str, Any]]) -> None:
        """Replace the config file's entries (the relay re-reads it every 2 s)."""
        assert self.config_file is not None, "this relay reads a Secret, not a file"
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(bridges))
        tmp.replace(self.config_file)

    def start(self, timeout: float = 30.0) -> RelayProcess:
        cmd = [sys.executable, "-m", "argobridge.commands.cli", "relay"]
        cmd += ["--listen", f"127.0.0.1:{self.port}", "--status-listen", f"127.0.0.1:{self.status_port}"]
        cmd += ["--data-dir", str(self.data_dir), "--replica", self.replica]
        cmd += ["--shutdown-delay", str(self.shutdown_delay)]
        if self.config_file is not None:
            cmd += ["--config-file", str(self.config_file)]
        if self.config_secret is not None:
            cmd += ["--config-secret", self.config_secret]
        env = dict(os.environ)
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        self.proc = spawn(cmd, self.log_path, env=env)
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.status_url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                raise RuntimeError(f"relay not healthy after {timeout:.0f}s; see {self.log_path}")
            time.sleep(0.1)

    def status(self) -> dict[str, Any]:
        """The relay's /v1/status document."""
        doc: dict[str, Any] = httpx.get(f"{self.status_url}/v1/status", timeout=5.0).json()
        return doc

    def bridge_status(self, namespace: str, name: str) -> dict[str, Any]:
        """One bridge's entry of /v1/status ({} before the relay knows it)."""
        entry: dict[str, Any] = self.status()["bridges"].get(f"{namespace}/{name}", {})
        return entry

    def send_until_accepted(
        self, namespace: str, name: str, scope: str, token: str, title: str, timeout: float = 20.0
    ) -> None:
        """POST one notification as Argo CD's webhook does, until the relay answers 202 (it refuses a bridge
        until it has read that bridge's config entry, which it polls)."""
        body = {
            "recipients": {"type": "entity", "entityRef": "user:default/guest"},
            "payload": {"title": title, "scope": scope},
        }
        url = f"{self.url}/v1/bridges/{namespace}/{name}/notifications"
        deadline = time.monotonic() + timeout
        while True:
            answer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5)
            if answer.status_code == 202:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the relay did not accept {scope} within {timeout}s: last {answer.status_code}")
            time.sleep(0.3)

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything (what a node failure does)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait (a graceful rollout)."""
        stop(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> RelayProcess:
        return self if self.proc is not None else self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
