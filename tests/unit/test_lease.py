"""Who may hold the operator's Lease, decided without a clock or a cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from argobridge.core.lease import MICRO_TIME, LeaseTiming, held_spec, may_hold, may_write

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
    assert may_hold(None, "a", 0)
    assert may_hold(spec(None, 1), "a", 0)
    assert may_hold(spec("a", 1), "a", 0)


def test_a_live_lease_of_another_replica_may_not_be_taken_until_unchanged_for_its_duration() -> None:
    assert not may_hold(spec("b", 0), "a", 14.9)
    assert may_hold(spec("b", 0), "a", 15.1)


def test_a_standby_whose_clock_runs_ahead_still_waits_the_whole_duration() -> None:
    # renewTime an hour in the past by the standby's clock (skewed nodes): the record changed just now.
    assert not may_hold(spec("b", 3600), "a", 1.0)


def test_the_leader_stops_writing_a_third_of_the_duration_before_a_standby_may_take_over() -> None:
    timing = LeaseTiming.for_duration(15)
    assert (timing.renew_deadline, timing.retry_period, timing.call_timeout) == (10.0, 2.0, 1.0)
    # A renewal attempt (read + replace) ends within its period; five attempts fit before the deadline.
    assert 2 * timing.call_timeout <= timing.retry_period and timing.renew_deadline / timing.retry_period == 5
    assert may_write(100.0, 109.9, timing.renew_deadline)
    assert not may_write(100.0, 110.0, timing.renew_deadline)
    assert not may_write(None, 100.0, timing.renew_deadline)
    assert timing.duration - timing.renew_deadline == 5.0


def test_renewing_keeps_the_acquire_time_and_taking_over_counts_a_transition() -> None:
    renewed = held_spec(spec("a", 5, transitions=2), "a", 15, NOW)
    assert renewed["acquireTime"] == "2026-11-23T11:00:00.000000Z" and renewed["leaseTransitions"] == 2
    taken = held_spec(spec("b", 30, transitions=2), "a", 15, NOW)
    assert taken["holderIdentity"] == "a" and taken["leaseTransitions"] == 3
    assert taken["acquireTime"] == taken["renewTime"] == NOW.strftime(MICRO_TIME)
