"""The real Argo CD operator (the upstream of OpenShift GitOps), run as a local process against a control plane.

Built from its Go module like the other binaries; its CRDs come from the same module and the OpenShift
Route CRD from `github.com/openshift/api`, so nothing here is hand-written. With the Route API present
the operator behaves as it does on OpenShift for everything ArgoBridge touches. It creates Deployments
whose pods never run on a bare control plane; only its reconciliation of API objects matters here.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from argobridge_dev import processes
from argobridge_dev.gobuild import ensure_built, module_dir
from argobridge_dev.versions import ARGOCD_OPERATOR, OPENSHIFT_API_MODULE, OPENSHIFT_API_VERSION

# The operator's own kinds; Application, AppProject and ApplicationSet come from Argo CD's module instead.
OPERATOR_CRDS = (
    "argoproj.io_argocds.yaml",
    "argoproj.io_argocdexports.yaml",
    "argoproj.io_notificationsconfigurations.yaml",
    "argoproj.io_namespacemanagements.yaml",
    "argocd-image-updater.argoproj.io_imageupdaters.yaml",
)


def operator_crd_documents() -> list[dict[str, Any]]:
    """The operator's CRDs exactly as it ships them (config/crd/bases)."""
    bases = module_dir(ARGOCD_OPERATOR.module, ARGOCD_OPERATOR.version) / "config" / "crd" / "bases"
    return [yaml.safe_load((bases / name).read_text()) for name in OPERATOR_CRDS]


def route_crd_document() -> dict[str, Any]:
    """OpenShift's Route CRD (route.openshift.io/v1) from the openshift/api module the operator uses."""
    path = module_dir(OPENSHIFT_API_MODULE, OPENSHIFT_API_VERSION) / "route" / "v1" / "route.crd.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


@dataclass
class ArgoCDOperator:
    """The operator's manager process, watching every namespace, without leader election or listeners."""

    kubeconfig: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ArgoCDOperator:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "WATCH_NAMESPACE": "",  # all namespaces, as the cluster-wide OpenShift GitOps install runs
            "LOG_LEVEL": "info",
            # The image ships the Redis templates at /var/lib/redis; they come from the module's build/redis.
            "REDIS_CONFIG_PATH": str(module_dir(ARGOCD_OPERATOR.module, ARGOCD_OPERATOR.version) / "build" / "redis"),
        }
        args = [
            str(ensure_built(ARGOCD_OPERATOR)),
            # "0" turns the metrics and health listeners off: nothing here scrapes them, and fixed ports collide.
            *("--metrics-bind-address", "0", "--health-probe-bind-address", "0"),
            "--leader-elect=false",
        ]
        self.process = processes.spawn(args, self.log_path, env=env)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        processes.stop(self.process, timeout=10)

    def __enter__(self) -> ArgoCDOperator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
