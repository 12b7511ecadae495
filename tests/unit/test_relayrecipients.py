"""Catalog recipients in Relay mode: what the operator puts in the relay entry, and how the relay fills bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from argobridge.backstage.client import _owners_page
from argobridge.core.annotations import desired_annotations
from argobridge.core.appcheck import AppFacts
from argobridge.core.catalogmatch import EntityRefFrom, RecipientSource, Resolution, index_catalog
from argobridge.core.delivery import (
    UNRESOLVED_GRACE_SECONDS,
    UNRESOLVED_RETRY_SECONDS,
    Answer,
    Outcome,
    backstage_failing,
    classify,
    decide,
)
from argobridge.core.deliveryplan import plan_delivery
from argobridge.core.events import HAS_ENTITY_REF
from argobridge.core.relayconfig import entry_needs_write, relay_entry, stored_catalog_recipients
from argobridge.core.relayrecipients import (
    application_counts,
    body_app,
    bounded_recipients,
    catalog_recipients,
    fill_recipients,
    recipients_condition,
    resolve_applications,
    unresolved_problem,
)
from argobridge.core.render import render_notifications_config
from argobridge.core.spec import SpecError, parse_bridge_spec

RELAY = "http://argobridge-relay.argobridge.svc:8090"
CATALOG = index_catalog(
    [
        {"kind": "Component", "metadata": {"name": "shop", "annotations": {"argocd/app-name": "shop"}}},
        {"kind": "Group", "metadata": {"name": "payments", "annotations": {"argocd/app-selector": "team=payments"}}},
    ]
)


def app(name: str, ref: str | None = None, namespace: str = "argocd", **labels: str) -> AppFacts:
    annotations = {} if ref is None else {"backstage.io/entity-ref": ref}
    return AppFacts(namespace, name, f"uid-{name}", annotations, labels)


def body(refs: Any, name: str = "shop", meta: dict[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "recipients": {"type": "entity", "entityRef": refs},
        "payload": {"title": "t", "scope": f"argocd/argocd/{name}/SyncFailed"},
    }
    if meta is not None:
        document["argobridge"] = meta
    return document


def entry(mode: str = "AnnotationThenCatalog", **table: list[str]) -> dict[str, Any]:
    return {"entityRefFrom": mode, "catalogRecipients": {f"argocd/{app}": refs for app, refs in table.items()}}


def spec(**subscriptions: Any) -> Any:
    return parse_bridge_spec({"backstage": {"url": "https://b.example.com"}, "subscriptions": subscriptions}, "argocd")


# --- spec ---------------------------------------------------------------------------------------------


def test_entity_ref_from_defaults_to_annotation_then_catalog_and_parses_each_value() -> None:
    assert spec().entity_ref_from is EntityRefFrom.ANNOTATION_THEN_CATALOG and spec().catalog_instance is None
    for value in ("Annotation", "Catalog", "AnnotationThenCatalog"):
        assert spec(entityRefFrom=value).entity_ref_from.value == value
    assert spec(catalogInstanceName="main").catalog_instance == "main"


@pytest.mark.parametrize(
    ("subscriptions", "words"),
    [
        ({"entityRefFrom": "catalog"}, ["spec.subscriptions.entityRefFrom", "AnnotationThenCatalog"]),
        ({"catalogInstanceName": "a b"}, ["spec.subscriptions.catalogInstanceName", "instance name"]),
        ({"catalogInstanceName": ""}, ["spec.subscriptions.catalogInstanceName"]),
    ],
)
def test_a_bad_entity_ref_from_or_instance_name_names_the_field_and_the_fix(
    subscriptions: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(SpecError) as raised:
        spec(**subscriptions)
    assert all(word in str(raised.value) for word in words)


# --- resolution for the entry --------------------------------------------------------------------------


def test_apps_resolve_by_annotation_first_then_by_name_or_selector() -> None:
    apps = [app("shop"), app("cart", team="payments"), app("web", "component:default/web"), app("lost")]
    resolved = resolve_applications(EntityRefFrom.ANNOTATION_THEN_CATALOG, CATALOG, apps)
    assert resolved == {
        "argocd/shop": Resolution(RecipientSource.CATALOG, ("component:default/shop",)),
        "argocd/cart": Resolution(RecipientSource.CATALOG, ("group:default/payments",)),
        "argocd/web": Resolution(RecipientSource.ANNOTATION, ("component:default/web",)),
        "argocd/lost": Resolution(RecipientSource.UNRESOLVED),
    }
    assert catalog_recipients(resolved) == {
        "argocd/cart": ("group:default/payments",),
        "argocd/shop": ("component:default/shop",),
    }
    assert application_counts(resolved, CATALOG.entities) == {
        "byAnnotation": 1,
        "byCatalog": 2,
        "unresolved": 1,
        "catalogOwners": 2,
    }


def test_catalog_mode_prefers_the_catalog_and_annotation_mode_ignores_it() -> None:
    annotated = [app("shop", "component:default/other")]
    assert resolve_applications(EntityRefFrom.CATALOG, CATALOG, annotated)["argocd/shop"].source is (
        RecipientSource.CATALOG
    )
    assert resolve_applications(EntityRefFrom.ANNOTATION, CATALOG, [app("shop")])["argocd/shop"].source is (
        RecipientSource.UNRESOLVED
    )


def test_an_unread_catalog_leaves_annotated_apps_theirs_and_others_unresolved() -> None:
    resolved = resolve_applications(EntityRefFrom.CATALOG, None, [app("shop"), app("web", "component:default/web")])
    assert [item.source for item in resolved.values()] == [RecipientSource.UNRESOLVED, RecipientSource.ANNOTATION]
    assert catalog_recipients(resolved) == {}


def test_the_entry_carries_catalog_recipients_only_when_there_are_some_and_the_same_text_each_time() -> None:
    plain = relay_entry(spec(), "t")
    assert "catalogRecipients" not in plain.document() and "entityRefFrom" not in plain.document()
    table = {"argocd/z": ("group:default/b",), "argocd/a": ("component:default/a",)}
    withc = relay_entry(spec(entityRefFrom="Catalog"), "t", catalog_recipients=table)
    document = withc.document()
    assert document["entityRefFrom"] == "Catalog"
    assert list(document["catalogRecipients"]) == ["argocd/a", "argocd/z"], "sorted: same resolution, same text"
    assert not entry_needs_write(
        withc.encoded(),
        relay_entry(spec(entityRefFrom="Catalog"), "t", catalog_recipients=dict(reversed(table.items()))),
    )
    assert entry_needs_write(plain.encoded(), withc), "a new resolution is written"
    assert stored_catalog_recipients(withc.encoded()) == table
    assert stored_catalog_recipients(None) == {} and stored_catalog_recipients("not json") == {}


# --- the relay's fill ----------------------------------------------------------------------------------


def test_an_empty_recipient_list_gets_the_catalogs_owners() -> None:
    filled, source = fill_recipients(body([]), entry(shop=["component:default/shop"]))
    assert source is RecipientSource.CATALOG
    assert filled is not None and filled["recipients"] == {"type": "entity", "entityRef": ["component:default/shop"]}
    assert filled["payload"] == body([])["payload"]


def test_a_body_with_nobody_to_notify_is_unresolved_and_not_sent() -> None:
    assert fill_recipients(body([]), entry(cart=["group:default/x"])) == (None, RecipientSource.UNRESOLVED)
    assert fill_recipients(body([]), {}) == (None, RecipientSource.UNRESOLVED)


def test_a_body_with_its_own_refs_is_left_alone_when_the_catalog_does_not_have_the_app() -> None:
    original = body("component:default/web", name="web")
    assert fill_recipients(original, entry(shop=["component:default/shop"])) == (original, RecipientSource.ANNOTATION)


def test_catalog_mode_replaces_the_owners_refs_but_keeps_a_routes_recipients() -> None:
    table = entry("Catalog", shop=["component:default/shop"])
    owners = body(
        ["component:default/old"], meta={"event": "SyncFailed", "app": {"namespace": "argocd", "name": "shop"}}
    )
    filled, _ = fill_recipients(owners, table)
    assert filled is not None and filled["recipients"]["entityRef"] == ["component:default/shop"]
    routed = body(
        ["group:default/oncall"],
        meta={"event": "SyncFailed", "route": "pager", "app": {"namespace": "argocd", "name": "shop"}},
    )
    filled, _ = fill_recipients(routed, table)
    assert filled is not None and filled["recipients"]["entityRef"] == [
        "component:default/shop",
        "group:default/oncall",
    ]


def test_without_the_argobridge_key_the_routes_part_cannot_be_told_so_nothing_is_taken_away() -> None:
    filled, _ = fill_recipients(body(["group:default/oncall"]), entry("Catalog", shop=["component:default/shop"]))
    assert filled is not None and filled["recipients"]["entityRef"] == [
        "component:default/shop",
        "group:default/oncall",
    ]


def test_annotation_mode_and_broadcasts_never_use_the_catalog() -> None:
    assert fill_recipients(body([]), entry("Annotation", shop=["component:default/shop"]))[0] is None
    broadcast = {"recipients": {"type": "broadcast"}, "payload": {"scope": "argocd/argocd/shop/SyncFailed"}}
    assert fill_recipients(broadcast, entry(shop=["x:default/y"])) == (broadcast, RecipientSource.ANNOTATION)


def test_the_app_comes_from_the_argobridge_key_else_from_the_scope() -> None:
    assert body_app(body([], meta={"app": {"namespace": "team", "name": "cart"}})) == ("team", "cart")
    assert body_app(body([], name="shop")) == ("argocd", "shop")
    cut = {"payload": {"scope": "argocd/argocd/" + "x" * 190 + "~abc"}}
    assert body_app(cut) is None, "a shortened scope does not name the app"
    assert body_app({"payload": {"scope": "something/else"}}) is None and body_app({}) is None


refs = st.lists(st.sampled_from(["component:default/a", "group:default/b", "user:default/c"]), max_size=3, unique=True)


@given(refs, refs, st.sampled_from(list(EntityRefFrom)), st.booleans())
def test_fill_never_sends_an_empty_list_and_never_drops_a_routes_recipient(
    own: list[str], catalog: list[str], mode: EntityRefFrom, routed: bool
) -> None:
    meta = {"event": "SyncFailed", "app": {"namespace": "argocd", "name": "shop"}, **({"route": "r"} if routed else {})}
    filled, source = fill_recipients(body(own, meta=meta), entry(mode.value, shop=catalog))
    if filled is None:
        assert source is RecipientSource.UNRESOLVED and not own and (not catalog or mode is EntityRefFrom.ANNOTATION)
        return
    sent = filled["recipients"]["entityRef"]
    assert sent and len(sent) == len(set(sent))
    if routed or mode is not EntityRefFrom.CATALOG:
        assert set(own) <= set(sent)
    assert (source is RecipientSource.CATALOG) == bool(catalog and mode is not EntityRefFrom.ANNOTATION)


def test_an_unresolved_answer_is_looked_at_again_for_a_minute_then_final_and_counted_apart() -> None:
    answer = Answer(None, "", "no recipient", unresolved=True)
    assert classify(answer) is Outcome.UNRESOLVED and Outcome.UNRESOLVED.final
    assert not backstage_failing(answer), "nothing was asked of Backstage"
    early = decide(answer, received_at=100.0, now=110.0, attempts=1, retry_for_seconds=60, random_fraction=0.5)
    assert early == (Outcome.RETRY, 110.0 + UNRESOLVED_RETRY_SECONDS), "a new app's owners may still be on the way"
    late = 100.0 + UNRESOLVED_GRACE_SECONDS
    assert decide(answer, received_at=100.0, now=late, attempts=9, retry_for_seconds=60, random_fraction=0.5) == (
        Outcome.UNRESOLVED,
        None,
    ), "then finished: never dead-lettered, never sent"


# --- status --------------------------------------------------------------------------------------------


def test_recipients_condition_names_the_unresolved_apps_and_the_fix() -> None:
    resolved = {
        "argocd/lost": Resolution(RecipientSource.UNRESOLVED),
        "argocd/web": Resolution(RecipientSource.ANNOTATION, ("a:b/c",)),
    }
    condition = recipients_condition(resolved, None)
    assert (condition.status, condition.reason) == (False, "Unresolved")
    assert "argocd/lost" in condition.message and "argocd/app-name" in condition.message
    assert recipients_condition({"argocd/web": resolved["argocd/web"]}, None).status is True
    assert recipients_condition(resolved, "the catalog answered 403").status is None
    bad = index_catalog(
        [{"kind": "Component", "metadata": {"name": "x", "annotations": {"argocd/app-selector": "a=("}}}]
    )
    with_finding = recipients_condition({}, None, bad.findings)
    assert "component:default/x" in with_finding.message and "argocd/app-selector" in with_finding.message
    assert "argocd/app-name: shop" in unresolved_problem("shop")


# --- triggers ------------------------------------------------------------------------------------------


def triggers(rendered: Any) -> list[str]:
    return [
        condition["when"]
        for key, value in rendered.owned.items()
        if key.startswith("trigger.")
        for condition in yaml.safe_load(value)
    ]


@pytest.mark.parametrize(
    ("mode", "relayed", "guarded"),
    [
        ("AnnotationThenCatalog", True, False),
        ("Catalog", True, False),
        ("Annotation", True, True),
        ("AnnotationThenCatalog", False, True),
    ],
)
def test_owner_triggers_lose_the_entity_ref_guard_only_when_the_relay_may_ask_the_catalog(
    mode: str, relayed: bool, guarded: bool
) -> None:
    bridge = spec(entityRefFrom=mode)
    plan = plan_delivery(bridge, "argocd", "backstage", RELAY if relayed else "", relayed)
    whens = triggers(render_notifications_config(bridge, None, plan))
    assert whens and all((HAS_ENTITY_REF in when) is guarded for when in whens)


def test_owners_page_reads_items_and_the_next_cursor() -> None:
    page = {"items": [{"kind": "Component"}], "totalItems": 3, "pageInfo": {"nextCursor": "abc"}}
    assert _owners_page(json.dumps(page).encode()) == ([{"kind": "Component"}], "abc")
    assert _owners_page(json.dumps({"items": [], "pageInfo": {}}).encode()) == ([], None)
    assert _owners_page(b"<html>") is None and _owners_page(b'{"entities": []}') is None


def test_annotations_mode_subscribes_an_app_the_catalog_owns_and_not_one_nobody_owns() -> None:
    triggers = ("on-sync-failed-backstage",)
    wanted = {"notifications.argoproj.io/subscribe.on-sync-failed-backstage.backstage": ""}
    assert desired_annotations(app("orders"), "backstage", triggers, owned_in_catalog=True) == wanted
    assert desired_annotations(app("stray"), "backstage", triggers) == {}
    assert desired_annotations(app("web", "component:default/web"), "backstage", triggers) == wanted


def test_catalog_recipients_beyond_the_entrys_share_are_left_out_in_a_stable_order_and_reported() -> None:
    table = {f"argocd/app-{n:04d}": ("component:default/shop",) for n in range(100)}
    kept, left = bounded_recipients(table, limit=1000)
    assert kept and left and set(kept) | set(left) == set(table) and not set(kept) & set(left)
    assert len(json.dumps({app: list(refs) for app, refs in kept.items()}, separators=(",", ":"))) <= 1000
    assert max(kept) < min(left), "the same table is always cut at the same app"
    assert bounded_recipients(table) == (table, ()), "a fleet of 100 fits"
    condition = recipients_condition({}, None, left_out=left)
    assert (condition.status, condition.reason) == (False, "TooManyCatalogApps") and left[0] in condition.message
