"""Recipients from the catalog, through the real Argo CD engine: in Relay mode with entityRefFrom other than
Annotation an Application without `backstage.io/entity-ref` fires, and the body the engine renders, filled
by the relay's own function with the catalog's owners, is one Backstage accepts; with Annotation (or Direct)
the same Application stays silent, as before.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from argobridge.core.backstage_contract import create_request_problems
from argobridge.core.catalogmatch import RecipientSource
from argobridge.core.deliveryplan import DeliveryPlan, plan_delivery
from argobridge.core.events import CATALOG
from argobridge.core.relayrecipients import fill_recipients
from argobridge.core.render import render_notifications_config
from argobridge.core.spec import BridgeSpec, EventName, parse_bridge_spec
from argobridge_dev.engine import OfflineEngine
from tests.contract.test_engine_contract import ARGOCD_URL, CORPUS, FIRES
from tests.contract.test_routes_contract import BRIDGE, FAILED, with_

RELAY = "http://argobridge-relay.argobridge.svc:8090"
# The cases that name no deliverable owner: silent when only the annotation counts.
NO_OWNER = ("no-annotation", "empty-annotation", "ref-without-kind", "ref-with-stray-characters")
ENTRY = {"entityRefFrom": "AnnotationThenCatalog", "catalogRecipients": {"argocd/shop": ["component:default/shop"]}}


def bridge(mode: str, routes: bool = False) -> BridgeSpec:
    raw: dict[str, Any] = copy.deepcopy(BRIDGE) if routes else {"backstage": {"url": "https://backstage.example.com"}}
    if not routes:
        raw["events"] = [{"event": e.value} for e in EventName]
    raw["subscriptions"] = {"entityRefFrom": mode}
    return parse_bridge_spec(raw, "argocd")


def engine_for(spec: BridgeSpec, plan: DeliveryPlan | None) -> OfflineEngine:
    rendered = render_notifications_config(spec, ARGOCD_URL, plan)
    return OfflineEngine({**rendered.owned, "context": f"argocdUrl: {ARGOCD_URL}\n"}, {"backstage-token": "t"})


def relayed(spec: BridgeSpec) -> DeliveryPlan:
    plan = plan_delivery(spec, "argocd", "backstage", RELAY, True)
    assert plan.relayed
    return plan


@pytest.fixture(scope="module")
def catalog_engine() -> OfflineEngine:
    spec = bridge("AnnotationThenCatalog")
    return engine_for(spec, relayed(spec))


@pytest.fixture(scope="module")
def annotation_engine() -> OfflineEngine:
    spec = bridge("Annotation")
    return engine_for(spec, relayed(spec))


def fired(engine: OfflineEngine, application: dict[str, Any]) -> set[EventName]:
    return {event for event in EventName if any(engine.trigger(CATALOG[event].trigger, application))}


def test_an_app_without_annotation_fires_in_relay_catalog_mode_and_not_in_annotation_mode(
    catalog_engine, annotation_engine
):
    application = CORPUS["no-annotation"]
    assert {EventName.SYNC_SUCCEEDED, EventName.DEPLOYED} <= fired(catalog_engine, application)
    assert fired(catalog_engine, application) == fired(catalog_engine, CORPUS["healthy"]), "as if it were annotated"
    assert fired(annotation_engine, application) == set()
    direct = bridge("AnnotationThenCatalog")
    assert fired(engine_for(direct, None), application) == set(), "Direct mode: nobody would fill the recipients"


def annotated(application: dict[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(application)
    copied["metadata"]["annotations"] = {"backstage.io/entity-ref": "component:default/shop"}
    return copied


@pytest.mark.parametrize("case", list(FIRES))
def test_with_the_catalog_every_app_fires_as_an_annotated_one_would(catalog_engine, case):
    assert fired(catalog_engine, CORPUS[case]) == fired(catalog_engine, annotated(CORPUS[case]))
    if case in NO_OWNER:
        assert fired(catalog_engine, CORPUS[case]) >= FIRES["healthy"], "nobody named, and it still fires"


@pytest.mark.parametrize("case", NO_OWNER)
def test_the_relay_fills_the_engines_empty_list_with_the_catalogs_owners(catalog_engine, case):
    rendered = json.loads(catalog_engine.webhook_body(CATALOG[EventName.DEPLOYED].template, CORPUS[case]))
    assert rendered["recipients"] == {"type": "entity", "entityRef": []}
    filled, source = fill_recipients(rendered, ENTRY)
    assert source is RecipientSource.CATALOG and filled is not None
    assert filled["recipients"]["entityRef"] == ["component:default/shop"]
    assert create_request_problems(filled) == [], filled
    nobody = {**ENTRY, "catalogRecipients": {"argocd/cart": ["component:default/cart"]}}
    assert fill_recipients(rendered, nobody) == (None, RecipientSource.UNRESOLVED), "no POST for nobody"


def test_a_routes_recipients_are_kept_and_the_catalogs_owners_added():
    spec = bridge("AnnotationThenCatalog", routes=True)
    engine = engine_for(spec, relayed(spec))
    prod = with_(FAILED, spec__destination__namespace="prod-eu")
    del prod["metadata"]["annotations"]
    assert any(engine.trigger(CATALOG[EventName.SYNC_FAILED].trigger, prod))
    template = CATALOG[EventName.SYNC_FAILED].template.removesuffix("-backstage") + "-prod-oncall-backstage"
    rendered = json.loads(engine.webhook_body(template, prod))
    assert rendered["recipients"]["entityRef"] == ["group:default/oncall", "user:default/alice"]
    filled, _ = fill_recipients(rendered, ENTRY)
    assert filled is not None and create_request_problems(filled) == []
    assert filled["recipients"]["entityRef"] == ["component:default/shop", "group:default/oncall", "user:default/alice"]
