"""Application status changes, delivered by the real Argo CD engine, read back from the real Backstage.

The notifications controller reads only what ArgoBridge wrote (its ConfigMap keys and its token);
alice is a member of team-a, which owns component:default/shop; bob is not.
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta

from tests.conftest import wait_for
from tests.e2e.conftest import Rig

HOSTILE = 'apply failed: "deployment.apps \\"shop\\" is invalid"\nspec.replicas: Invalid value: -1\t{{ .x }} \\ end'


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(body, kind):
    return next((c for c in body.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def test_bridge_sees_backstage_accept_its_token(rig: Rig):
    body = wait_for(
        lambda: (b := rig.bridge()) and condition(b, "BackstageReachable").get("status") == "True" and b,
        what="BackstageReachable True",
    )
    assert condition(body, "BackstageReachable")["reason"] == "TokenAccepted"
    assert condition(body, "Ready")["status"] == "True"


def test_deploy_sends_sync_succeeded_and_deployed_once_to_the_owning_team(rig: Rig):
    rig.create_app("shop-deploy")
    time.sleep(1)
    rig.set_status("shop-deploy", "Succeeded", "Healthy", "successfully synced (all tasks run)", started=now())
    deployed = rig.wait_received("alice", "shop-deploy", "Deployed")
    succeeded = rig.wait_received("alice", "shop-deploy", "SyncSucceeded")

    assert deployed["payload"]["title"] == "shop-deploy: deployed"
    assert deployed["payload"]["severity"] == "low" and deployed["payload"]["topic"] == "argocd.deployed"
    assert deployed["payload"]["link"] == f"https://argocd.example.com/applications/{rig.namespace}/shop-deploy"
    assert deployed["origin"] == "argocd"
    assert succeeded["payload"]["topic"] == "argocd.sync.succeeded"

    rig.touch("shop-deploy")  # processed again: nothing new may be sent for the same operation
    time.sleep(3)
    assert len(rig.received("alice", "shop-deploy")) == 2
    assert rig.received("bob", "shop-deploy") == []


def test_failed_sync_with_hostile_message_and_degraded_health_arrive(rig: Rig):
    rig.create_app("shop-fail")
    time.sleep(1)
    rig.set_status("shop-fail", "Failed", "Degraded", HOSTILE, started=now())
    failed = rig.wait_received("alice", "shop-fail", "SyncFailed")
    degraded = rig.wait_received("alice", "shop-fail", "HealthDegraded")

    assert failed["payload"]["severity"] == "high" and failed["payload"]["topic"] == "argocd.sync.failed"
    assert HOSTILE in failed["payload"]["description"], "quotes, newlines and backslashes arrive intact"
    assert degraded["payload"]["severity"] == "high" and degraded["payload"]["title"] == "shop-fail: health degraded"
    assert rig.received("bob", "shop-fail") == []


def test_same_event_again_refreshes_one_notification(rig: Rig):
    rig.create_app("shop-again")
    time.sleep(1)
    rig.set_status("shop-again", "Succeeded", "Healthy", "first", started=ago(minutes=2), revision="rev-1")
    first = rig.wait_received("alice", "shop-again", "SyncSucceeded")
    rig.set_status("shop-again", "Succeeded", "Healthy", "second", started=now(), revision="rev-2")

    def refreshed():
        found = rig.received("alice", "shop-again", "SyncSucceeded")
        return found if found and "rev-2" in found[0]["payload"]["description"] else None

    found = wait_for(refreshed, timeout=60, interval=0.5, what="the refreshed notification")
    assert len(found) == 1 and found[0]["id"] == first["id"], "one notification, updated in place"
    assert found[0]["updated"]


def test_app_without_entity_ref_sends_nothing_and_logs_no_error(rig: Rig):
    rig.create_app("no-owner", ref=None)
    time.sleep(1)
    rig.set_status("no-owner", "Failed", "Degraded", "boom", started=now())
    rig.create_app("marker")  # an app that does notify, to know the controller has moved on
    time.sleep(1)
    rig.set_status("marker", "Failed", "Degraded", "boom", started=now())
    rig.wait_received("alice", "marker", "SyncFailed")
    time.sleep(2)
    assert rig.received("alice", "no-owner") == []
    problems = [
        line
        for line in rig.controller.log_lines()
        if line.get("level") in {"error", "fatal"} and "no-owner" in json.dumps(line)
    ]
    assert problems == []
    assert not re.search(r'argocd_notifications_deliveries_total\{[^}]*succeeded="false"', rig.controller.metrics())


def failed_deliveries(rig: Rig, trigger: str) -> int:
    pattern = (
        rf'argocd_notifications_deliveries_total\{{[^}}]*succeeded="false"[^}}]*trigger="{trigger}"[^}}]*\}} (\d+)'
    )
    found = re.search(pattern, rig.controller.metrics())
    return int(found.group(1)) if found else 0


def test_backstage_down_the_engine_retries_then_keeps_only_what_has_no_once_per(rig: Rig):
    """What the real engine (v3.5.7) does when Backstage is down at the moment of the event.

    Each delivery is tried 4 times (retryMax 3) over a few seconds, then counted as failed. A trigger
    without `oncePer` (HealthDegraded) is unmarked and sent again on the next processing of the app;
    a trigger with `oncePer` (the sync events) stays marked as sent, so that notification is lost.
    """
    rig.create_app("shop-outage")
    time.sleep(1)
    failed_before = failed_deliveries(rig, "on-sync-failed-backstage")
    degraded_before = failed_deliveries(rig, "on-health-degraded-backstage")
    rig.backstage.stop()
    try:
        rig.set_status("shop-outage", "Failed", "Degraded", "during outage", started=now())
        wait_for(
            lambda: (
                failed_deliveries(rig, "on-sync-failed-backstage") > failed_before
                and failed_deliveries(rig, "on-health-degraded-backstage") > degraded_before
            ),
            timeout=90,
            interval=1,
            what="both deliveries failing while Backstage is down",
        )
    finally:
        rig.backstage.start()
    rig.touch("shop-outage")
    degraded = rig.wait_received("alice", "shop-outage", "HealthDegraded", timeout=90)
    assert degraded["payload"]["severity"] == "high"
    rig.touch("shop-outage")
    time.sleep(5)
    assert rig.received("alice", "shop-outage", "SyncFailed") == [], "the engine does not resend a oncePer trigger"


def test_wrong_token_fails_with_401_and_the_bridge_says_so(rig: Rig):
    good = rig.token()
    secret_patch = {"data": {"backstage-token": base64.b64encode(b"a-token-backstage-never-saw").decode()}}
    rig.core.patch_namespaced_secret("argocd-notifications-secret", rig.namespace, secret_patch)
    try:
        body = wait_for(
            lambda: (b := rig.bridge()) and condition(b, "BackstageReachable").get("reason") == "TokenRejected" and b,
            what="TokenRejected on the bridge",
        )
        assert "401" in condition(body, "BackstageReachable")["message"]
        assert "a-token-backstage-never-saw" not in json.dumps(body)
        rig.create_app("shop-401")
        time.sleep(1)
        rig.set_status("shop-401", "Failed", "Degraded", "x", started=now())
        wait_for(
            lambda: any(
                "401" in json.dumps(line) and "shop-401" in json.dumps(line) for line in rig.controller.log_lines()
            ),
            timeout=60,
            interval=1,
            what="the controller logging the 401",
        )
        assert rig.received("alice", "shop-401") == []
    finally:
        restore = {"data": {"backstage-token": base64.b64encode(good.encode()).decode()}}
        rig.core.patch_namespaced_secret("argocd-notifications-secret", rig.namespace, restore)
    wait_for(
        lambda: condition(rig.bridge(), "BackstageReachable").get("reason") == "TokenAccepted",
        what="token accepted again",
    )


def test_twenty_events_each_arrive_once_and_latency_is_reported(rig: Rig, figures: list[str]):
    """Status written → notification readable by alice, for 20 apps; prints p50/p95 (not a timed test)."""
    latencies = []
    for index in range(20):
        name = f"lat-{index:02d}"
        rig.create_app(name)
        time.sleep(0.3)
        started = time.monotonic()
        rig.set_status(name, "Failed", "Healthy", f"event {index}", started=now())
        rig.wait_received("alice", name, "SyncFailed", timeout=60)
        latencies.append(time.monotonic() - started)
    latencies.sort()
    p50, p95 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95) - 1]
    figures.append(
        f"Application status → notification readable in Backstage, {len(latencies)} events:"
        f" p50 {p50:.2f}s, p95 {p95:.2f}s, max {latencies[-1]:.2f}s"
    )
    for index in range(20):
        assert len(rig.received("alice", f"lat-{index:02d}", "SyncFailed")) == 1


def ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_global_mode_delivers_without_any_annotation_but_the_ref(rig: Rig):
    rig.create_app("shop-global", subscribe=False)
    time.sleep(1)
    rig.set_status("shop-global", "Failed", "Degraded", "global", started=now())
    failed = rig.wait_received("alice", "shop-global", "SyncFailed")
    assert failed["payload"]["description"].endswith("global")


def test_mixed_case_ref_without_namespace_still_reaches_the_owning_team(rig: Rig):
    rig.create_app("shop-case", ref="Component:Shop", subscribe=False)
    time.sleep(1)
    rig.set_status("shop-case", "Failed", "Healthy", "case", started=now())
    assert rig.wait_received("alice", "shop-case", "SyncFailed")["payload"]["title"] == "shop-case: sync failed"


def test_fifty_healthy_apps_met_for_the_first_time_stay_quiet_and_a_new_sync_arrives(rig: Rig, figures: list[str]):
    """What enabling ArgoBridge over a busy cluster looks like to the engine: apps whose events are old."""
    for index in range(50):
        name = f"old-{index:02d}"
        rig.create_app(name, subscribe=False)
        rig.set_status(name, "Succeeded", "Healthy", "long ago", started=ago(minutes=90))
    rig.create_app("old-marker", subscribe=False)
    rig.set_status("old-marker", "Failed", "Healthy", "fresh", started=now())
    rig.wait_received("alice", "old-marker", "SyncFailed")
    time.sleep(3)
    old = [item for item in rig.backstage.notifications("alice") if "/old-" in (item["payload"].get("scope") or "")]
    assert [item["payload"]["scope"] for item in old] == [f"argocd/{rig.namespace}/old-marker/SyncFailed"]
    figures.append("50 already-healthy Applications met by a subscribed engine: 0 notifications sent")

    rig.set_status("old-07", "Succeeded", "Healthy", "a new sync", started=now(), revision="new-rev")
    assert "new-rev" in rig.wait_received("alice", "old-07", "SyncSucceeded")["payload"]["description"]


def test_ref_to_a_missing_entity_is_reported_on_the_app_and_the_bridge(rig: Rig):
    rig.create_app("ghost", ref="component:default/does-not-exist", subscribe=False)

    def reported():
        events = rig.core.list_namespaced_event(
            rig.namespace, field_selector="involvedObject.name=ghost,type=Warning"
        ).items
        return [event.message for event in events if "not in Backstage's catalog" in event.message]

    assert "component:default/does-not-exist" in wait_for(reported, timeout=30, what="Warning Event on the app")[0]
    body = rig.bridge()
    assert condition(body, "EntitiesResolved")["reason"] == "MissingEntities"
    assert body["status"]["applications"]["missingEntity"] >= 1


def test_annotations_mode_subscribes_through_argobridges_annotations(rig: Rig):
    def set_mode(mode: str) -> None:
        rig.apps.patch_namespaced_custom_object(
            "argobridge.io",
            "v1alpha1",
            rig.namespace,
            "backstagebridges",
            "backstage",
            {"spec": {"subscriptions": {"mode": mode}}},
        )

    set_mode("Annotations")
    try:
        wait_for(
            lambda: (
                "subscriptions"
                not in (rig.core.read_namespaced_config_map("argocd-notifications-cm", rig.namespace).data or {})
            ),
            what="the Global entry taken out",
        )
        rig.create_app("shop-annotated", subscribe=False)
        key = "notifications.argoproj.io/subscribe.on-sync-failed-backstage.backstage"

        def annotated() -> bool:
            app = rig.apps.get_namespaced_custom_object(
                "argoproj.io", "v1alpha1", rig.namespace, "applications", "shop-annotated"
            )
            return key in (app["metadata"].get("annotations") or {})

        wait_for(annotated, what="ArgoBridge's subscribe annotation")
        rig.set_status("shop-annotated", "Failed", "Healthy", "annotated", started=now())
        assert rig.wait_received("alice", "shop-annotated", "SyncFailed")["payload"]["description"].endswith(
            "annotated"
        )
    finally:
        set_mode("Global")
    wait_for(
        lambda: (
            "subscriptions"
            in (rig.core.read_namespaced_config_map("argocd-notifications-cm", rig.namespace).data or {})
        ),
        what="the Global entry back",
    )
