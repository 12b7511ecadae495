"""Noise control: recovery, flap windows, rate limits and digests, by example and over random sequences."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argobridge.core import backstage_limits as limits
from argobridge.core.noisecontrol import (
    BROADCAST,
    DEFAULT_RATE_LIMIT,
    AppEvent,
    DailyDigest,
    EveryDigest,
    NoisePolicy,
    NoiseState,
    RateLimit,
    RoutePolicy,
    Send,
    SendKind,
    due,
    event_from_body,
    next_wakeup,
    offer,
    parse_digest,
    parse_rate_limit,
)
from argobridge.core.noisetext import HEALTH_RECOVERED
from argobridge.core.spec import SpecError

T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)
TEAM = "group:default/team-a"
ARGOCD = "https://argocd.example.com"
DEGRADED, FAILED, SUCCEEDED, DEPLOYED = "HealthDegraded", "SyncFailed", "SyncSucceeded", "Deployed"


def app_event(
    event_id: str | int,
    event: str,
    app: str = "argocd/shop",
    recipients: tuple[str, ...] = (TEAM,),
    route: str | None = None,
    severity: str = "high",
) -> AppEvent:
    name = app.split("/", 1)[1]
    return AppEvent(
        id=str(event_id),
        app=app,
        event=event,
        recipients=recipients,
        title=f"{name}: {event}",
        scope=f"argocd/{app}/{event}",
        description=f"{event} of {name}",
        severity=severity,
        topic=f"argocd.{event.lower()}",
        link=f"{ARGOCD}/applications/{app}",
        route=route,
    )


@dataclass
class Run:
    """Drives a state the way the relay will: offers at their times, `due` at every `next_wakeup` before."""

    state: NoiseState
    now: datetime = T0
    sent: list[tuple[datetime, Send]] = field(default_factory=list)
    absorbed: list[tuple[str, str]] = field(default_factory=list)

    def wake_until(self, until: datetime | None) -> None:
        for _ in range(10_000):
            wakeup = next_wakeup(self.state)
            if wakeup is None or (until is not None and wakeup > until):
                return
            decision = due(self.state, wakeup)
            self.state = decision.state
            self.sent += [(wakeup, send) for send in decision.sends]
        raise AssertionError("next_wakeup never settles")

    def offer(self, event: AppEvent, at: datetime) -> list[Send]:
        self.wake_until(at)
        self.now = at
        decision = offer(self.state, event, at)
        self.state = decision.state
        self.sent += [(at, send) for send in decision.sends]
        self.absorbed += decision.absorbed
        return decision.sends

    def drain(self) -> None:
        self.wake_until(None)

    def kinds(self) -> list[str]:
        return [send.kind for _, send in self.sent]


def test_degraded_then_healthy_leaves_one_notification_saying_it_recovered_and_when() -> None:
    run = Run(NoiseState())
    run.offer(app_event(1, DEGRADED), T0)
    run.offer(app_event(2, HEALTH_RECOVERED), T0 + timedelta(hours=3))
    run.drain()
    assert run.kinds() == [SendKind.NOTIFY, SendKind.RESOLUTION]
    (_, first), (when, resolution) = run.sent
    assert resolution.scope == first.scope  # Backstage updates the degraded notification in place
    assert resolution.title == "shop: healthy again"
    assert "13:00 UTC" in resolution.description and "3 hours" in resolution.description
    assert resolution.severity == "low" and resolution.accounts == ("2",)
    assert when == T0 + timedelta(hours=3)


def test_a_recovery_signal_with_nothing_open_is_absorbed_unless_health_recovered_is_enabled() -> None:
    quiet = Run(NoiseState())
    quiet.offer(app_event(1, HEALTH_RECOVERED), T0)
    assert quiet.sent == [] and quiet.absorbed == [("1", TEAM)]
    loud = Run(NoiseState(policy=NoisePolicy(signal_only=frozenset())))
    loud.offer(app_event(1, HEALTH_RECOVERED), T0)
    assert loud.kinds() == [SendKind.NOTIFY] and loud.absorbed == []


def test_health_recovered_enabled_merges_into_the_resolution_rather_than_a_second_notification() -> None:
    run = Run(NoiseState(policy=NoisePolicy(signal_only=frozenset())))
    run.offer(app_event(1, DEGRADED), T0)
    run.offer(app_event(2, HEALTH_RECOVERED), T0 + timedelta(minutes=30))
    run.drain()
    assert run.kinds() == [SendKind.NOTIFY, SendKind.RESOLUTION]


def test_deployed_after_a_failed_sync_is_announced_and_resolves_the_failure() -> None:
    run = Run(NoiseState())
    run.offer(app_event(1, FAILED), T0)
    sends = run.offer(app_event(2, DEPLOYED), T0 + timedelta(minutes=20))
    assert sorted(send.kind for send in sends) == [SendKind.NOTIFY, SendKind.RESOLUTION]
    resolution = next(send for send in sends if send.kind == SendKind.RESOLUTION)
    assert resolution.scope == "argocd/argocd/shop/SyncFailed" and resolution.title == "shop: synced again"
    assert resolution.accounts == ()  # the Deployed event is accounted by its own notification


def test_resolution_can_be_turned_off() -> None:
    run = Run(NoiseState(policy=NoisePolicy(resolve_recovered=False)))
    run.offer(app_event(1, DEGRADED), T0)
    run.offer(app_event(2, HEALTH_RECOVERED), T0 + timedelta(minutes=30))
    assert run.kinds() == [SendKind.NOTIFY] and run.absorbed == [("2", TEAM)]


def test_twenty_flaps_in_two_minutes_leave_one_notification_with_the_count() -> None:
    run = Run(NoiseState())
    for number in range(20):
        at = T0 + timedelta(seconds=6 * number)
        run.offer(app_event(f"d{number}", DEGRADED), at)
        run.offer(app_event(f"h{number}", HEALTH_RECOVERED), at + timedelta(seconds=3))
    run.drain()
    assert {send.scope for _, send in run.sent} == {"argocd/argocd/shop/HealthDegraded"}
    assert run.kinds() == [SendKind.NOTIFY, SendKind.RESOLUTION, SendKind.UPDATE]
    when, update = run.sent[-1]
    assert when == T0 + timedelta(minutes=5)
    assert "20 times" in update.title and "healthy again" in update.title
    assert "20 times" in update.description and update.severity == "low"


def test_flapping_without_recovery_updates_once_per_window_with_the_latest_text() -> None:
    run = Run(NoiseState())
    for number in range(4):
        run.offer(app_event(number, DEGRADED), T0 + timedelta(minutes=number))
    run.drain()
    assert [(when - T0, send.kind) for when, send in run.sent] == [
        (timedelta(0), SendKind.NOTIFY),
        (timedelta(minutes=5), SendKind.UPDATE),
    ]
    update = run.sent[-1][1]
    assert update.title == "shop: HealthDegraded (4 times in 3 minutes)"
    assert update.accounts == ("1", "2", "3") and update.severity == "high"


def test_an_event_after_a_quiet_window_is_sent_at_once() -> None:
    run = Run(NoiseState())
    run.offer(app_event(1, DEPLOYED), T0)
    assert run.offer(app_event(2, DEPLOYED), T0 + timedelta(minutes=6))
    assert run.offer(app_event(3, DEPLOYED), T0 + timedelta(minutes=7)) == []


def test_a_rate_limited_recipient_gets_one_summary_of_what_was_held_and_nothing_is_dropped() -> None:
    run = Run(NoiseState(policy=NoisePolicy(rate_limit=RateLimit(10, timedelta(minutes=10)))))
    for number in range(15):
        run.offer(app_event(number, DEPLOYED, app=f"argocd/app{number:02}", severity="low"), T0)
    run.drain()
    assert Counter(run.kinds()) == {SendKind.NOTIFY: 10, SendKind.SUMMARY: 1}
    when, summary = run.sent[-1]
    assert when == T0 + timedelta(minutes=10)
    assert summary.title == "5 Argo CD notifications held back (limit: 10 per 10 minutes)"
    assert summary.accounts == ("10", "11", "12", "13", "14") and summary.recipients == (TEAM,)
    for number in range(10, 15):
        assert (
            f"app{number}: deployed" in summary.description
            and f"applications/argocd/app{number}" in summary.description
        )


def test_an_update_of_a_notification_the_recipient_has_is_never_held_by_the_rate_limit() -> None:
    run = Run(NoiseState(policy=NoisePolicy(rate_limit=RateLimit(1, timedelta(hours=1)))))
    run.offer(app_event(1, DEGRADED), T0)
    run.offer(app_event(2, DEGRADED), T0 + timedelta(minutes=1))
    run.offer(app_event(3, HEALTH_RECOVERED), T0 + timedelta(minutes=2))
    run.drain()
    assert run.kinds() == [SendKind.NOTIFY, SendKind.RESOLUTION, SendKind.UPDATE]
    assert [send.counted for _, send in run.sent] == [True, False, False]


def test_a_recovery_of_a_held_problem_is_told_in_the_summary() -> None:
    run = Run(NoiseState(policy=NoisePolicy(rate_limit=RateLimit(1, timedelta(minutes=10)))))
    run.offer(app_event(1, DEPLOYED, app="argocd/cart"), T0)
    run.offer(app_event(2, DEGRADED), T0 + timedelta(minutes=1))
    run.offer(app_event(3, HEALTH_RECOVERED), T0 + timedelta(minutes=2))
    run.drain()
    assert run.kinds() == [SendKind.NOTIFY, SendKind.SUMMARY]
    summary = run.sent[-1][1]
    assert summary.accounts == ("2", "3") and "healthy again 10:02 UTC" in summary.description
    assert summary.severity == "low"


def test_a_route_with_its_own_rate_limit_counts_apart_from_the_bridge() -> None:
    policy = NoisePolicy(
        rate_limit=RateLimit(1, timedelta(minutes=10)),
        routes={"oncall": RoutePolicy(rate_limit=RateLimit(5, timedelta(minutes=10)))},
    )
    run = Run(NoiseState(policy=policy))
    run.offer(app_event(1, DEPLOYED, app="argocd/a"), T0)
    for number in range(2, 5):
        run.offer(app_event(number, FAILED, app=f"argocd/app{number}", route="oncall"), T0)
    assert Counter(run.kinds()) == {SendKind.NOTIFY: 4}


def test_an_hourly_digest_sends_one_notification_per_recipient_with_one_link_per_app() -> None:
    policy = NoisePolicy(routes={"daily-ops": RoutePolicy(digest=EveryDigest(timedelta(hours=1)))})
    run = Run(NoiseState(policy=policy))
    run.offer(app_event(1, DEGRADED, route="daily-ops"), T0 + timedelta(minutes=5))
    run.offer(app_event(2, DEGRADED, route="daily-ops"), T0 + timedelta(minutes=6))
    run.offer(app_event(3, HEALTH_RECOVERED), T0 + timedelta(minutes=9))
    run.offer(app_event(4, DEPLOYED, app="argocd/cart", route="daily-ops"), T0 + timedelta(minutes=20))
    assert run.sent == []
    run.drain()
    assert run.kinds() == [SendKind.DIGEST]
    when, digest = run.sent[0]
    assert when == T0 + timedelta(hours=1)
    assert digest.title == "Argo CD digest: 3 events in 2 applications"
    assert sorted(digest.accounts) == ["1", "2", "3", "4"]
    assert digest.description.count(f"{ARGOCD}/applications/argocd/shop") == 1
    assert digest.description.count(f"{ARGOCD}/applications/argocd/cart") == 1
    assert "health degraded twice, 10:05 UTC to 10:06 UTC, healthy again 10:09 UTC (low)" in digest.description


def test_a_daily_digest_goes_at_the_local_time_of_its_zone_across_daylight_saving() -> None:
    paris = DailyDigest(time(9, 0), ZoneInfo("Europe/Paris"))
    assert paris.next_at(datetime(2025, 3, 29, 12, 0, tzinfo=UTC)) == datetime(2025, 3, 30, 7, 0, tzinfo=UTC)
    assert paris.next_at(datetime(2025, 3, 28, 7, 59, tzinfo=UTC)) == datetime(2025, 3, 28, 8, 0, tzinfo=UTC)
    assert paris.next_at(datetime(2025, 3, 28, 8, 0, tzinfo=UTC)) == datetime(2025, 3, 29, 8, 0, tzinfo=UTC)
    skipped = DailyDigest(time(2, 30), ZoneInfo("Europe/Paris"))  # 02:30 does not exist on 2025-03-30
    assert skipped.next_at(datetime(2025, 3, 30, 0, 0, tzinfo=UTC)) == datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    policy = NoisePolicy(routes={"morning": RoutePolicy(digest=paris)})
    run = Run(NoiseState(policy=policy))
    run.offer(app_event(1, FAILED, route="morning"), datetime(2025, 3, 29, 20, 0, tzinfo=UTC))
    run.drain()
    when, digest = run.sent[0]
    assert when == datetime(2025, 3, 30, 7, 0, tzinfo=UTC)
    assert "sync failed, 2025-03-29 21:00 CET (high)" in digest.description


def test_every_digest_is_on_multiples_of_its_period() -> None:
    assert EveryDigest(timedelta(hours=1)).next_at(T0) == T0 + timedelta(hours=1)
    assert EveryDigest(timedelta(hours=1)).next_at(T0 + timedelta(minutes=59)) == T0 + timedelta(hours=1)
    assert EveryDigest(timedelta(days=1)).next_at(T0) == datetime(2025, 5, 2, tzinfo=UTC)


def test_a_huge_digest_is_split_so_every_event_is_listed() -> None:
    policy = NoisePolicy(routes={"all": RoutePolicy(digest=EveryDigest(timedelta(hours=1)))})
    run = Run(NoiseState(policy=policy))
    for number in range(600):
        run.offer(app_event(number, DEPLOYED, app=f"argocd/{'x' * 40}-{number}", route="all"), T0)
    run.drain()
    digests = [send for _, send in run.sent]
    assert len(digests) > 1 and all(send.kind == SendKind.DIGEST for send in digests)
    assert sorted(int(i) for send in digests for i in send.accounts) == list(range(600))
    assert len({send.scope for send in digests}) == len(digests)
    for send in digests:
        assert len(send.description) <= limits.DESCRIPTION_CHARS and "part " in send.title
        assert all(line.latest.app.split("/")[1] in send.description for line in send.lines)


def test_offering_the_same_id_again_changes_nothing() -> None:
    first = offer(NoiseState(), app_event(1, DEGRADED), T0)
    again = offer(first.state, app_event(1, DEGRADED), T0 + timedelta(minutes=10))
    assert again.sends == [] and again.state is first.state


def test_offer_and_due_leave_the_given_state_as_it_was() -> None:
    state = NoiseState()
    offer(state, app_event(1, DEGRADED), T0)
    assert state == NoiseState() and next_wakeup(state) is None
    decision = offer(offer(state, app_event(1, DEGRADED), T0).state, app_event(2, DEGRADED), T0)
    before = decision.state
    due(before, T0 + timedelta(hours=1))
    assert next_wakeup(before) == T0 + timedelta(minutes=5)


def test_several_recipients_with_the_same_outcome_share_one_post() -> None:
    sends = offer(NoiseState(), app_event(1, FAILED, recipients=(TEAM, "user:default/ann")), T0).sends
    assert len(sends) == 1 and sends[0].recipients == (TEAM, "user:default/ann")
    assert sends[0].body()["recipients"] == {"type": "entity", "entityRef": [TEAM, "user:default/ann"]}


def test_bodies_fit_backstage() -> None:
    long = replace(app_event(1, DEGRADED, recipients=(BROADCAST,)), title="t" * 1000, link="javascript:alert(1)")
    (send,) = offer(NoiseState(), long, T0).sends
    body = send.body()
    assert body["recipients"] == {"type": "broadcast"} and len(body["payload"]["title"]) == 255
    assert "link" not in body["payload"]


def test_an_event_is_read_from_the_body_the_templates_build() -> None:
    body = {
        "recipients": {"type": "entity", "entityRef": "component:default/shop"},
        "payload": {"title": "shop: deployed", "scope": "argocd/argocd/shop/Deployed", "severity": "low", "link": "x"},
    }
    event = event_from_body("7", body, route="r")
    assert event is not None and (event.app, event.event, event.recipients) == (
        "argocd/shop",
        DEPLOYED,
        ("component:default/shop",),
    )
    assert event.route == "r" and event.severity == "low" and event.link == "x"
    broadcast = event_from_body("8", {"recipients": {"type": "broadcast"}, "payload": body["payload"]})
    assert broadcast is not None and broadcast.recipients == (BROADCAST,)
    assert event_from_body("9", {"recipients": {}, "payload": {"title": "x", "scope": "other"}}) is None


def test_defaults_are_quieter_never_louder() -> None:
    policy = NoisePolicy()
    assert policy.min_interval == timedelta(minutes=5) and policy.resolve_recovered
    assert policy.rate_limit == DEFAULT_RATE_LIMIT and HEALTH_RECOVERED in policy.signal_only
    assert not policy.routes


def test_rate_limit_and_digest_settings_are_parsed_with_messages_that_name_the_fix() -> None:
    assert parse_rate_limit({"count": 5, "per": "1h"}, "r") == RateLimit(5, timedelta(hours=1))
    assert parse_digest({"every": "1h"}, "d") == EveryDigest(timedelta(hours=1))
    assert parse_digest({"at": "09:00", "timeZone": "Europe/Paris"}, "d") == DailyDigest(
        time(9, 0), ZoneInfo("Europe/Paris")
    )
    for raw, message in [
        ({"count": 0}, "count"),
        ({"count": 5, "per": "10s"}, "per"),
        ({"limit": 5}, "count: <notifications>"),
    ]:
        with pytest.raises(SpecError, match=message):
            parse_rate_limit(raw, "spec.rateLimit")
    for raw, message in [
        ({"every": "1m"}, "5m to 7d"),
        ({"at": "9am"}, "HH:MM"),
        ({"at": "09:00", "timeZone": "Mars/Olympus"}, "IANA"),
        ({}, "every"),
    ]:
        with pytest.raises(SpecError, match=message):
            parse_digest(raw, "spec.routes[0].digest")


# ---------------------------------------------------------------------------------------------------------
# Properties over random sequences of events and times.

APPS = ("argocd/shop", "argocd/cart", "team/web")
RECIPIENTS = {"argocd/shop": (TEAM,), "argocd/cart": (TEAM, "user:default/ann"), "team/web": (BROADCAST,)}
EVENTS = (DEGRADED, FAILED, SUCCEEDED, DEPLOYED, HEALTH_RECOVERED)
ROUTES = (None, "digest", "oncall")

policies = st.builds(
    NoisePolicy,
    min_interval=st.sampled_from([timedelta(0), timedelta(seconds=60), timedelta(minutes=5)]),
    resolve_recovered=st.booleans(),
    signal_only=st.sampled_from([frozenset({HEALTH_RECOVERED}), frozenset()]),
    rate_limit=st.one_of(st.none(), st.builds(RateLimit, st.integers(1, 3), st.just(timedelta(minutes=10)))),
    routes=st.fixed_dictionaries(
        {
            "digest": st.builds(
                RoutePolicy,
                digest=st.sampled_from(
                    [EveryDigest(timedelta(hours=1)), DailyDigest(time(9, 0), ZoneInfo("Europe/Paris"))]
                ),
            ),
            "oncall": st.builds(RoutePolicy, rate_limit=st.just(RateLimit(2, timedelta(minutes=3)))),
        }
    ),
)
steps = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 20, 59, 60, 150, 299, 300, 301, 700, 3600]),
        st.sampled_from(APPS),
        st.sampled_from(EVENTS),
    ),
    max_size=40,
)
route_maps = st.dictionaries(st.tuples(st.sampled_from(APPS), st.sampled_from(EVENTS)), st.sampled_from(ROUTES))


def simulate(policy: NoisePolicy, plan: list[tuple[int, str, str]], routes: dict[tuple[str, str], str | None]):
    run = Run(NoiseState(policy=policy))
    offered: list[tuple[datetime, AppEvent]] = []
    now = T0
    for number, (gap, app, event) in enumerate(plan):
        now += timedelta(seconds=gap)
        item = app_event(number, event, app=app, recipients=RECIPIENTS[app], route=routes.get((app, event)))
        offered.append((now, item))
        run.offer(item, now)
    run.drain()
    return run, offered


@settings(max_examples=200, deadline=None)
@given(policies, steps, route_maps)
def test_every_event_ends_in_exactly_one_send_per_recipient_or_is_absorbed(policy, plan, routes) -> None:
    run, offered = simulate(policy, plan, routes)
    assert next_wakeup(run.state) is None
    outcomes: Counter[tuple[str, str]] = Counter(run.absorbed)
    for _, send in run.sent:
        assert send.recipients, "a send always has someone to reach"
        for event_id in send.accounts:
            for recipient in send.recipients:
                outcomes[(event_id, recipient)] += 1
    expected = {(event.id, recipient) for _, event in offered for recipient in event.recipients}
    assert set(outcomes) == expected, "every (event, recipient) is accounted, and only those"
    assert all(count == 1 for count in outcomes.values()), "never twice"
    for _, event in offered:
        if event.event not in policy.signal_only:
            assert all((event.id, r) not in run.absorbed for r in event.recipients), "news is never absorbed"


@settings(max_examples=200, deadline=None)
@given(policies, steps, route_maps)
def test_windows_are_honoured(policy, plan, routes) -> None:
    run, _ = simulate(policy, plan, routes)
    individual: dict[tuple[str, str], list[tuple[datetime, Send]]] = defaultdict(list)
    for when, send in run.sent:
        for recipient in send.recipients:
            individual[(send.scope, recipient)].append((when, send))
    for (scope, _recipient), sends in individual.items():
        flaps = [when for when, send in sends if send.kind in (SendKind.NOTIFY, SendKind.UPDATE)]
        assert all(later - earlier >= policy.min_interval for earlier, later in pairwise(flaps)), scope
        shown = False
        for _, send in sends:  # a resolution updates something the recipient was sent, once per problem
            if send.kind == SendKind.RESOLUTION:
                assert shown, "a resolution follows a notification of the same scope"
                shown = False
            elif send.kind in (SendKind.NOTIFY, SendKind.UPDATE):
                shown = True


def limit_key(policy: NoisePolicy, send: Send) -> tuple[str, RateLimit | None]:
    route = send.scope.split("/")[2] if send.kind == SendKind.SUMMARY else None
    if route not in (None, "bridge"):
        return str(route), policy.routes[str(route)].rate_limit
    return "", policy.rate_limit


@settings(max_examples=200, deadline=None)
@given(policies, steps, route_maps)
def test_no_recipient_gets_more_than_its_rate_limit_per_window_beyond_one_summary(policy, plan, routes) -> None:
    run, offered = simulate(policy, plan, routes)
    route_of = {event.scope: event.route for _, event in offered}
    counted: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    summaries: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    received: set[tuple[str, str]] = set()
    for when, send in run.sent:
        for recipient in send.recipients:
            if send.kind == SendKind.SUMMARY:
                summaries[(limit_key(policy, send)[0], recipient)].append(when)
                continue
            route = route_of.get(send.scope)
            own = policy.routes.get(route) if route else None
            key, limit = (route, own.rate_limit) if own and own.rate_limit and route else ("", policy.rate_limit)
            if send.counted:
                counted[(key, recipient)].append(when)
            elif send.kind == SendKind.NOTIFY:
                assert limit is None, "a new notification is counted whenever a limit applies"
            elif send.kind == SendKind.UPDATE and limit is not None:
                assert (send.scope, recipient) in received, "only updates of what the recipient has are free"
            if send.kind in (SendKind.NOTIFY, SendKind.UPDATE):
                received.add((send.scope, recipient))
    for (key, recipient), times in counted.items():
        limit = policy.routes[key].rate_limit if key else policy.rate_limit
        assert limit is not None
        window_start: datetime | None = None
        in_window = 0
        ends: list[datetime] = []
        for when in times:
            if window_start is None or when >= window_start + limit.per:
                window_start, in_window = when, 0
                ends.append(when + limit.per)
            in_window += 1
            assert in_window <= limit.count, (key, recipient)
        assert set(summaries.get((key, recipient), [])) <= set(ends), "summaries come when a window ends"
        assert len(summaries.get((key, recipient), [])) == len(set(summaries.get((key, recipient), [])))


@settings(max_examples=200, deadline=None)
@given(policies, steps, route_maps)
def test_digests_list_every_event_once_at_their_time_and_bodies_fit(policy, plan, routes) -> None:
    run, offered = simulate(policy, plan, routes)
    digested = {event.id for _, event in offered if event.route == "digest"}
    listed: Counter[str] = Counter()
    for when, send in run.sent:
        body = send.body()
        assert len(json.dumps(body).encode()) < limits.BODY_LIMIT_BYTES
        assert body["payload"] == limits.fit_notification(body)["payload"]
        if send.kind != SendKind.DIGEST:
            continue
        digest = policy.routes["digest"].digest
        assert digest is not None
        assert digest.next_at(when - timedelta(seconds=1)) == when, "a digest goes at its schedule's time"
        keys = [(line.latest.app, line.latest.event) for line in send.lines]
        assert len(keys) == len(set(keys)), "one line per (app, event)"
        for line in send.lines:
            listed.update(line.ids)
            assert line.latest.app.split("/")[1] in send.description
        assert set(send.accounts) == {i for line in send.lines for i in line.ids}
    # HealthRecovered may be told inside the line of the problem it ends instead of a line of its own.
    news = {i for i in digested if any(e.id == i and e.event != HEALTH_RECOVERED for _, e in offered)}
    assert news <= set(listed)
    assert all(count <= len(RECIPIENTS["argocd/cart"]) for count in listed.values())


@settings(max_examples=200, deadline=None)
@given(policies, steps, route_maps)
def test_noise_control_never_sends_more_than_it_was_given(policy, plan, routes) -> None:
    run, offered = simulate(policy, plan, routes)
    given_pairs = sum(len(event.recipients) for _, event in offered if event.event not in policy.signal_only)
    posts = sum(len(send.recipients) for _, send in run.sent if send.kind != SendKind.RESOLUTION)
    assert posts <= given_pairs


@pytest.mark.parametrize("order", [(SUCCEEDED, DEPLOYED), (DEPLOYED, SUCCEEDED)])
def test_a_deploy_is_one_notification_whichever_half_the_engine_posts_first(order: tuple[str, str]) -> None:
    """The manual procedure gives two notifications per deploy (sync succeeded, deployed); here one."""
    run = Run(NoiseState())
    run.offer(app_event(1, order[0]), T0)
    run.offer(app_event(2, order[1]), T0 + timedelta(seconds=2))
    run.drain()
    assert run.kinds() == [SendKind.NOTIFY, SendKind.COMPLETION]
    (_, first), (_, completion) = run.sent
    assert completion.scope == first.scope, "the second half updates the first's notification in place"
    assert completion.title.endswith(DEPLOYED) and completion.accounts == ("2",)


def test_a_deploy_after_the_window_and_without_flap_suppression_is_its_own_notification() -> None:
    late = Run(NoiseState())
    late.offer(app_event(1, SUCCEEDED), T0)
    late.offer(app_event(2, DEPLOYED), T0 + timedelta(minutes=6))
    assert late.kinds() == [SendKind.NOTIFY, SendKind.NOTIFY]
    raw = Run(NoiseState(policy=NoisePolicy(min_interval=timedelta(0))))
    raw.offer(app_event(1, SUCCEEDED), T0)
    raw.offer(app_event(2, DEPLOYED), T0 + timedelta(seconds=2))
    assert raw.kinds() == [SendKind.NOTIFY, SendKind.NOTIFY]
