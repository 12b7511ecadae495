"""Who may hold the operator's Lease, and until when its holder may write: leader election without a
clock or a cluster.

Same rules as client-go's leader election: a Lease is free when nobody holds it, when the caller already
holds it, or when its record has not changed for longer than its duration *as the caller observed it on
its own clock*. Comparing the holder's `renewTime` with the caller's wall clock would let clock skew
between nodes hand the Lease to a second replica while the first still writes; counting on the caller's
own clock only needs both clocks to run at the same rate.

The holder stops writing at `renew_deadline` after the start of its last successful renewal, which is
`duration / 3` before any standby can take over: that margin absorbs a write that passed the check and
is still connecting, and clock-rate drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class LeaseTiming:
    """How long a Lease lasts, when its holder must stop writing, and how often and how patiently it renews.

    client-go's defaults (15 s duration, 10 s renew deadline, 2 s retry period) scaled to any duration.
    A renewal is a read and a replace, each bounded by `call_timeout`, so one renewal attempt ends
    within `retry_period` and several attempts fit before the deadline.
    """

    duration: float
    renew_deadline: float
    retry_period: float
    call_timeout: float

    @classmethod
    def for_duration(cls, duration: float) -> LeaseTiming:
        retry_period = duration * 2 / 15
        return cls(
            duration=float(duration),
            renew_deadline=duration * 2 / 3,
            retry_period=retry_period,
            call_timeout=retry_period / 2,
        )


def parse_micro_time(value: Any) -> datetime | None:
    """A Lease's MicroTime (`2026-01-01T00:00:00.000000Z`), or None when absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def lease_record(spec: Mapping[str, Any] | None) -> tuple[str, str, int]:
    """What changes when a holder renews (holder, renewTime, duration): a standby measures how long
    this stayed the same."""
    spec = spec or {}
    return (
        str(spec.get("holderIdentity") or ""),
        str(spec.get("renewTime") or ""),
        int(spec.get("leaseDurationSeconds") or 0),
    )


def may_hold(spec: Mapping[str, Any] | None, identity: str, unchanged_for: float) -> bool:
    """Whether `identity` may take or keep the Lease whose spec this is, when the caller has seen
    its record unchanged for `unchanged_for` seconds of its own clock."""
    holder, _, duration = lease_record(spec)
    if not holder or holder == identity:
        return True
    return unchanged_for > duration


def may_write(confirmed_at: float | None, now: float, renew_deadline: float) -> bool:
    """Whether a holder whose last successful renewal started at `confirmed_at` may still write at `now`
    (both on one clock that keeps counting while the process is stopped)."""
    return confirmed_at is not None and 0 <= now - confirmed_at < renew_deadline


def held_spec(previous: Mapping[str, Any] | None, identity: str, duration: int, now: datetime) -> dict[str, Any]:
    """The Lease spec that records `identity` as holder at `now`; as in client-go, taking over a Lease
    that someone held or released counts a transition, creating it does not."""
    previous = previous or {}
    stamp = now.strftime(MICRO_TIME)
    same_holder = previous.get("holderIdentity") == identity
    transitions = int(previous.get("leaseTransitions") or 0)
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": previous.get("acquireTime") if same_holder and previous.get("acquireTime") else stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions if same_holder or not previous else transitions + 1,
    }
