"""Every shape of route, compiled by ArgoBridge and carried out by the real Argo CD engine, offline.

One bridge holds a route of each shape; each test builds the Application a platform team would have
and asks the engine which condition of the event's trigger fires and what body it would send. The
Python reading of the routes (used by `argobridge preview` without the engine) must agree with it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from argobridge.core.backstage_contract import create_request_problems, js_length
from argobridge.core.events import CATALOG
from argobridge.core.render import render_notifications_config
from argobridge.core.routeplan import deciding_route, plan_deliveries
from argobridge.core.spec import BridgeSpec, EventName, parse_bridge_spec
from argobridge_dev.engine import OfflineEngine
from tests.appfields import with_fields
from tests.contract.test_engine_contract import ARGOCD_URL, app

HOSTILE_TITLE = 'PROD "{app}" \\ {{{{ .app }}}} %s %!v(MISSING) ✓ 🚀\n<script>'
HOSTILE_LABEL = "a.b_c-D9"  # every character a label value may hold

BRIDGE: dict[str, Any] = {
    "backstage": {"url": "https://backstage.example.com"},
    "events": [
        {"event": "SyncFailed", "severity": "high"},
        {"event": "HealthDegraded", "severity": "critical"},
        {"event": "SyncSucceeded", "severity": "low"},
        {"event": "Deployed", "severity": "low"},
    ],
    "routes": [
        {"name": "sandbox-quiet", "match": [{"projects": ["sandbox", "tmp-*"]}], "drop": True},
        {
            "name": "platform-critical",
            "match": [{"projects": ["platform"], "minSeverity": "critical"}],
            "broadcast": True,
            "title": "Platform: {app} is {health}",
        },
        {
            "name": "prod-oncall",
            "match": [{"events": ["SyncFailed", "HealthDegraded"], "destinationNamespaces": ["prod", "prod-*"]}],
            "recipients": ["group:default/oncall", "User:alice"],
            "severity": "critical",
            "title": HOSTILE_TITLE,
            "description": "{message} | rev {revision} | phase {phase} | {namespace}/{project}",
        },
        {
            "name": "labelled",
            "match": [
                {
                    "labels": {
                        "matchLabels": {"example.com/team": HOSTILE_LABEL},
                        "matchExpressions": [
                            {"key": "tier", "operator": "In", "values": ["web", "api"]},
                            {"key": "legacy", "operator": "DoesNotExist"},
                            {"key": "stage", "operator": "NotIn", "values": ["dev"]},
                        ],
                    }
                }
            ],
            "topic": "team.labelled",
        },
        {
            "name": "by-name-or-cluster",
            "match": [
                {"names": ["pay?-*"], "applicationNamespaces": ["argocd", "apps-*"]},
                {"destinationClusters": ["https://eu-*.example.com:6443", "edge-?"]},
            ],
            "recipients": ["group:default/payments"],
        },
        {"name": "successes-quiet", "match": [{"events": ["SyncSucceeded"]}], "drop": True},
    ],
}


def with_(application: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of an Application with some fields changed, given as paths joined by __."""
    return with_fields(application, **changes)


FAILED = app(phase="Failed", health="Degraded", message='hook "pre" failed:\n{{ .secrets }} \\ 🚀')


@pytest.fixture(scope="module")
def spec() -> BridgeSpec:
    return parse_bridge_spec(BRIDGE)


@pytest.fixture(scope="module")
def engine(spec) -> OfflineEngine:
    rendered = render_notifications_config(spec, ARGOCD_URL)
    return OfflineEngine({**rendered.owned, "context": f"argocdUrl: {ARGOCD_URL}\n"}, {"backstage-token": "t"})


