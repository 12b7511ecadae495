"""A real Kubernetes control plane as two local processes, the way controller-runtime's envtest runs one.

etcd and kube-apiserver only: no scheduler, no controller-manager, no nodes. That is everything an
operator that reads and writes API objects needs, and it starts in seconds once the binaries are cached.
Every process started here is stopped by `stop()`, which the context manager and an atexit hook call
even when a test fails.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import random
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

from argobridge_dev import processes
from argobridge_dev.gobuild import ensure_built
from argobridge_dev.versions import ETCD, KUBE_APISERVER

# Below Linux's ephemeral range (32768-60999 by default): a port the kernel handed out for bind(0) may be
# taken a moment later as the local end of any outgoing connection (the suite makes thousands), and the
# server started on it then fails with "address already in use". Ports from here are never given out so.
_PORT_RANGE = (20000, 32767)
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, never one this process handed out before."""
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randint(*_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORT_RANGE} after 1000 tries")


def _program(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args
    first = args[0] if isinstance(args, list | tuple) else args
    return Path(str(first)).name


def _openssl_service_account_key(path: Path) -> None:
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)


@dataclass
class ControlPlane:
    """etcd + kube-apiserver on loopback with a static admin token; `kubeconfig` is ready once started."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="argobridge-cp-")))
    keep_workdir: bool = False
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_port: int = 0
    token: str = ""
    etcd_url: str = ""  # etcd's client URL, for tests that need etcd itself (e.g. a compaction)
    watch_cache: bool = True  # False: watches are served by etcd, so a compaction makes old versions 410 Gone
    startup_seconds: float = 0.0
    audit: bool = False  # record every write request (who, what) in workdir/audit.log, for benchmarks
    audit_reads: bool = False  # also record reads, with response codes: proves what an identity called

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        proc = processes.spawn(args, self.workdir / log_name)
        self.processes.append(proc)
        return proc

    def start(self, timeout: float = 120.0) -> ControlPlane:
        """Build (if needed) and start etcd and kube-apiserver, and wait until the apiserver is ready."""
        etcd_bin = ensure_built(ETCD)
        apiserver_bin = ensure_built(KUBE_APISERVER)
        atexit.register(self.stop)
        started = time.monotonic()
        etcd_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            [
                str(etcd_bin),
                "--data-dir",
                str(self.workdir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
            "etcd.log",
        )
        self.token = secrets.token_hex(24)
        (self.workdir / "tokens.csv").write_text(f'{self.token},admin,admin-uid,"system:masters"\n')
        sa_key = self.workdir / "sa.key"
        _openssl_service_account_key(sa_key)
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        self.api_port = free_port()
        self._spawn(
            [
                str(apiserver_bin),
                "--etcd-servers",
                f"http://127.0.0.1:{etcd_port}",
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(self.api_port),
                "--cert-dir",
                str(certs),
                "--token-auth-file",
                str(self.workdir / "tokens.csv"),
                "--authorization-mode",
                "RBAC",
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file",
                str(sa_key),
                "--service-account-signing-key-file",
                str(sa_key),
                "--service-cluster-ip-range",
                "10.0.0.0/24",
                "--disable-admission-plugins",
                "ServiceAccount",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                *self._audit_flags(),
                *([] if self.watch_cache else ["--watch-cache=false"]),
                "--v",
                "0",
            ],
            "kube-apiserver.log",
        )
        self._wait_ready(timeout)
        self._write_kubeconfig()
        self.startup_seconds = time.monotonic() - started
        return self

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def _audit_flags(self) -> list[str]:
        if not (self.audit or self.audit_reads):
            return []
        policy = self.workdir / "audit-policy.yaml"
        verbs = "" if self.audit_reads else "\n  verbs: [create, update, patch, delete, deletecollection]"
        policy.write_text(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n"
            f"- level: Metadata{verbs}\n- level: None\n"
        )
        return [
            "--audit-policy-file",
            str(policy),
            "--audit-log-path",
            str(self.audit_log),
            "--audit-log-format",
            "json",
        ]

    def _wait_ready(self, timeout: float) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.poll() is not None:
                    logs = self.logs()
                    self.stop()
                    raise RuntimeError(f"{_program(proc)} exited with {proc.returncode}:\n{logs}")
            request = urllib.request.Request(f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.token}"})
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as error:
                last = str(error)
            time.sleep(0.3)
        logs = self.logs()
        self.stop()
        raise TimeoutError(f"kube-apiserver not ready after {timeout:.0f}s ({last}):\n{logs}")

    def _write_kubeconfig(self) -> None:
        ca = (self.workdir / "certs" / "apiserver.crt").read_bytes()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "argobridge-local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": base64.b64encode(ca).decode(),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "argobridge-local", "context": {"cluster": "argobridge-local", "user": "admin"}}],
            "current-context": "argobridge-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def logs(self, lines: int = 30) -> str:
        """The last lines of each process's log, for error messages."""
        parts = []
        for log in sorted(self.workdir.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop every process this control plane started (apiserver first), then remove its files."""
        # Nothing here is worth a graceful shutdown (the workdir goes next): a short grace keeps
        # Ctrl-C of `make run` and `dev-cluster` under a few seconds.
        # Half a second when the data goes anyway; two when the workdir is kept for a later look.
        processes.stop_all(list(reversed(self.processes)), timeout=2.0 if self.keep_workdir else 0.5)
        self.processes.clear()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def main() -> int:
    """Start a control plane for a human, write its kubeconfig, and run until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(prog="argobridge dev-cluster", description=main.__doc__)
    parser.add_argument("--kubeconfig", default="./kubeconfig.local", help="where to write the kubeconfig")
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["dev-cluster"] else sys.argv[1:])
    with processes.sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt), ControlPlane() as plane:
        target = Path(args.kubeconfig).resolve()
        shutil.copyfile(plane.kubeconfig, target)
        target.chmod(0o600)
        print(f"control plane ready in {plane.startup_seconds:.1f}s at {plane.server}")
        print(f"export KUBECONFIG={target}")
        print("press Ctrl-C to stop it", flush=True)
        signal.pause()
    return 0
