"""Who may hold the operator's Lease, decided without a clock or a cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from argobridge.core.lease import MICRO_TIME, held_spec, may_hold

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def spec(holder: str | None, renewed_ago: float, duration: int = 15, transitions: int = 0) -> dict[str, object]:
    return {
        "holderIdentity": holder,
        "renewTime": (NOW - timedelta(seconds=renewed_ago)).strftime(MICRO_TIME),
        "leaseDurationSeconds": duration,
        "leaseTransitions": transitions,
        "acquireTime": "2026-11-23T11:00:00.000000Z",
    }


def test_a_free_or_own_lease_may_be_taken() -> None:
    assert may_hold(None, "a", NOW)
    assert may_hold(spec(None, 1), "a", NOW)
    assert may_hold(spec("a", 1), "a", NOW)


def test_a_live_lease_of_another_replica_may_not_be_taken_until_it_expires() -> None:
    assert not may_hold(spec("b", 14), "a", NOW)
    assert may_hold(spec("b", 16), "a", NOW)


def test_renewing_keeps_the_acquire_time_and_taking_over_counts_a_transition() -> None:
    renewed = held_spec(spec("a", 5, transitions=2), "a", 15, NOW)
    assert renewed["acquireTime"] == "2026-11-23T11:00:00.000000Z" and renewed["leaseTransitions"] == 2
    taken = held_spec(spec("b", 30, transitions=2), "a", 15, NOW)
    assert taken["holderIdentity"] == "a" and taken["leaseTransitions"] == 3
    assert taken["acquireTime"] == taken["renewTime"] == NOW.strftime(MICRO_TIME)