def decided(engine: OfflineEngine, spec: BridgeSpec, event: EventName, application: dict[str, Any]) -> str | None:
    """Which delivery the engine picks: a route name, "default", or None when nothing fires."""
    settings = next(item for item in spec.events if item.event == event)
    deliveries = plan_deliveries(settings, spec.routes, CATALOG[event].template)
    fired = [d for d, hit in zip(deliveries, engine.trigger(CATALOG[event].trigger, application), strict=True) if hit]
    assert len(fired) <= 1, "exactly one condition of a trigger may fire"
    python = deciding_route(settings, spec.routes, application)
    if fired:
        assert (python.name if python else None) == fired[0].route, "preview's reading must agree with the engine"
        return fired[0].route or "default"
    return None


def body(engine: OfflineEngine, event: EventName, route: str | None, application: dict[str, Any]) -> dict[str, Any]:
    template = CATALOG[event].template
    if route:
        template = template.removesuffix("-backstage") + f"-{route}-backstage"
    result = json.loads(engine.webhook_body(template, application))
    assert create_request_problems(result) == [], result
    return result


def test_without_a_matching_route_the_owners_get_the_default(engine, spec):
    assert decided(engine, spec, EventName.SYNC_FAILED, FAILED) == "default"
    sent = body(engine, EventName.SYNC_FAILED, None, FAILED)
    assert sent["recipients"] == {"type": "entity", "entityRef": "component:default/shop"}
    assert sent["payload"]["severity"] == "high"


def test_production_failure_goes_to_owners_and_on_call_with_the_routes_text(engine, spec):
    prod = with_(FAILED, spec__destination__namespace="prod-eu")
    assert decided(engine, spec, EventName.SYNC_FAILED, prod) == "prod-oncall"
    assert decided(engine, spec, EventName.HEALTH_DEGRADED, prod) == "prod-oncall"
    deployed = with_(prod, status__health__status="Healthy", status__operationState__phase="Succeeded")
    assert decided(engine, spec, EventName.DEPLOYED, deployed) == "default", "the route names only failures"
    sent = body(engine, EventName.SYNC_FAILED, "prod-oncall", prod)
    assert sent["recipients"] == {
        "type": "entity",
        "entityRef": ["component:default/shop", "group:default/oncall", "user:default/alice"],
    }
    payload = sent["payload"]
    assert payload["severity"] == "critical" and payload["topic"] == "argocd.sync.failed"
    assert payload["title"] == 'PROD "shop" \\ {{ .app }} %s %!v(MISSING) ✓ 🚀\n<script>'
    assert payload["description"] == (
        'hook "pre" failed:\n{{ .secrets }} \\ 🚀 | rev 4f3c2b1a | phase Failed | argocd/default'
    )
    assert payload["scope"] == "argocd/argocd/shop/SyncFailed", "same scope as the owners' notification"


def test_on_call_route_reaches_on_call_even_for_an_app_without_owner(engine, spec):
    orphan = with_(app(ref=None, phase="Failed"), spec__destination__namespace="prod")
    assert decided(engine, spec, EventName.SYNC_FAILED, orphan) == "prod-oncall"
    sent = body(engine, EventName.SYNC_FAILED, "prod-oncall", orphan)
    assert sent["recipients"]["entityRef"] == ["group:default/oncall", "user:default/alice"]


def test_critical_event_in_platform_project_is_broadcast(engine, spec):
    platform = with_(FAILED, spec__project="platform", spec__destination__namespace="prod")
    # HealthDegraded is critical in this bridge: broadcast wins, it comes first; SyncFailed is only high.
    assert decided(engine, spec, EventName.HEALTH_DEGRADED, platform) == "platform-critical"
    assert decided(engine, spec, EventName.SYNC_FAILED, platform) == "prod-oncall"
    sent = body(engine, EventName.HEALTH_DEGRADED, "platform-critical", platform)
    assert sent["recipients"] == {"type": "broadcast"}
    assert sent["payload"]["title"] == "Platform: shop is Degraded"
    assert sent["payload"]["severity"] == "critical"


@pytest.mark.parametrize("project", ["sandbox", "tmp-42"])
def test_dropped_events_fire_nothing(engine, spec, project):
    dropped = with_(FAILED, spec__project=project, spec__destination__namespace="prod")
    for event in (EventName.SYNC_FAILED, EventName.HEALTH_DEGRADED):
        assert decided(engine, spec, event, dropped) is None
    assert not any(engine.trigger(CATALOG[EventName.SYNC_FAILED].trigger, dropped))


