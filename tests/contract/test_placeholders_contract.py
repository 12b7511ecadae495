"""The placeholders users asked for, rendered by the real Argo CD engine: the text a user reads.

`{initiatedBy}`, `{repo}`, `{destination}`, `{time}` and the multi-source `{revision}`, each for an
Application that carries the field and for one that lacks it (or carries something odd), and a route's
`icon`. Every body is valid JSON Backstage accepts, and `argobridge preview`'s Python reading
(`placeholder_values`) says the same as the engine.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argobridge.core.backstage_contract import create_request_problems
from argobridge.core.events import CATALOG
from argobridge.core.preview import placeholder_values
from argobridge.core.render import render_notifications_config
from argobridge.core.spec import EventName, parse_bridge_spec
from argobridge_dev.engine import OfflineEngine
from tests.appfields import with_fields

TEXT = "by {initiatedBy} | from {repo} | to {destination} | at {time} | rev {revision}"
BRIDGE: dict[str, Any] = {
    "backstage": {"url": "https://backstage.example.com"},
    "events": [
        {"event": event.value, "description": TEXT, "title": "{app} at {time}", "icon": "warning"}
        for event in EventName
    ],
    "routes": [
        {"name": "prod-icon", "match": [{"destinationNamespaces": ["prod"]}], "icon": "kind:component"},
        {"name": "prod-text", "match": [{"destinationNamespaces": ["prod-text"]}], "title": "{destination}"},
    ],
}
FULL: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Application",
    "metadata": {
        "name": "shop",
        "namespace": "argocd",
        "annotations": {"backstage.io/entity-ref": "component:default/shop"},
        "creationTimestamp": "2026-12-01T08:00:00Z",
    },
    "spec": {
        "project": "web",
        "source": {"repoURL": "https://git.example.com/shop.git", "targetRevision": "main"},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
    },
    "status": {
        "sync": {"status": "Synced", "revision": "4f3c2b1a"},
        "health": {"status": "Healthy", "lastTransitionTime": "2026-12-04T11:58:00Z"},
        "operationState": {
            "phase": "Succeeded",
            "message": "successfully synced",
            "operation": {"initiatedBy": {"username": "alice@example.com"}, "sync": {"revision": "4f3c2b1a"}},
            "startedAt": "2026-12-04T11:50:00Z",
            "finishedAt": "2026-12-04T11:55:00Z",
            "syncResult": {"revision": "4f3c2b1a"},
        },
    },
}


def changed(app: dict[str, Any] = FULL, **paths: Any) -> dict[str, Any]:
    """A copy with fields set (or removed, with None), given as paths joined by __."""
    return with_fields(app, **paths)


@pytest.fixture(scope="module")
def engine() -> OfflineEngine:
    return OfflineEngine(
        dict(render_notifications_config(parse_bridge_spec(BRIDGE), None).owned), {"backstage-token": "t"}
    )


def payload(engine: OfflineEngine, app: dict[str, Any], event: EventName = EventName.SYNC_SUCCEEDED, route: str = ""):
    template = CATALOG[event].template
    if route:
        template = template.removesuffix("-backstage") + f"-{route}-backstage"
    before = datetime.now(UTC).replace(microsecond=0)
    body = json.loads(engine.webhook_body(template, app))
    after = datetime.now(UTC)
    assert create_request_problems(body) == [], body
    values = placeholder_values(app, CATALOG[event], before)
    if not route:  # preview's reading agrees; a time it could not read is the engine's now
        expected = TEXT.format(**values)
        if values["time"] == before.strftime("%Y-%m-%dT%H:%M:%SZ"):
            sent_time = body["payload"]["description"].split(" | at ")[1].split(" | ")[0]
            assert before <= datetime.fromisoformat(sent_time) <= after, sent_time
            expected = expected.replace(f" at {values['time']} ", f" at {sent_time} ")
        assert body["payload"]["description"] == expected
    return body["payload"]


def test_an_application_with_every_field_reads_as_a_sentence(engine):
    assert payload(engine, FULL)["description"] == (
        "by alice@example.com | from https://git.example.com/shop.git | to https://kubernetes.default.svc/shop"
        " | at 2026-12-04T11:55:00Z | rev 4f3c2b1a"
    )


def test_an_application_that_never_synced_reads_empty_not_no_value(engine):
    never = changed(status__operationState=None, status__sync={"status": "OutOfSync"})
    sent = payload(engine, never, EventName.HEALTH_DEGRADED)
    assert sent["description"] == (
        "by  | from https://git.example.com/shop.git | to https://kubernetes.default.svc/shop"
        " | at 2026-12-04T11:58:00Z | rev "
    )
    # No source, no destination, no status at all.
    bare = {key: FULL[key] for key in ("apiVersion", "kind", "metadata")} | {"spec": {}}
    description = payload(engine, bare, EventName.CREATED)["description"]
    assert description == "by  | from  | to  | at 2026-12-01T08:00:00Z | rev "


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ({"status__operationState__operation__initiatedBy": {"automated": True}}, "automated sync"),
        ({"status__operationState__operation__initiatedBy": {"automated": False, "username": "bob"}}, "bob"),
        ({"status__operationState__operation__initiatedBy": {"automated": True, "username": "bob"}}, "automated sync"),
        ({"status__operationState__operation__initiatedBy": {}}, ""),
        ({"status__operationState__operation": None}, ""),
        (
            {"status__operationState__operation__initiatedBy__username": 'eve "the" {{ admin }}\n'},
            'eve "the" {{ admin }}\n',
        ),
    ],
)
def test_initiated_by_is_the_user_or_automated_sync(engine, paths, expected):
    description = payload(engine, changed(**paths))["description"]
    assert description.startswith(f"by {expected} | from ")


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ({"spec__source": None}, ""),
        (
            {
                "spec__source": None,
                "spec__sources": [
                    {"repoURL": "https://charts.example.com"},
                    {"repoURL": "https://git.example.com/values"},
                ],
            },
            "https://charts.example.com",
        ),
        ({"spec__source": None, "spec__sources": []}, ""),
        ({"spec__source": None, "spec__sources": ["not a source"]}, ""),
        ({"spec__source": None, "spec__sources": {"not": "a list"}}, ""),
        (
            {"spec__source": None, "spec__sourceHydrator": {"drySource": {"repoURL": "https://git.example.com/dry"}}},
            "https://git.example.com/dry",
        ),
    ],
)
def test_repo_is_the_source_or_the_first_of_several(engine, paths, expected):
    assert f" | from {expected} | to " in payload(engine, changed(**paths))["description"]


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ({"name": "in-cluster", "namespace": "shop"}, "in-cluster/shop"),
        ({"name": "prod", "server": "https://prod.example.com:6443", "namespace": "shop"}, "prod/shop"),
        ({"server": "https://prod.example.com:6443"}, "https://prod.example.com:6443"),
        ({"namespace": "shop"}, "shop"),
        ({}, ""),
    ],
)
def test_destination_is_cluster_and_namespace_as_argo_cd_lists_it(engine, destination, expected):
    assert f" | to {expected} | at " in payload(engine, changed(spec__destination=destination))["description"]


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (
            {
                "status__operationState__syncResult": {"revision": "", "revisions": ["r-first", "r-second"]},
                "status__operationState__operation__sync": {"revisions": ["asked-1", "asked-2"]},
                "status__sync": {"status": "Synced", "revisions": ["s-first", "s-second"]},
            },
            "r-first",
        ),
        (
            {
                "status__operationState__syncResult": None,
                "status__operationState__operation__sync": {"revisions": ["asked-1", "asked-2"]},
                "status__sync": {"status": "Synced", "revisions": ["s-first", "s-second"]},
            },
            "asked-1",
        ),
        ({"status__operationState": None, "status__sync": {"revisions": ["s-first", "s-second"]}}, "s-first"),
        ({"status__operationState": None, "status__sync": {"revisions": "not a list"}}, ""),
        ({"status__operationState": None, "status__sync": None}, ""),
        ({"status__operationState__syncResult__revision": "", "status__sync__revision": "compared"}, "4f3c2b1a"),
    ],
)
def test_revision_of_a_multi_source_app_is_the_first_sources(engine, paths, expected):
    assert payload(engine, changed(**paths))["description"].endswith(f" | rev {expected}")


@pytest.mark.parametrize(
    ("event", "paths", "expected"),
    [
        (EventName.SYNC_FAILED, {}, "2026-12-04T11:55:00Z"),
        (EventName.SYNC_RUNNING, {}, "2026-12-04T11:50:00Z"),
        (EventName.HEALTH_DEGRADED, {}, "2026-12-04T11:58:00Z"),
        (EventName.DEPLOYED, {}, "2026-12-04T11:58:00Z"),
        (EventName.DEPLOYED, {"status__health__lastTransitionTime": "2026-12-04T10:00:00Z"}, "2026-12-04T11:55:00Z"),
        (EventName.CREATED, {}, "2026-12-01T08:00:00Z"),
        (EventName.DELETED, {"metadata__deletionTimestamp": "2026-12-04T11:59:59Z"}, "2026-12-04T11:59:59Z"),
        (
            EventName.SYNC_FAILED,
            {"status__operationState__finishedAt": "2026-12-04T13:55:00+02:00"},
            "2026-12-04T11:55:00Z",
        ),
        (
            EventName.SYNC_FAILED,
            {"status__operationState__finishedAt": "2026-12-04T11:55:00.5Z"},
            "2026-12-04T11:55:00Z",
        ),
    ],
)
def test_time_is_when_the_event_happened_in_utc(engine, event, paths, expected):
    sent = payload(engine, changed(**paths), event)
    assert sent["title"] == f"shop at {expected}"
    assert f" | at {expected} | " in sent["description"]


@pytest.mark.parametrize(
    ("event", "paths"),
    [
        (EventName.SYNC_FAILED, {"status__operationState__finishedAt": None}),
        (EventName.SYNC_FAILED, {"status__operationState__finishedAt": "yesterday at noon"}),
        (EventName.SYNC_FAILED, {"status__operationState__finishedAt": "2026-13-45T11:55:00Z"}),
        (EventName.SYNC_FAILED, {"status__operationState__finishedAt": "0001-01-01T00:30:00+01:00"}),
        (EventName.SYNC_FAILED, {"status__operationState__finishedAt": 1733312100}),
        (EventName.HEALTH_DEGRADED, {"status__health": {"status": "Degraded"}}),
        (EventName.SYNC_STATUS_UNKNOWN, {}),
        (EventName.DELETED, {}),
    ],
)
def test_without_a_readable_timestamp_time_is_when_the_engine_rendered(engine, event, paths):
    before = datetime.now(UTC).replace(microsecond=0)
    title = payload(engine, changed(**paths), event)["title"]
    assert before <= datetime.fromisoformat(title.removeprefix("shop at ")) <= datetime.now(UTC), title


@given(
    st.one_of(
        st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat(timespec="seconds")),
        st.from_regex(
            r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})\Z"
        ),
    )
)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_rfc3339_like_time_reads_the_same_in_go_and_in_preview(engine, raw):
    payload(engine, changed(status__operationState__finishedAt=raw), EventName.SYNC_FAILED)


# Not NUL (the template drops it, tested in test_body_limits) and not what YAML cannot print: the offline
# `template notify` prints the body as YAML and refuses DEL, C1 controls and U+FEFF/FFFE/FFFF there
# ("yaml: control characters are not allowed"); the controller posts JSON and has no such step.
_UNPRINTABLE = "\x00\x7f" + "".join(chr(code) for code in range(0x80, 0xA0)) + "\ufeff\ufffe\uffff"
ANY_TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters=_UNPRINTABLE), max_size=40)


@given(username=ANY_TEXT, automated=st.sampled_from([None, True, False]), repo=ANY_TEXT, cluster=ANY_TEXT, ns=ANY_TEXT)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_text_in_the_application_arrives_as_text_and_as_preview_says(
    engine, username, automated, repo, cluster, ns
):
    initiator: dict[str, Any] = {"username": username}
    if automated is not None:
        initiator["automated"] = automated
    app = changed(
        status__operationState__operation__initiatedBy=initiator,
        spec__source={"repoURL": repo},
        spec__destination={"name": cluster, "namespace": ns},
    )
    payload(engine, app, EventName.SYNC_FAILED)  # the engine's description equals preview's, character for character


def test_a_routes_icon_wins_and_the_events_icon_stays_the_default(engine):
    prod = changed(spec__destination={"server": "https://kubernetes.default.svc", "namespace": "prod"})
    assert payload(engine, prod, EventName.SYNC_FAILED, "prod-icon")["icon"] == "kind:component"
    assert payload(engine, FULL, EventName.SYNC_FAILED)["icon"] == "warning"
    text_only = changed(spec__destination={"name": "edge-1", "namespace": "prod-text"})
    sent = payload(engine, text_only, EventName.SYNC_FAILED, "prod-text")
    assert (sent["title"], sent["icon"]) == ("edge-1/prod-text", "warning"), "a route without an icon keeps the event's"


def test_without_any_icon_the_body_has_none():
    spec = parse_bridge_spec(
        {"backstage": {"url": "https://backstage.example.com"}, "events": [{"event": "SyncFailed"}]}
    )
    engine = OfflineEngine(dict(render_notifications_config(spec, None).owned), {"backstage-token": "t"})
    assert "icon" not in json.loads(engine.webhook_body(CATALOG[EventName.SYNC_FAILED].template, FULL))["payload"]


README_EXAMPLE = """
events:
  - {event: SyncFailed, icon: warning,
     description: "{message} (revision {revision} of {repo}, started by {initiatedBy})"}
