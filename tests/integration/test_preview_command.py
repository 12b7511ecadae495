"""`argobridge preview` as a person types it, with the real engine and without any."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest
import yaml

from argobridge_dev.engine import argocd_binary
from tests.integration.test_commands import argobridge

BRIDGE = {
    "apiVersion": "argobridge.io/v1alpha1",
    "kind": "BackstageBridge",
    "metadata": {"name": "backstage", "namespace": "argocd"},
    "spec": {
        "backstage": {"url": "https://backstage.example.com"},
        "argocd": {"url": "https://argocd.example.com"},
        "events": [{"event": "SyncFailed", "title": "{app} failed in {namespace}"}, {"event": "HealthDegraded"}],
        "routes": [
            {"name": "quiet", "match": [{"projects": ["sandbox"]}], "drop": True},
            {
                "name": "prod-oncall",
                "match": [{"events": ["SyncFailed"], "destinationNamespaces": ["prod-*"]}],
                "recipients": ["group:default/oncall"],
            },
        ],
    },
}


def application(project: str = "default") -> dict:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": "shop",
            "namespace": "argocd",
            "annotations": {"backstage.io/entity-ref": "component:shop"},
        },
        "spec": {
            "project": project,
            "destination": {"namespace": "prod-eu", "server": "https://kubernetes.default.svc"},
        },
        "status": {
            "health": {"status": "Healthy"},
            "operationState": {"phase": "Failed", "message": 'boom "x"', "startedAt": now, "finishedAt": now},
        },
    }


@pytest.fixture
def files(tmp_path):
    def write(app: dict) -> tuple[str, str]:
        (tmp_path / "bridge.yaml").write_text(yaml.safe_dump(BRIDGE))
        (tmp_path / "app.yaml").write_text(yaml.safe_dump(app))
        return str(tmp_path / "bridge.yaml"), str(tmp_path / "app.yaml")

    return write


def body_after(output: str, marker: str) -> dict:
    text = output.split(marker, 1)[1]
    lines = []
    for line in text.splitlines()[1:]:
        if not line.startswith("    "):
            break
        lines.append(line)
    return json.loads("\n".join(lines))


def test_preview_with_the_engine_shows_the_route_and_the_exact_body(files):
    argocd_binary()  # the pinned build, as `make tools` leaves it in the cache
    bridge, app = files(application())
    result = argobridge("preview", "--bridge", bridge, "--app", app, "--event", "SyncFailed")
    assert result.returncode == 0, result.stderr
    assert "# engine: " in result.stdout
    assert "matching routes: prod-oncall" in result.stdout
    assert "engine: fires now (condition 1 of 2)" in result.stdout
    body = body_after(result.stdout, "body (rendered by the argocd engine):")
    assert body["recipients"]["entityRef"] == ["component:default/shop", "group:default/oncall"]
    assert body["payload"]["title"] == "shop failed in argocd"
    assert body["payload"]["description"].endswith('boom "x"')
    assert "HealthDegraded" not in result.stdout


def test_preview_without_the_engine_computes_the_same_body(files, tmp_path):
    bridge, app = files(application())
    env = {**os.environ, "PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "empty-cache")}
    result = argobridge("preview", "--bridge", bridge, "--app", app, env=env)
    assert result.returncode == 0, result.stderr
    assert "argocd binary not found" in result.stdout
    body = body_after(result.stdout, "install argocd for the engine's own rendering):")
    assert body["recipients"]["entityRef"] == ["component:default/shop", "group:default/oncall"]
    assert "decided by: no route; the owners' default -> template app-health-degraded-backstage" in result.stdout


def test_preview_says_when_a_route_drops_the_event(files):
    bridge, app = files(application(project="sandbox"))
    result = argobridge("preview", "--bridge", bridge, "--app", app, "--event", "SyncFailed")
    assert result.returncode == 0, result.stderr
    assert "decided by: route quiet (drop)" in result.stdout and "nothing is sent" in result.stdout
    assert "does not fire now" in result.stdout
    assert "body (" not in result.stdout


def test_preview_refuses_an_event_that_is_not_enabled(files):
    bridge, app = files(application())
    result = argobridge("preview", "--bridge", bridge, "--app", app, "--event", "Deployed")
    assert result.returncode == 2 and "not enabled in spec.events: Deployed" in result.stderr
