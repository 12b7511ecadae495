"""Every template and trigger ArgoBridge renders, run through the real Argo CD engine, offline.

The engine (the `argocd` binary built from its Go module) renders each body for a corpus of hostile
Applications; each body must be valid JSON that Backstage's create endpoint would accept, and each
trigger must fire exactly when its event happened.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from argobridge.core.backstage_contract import create_request_problems, js_length
from argobridge.core.events import CATALOG
from argobridge.core.render import render_notifications_config
from argobridge.core.spec import DEFAULT_SEVERITIES, DEFAULT_TOPICS, EventName, parse_bridge_spec
from argobridge_dev.engine import EngineError, OfflineEngine

ARGOCD_URL = "https://argocd.example.com"
HOSTILE_MESSAGE = 'one or more objects failed to apply, reason: "quoted" \\ backslash\nsecond line\t{{ .app }} "}'


def ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def app(
    name: str = "shop",
    *,
    phase: str | None = "Succeeded",
    health: str = "Healthy",
    ref: str | None = "component:default/shop",
    message: str = "successfully synced",
    namespace: str = "argocd",
    started: str | None = None,
    health_changed: str | None = None,
) -> dict[str, Any]:
    started = started or ago(minutes=1)
    body: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "project": "default",
            "destination": {"namespace": "shop", "server": "https://kubernetes.default.svc"},
        },
        "status": {
            "sync": {"status": "Synced"},
            "health": {"status": health, "lastTransitionTime": health_changed or started},
        },
    }
    if ref is not None:
        body["metadata"]["annotations"] = {"backstage.io/entity-ref": ref}
    if phase is not None:
        body["status"]["operationState"] = {
            "phase": phase,
            "message": message,
            "startedAt": started,
            "finishedAt": started,
            "syncResult": {"revision": "4f3c2b1a"},
        }
    return body


CORPUS: dict[str, dict[str, Any]] = {
    "healthy": app(),
    "degraded": app(health="Degraded"),
    "failed-hostile-message": app(phase="Failed", health="Degraded", message=HOSTILE_MESSAGE),
    "error-phase": app(phase="Error", message='ComparisonError: "rpc error"\r\n\u0000'),
    "unicode": app(name="boutique-ünïcødé-✓", message="déploiement réussi 🚀 “quotes”", ref="component:default/shop"),
    "very-long": app(name="a" * 253, namespace="n" * 63, message="x" * 20000),
    "long-unicode-name": app(name="é" * 200),
    "several-refs": app(ref="component:default/shop, group:default/team-a ,user:default/bob"),
    "never-synced": app(phase=None),
    "running": app(phase="Running", health="Progressing"),
    "no-status-at-all": {key: value for key, value in app().items() if key != "status"},
    "old-sync-when-enabled": app(started=ago(minutes=60)),
    "old-degradation": app(health="Degraded", started=ago(minutes=60)),
    "slow-rollout": app(started=ago(minutes=30), health_changed=ago(minutes=1)),
    "mixed-case-ref": app(ref="Component:Default/Shop"),
    "ref-without-namespace": app(ref="component:shop"),
    "ref-without-kind": app(ref="shop"),
    "ref-with-stray-characters": app(ref="component:default/sh op"),
    "one-good-ref-among-bad": app(ref="shop, Component:Shop ,group:x/y/z"),
    "no-annotation": app(ref=None),
    "empty-annotation": app(ref=""),
    "just-created": app(phase=None, health="Missing", health_changed=ago(minutes=60)),
    "being-deleted": app(),
    "sync-unknown": app(phase=None),
    "sync-unknown-long-ago": app(phase=None),
    "health-missing": app(phase=None, health="Missing"),
}
CORPUS["just-created"]["metadata"]["creationTimestamp"] = ago(minutes=1)
CORPUS["being-deleted"]["metadata"]["deletionTimestamp"] = ago(minutes=1)
CORPUS["being-deleted"]["metadata"]["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]
for case, when in (("sync-unknown", ago(minutes=1)), ("sync-unknown-long-ago", ago(minutes=60))):
    CORPUS[case]["status"]["sync"]["status"] = "Unknown"
    CORPUS[case]["status"]["conditions"] = [
        {"type": "ComparisonError", "message": 'rpc error: "repo" unreachable\n{{ x }}', "lastTransitionTime": when}
    ]


ALL_EVENTS = {"backstage": {"url": "https://backstage.example.com"}, "events": [{"event": e.value} for e in EventName]}


def config(argocd_url: str | None = ARGOCD_URL) -> dict[str, str]:
    rendered = render_notifications_config(parse_bridge_spec(ALL_EVENTS), argocd_url)
    data = dict(rendered.owned)
    if rendered.context:
        data["context"] = "".join(f"{key}: {value}\n" for key, value in rendered.context.items())
    return data


@pytest.fixture(scope="module")
def engine() -> OfflineEngine:
    return OfflineEngine(config(), {"backstage-token": "contract-test-token"})


@pytest.fixture(scope="module")
def engine_without_url() -> OfflineEngine:
    return OfflineEngine(config(None), {"backstage-token": "contract-test-token"})


def sent_body(engine: OfflineEngine, event: EventName, application: dict[str, Any]) -> dict[str, Any]:
    text = engine.webhook_body(CATALOG[event].template, application)
    body = json.loads(text)  # valid JSON, whatever the app contained
    assert create_request_problems(body) == [], (event, body)
    return body


# Which trigger fires for which Application: the whole truth table of the default events.
# HealthRecovered fires for every app whose health became Healthy within the window (strictly: with a
# transition time); the relay takes it as a signal only.
FIRES = {
    "healthy": {EventName.SYNC_SUCCEEDED, EventName.DEPLOYED, EventName.HEALTH_RECOVERED},
    "degraded": {EventName.SYNC_SUCCEEDED, EventName.HEALTH_DEGRADED},
    "failed-hostile-message": {EventName.SYNC_FAILED, EventName.HEALTH_DEGRADED},
    "error-phase": {EventName.SYNC_FAILED, EventName.HEALTH_RECOVERED},
    "unicode": {EventName.SYNC_SUCCEEDED, EventName.DEPLOYED, EventName.HEALTH_RECOVERED},
    "very-long": {EventName.SYNC_SUCCEEDED, EventName.DEPLOYED, EventName.HEALTH_RECOVERED},
    "several-refs": {EventName.SYNC_SUCCEEDED, EventName.DEPLOYED, EventName.HEALTH_RECOVERED},
    "never-synced": {EventName.HEALTH_RECOVERED},
    "running": {EventName.SYNC_RUNNING},
    "no-status-at-all": set(),
    "old-sync-when-enabled": set(),
    "old-degradation": set(),
    "slow-rollout": {EventName.DEPLOYED, EventName.HEALTH_RECOVERED},
    "mixed-case-ref": {EventName.SYNC_SUCCEEDED, EventName.DEPLOYED, EventName.HEALTH_RECOVERED},
    "ref-without-namespace": {EventName.SYNC_SUCCEEDED, EventName.DEPLOYED, EventName.HEALTH_RECOVERED},
    "ref-without-kind": set(),
    "ref-with-stray-characters": set(),
    "one-good-ref-among-bad": {EventName.SYNC_SUCCEEDED, EventName.DEPLOYED, EventName.HEALTH_RECOVERED},
    "no-annotation": set(),
    "empty-annotation": set(),
    "just-created": {EventName.CREATED},  # Missing for an hour: health news is old, creation is not
    "being-deleted": {EventName.SYNC_SUCCEEDED, EventName.DEPLOYED, EventName.DELETED, EventName.HEALTH_RECOVERED},
    "sync-unknown": {EventName.SYNC_STATUS_UNKNOWN, EventName.HEALTH_RECOVERED},
    "sync-unknown-long-ago": {EventName.HEALTH_RECOVERED},
    "health-missing": {EventName.HEALTH_MISSING},
}


@pytest.mark.parametrize("case", [name for name, fires in FIRES.items() if fires])
@pytest.mark.parametrize("event", list(EventName))
def test_every_body_is_valid_json_backstage_accepts(engine, event, case):
    body = sent_body(engine, event, CORPUS[case])
    payload = body["payload"]
    assert payload["severity"] == DEFAULT_SEVERITIES[event].value
    assert payload["topic"] == DEFAULT_TOPICS[event]
    assert js_length(payload["title"]) <= 255 and js_length(payload["scope"]) <= 255
    assert "<no value>" not in json.dumps(body)


def test_hostile_sync_message_arrives_intact(engine):
    body = sent_body(engine, EventName.SYNC_FAILED, CORPUS["failed-hostile-message"])
    assert HOSTILE_MESSAGE in body["payload"]["description"]
    assert body["payload"]["title"] == "shop: sync failed"


def test_link_points_at_the_app_in_argocd(engine):
    body = sent_body(engine, EventName.DEPLOYED, CORPUS["healthy"])
    assert body["payload"]["link"] == f"{ARGOCD_URL}/applications/argocd/shop"
    assert body["recipients"] == {"type": "entity", "entityRef": "component:default/shop"}
    assert body["payload"]["scope"] == "argocd/argocd/shop/Deployed"


def test_without_argocd_url_there_is_no_link_and_no_placeholder(engine_without_url):
    body = sent_body(engine_without_url, EventName.DEPLOYED, CORPUS["healthy"])
    assert "link" not in body["payload"]


def test_several_refs_go_out_as_one_list(engine):
    body = sent_body(engine, EventName.DEPLOYED, CORPUS["several-refs"])
    assert body["recipients"]["entityRef"] == ["component:default/shop", "group:default/team-a", "user:default/bob"]


def test_very_long_names_keep_title_and_scope_within_limits_and_distinct(engine):
    long_a = sent_body(engine, EventName.DEPLOYED, CORPUS["very-long"])
    other = copy.deepcopy(CORPUS["very-long"])
    other["metadata"]["name"] = "a" * 252 + "b"
    long_b = sent_body(engine, EventName.DEPLOYED, other)
    assert len(long_a["payload"]["scope"]) == 255
    assert long_a["payload"]["scope"] != long_b["payload"]["scope"], "truncation must not merge two apps' scopes"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("mixed-case-ref", "component:default/shop"),
        ("ref-without-namespace", "component:default/shop"),
        ("one-good-ref-among-bad", "component:default/shop"),
    ],
)
def test_refs_are_delivered_in_canonical_form(engine, case, expected):
    body = sent_body(engine, EventName.DEPLOYED, CORPUS[case])
    assert body["recipients"]["entityRef"] == expected


def test_unicode_survives(engine):
    body = sent_body(engine, EventName.SYNC_SUCCEEDED, CORPUS["unicode"])
    assert body["payload"]["title"] == "boutique-ünïcødé-✓: sync succeeded"
    assert "🚀" not in body["payload"]["description"]  # the revision sentence, not the message
    failed = sent_body(
        engine,
        EventName.SYNC_FAILED,
        {
            **CORPUS["unicode"],
            "status": {
                **CORPUS["unicode"]["status"],
                "operationState": {**CORPUS["unicode"]["status"]["operationState"], "phase": "Failed"},
            },
        },
    )
    assert "déploiement réussi 🚀 “quotes”" in failed["payload"]["description"]


@pytest.mark.parametrize("case", list(FIRES))
def test_each_trigger_fires_exactly_when_its_event_happened(engine, case):
    fired = {event for event in EventName if any(engine.trigger(CATALOG[event].trigger, CORPUS[case]))}
    assert fired == FIRES[case]


def test_broken_configuration_is_reported_by_the_engine():
    broken = {
        **config(),
        "trigger.on-deployed-backstage": "- when: app.status ?? )\n  send: [app-deployed-backstage]\n",
    }
    with pytest.raises(EngineError):
        OfflineEngine(broken).trigger("on-deployed-backstage", CORPUS["healthy"])
