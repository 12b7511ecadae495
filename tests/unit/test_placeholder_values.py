"""What each placeholder reads from an Application, in Python (for `preview`): present, absent, odd.

The contract tests hold the engine's template to the same values; here the many cases are cheap.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from argobridge.core.events import CATALOG
from argobridge.core.preview import event_time, format_time, placeholder_values
from argobridge.core.spec import EventName
from tests.appfields import with_fields

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

FULL: dict[str, Any] = {
    "metadata": {"name": "shop", "namespace": "argocd", "creationTimestamp": "2026-12-01T08:00:00Z"},
    "spec": {
        "project": "web",
        "source": {"repoURL": "https://git.example.com/shop.git", "targetRevision": "main"},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
    },
    "status": {
        "sync": {"status": "Synced", "revision": "compared"},
        "health": {"status": "Healthy", "lastTransitionTime": "2026-12-04T11:58:00Z"},
        "operationState": {
            "phase": "Succeeded",
            "operation": {"initiatedBy": {"username": "alice@example.com"}, "sync": {"revision": "asked"}},
            "startedAt": "2026-12-04T11:50:00Z",
            "finishedAt": "2026-12-04T11:55:00Z",
            "syncResult": {"revision": "4f3c2b1a"},
        },
    },
}


def values(app: dict[str, Any], event: EventName = EventName.SYNC_SUCCEEDED) -> dict[str, str]:
    return placeholder_values(app, CATALOG[event], NOW)


def changed(**paths: Any) -> dict[str, Any]:
    """FULL with fields set (or removed, with None), given as paths joined by __."""
    return with_fields(FULL, **paths)


def test_an_application_with_every_field():
    got = values(FULL)
    assert got["initiatedBy"] == "alice@example.com"
    assert got["repo"] == "https://git.example.com/shop.git"
    assert got["destination"] == "https://kubernetes.default.svc/shop"
    assert got["time"] == "2026-12-04T11:55:00Z"
    assert got["revision"] == "4f3c2b1a"


@pytest.mark.parametrize(
    ("paths", "placeholder", "expected"),
    [
        ({"status__operationState": None}, "initiatedBy", ""),
        ({"status__operationState__operation": None}, "initiatedBy", ""),
        ({"status__operationState__operation__initiatedBy": {}}, "initiatedBy", ""),
        ({"status__operationState__operation__initiatedBy": {"automated": True}}, "initiatedBy", "automated sync"),
        (
            {"status__operationState__operation__initiatedBy": {"automated": True, "username": "bob"}},
            "initiatedBy",
            "automated sync",
        ),
        (
            {"status__operationState__operation__initiatedBy": {"automated": False, "username": "bob"}},
            "initiatedBy",
            "bob",
        ),
        ({"spec__source": None}, "repo", ""),
        (
            {
                "spec__source": None,
                "spec__sources": [{"repoURL": "https://charts.example.com"}, {"repoURL": "https://b"}],
            },
            "repo",
            "https://charts.example.com",
        ),
        ({"spec__source": None, "spec__sources": []}, "repo", ""),
        ({"spec__source": None, "spec__sources": ["not a source"]}, "repo", ""),
        (
            {"spec__source": None, "spec__sourceHydrator": {"drySource": {"repoURL": "https://git.example.com/dry"}}},
            "repo",
            "https://git.example.com/dry",
        ),
        ({"spec__destination": {"name": "in-cluster", "namespace": "shop"}}, "destination", "in-cluster/shop"),
        (
            {"spec__destination": {"name": "prod", "server": "https://prod.example.com", "namespace": "shop"}},
            "destination",
            "prod/shop",
        ),
        (
            {"spec__destination": {"server": "https://kubernetes.default.svc"}},
            "destination",
            "https://kubernetes.default.svc",
        ),
        ({"spec__destination": {"namespace": "shop"}}, "destination", "shop"),
        ({"spec__destination": None}, "destination", ""),
        ({"status__operationState__finishedAt": None}, "time", "2026-12-04T12:00:00Z"),
        ({"status__operationState__finishedAt": "2026-12-04T13:55:00+02:00"}, "time", "2026-12-04T11:55:00Z"),
        ({"status__operationState__finishedAt": "2026-12-04T11:55:00.123456Z"}, "time", "2026-12-04T11:55:00Z"),
        ({"status__operationState__finishedAt": "yesterday"}, "time", "2026-12-04T12:00:00Z"),
        ({"status__operationState__finishedAt": "2026-13-04T11:55:00Z"}, "time", "2026-12-04T12:00:00Z"),
        ({"status__operationState__finishedAt": 1733312100}, "time", "2026-12-04T12:00:00Z"),
    ],
)
def test_each_placeholder_present_absent_or_odd(paths, placeholder, expected):
    assert values(changed(**paths))[placeholder] == expected


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (
            {
                "status__operationState__syncResult": {"revision": "", "revisions": ["r-first", "r-second"]},
                "status__operationState__operation": {"sync": {"revisions": ["op-first"]}},
                "status__sync": {"revisions": ["s-first"]},
            },
            "r-first",
        ),
        ({"status__operationState__syncResult": None}, "asked"),
        ({"status__operationState__syncResult": None, "status__operationState__operation": None}, "compared"),
        (
            {
                "status__operationState__syncResult": None,
                "status__operationState__operation": {"sync": {"revisions": ["op-first", "op-second"]}},
                "status__sync": {"revisions": ["s-first"]},
            },
            "op-first",
        ),
        ({"status__operationState": None}, "compared"),
        ({"status__operationState": None, "status__sync": {"revisions": ["s-first", "s-second"]}}, "s-first"),
        ({"status__operationState": None, "status__sync": {"revisions": "not a list"}}, ""),
        ({"status": None}, ""),
    ],
)
def test_revision_falls_back_to_the_first_source_of_multi_source_apps(paths, expected):
    assert values(changed(**paths))["revision"] == expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (EventName.SYNC_SUCCEEDED, "2026-12-04T11:55:00Z"),  # the operation finished
        (EventName.SYNC_FAILED, "2026-12-04T11:55:00Z"),
        (EventName.SYNC_RUNNING, "2026-12-04T11:50:00Z"),  # it has not finished: it started
        (EventName.HEALTH_DEGRADED, "2026-12-04T11:58:00Z"),  # health changed
        (EventName.HEALTH_MISSING, "2026-12-04T11:58:00Z"),
        (EventName.DEPLOYED, "2026-12-04T11:58:00Z"),  # synced at 11:55, healthy at 11:58: the later
        (EventName.CREATED, "2026-12-01T08:00:00Z"),
        (EventName.DELETED, "2026-12-04T12:00:00Z"),  # not being deleted: the time of rendering
        (EventName.SYNC_STATUS_UNKNOWN, "2026-12-04T12:00:00Z"),  # no timestamp of its own
    ],
)
def test_time_is_when_the_event_happened(event, expected):
    assert values(FULL, event)["time"] == expected


def test_deployed_takes_the_later_of_sync_and_health_even_across_offsets():
    app = changed(status__health__lastTransitionTime="2026-12-04T12:57:00+01:00")  # 11:57 UTC, before 11:58
    assert event_time(app, CATALOG[EventName.DEPLOYED], NOW) == "2026-12-04T11:57:00Z"
    app = changed(status__health__lastTransitionTime="2026-12-04T10:00:00Z")  # healthy before the sync ended
    assert event_time(app, CATALOG[EventName.DEPLOYED], NOW) == "2026-12-04T11:55:00Z"


def test_format_time_is_rfc3339_in_utc():
    assert (
        format_time(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=timezone(timedelta(hours=-5)))) == "2026-01-02T08:04:05Z"
    )


@given(st.one_of(st.text(max_size=40), st.datetimes(timezones=st.timezones()).map(datetime.isoformat)))
def test_time_is_always_an_rfc3339_utc_second_whatever_the_application_holds(raw):
    got = event_time(changed(status__operationState__finishedAt=raw), CATALOG[EventName.SYNC_FAILED], NOW)
    assert RFC3339_UTC.fullmatch(got), got
