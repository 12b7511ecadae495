"""The real Argo CD notifications engine, offline (render a template, evaluate a trigger) and live.

Offline, `argocd admin notifications` reads a ConfigMap file and an Application file and prints what
the engine would send; it needs some API server address even then (an unreachable one is fine) and
reports errors on stderr with exit code 0, so the output is checked, not the status. Live, the same
binary runs as the notifications controller when started under the name `argocd-notifications`.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from argobridge.devcluster import processes
from argobridge.devcluster.controlplane import free_port
from argobridge.devcluster.gobuild import ensure_built, go_env
from argobridge.devcluster.versions import ARGO_CD

OFFLINE_SERVER = "127.0.0.1:1"  # no scheme: plain HTTP to a closed port, so nothing prompts for a login
# The engine looks the app's AppProject up even offline and warns when it cannot; that is expected.
_EXPECTED_STDERR = re.compile(r"Failed to get AppProject|cannot get application project")


class EngineError(RuntimeError):
    """The engine refused the configuration or failed to render; the message is the engine's own."""


def argocd_binary() -> Path:
    return ensure_built(ARGO_CD)


def notifications_controller_binary() -> Path:
    """A link named `argocd-notifications` to the multi-call binary, which picks its role by name."""
    binary = argocd_binary()
    link = binary.with_name("argocd-notifications")
    if not link.exists():
        link.symlink_to(binary.name)
    return link


def argocd_module_dir() -> Path:
    """The Argo CD Go module's source tree (for its CRD manifests), from the module cache."""
    info = subprocess.run(
        ["go", "mod", "download", "-json", f"{ARGO_CD.module}@{ARGO_CD.version}"],
        env=go_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(info.stdout)["Dir"])


def argocd_crd_documents() -> list[dict[str, Any]]:
    """Application and AppProject CRDs exactly as Argo CD ships them."""
    crds = argocd_module_dir() / "manifests" / "crds"
    return [yaml.safe_load((crds / name).read_text()) for name in ("application-crd.yaml", "appproject-crd.yaml")]


def _check_stderr(stderr: str, tolerated: re.Pattern[str] | None = None) -> None:
    problems = [
        line
        for line in stderr.splitlines()
        if line.strip() and not _EXPECTED_STDERR.search(line) and not (tolerated and tolerated.search(line))
    ]
    if problems:
        raise EngineError("\n".join(problems))


@dataclass
class OfflineEngine:
    """Runs `argocd admin notifications` against a ConfigMap's data, one Application at a time."""

    config: Mapping[str, str]
    secret: Mapping[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="argobridge-engine-")))
    binary: Path | None = None  # default: the pinned build, built first if it is not cached
    tolerated_stderr: re.Pattern[str] | None = None  # further lines that are not errors for this caller

    def __post_init__(self) -> None:
        self.binary = self.binary or argocd_binary()
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "argocd-notifications-cm"},
            "data": dict(self.config),
        }
        (self.workdir / "cm.yaml").write_text(yaml.safe_dump(cm))
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "argocd-notifications-secret"},
            "stringData": dict(self.secret),
        }
        (self.workdir / "secret.yaml").write_text(yaml.safe_dump(secret))

    def _run(self, *args: str, app: Mapping[str, Any] | None) -> str:
        app_file = self.workdir / "app.yaml"
        if app is not None:
            app_file.write_text(yaml.safe_dump(dict(app), allow_unicode=True))
        result = subprocess.run(
            [
                str(self.binary),
                "admin",
                "notifications",
                *args,
                *([str(app_file)] if app is not None else []),
                "--config-map",
                str(self.workdir / "cm.yaml"),
                "--secret",
                str(self.workdir / "secret.yaml"),
                "--server",
                OFFLINE_SERVER,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        _check_stderr(result.stderr, self.tolerated_stderr)
        return result.stdout

    def load(self) -> list[str]:
        """Load the whole configuration (every service, trigger and template) and list its triggers."""
        lines = self._run("trigger", "get", app=None).splitlines()
        return [line.split()[0] for line in lines[1:] if line.strip()]

    def notify(self, template: str, app: Mapping[str, Any]) -> dict[str, Any]:
        """What the engine would send for `template`: {service type: {service name: {method, body, path}}}."""
        rendered = yaml.safe_load(self._run("template", "notify", template, app=app))
        if not isinstance(rendered, dict):
            raise EngineError(f"template {template} rendered nothing")
        return rendered

    def webhook_body(self, template: str, app: Mapping[str, Any], service: str = "backstage") -> str:
        """The exact body the webhook service would POST."""
        return str(self.notify(template, app)["webhook"][service]["body"])

    def trigger(self, trigger: str, app: Mapping[str, Any]) -> list[bool]:
        """Each condition's result, in order, as `trigger run` evaluates it."""
        lines = self._run("trigger", "run", trigger, app=app).splitlines()
        if not lines or not lines[0].startswith("CONDITION"):
            raise EngineError(f"trigger {trigger}: unexpected output {lines!r}")
        return [line.rsplit(None, 1)[-1] == "true" for line in lines[1:] if line.strip()]


@dataclass
class NotificationsController:
    """The real notifications controller, watching one namespace of a control plane."""

    kubeconfig: Path
    namespace: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = field(default_factory=free_port)

    def start(self) -> NotificationsController:
        args = [
            str(notifications_controller_binary()),
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
