"""Zero-touch recipients, end to end: Applications without `backstage.io/entity-ref` reach the team that the
real Backstage catalog says owns them (`argocd/app-name`, `argocd/app-selector`), through the real relay,
the real notifications controller and the real operator process; an app nobody claims is counted and
reported, and nothing is sent for it.

The rig is test_relay_wire's (an operator process with a relay, the bridge in its shard) with the default
`entityRefFrom` (AnnotationThenCatalog). The catalog is tests/e2e/backstage/catalog/entities.yaml.
"""

from __future__ import annotations

import time
from typing import Any

from argobridge.backstage.client import read_catalog_owners
from argobridge.core.catalogmatch import index_catalog
from tests.conftest import wait_for
from tests.e2e.test_relay_wire import RelayWorld, now, world  # noqa: F401  (the module's rig)

OWNER_LABEL = "argobridge.io/e2e-owner"
BY_NAME, BY_SELECTOR, NOBODYS, ANNOTATED = "orders", "ledger", "stray", "shop-annotated"


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def applications(relay_world: RelayWorld) -> dict[str, Any]:
    found: dict[str, Any] = (relay_world.rig.bridge().get("status") or {}).get("applications") or {}
    return found


def label(relay_world: RelayWorld, name: str, labels: dict[str, str]) -> None:
    rig = relay_world.rig
    rig.apps.patch_namespaced_custom_object(
        "argoproj.io", "v1alpha1", rig.namespace, "applications", name, {"metadata": {"labels": labels}}
    )


def test_the_catalog_is_read_page_by_page_with_the_bridges_token(world: RelayWorld):  # noqa: F811
    """The edge's own request against the real catalog: by-query with two ORed filters, one entity a page."""
    rig = world.rig
    read = wait_for(
        lambda: (
            (owners := read_catalog_owners(rig.backstage.url, rig.token(), page_size=1)).items
            and len(owners.items) >= 3
            and owners
        ),
        timeout=60,
        what="the catalog's Application owners",
    )
    assert read.unavailable is None and not read.truncated
    index = index_catalog(list(read.items))
    assert index.by_name["orders"][0].ref == "component:default/orders"
    assert [entity.ref for entity in index.by_selector] == ["component:default/payments"]
    assert [(f.entity, f.annotation) for f in index.findings] == [
        ("component:default/broken-selector", "argocd/app-selector")
    ]
    assert all(set(item) <= {"kind", "metadata"} for item in read.items), "only the fields asked for"
    refused = read_catalog_owners(rig.backstage.url, "not-a-token")
    assert refused.unavailable and "401" in refused.unavailable and "catalog.entity.read" in refused.unavailable