routes:
  - name: prod-oncall
    match: [{destinationNamespaces: [prod, "prod-*"]}]
    recipients: [group:default/on-call]
    icon: kind:component
    title: "PROD {app} on {destination}: {phase} at {time}"
"""


def test_the_readmes_example_reads_as_the_readme_says():
    assert README_EXAMPLE.strip() in (Path(__file__).parents[2] / "README.md").read_text()
    spec = parse_bridge_spec({"backstage": {"url": "https://backstage.example.com"}, **yaml.safe_load(README_EXAMPLE)})
    engine = OfflineEngine(dict(render_notifications_config(spec, None).owned), {"backstage-token": "t"})
    failed = changed(
        spec__destination={"name": "in-cluster", "namespace": "prod"},
        status__operationState__phase="Failed",
        status__operationState__message="one or more objects failed to apply",
        status__operationState__operation__initiatedBy={"username": "alice"},
    )
    body = json.loads(engine.webhook_body("app-sync-failed-prod-oncall-backstage", failed))
    assert body["payload"]["title"] == "PROD shop on in-cluster/prod: Failed at 2026-12-04T11:55:00Z"
    assert body["payload"]["description"] == (
        "one or more objects failed to apply (revision 4f3c2b1a of https://git.example.com/shop.git, started by alice)"
    )
    assert body["payload"]["icon"] == "kind:component"
    assert body["recipients"]["entityRef"] == ["component:default/shop", "group:default/on-call"]
    elsewhere = json.loads(engine.webhook_body("app-sync-failed-backstage", changed(failed, spec__destination={})))
    assert elsewhere["payload"]["icon"] == "warning"
