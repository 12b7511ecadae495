"""The bridge's delivery status from the relay replicas' documents: sums, maxima, rounding, the
Delivering condition, the DeadLettered Event, and no patch when nothing changed."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from argobridge.core.delivery import Answer, Outcome, held_after, rfc3339, status_entry
from argobridge.core.relaystatus import (
    OWN_DELIVERY_KEYS,
    ReplicaAnswer,
    delivering_condition,
    direct_condition,
    merge_replicas,
    plan_relay_status,
    whole_seconds,
)

KEY = "argocd/backstage"
NOW = "2026-12-02T17:00:00Z"

times = st.integers(1_700_000_000, 1_800_000_000).map(lambda t: rfc3339(float(t)))
dead_letters = st.lists(
    st.fixed_dictionaries({"scope": st.sampled_from(["app-a", "app-b", ""]), "time": times, "reason": st.just("x")}),
    max_size=10,
)
entries = st.fixed_dictionaries(
    {
        "delivered": st.integers(0, 10_000),
        "noRecipients": st.integers(0, 100),
        "rejected": st.integers(0, 100),
        "deadLettered": st.integers(0, 100),
        "pending": st.integers(0, 1_000),
        "oldestPendingSeconds": st.one_of(st.none(), st.floats(0, 100_000, allow_nan=False)),
        "lastDeliveryTime": st.one_of(st.none(), times),
        "lastError": st.one_of(st.none(), st.sampled_from(["Backstage answered 503", "ConnectTimeout"])),
        "held": st.one_of(st.none(), st.just("Backstage answered 401: fix the token")),
        "recentDeadLetters": dead_letters,
    }
)
documents = st.one_of(
    st.none(),
    st.builds(
        lambda replica, entry: {"replica": replica, "bridges": {} if entry is None else {KEY: entry}},
        st.sampled_from(["relay-0", "relay-1"]),
        st.one_of(st.none(), entries),
    ),
)
replica_sets = st.lists(documents, min_size=1, max_size=4).map(
    lambda docs: [ReplicaAnswer(f"http://relay-{i}:8091", doc) for i, doc in enumerate(docs)]
)


def apply_merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396, as the apiserver applies a merge patch to status."""
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = apply_merge_patch(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "delivered": 0,
        "noRecipients": 0,
        "rejected": 0,
        "deadLettered": 0,
        "pending": 0,
        "oldestPendingSeconds": None,
        "lastDeliveryTime": None,
        "lastError": None,
        "held": None,
        "recentDeadLetters": [],
    }
    return {**base, **fields}


def replicas(*bridge_entries: dict[str, Any] | None) -> list[ReplicaAnswer]:
    return [
        ReplicaAnswer(f"http://r{i}", None if e is None else {"replica": f"r{i}", "bridges": {KEY: e}})
        for i, e in enumerate(bridge_entries)
    ]


@given(replica_sets)
def test_counters_are_sums_and_oldest_and_newest_are_maxima(answers: list[ReplicaAnswer]) -> None:
    merged = merge_replicas(answers, KEY)
    seen = [a.document["bridges"][KEY] for a in answers if a.document and KEY in a.document["bridges"]]
    assert merged.counters["delivered"] == sum(e["delivered"] for e in seen)
    assert merged.counters["deadLettered"] == sum(e["deadLettered"] for e in seen)
    assert merged.pending == sum(e["pending"] for e in seen)
    oldest = [e["oldestPendingSeconds"] for e in seen if e["oldestPendingSeconds"] is not None]
    assert merged.oldest_pending_seconds == (max(oldest) if oldest else None)
    last = [e["lastDeliveryTime"] for e in seen if e["lastDeliveryTime"]]
    assert merged.last_delivery_time == (max(last) if last else None)
    assert [d.time for d in merged.dead_letters] == sorted((d.time for d in merged.dead_letters), reverse=True)


@given(replica_sets)
def test_the_same_documents_against_the_status_they_produced_give_no_patch(answers: list[ReplicaAnswer]) -> None:
    first = plan_relay_status({}, answers, KEY, 3, NOW)
    status = apply_merge_patch({}, first.patch or {})
    again = plan_relay_status(status, answers, KEY, 3, "2026-12-02T17:00:15Z")
    assert again.patch is None
    assert again.notice is None


@given(replica_sets)
def test_status_never_holds_nulls_or_foreign_keys(answers: list[ReplicaAnswer]) -> None:
    plan = plan_relay_status({"delivery": {"mode": "Relay", "reason": "Asked"}}, answers, KEY, 1, NOW)
    delivery = (plan.patch or {}).get("delivery", {})
    assert set(delivery) <= OWN_DELIVERY_KEYS
    status = apply_merge_patch({"delivery": {"mode": "Relay", "reason": "Asked"}}, plan.patch or {})
    assert status["delivery"]["mode"] == "Relay" and status["delivery"]["reason"] == "Asked"
    assert None not in status["delivery"].values()


@given(st.floats(0, 1e7, allow_nan=False))
def test_oldest_pending_is_rounded_half_up_to_whole_seconds(seconds: float) -> None:
    rounded = whole_seconds(seconds)
    assert isinstance(rounded, int)
    assert abs(rounded - seconds) <= 0.5
    assert whole_seconds(2.5) == 3 and whole_seconds(2.49) == 2 and whole_seconds(None) is None