def test_apps_without_entity_ref_reach_the_team_the_catalog_names(world: RelayWorld):  # noqa: F811
    rig = world.rig
    wait_for(lambda: world.delivery().get("mode") == "Relay", timeout=60, what="status.delivery.mode Relay")
    for user, ref in (("dave", "group:default/team-payments"), ("alice", "group:default/team-a")):
        wait_for(
            lambda user=user, ref=ref: any(
                r.get("type") == "memberOf" and r.get("targetRef") == ref
                for r in rig.backstage.entity(f"user:default/{user}", user).get("relations", [])
            ),
            timeout=60,
            what=f"{user}'s membership in the catalog",
        )
    for name, ref in ((BY_NAME, None), (BY_SELECTOR, None), (NOBODYS, None), (ANNOTATED, "component:default/shop")):
        rig.create_app(name, ref=ref, subscribe=False)  # Global subscription: no annotation at all
    label(world, BY_SELECTOR, {OWNER_LABEL: "payments"})

    counts = wait_for(
        lambda: (found := applications(world)).get("byCatalog") == 2 and found.get("unresolved") == 1 and found,
        timeout=90,
        what="status.applications counting two apps resolved by the catalog and one unresolved",
    )
    assert counts["byAnnotation"] == 1 and counts["watched"] == 4 and counts["catalogOwners"] == 2
    entry = wait_for(lambda: (found := world.entry()) and found.get("catalogRecipients") and found, what="the entry")
    namespace = rig.namespace
    assert entry["catalogRecipients"] == {
        f"{namespace}/{BY_SELECTOR}": ["component:default/payments"],
        f"{namespace}/{BY_NAME}": ["component:default/orders"],
    }, "only catalog-resolved apps, sorted"
    assert entry["entityRefFrom"] == "AnnotationThenCatalog"
    time.sleep(3)  # the relay re-reads its config every 2 s

    for name in (BY_NAME, BY_SELECTOR, NOBODYS):
        rig.set_status(name, "Failed", "Degraded", f"sync failed: {name} has no entity-ref", started=now())
    by_name = rig.wait_received("alice", BY_NAME, "SyncFailed", timeout=150)
    assert "orders has no entity-ref" in by_name["payload"]["description"]
    by_selector = rig.wait_received("dave", BY_SELECTOR, "SyncFailed", timeout=150)
    assert "ledger has no entity-ref" in by_selector["payload"]["description"]
    assert rig.received("dave", BY_NAME) == [] and rig.received("alice", BY_SELECTOR) == [], "each to its owner only"

    relay = wait_for(
        lambda: (found := world.relay.bridge_status(namespace, "backstage")).get("unresolved", 0) >= 1 and found,
        timeout=150,  # looked at again for UNRESOLVED_GRACE_SECONDS (60 s) first
        what="the relay counting the app nobody claims as unresolved",
    )
    assert relay["rejected"] == 0 and relay["deadLettered"] == 0
    wait_for(lambda: world.delivery().get("unresolved", 0) >= 1, timeout=60, what="status.delivery.unresolved")
    for user in ("alice", "bob", "carol", "dave"):
        assert rig.received(user, NOBODYS) == [], f"{user} got a notification for an app nobody owns"

    body = rig.bridge()
    resolved = condition(body, "RecipientsResolved")
    assert (resolved["status"], resolved["reason"]) == ("False", "Unresolved")
    assert f"{namespace}/{NOBODYS}" in resolved["message"] and "argocd/app-name" in resolved["message"]
    assert "component:default/broken-selector" in resolved["message"], "the catalog's finding is shown"
    events = wait_for(
        lambda: [
            e
            for e in rig.core.list_namespaced_event(namespace).items
            if e.involved_object.name == NOBODYS and e.reason == "BackstageNotifications"
        ],
        what="a Warning Event on the unresolved Application",
    )
    assert "argocd/app-name: stray" in events[0].message and "backstage.io/entity-ref" in events[0].message
    findings = [e for e in rig.core.list_namespaced_event(namespace).items if e.reason == "CatalogAnnotationInvalid"]
    assert findings and "component:default/broken-selector" in findings[0].message
    assert "argocd/app-selector" in findings[0].message
    # Nothing about the owners was written on the users' Applications.
    app = rig.apps.get_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "applications", BY_NAME)
    assert "backstage.io/entity-ref" not in (app["metadata"].get("annotations") or {})


def test_an_unchanged_resolution_does_not_rewrite_the_entry(world: RelayWorld):  # noqa: F811
    wait_for(lambda: (found := world.entry()) and found.get("catalogRecipients"), what="the entry")
    before = world.config_secret().metadata.resource_version
    time.sleep(10)  # three resync periods of the relay's operator, each reading the (cached) catalog
    world.operator.alive()
    assert world.config_secret().metadata.resource_version == before


def test_a_new_apps_first_event_waits_for_its_owners_instead_of_being_dropped(world: RelayWorld):  # noqa: F811
    """The event reaches the relay before the operator has resolved the app (here: the operator is paused
    until the relay holds it); it is looked at again for a minute and reaches its owner once resolved."""
    rig = world.rig
    name = "ledger-fresh"
    world.operator.pause()
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": rig.namespace, "labels": {OWNER_LABEL: "payments"}},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example.com/shop.git", "path": "deploy", "targetRevision": "HEAD"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
        },
    }
    rig.apps.create_namespaced_custom_object("argoproj.io", "v1alpha1", rig.namespace, "applications", body)
    try:
        rig.set_status(name, "Failed", "Degraded", "failed on its first sync", started=now())
        wait_for(  # its SyncFailed and HealthDegraded, looked at again every 5 s
            lambda: (
                (found := world.relay.bridge_status(rig.namespace, "backstage")).get("pending", 0) >= 1
                and "no recipient" in (found.get("lastError") or "")
            ),
            timeout=60,
            what="the relay holding the events of an app it has no recipient for yet",
        )
    finally:
        world.operator.resume()
    received = rig.wait_received("dave", name, "SyncFailed", timeout=60)
    assert "failed on its first sync" in received["payload"]["description"]
    rig.wait_received("dave", name, "HealthDegraded", timeout=30)