def test_routine_successes_stay_quiet_but_deployed_still_arrives(engine, spec):
    healthy = app()
    assert decided(engine, spec, EventName.SYNC_SUCCEEDED, healthy) is None
    assert decided(engine, spec, EventName.DEPLOYED, healthy) == "default"


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"example.com/team": HOSTILE_LABEL, "tier": "web"}, "labelled"),
        ({"example.com/team": HOSTILE_LABEL, "tier": "api", "stage": "prod"}, "labelled"),
        ({"example.com/team": HOSTILE_LABEL, "tier": "api", "stage": "dev"}, "default"),  # NotIn
        ({"example.com/team": HOSTILE_LABEL, "tier": "web", "legacy": ""}, "default"),  # DoesNotExist
        ({"example.com/team": HOSTILE_LABEL.lower(), "tier": "web"}, "default"),  # values are case-sensitive
        ({"tier": "web"}, "default"),
        (None, "default"),  # no labels map at all: no runtime error, simply no match
    ],
)
def test_label_selector_routes(engine, spec, labels, expected):
    application = copy.deepcopy(FAILED)
    if labels is not None:
        application["metadata"]["labels"] = labels
    assert decided(engine, spec, EventName.SYNC_FAILED, application) == expected
    if expected == "labelled":
        assert body(engine, EventName.SYNC_FAILED, "labelled", application)["payload"]["topic"] == "team.labelled"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"metadata__name": "pay1-checkout"}, "by-name-or-cluster"),
        ({"metadata__name": "pay12-checkout"}, "default"),  # ? is exactly one character
        ({"metadata__name": "pay1-checkout", "metadata__namespace": "apps-eu"}, "by-name-or-cluster"),
        ({"metadata__name": "pay1-checkout", "metadata__namespace": "other"}, "default"),
        ({"spec__destination__server": "https://eu-west.example.com:6443"}, "by-name-or-cluster"),
        ({"spec__destination__server": "https://eu-west.example.com:64430"}, "default"),
        ({"spec__destination__name": "edge-7"}, "by-name-or-cluster"),
        ({"spec__destination__name": "edge-77"}, "default"),
        ({"spec__destination__server": "https://euXwest.example.com:6443"}, "default"),  # '.' is literal
    ],
)
def test_name_namespace_and_cluster_globs(engine, spec, changes, expected):
    assert decided(engine, spec, EventName.SYNC_FAILED, with_(FAILED, **changes)) == expected


def test_long_hostile_route_title_is_cut_to_backstages_limit(engine, spec):
    long_name = with_(FAILED, spec__destination__namespace="prod", metadata__name="🚀" * 120 + "x" * 100)
    sent = body(engine, EventName.SYNC_FAILED, "prod-oncall", long_name)
    title = sent["payload"]["title"]
    assert 250 <= js_length(title) <= 255 and title.endswith("…")
    assert title.startswith('PROD "🚀🚀'), "cut by characters: no broken surrogate or UTF-8 sequence"
    assert "\ufffd" not in title


def test_unconditional_route_hides_the_routes_after_it():
    bridge = {
        **BRIDGE,
        "routes": [
            {"name": "all-high", "severity": "high"},
            {"name": "never", "match": [{"projects": ["x"]}], "drop": True},
        ],
    }
    spec = parse_bridge_spec(bridge)
    event = spec.events[0]
    deliveries = plan_deliveries(event, spec.routes, CATALOG[event.event].template)
    assert [d.route for d in deliveries] == ["all-high"]
    rendered = render_notifications_config(spec, None)
    engine = OfflineEngine(rendered.owned, {"backstage-token": "t"})
    assert engine.trigger("on-sync-failed-backstage", FAILED) == [True]
    assert body(engine, EventName.SYNC_SUCCEEDED, "all-high", app())["payload"]["severity"] == "high"
