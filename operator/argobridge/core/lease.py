"""Who may hold the operator's Lease: the leader-election decision, without a clock or a cluster.

Same rules as client-go's leader election: a Lease is free when nobody holds it, when its holder
stopped renewing for longer than its duration, or when the caller already holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def parse_micro_time(value: Any) -> datetime | None:
    """A Lease's MicroTime (`2026-01-01T00:00:00.000000Z`), or None when absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def may_hold(spec: Mapping[str, Any] | None, identity: str, now: datetime) -> bool:
    """Whether `identity` may take or keep the Lease whose spec this is, at `now` (timezone-aware)."""
    spec = spec or {}
    holder = spec.get("holderIdentity")
    if not holder or holder == identity:
        return True
    renewed = parse_micro_time(spec.get("renewTime"))
    duration = int(spec.get("leaseDurationSeconds") or 0)
    return renewed is None or renewed + timedelta(seconds=duration) < now


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
