"""The real Argo CD notifications engine for development and tests: the pinned build, offline and live.

Offline, `argocd admin notifications` reads a ConfigMap file and an Application file and prints what
the engine would send; it needs some API server address even then (an unreachable one is fine) and
reports errors on stderr with exit code 0, so the output is checked, not the status. Live, the same
binary runs as the notifications controller when started under the name `argocd-notifications`.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from argobridge.engine.offline import OFFLINE_SERVER, EngineError
from argobridge.engine.offline import OfflineEngine as _OfflineEngine
from argobridge_dev import processes
from argobridge_dev.controlplane import free_port
from argobridge_dev.gobuild import binary_path, ensure_built, module_dir
from argobridge_dev.versions import ARGO_CD, ARGO_CD_NOTIFICATIONS


def argocd_binary() -> Path:
    return ensure_built(ARGO_CD)


def notifications_controller_binary() -> Path:
    """A link named `argocd-notifications` to the multi-call binary, which picks its role by name."""
    binary = argocd_binary()
    link = binary.with_name("argocd-notifications")
    if not link.exists():
        link.symlink_to(binary.name)
    return link


def controller_only_binary() -> Path:
    """The notifications controller for the demo: the controller-only build of the pinned Argo CD (a
    fraction of the full build), or the full `argocd` when only that one is built here already."""
    if binary_path(ARGO_CD).exists() and not binary_path(ARGO_CD_NOTIFICATIONS).exists():
        return notifications_controller_binary()
    return ensure_built(ARGO_CD_NOTIFICATIONS)


def argocd_module_dir() -> Path:
    """The Argo CD Go module's source tree (for its CRD manifests), from the module cache."""
    return module_dir(ARGO_CD.module, ARGO_CD.version)


def argocd_crd_documents() -> list[dict[str, Any]]:
    """Application and AppProject CRDs exactly as Argo CD ships them."""
    crds = argocd_module_dir() / "manifests" / "crds"
    return [yaml.safe_load((crds / name).read_text()) for name in ("application-crd.yaml", "appproject-crd.yaml")]


@dataclass
class OfflineEngine(_OfflineEngine):
    """The offline engine on the pinned build (built first if it is not cached), for tests and the demo."""

    def __post_init__(self) -> None:
        self.binary = self.binary or argocd_binary()
        super().__post_init__()


__all__ = [
    "OFFLINE_SERVER",
    "EngineError",
    "NotificationsController",
    "OfflineEngine",
    "argocd_binary",
    "controller_only_binary",
]


@dataclass
class NotificationsController:
    """The real notifications controller, watching one namespace of a control plane."""

    kubeconfig: Path
    namespace: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = field(default_factory=free_port)
    # Default: the full `argocd` run as `argocd-notifications`; the demo passes controller_only_binary().
    binary: Path | None = None

    def start(self) -> NotificationsController:
        args = [
            str(self.binary or notifications_controller_binary()),
            *("--kubeconfig", str(self.kubeconfig), "--namespace", self.namespace),
            *("--metrics-port", str(self.metrics_port), "--logformat", "json"),
            # Not debug: at debug the controller logs each request with its Authorization header.
            *("--loglevel", "info"),
        ]
        self.process = processes.spawn(args, self.log_path)
        return self

    def log_lines(self) -> list[dict[str, Any]]:
        """The controller's JSON log lines so far."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"msg": line})
        return lines

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def stop(self) -> None:
        processes.stop(self.process, timeout=10)

    def __enter__(self) -> NotificationsController:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
