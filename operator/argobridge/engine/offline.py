"""The real Argo CD notifications engine, offline: render a template, evaluate a trigger.

`argocd admin notifications` reads a ConfigMap file and an Application file and prints what the engine
would send; it needs some API server address even then (an unreachable one is fine) and reports errors
on stderr with exit code 0, so the output is checked, not the status. This edge runs a binary it is
given: finding or building one is the caller's business (`find_argocd` for the commands users run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

OFFLINE_SERVER = "127.0.0.1:1"  # no scheme: plain HTTP to a closed port, so nothing prompts for a login
# The engine looks the app's AppProject up even offline and warns when it cannot; that is expected.
_EXPECTED_STDERR = re.compile(r"Failed to get AppProject|cannot get application project")
# libyaml when PyYAML has it: an Application carrying a 300 KB message takes seconds in pure Python.
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class EngineError(RuntimeError):
    """The engine refused the configuration or failed to render; the message is the engine's own."""


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
    binary: Path | None = None  # required here; argobridge_dev's engine defaults it to the pinned build
    tolerated_stderr: re.Pattern[str] | None = None  # further lines that are not errors for this caller

    def __post_init__(self) -> None:
        if self.binary is None:
            raise EngineError("no argocd binary was given to the offline engine")
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
            app_file.write_text(yaml.dump(dict(app), Dumper=_DUMPER, allow_unicode=True))
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
        rendered = yaml.load(self._run("template", "notify", template, app=app), Loader=_LOADER)
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


def find_argocd() -> Path | None:
    """The `argocd` binary users' commands may run: $ARGOBRIDGE_ARGOCD, else on PATH, else a cached build.

    Never a build: `preview` and `doctor` run in the image and on laptops, where building is not theirs to do.
    """
    named = os.environ.get("ARGOBRIDGE_ARGOCD")
    if named:
        return Path(named) if Path(named).is_file() else None
    on_path = shutil.which("argocd")
    if on_path:
        return Path(on_path)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "argobridge" / "bin"
    cached = sorted(cache.glob("argocd-v*/argocd"))
    return cached[-1] if cached else None