def test_two_replicas_sum_into_the_bridge_status() -> None:
    plan = plan_relay_status(
        {},
        replicas(
            entry(delivered=3, pending=2, oldestPendingSeconds=4.6, lastDeliveryTime="2026-12-02T16:00:00Z"),
            entry(delivered=4, rejected=1, lastDeliveryTime="2026-12-02T16:30:00Z", lastError="Backstage answered 503"),
        ),
        KEY,
        1,
        NOW,
    )
    assert plan.patch is not None
    assert plan.patch["delivery"] == {
        "delivered": 7,
        "noRecipients": 0,
        "rejected": 1,
        "deadLettered": 0,
        "unresolved": 0,
        "pending": 2,
        "oldestPendingSeconds": 5,
        "lastDeliveryTime": "2026-12-02T16:30:00Z",
        "lastError": "Backstage answered 503",
    }
    (condition,) = [c for c in plan.patch["conditions"] if c["type"] == "Delivering"]
    assert (condition["status"], condition["reason"]) == ("True", "Delivered")
    assert plan.pending == 2


def test_held_queue_says_fix_the_token_and_backlog_says_how_old() -> None:
    held = delivering_condition(merge_replicas(replicas(entry(pending=3, held="Backstage answered 401")), KEY))
    assert (held.status, held.reason) == (False, "Held")
    assert "fix" in held.message and "token" in held.message and "3 pending" in held.message
    late = delivering_condition(merge_replicas(replicas(entry(pending=1, oldestPendingSeconds=400.0)), KEY))
    assert (late.status, late.reason) == (False, "Backlogged")
    fresh = delivering_condition(merge_replicas(replicas(entry(pending=1, oldestPendingSeconds=20.0)), KEY))
    assert (fresh.status, fresh.reason) == (True, "Delivered")
    idle = delivering_condition(merge_replicas(replicas(entry()), KEY))
    assert (idle.status, idle.reason) == (True, "Idle")
    assert direct_condition().reason == "Direct" and "not counted" in direct_condition().message


def test_no_replica_answering_keeps_the_figures_and_says_relay_unreachable() -> None:
    previous = {"delivery": {"mode": "Relay", "delivered": 9, "pending": 0}}
    plan = plan_relay_status(previous, replicas(None, None), KEY, 1, NOW)
    assert plan.patch is not None and "delivery" not in plan.patch
    (condition,) = [c for c in plan.patch["conditions"] if c["type"] == "Delivering"]
    assert (condition["status"], condition["reason"]) == ("False", "RelayUnreachable")
    assert plan.pending is None and plan.notice is None


def test_a_replica_missing_never_lowers_the_counters_nor_posts_dead_letters() -> None:
    previous = {"delivery": {"delivered": 10, "deadLettered": 2}}
    partial = plan_relay_status(previous, replicas(entry(delivered=4, deadLettered=1), None), KEY, 1, NOW)
    assert "delivered" not in (partial.patch or {}).get("delivery", {})
    assert partial.notice is None
    back = plan_relay_status(
        previous, replicas(entry(delivered=4, deadLettered=1), entry(delivered=6, deadLettered=1)), KEY, 1, NOW
    )
    assert back.notice is None


def test_dead_letters_growing_post_one_warning_naming_count_and_scopes() -> None:
    letters = [
        {"scope": "shop", "time": "2026-12-02T16:59:00Z", "reason": "ConnectError"},
        {"scope": "cart", "time": "2026-12-02T16:58:00Z", "reason": "ConnectError"},
        {"scope": "old", "time": "2026-12-01T00:00:00Z", "reason": "ConnectError"},
    ]
    answers = replicas(entry(deadLettered=3, recentDeadLetters=letters))
    plan = plan_relay_status({"delivery": {"deadLettered": 1}}, answers, KEY, 1, NOW)
    assert plan.notice is not None
    assert (plan.notice.type, plan.notice.reason) == ("Warning", "DeadLettered")
    assert "2 notifications" in plan.notice.message and "3 in all" in plan.notice.message
    assert "shop, cart" in plan.notice.message and "old" not in plan.notice.message
    status = apply_merge_patch({"delivery": {"deadLettered": 1}}, plan.patch or {})
    assert plan_relay_status(status, answers, KEY, 1, NOW).notice is None


def test_relay_status_entry_reports_last_acceptance_and_newest_dead_letters() -> None:
    doc = status_entry(
        counters={"delivered": 2, "deadLettered": 12},
        pending=1,
        oldest_received_at=100.0,
        last_times={"delivered": 50.0, "noRecipients": 60.0, "deadLettered": 90.0},
        last_error=None,
        held=None,
        dead_letters=[(f"s{i}", 100.0 - i, "r") for i in range(12)],
        now=130.0,
    )
    assert doc["lastDeliveryTime"] == rfc3339(60.0)
    assert doc["oldestPendingSeconds"] == 30.0
    assert [d["scope"] for d in doc["recentDeadLetters"]] == [f"s{i}" for i in range(10)]


def test_hold_is_set_by_401_kept_through_timeouts_and_cleared_by_an_answer() -> None:
    held = held_after(None, Outcome.HOLD, Answer(401))
    assert held is not None and "401" in held and "token" in held
    assert held_after(held, Outcome.RETRY, Answer(None, "", "ConnectTimeout")) == held
    assert held_after(held, Outcome.DELIVERED, Answer(201)) is None
