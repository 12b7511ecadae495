"""Noise control's settings from spec to the relay entry, and its state through the relay's store format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argobridge.core.noisecodec import (
    OFF,
    is_off,
    policy_document,
    policy_from_document,
    state_document,
    state_from_document,
)
from argobridge.core.noisecontrol import (
    AppEvent,
    DailyDigest,
    EveryDigest,
    NoisePolicy,
    NoiseState,
    RateLimit,
    RoutePolicy,
    due,
    offer,
    run,
)
from argobridge.core.spec import SpecError, parse_bridge_spec

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def spec(**extra: Any) -> Any:
    return parse_bridge_spec({"backstage": {"url": "https://backstage.example.com"}, **extra}, "argocd")


def test_defaults_are_a_five_minute_window_resolution_on_and_no_rate_limit() -> None:
    policy = policy_from_document(policy_document(spec()))
    assert policy.min_interval == timedelta(minutes=5)
    assert policy.resolve_recovered and policy.rate_limit is None
    assert policy.signal_only == frozenset({"HealthRecovered"})
    assert not is_off(policy)


def test_every_control_written_in_the_spec_reaches_the_relay() -> None:
    bridge = spec(
        delivery={"minInterval": "90s", "resolveRecovered": False, "rateLimit": {"count": 3, "per": "15m"}},
        events=[{"event": "SyncFailed"}, {"event": "HealthRecovered"}],
        routes=[
            {
                "name": "daily",
                "match": {"events": ["SyncFailed"]},
                "digest": {"at": "09:30", "timeZone": "Europe/Paris"},
            },
            {"name": "hourly", "digest": {"every": "1h"}, "rateLimit": {"count": 2}},
        ],
    )
    policy = policy_from_document(policy_document(bridge))
    assert policy.min_interval == timedelta(seconds=90)
    assert not policy.resolve_recovered
    assert policy.rate_limit == RateLimit(3, timedelta(minutes=15))
    assert policy.signal_only == frozenset()  # HealthRecovered is enabled: a notification of its own
    daily = policy.routes["daily"].digest
    assert isinstance(daily, DailyDigest) and daily.zone.key == "Europe/Paris" and daily.at.hour == 9
    assert policy.routes["hourly"] == RoutePolicy(EveryDigest(timedelta(hours=1)), RateLimit(2, timedelta(minutes=10)))


def test_zero_turns_flap_suppression_off() -> None:
    assert policy_from_document(policy_document(spec(delivery={"minInterval": "0s"}))).min_interval == timedelta(0)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"delivery": {"minInterval": "2h"}}, "spec.delivery.minInterval"),
        ({"delivery": {"minInterval": "soon"}}, "spec.delivery.minInterval"),
        ({"delivery": {"rateLimit": {"count": 0}}}, "spec.delivery.rateLimit.count"),
        ({"delivery": {"rateLimit": {"count": 5, "per": "10s"}}}, "spec.delivery.rateLimit.per"),
        ({"delivery": {"resolveRecovered": "yes"}}, "spec.delivery.resolveRecovered"),
        ({"routes": [{"name": "d", "digest": {"every": "1m"}}]}, "digest.every"),
        ({"routes": [{"name": "d", "digest": {"at": "25:00"}}]}, "digest.at"),
        ({"routes": [{"name": "d", "digest": {"at": "09:00", "timeZone": "Mars/Olympus"}}]}, "timeZone"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        spec(**extra)


def test_an_entry_without_noise_settings_means_no_noise_control() -> None:
    assert policy_from_document(None) is OFF and is_off(policy_from_document({"minIntervalSeconds": "x"}))


def event(number: int, app: str, name: str, recipient: str, route: str | None = None) -> AppEvent:
    namespace, short = app.split("/")
    return AppEvent(
        id=str(number),
        app=app,
        event=name,
        recipients=(recipient,),
        title=f"{short}: {name}",
        scope=f"argocd/{namespace}/{short}/{name}",
        description="because",
        link=f"https://argocd.example.com/applications/{namespace}/{short}",
        route=route,
    )


steps = st.lists(
    st.tuples(
        st.integers(0, 400),
        st.sampled_from(["argocd/shop", "argocd/cart"]),
        st.sampled_from(["HealthDegraded", "HealthRecovered", "SyncFailed", "SyncSucceeded", "Deployed"]),
        st.sampled_from(["user:default/alice", "group:default/team-a"]),
        st.sampled_from([None, "hourly"]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_a_stored_state_decides_exactly_as_the_state_it_was_stored_from(items: list[Any]) -> None:
    """What the relay reads back after a restart is the same state: the same decisions follow."""
    policy = NoisePolicy(
        min_interval=timedelta(minutes=2),
        rate_limit=RateLimit(3, timedelta(minutes=10)),
        routes={"hourly": RoutePolicy(EveryDigest(timedelta(hours=1)))},
    )
    state = NoiseState(policy=policy)
    clock = T0
    for number, (gap, app, name, recipient, route) in enumerate(items):
        clock += timedelta(seconds=gap)
        state = offer(state, event(number, app, name, recipient, route), clock).state
    stored = state_from_document(state_document(state), policy)
    assert stored == state
    later = clock + timedelta(hours=2)
    assert due(stored, later) == due(state, later)


def test_run_sends_what_came_due_before_a_later_event_first() -> None:
    policy = NoisePolicy(min_interval=timedelta(minutes=5), rate_limit=None)
    first = event(1, "argocd/shop", "HealthDegraded", "user:default/alice")
    again = event(2, "argocd/shop", "HealthDegraded", "user:default/alice")
    late = event(3, "argocd/shop", "HealthDegraded", "user:default/alice")
    decision = run(
        NoiseState(policy=policy),
        [(first, T0), (again, T0 + timedelta(minutes=1)), (late, T0 + timedelta(minutes=20))],
        T0 + timedelta(minutes=20),
    )
    kinds = [send.kind for send in decision.sends]
    # The first at once, the window's update when it ended (before the late one), the late one a new episode.
    assert kinds == ["notify", "update", "notify"]
    assert [send.accounts for send in decision.sends] == [("1",), ("2",), ("3",)]


def test_the_readmes_noise_example_is_a_valid_spec() -> None:
    import re
    from pathlib import Path

    import yaml

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Less noise", 1)[1]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    bridge = spec(**example["spec"])
    policy = policy_from_document(policy_document(bridge))
    assert policy.rate_limit == RateLimit(10, timedelta(minutes=10))
    assert isinstance(policy.routes["staging-digest"].digest, DailyDigest)
    assert policy.routes["oncall"].rate_limit == RateLimit(5, timedelta(hours=1))
