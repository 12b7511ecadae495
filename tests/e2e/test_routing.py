"""Routes carried out by the real notifications controller, read back from the real Backstage.

Catalog: alice is in team-a, which owns component:default/shop; carol is in the on-call group; bob is
in no group. The bridge routes production sync failures to on-call as well, broadcasts critical
events of the platform project, and drops everything from the sandbox project.
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import Rig

EVENTS = [
    {"event": "SyncFailed", "severity": "high"},
    {"event": "HealthDegraded", "severity": "critical"},
    {"event": "Deployed", "severity": "low"},
    {"event": "SyncSucceeded", "severity": "low"},
]
ROUTES: list[dict[str, Any]] = [
    {"name": "sandbox-quiet", "match": [{"projects": ["sandbox"]}], "drop": True},
    {
        "name": "platform-critical",
        "match": [{"projects": ["platform"], "minSeverity": "critical"}],
        "broadcast": True,
        "title": "Platform: {app} is {health}",
    },
    {
        "name": "prod-oncall",
        "match": [{"events": ["SyncFailed"], "destinationNamespaces": ["prod", "prod-*"]}],
        "recipients": ["group:default/oncall"],
        "title": 'PROD {app}: sync failed "{phase}"',
        "description": "{message} (revision {revision})",
    },
]
HOSTILE = 'hook "pre-sync" failed:\n{{ .secrets }} \\ 🚀'


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in body.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def config_map(rig: Rig) -> dict[str, str]:
    return dict(rig.core.read_namespaced_config_map("argocd-notifications-cm", rig.namespace).data or {})


def on_call_group_resolved(rig: Rig) -> bool:
    """The catalog has related carol to the on-call group (Backstage expands groups through relations)."""
    request = urllib.request.Request(
        f"{rig.backstage.url}/api/catalog/entities/by-name/group/default/oncall",
        headers={"Authorization": f"Bearer {rig.backstage.user_token('alice')}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            entity = json.loads(response.read())
    except OSError:
        return False
    return any(r["type"] == "hasMember" and r["targetRef"] == "user:default/carol" for r in entity.get("relations", []))


@pytest.fixture(scope="module")
def routed(rig: Rig) -> Rig:
    wait_for(lambda: on_call_group_resolved(rig), timeout=60, what="the on-call group in Backstage's catalog")
    for project in ("platform", "sandbox"):
        rig.create_project(project)
    rig.patch_bridge({"events": EVENTS, "routes": ROUTES})
    wait_for(
        lambda: "template.app-sync-failed-prod-oncall-backstage" in config_map(rig),
        what="the routes in Argo CD's configuration",
    )
    wait_for(lambda: condition(rig.bridge(), "Ready").get("status") == "True", what="bridge Ready with routes")
    return rig


def test_production_sync_failure_reaches_the_owning_team_and_on_call(routed: Rig):
    routed.create_app("shop-prod", destination_namespace="prod-eu")
    time.sleep(1)
    routed.set_status("shop-prod", "Failed", "Healthy", HOSTILE, started=now(), revision="c0ffee")
    owner = routed.wait_received("alice", "shop-prod", "SyncFailed")
    on_call = routed.wait_received("carol", "shop-prod", "SyncFailed")

    assert owner["payload"] == on_call["payload"], "one body, sent to owners and on-call together"
    assert on_call["payload"]["title"] == 'PROD shop-prod: sync failed "Failed"'
    assert on_call["payload"]["description"] == f"{HOSTILE} (revision c0ffee)"
    assert on_call["payload"]["severity"] == "high" and on_call["payload"]["topic"] == "argocd.sync.failed"
    time.sleep(2)
    assert len(routed.received("alice", "shop-prod")) == 1, "one notification for the owner, not two"
    assert routed.received("bob", "shop-prod") == []


def test_failure_outside_production_reaches_only_the_owners(routed: Rig):
    routed.create_app("shop-staging", destination_namespace="staging")
    time.sleep(1)
    routed.set_status("shop-staging", "Failed", "Healthy", "staging broke", started=now())
    assert (
        routed.wait_received("alice", "shop-staging", "SyncFailed")["payload"]["title"] == "shop-staging: sync failed"
    )
    time.sleep(2)
    assert routed.received("carol", "shop-staging") == []


def test_critical_event_in_the_platform_project_is_broadcast_to_every_user(routed: Rig):
    routed.create_app("core-dns", project="platform", ref="component:default/shop")
    time.sleep(1)
    routed.set_status("core-dns", "Succeeded", "Degraded", "ok", started=now())
    for user in ("alice", "bob", "carol"):
        notification = routed.wait_received(user, "core-dns", "HealthDegraded")
        assert notification["payload"]["title"] == "Platform: core-dns is Degraded"
        assert notification["payload"]["severity"] == "critical"
    # The sync itself succeeded (low): not critical, so only the owners hear of it.
    routed.wait_received("alice", "core-dns", "SyncSucceeded")
    time.sleep(2)
    assert routed.received("bob", "core-dns", "SyncSucceeded") == []


def test_dropped_event_sends_nothing(routed: Rig):
    routed.create_app("scratch", project="sandbox", destination_namespace="prod")
    time.sleep(1)
    routed.set_status("scratch", "Failed", "Degraded", "sandbox broke", started=now())
    routed.create_app("drop-marker", destination_namespace="prod")  # one that does notify, processed after
    time.sleep(1)
    routed.set_status("drop-marker", "Failed", "Healthy", "marker", started=now())
    routed.wait_received("carol", "drop-marker", "SyncFailed")
    time.sleep(3)
    for user in ("alice", "bob", "carol"):
        assert routed.received(user, "scratch") == [], user
    errors = [
        line
        for line in routed.controller.log_lines()
        if line.get("level") in {"error", "fatal"} and "scratch" in json.dumps(line)
    ]
    assert errors == []


def test_route_that_would_not_compile_is_refused_and_the_running_configuration_keeps_delivering(routed: Rig):
    before = config_map(routed)
    broken = {"name": "running-oncall", "match": [{"events": ["SyncRunning"]}], "recipients": ["group:default/oncall"]}
    routed.patch_bridge({"routes": [*ROUTES, broken]})
    try:
        body = wait_for(
            lambda: (
                (b := routed.bridge())
                and condition(b, "ConfigApplied").get("reason") == "InvalidSpec"
                and b["status"].get("observedGeneration") == b["metadata"]["generation"]
                and b
            ),
            what="the broken route refused",
        )
        message = condition(body, "ConfigApplied")["message"]
        assert "spec.routes[3] (running-oncall)" in message and "spec.events" in message
        assert config_map(routed) == before, "Argo CD's configuration is left exactly as it was"

        routed.create_app("shop-prod-2", destination_namespace="prod")
        time.sleep(1)
        routed.set_status("shop-prod-2", "Failed", "Healthy", "still delivered", started=now())
        assert routed.wait_received("carol", "shop-prod-2", "SyncFailed")["payload"]["description"].startswith(
            "still delivered"
        )
    finally:
        routed.patch_bridge({"routes": ROUTES})
    wait_for(lambda: condition(routed.bridge(), "Ready").get("status") == "True", what="Ready again")
    assert config_map(routed) == before
