"""Noise control's settings and state as JSON documents: the relay's config entry and its stored state.

Why a codec of its own: the relay keeps its `NoiseState` in the outbox's database, written in the same
transaction that consumes the notifications it was built from, so a relay killed at any moment neither
loses what it held nor sends it twice. The policy travels from the operator in the bridge's relay entry
(`noise`); an entry without it (an operator from before noise control) means no noise control at all,
so such a relay delivers exactly as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta, tzinfo
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from argobridge.core.noisecontrol import (
    AppEvent,
    DailyDigest,
    Digest,
    DigestBatch,
    EveryDigest,
    NoisePolicy,
    NoiseState,
    RateLimit,
    RateWindow,
    RoutePolicy,
    Tally,
    Thread,
)
from argobridge.core.noisetext import HEALTH_RECOVERED
from argobridge.core.spec import BridgeSpec, EventName

OFF = NoisePolicy(min_interval=timedelta(0), resolve_recovered=False, signal_only=frozenset(), rate_limit=None)
"""No noise control: every notification is sent as Argo CD posted it."""


def _limit_document(limit: RateLimit | None) -> dict[str, Any] | None:
    return None if limit is None else {"count": limit.count, "perSeconds": limit.per.total_seconds()}


def _digest_document(digest: Digest | None) -> dict[str, Any] | None:
    if digest is None:
        return None
    if isinstance(digest, EveryDigest):
        return {"everySeconds": digest.every.total_seconds()}
    return {"at": digest.at.strftime("%H:%M"), "timeZone": digest.zone.key}


def policy_document(spec: BridgeSpec) -> dict[str, Any]:
    """The `noise` object of a bridge's relay entry, from its spec (deterministic: same spec, same text)."""
    delivery = spec.delivery
    enabled = {event.event for event in spec.events}
    routes = {
        route.name: {"digest": _digest_document(route.digest), "rateLimit": _limit_document(route.rate_limit)}
        for route in spec.routes
        if route.digest is not None or route.rate_limit is not None
    }
    limit = delivery.rate_limit
    rate_limit = None if limit is None else RateLimit(limit[0], timedelta(seconds=limit[1]))
    return {
        "minIntervalSeconds": float(delivery.min_interval_seconds),
        "resolveRecovered": delivery.resolve_recovered,
        # HealthRecovered listed in spec.events is a notification of its own; otherwise only a signal.
        "signalOnly": [] if EventName.HEALTH_RECOVERED in enabled else [HEALTH_RECOVERED],
        "rateLimit": _limit_document(rate_limit),
        "routes": dict(sorted(routes.items())),
    }


def _limit(raw: Any) -> RateLimit | None:
    if not isinstance(raw, Mapping):
        return None
    return RateLimit(int(raw["count"]), timedelta(seconds=float(raw["perSeconds"])))


def _digest(raw: Any) -> Digest | None:
    if not isinstance(raw, Mapping):
        return None
    if "everySeconds" in raw:
        return EveryDigest(timedelta(seconds=float(raw["everySeconds"])))
    hours, minutes = str(raw["at"]).split(":")
    return DailyDigest(time(int(hours), int(minutes)), ZoneInfo(str(raw.get("timeZone") or "UTC")))


def policy_from_document(raw: Any) -> NoisePolicy:
    """The relay's reading of an entry's `noise`; absent or unreadable: OFF (deliver as posted)."""
    if not isinstance(raw, Mapping):
        return OFF
    try:
        routes = {
            str(name): RoutePolicy(_digest(value.get("digest")), _limit(value.get("rateLimit")))
            for name, value in (raw.get("routes") or {}).items()
            if isinstance(value, Mapping)
        }
        return NoisePolicy(
            min_interval=timedelta(seconds=float(raw.get("minIntervalSeconds", 0))),
            resolve_recovered=bool(raw.get("resolveRecovered", False)),
            signal_only=frozenset(str(item) for item in raw.get("signalOnly") or ()),
            rate_limit=_limit(raw.get("rateLimit")),
            routes=MappingProxyType(routes),
        )
    except (KeyError, TypeError, ValueError):
        return OFF


def is_off(policy: NoisePolicy) -> bool:
    """Whether the policy changes nothing (then the relay skips noise control altogether)."""
    return policy == OFF


# State: datetimes as Unix seconds, zones by name, every record as a flat object.


def _ts(when: datetime) -> float:
    return when.timestamp()


def _dt(value: Any) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def _event_doc(event: AppEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "app": event.app,
        "event": event.event,
        "recipients": list(event.recipients),
        "title": event.title,
        "scope": event.scope,
        "description": event.description,
        "severity": event.severity,
        "topic": event.topic,
        "link": event.link,
        "icon": event.icon,
        "route": event.route,
    }


def _event(raw: Mapping[str, Any]) -> AppEvent:
    return AppEvent(**{**raw, "recipients": tuple(raw["recipients"])})


def _tally_doc(tally: Tally) -> dict[str, Any]:
    return {
        "latest": _event_doc(tally.latest),
        "ids": list(tally.ids),
        "occurrences": tally.occurrences,
        "firstAt": _ts(tally.first_at),
        "lastAt": _ts(tally.last_at),
        "recoveredAt": None if tally.recovered_at is None else _ts(tally.recovered_at),
    }


def _tally(raw: Mapping[str, Any]) -> Tally:
    return Tally(
        _event(raw["latest"]),
        tuple(raw["ids"]),
        int(raw["occurrences"]),
        _dt(raw["firstAt"]),
        _dt(raw["lastAt"]),
        None if raw.get("recoveredAt") is None else _dt(raw["recoveredAt"]),
    )


def _zone_name(zone: tzinfo) -> str:
    return zone.key if isinstance(zone, ZoneInfo) else "UTC"


def state_document(state: NoiseState) -> dict[str, Any]:
    """Everything `state` holds but its policy (that comes from the config), as JSON-ready data."""
    threads = [
        {
            "app": app,
            "event": event,
            "recipient": recipient,
            "last": _event_doc(thread.last),
            "since": _ts(thread.since),
            "occurrences": thread.occurrences,
            "windowUntil": _ts(thread.window_until),
            "delivered": thread.delivered,
            "open": thread.open,
            "pending": None if thread.pending is None else _tally_doc(thread.pending),
        }
        for (app, event), by_recipient in sorted(state.threads.items())
        for recipient, thread in sorted(by_recipient.items())
    ]
    windows = [
        {
            "key": key,
            "recipient": recipient,
            "limit": _limit_document(window.limit),
            "start": _ts(window.start),
            "sent": window.sent,
            "held": [_tally_doc(line) for line in window.held],
        }
        for (key, recipient), window in sorted(state.windows.items())
    ]
    digests = [
        {
            "route": route,
            "recipient": recipient,
            "due": _ts(batch.due),
            "zone": _zone_name(batch.zone),
            "lines": [_tally_doc(line) for line in batch.lines],
        }
        for (route, recipient), batch in sorted(state.digests.items())
    ]
    seen = {event_id: _ts(forget) for event_id, forget in sorted(state.seen.items())}
    return {"threads": threads, "windows": windows, "digests": digests, "seen": seen}


def state_from_document(raw: Mapping[str, Any], policy: NoisePolicy) -> NoiseState:
    """The stored state under the current policy (a changed policy applies to what comes next)."""
    threads: dict[tuple[str, str], dict[str, Thread]] = {}
    for item in raw.get("threads", ()):
        threads.setdefault((item["app"], item["event"]), {})[item["recipient"]] = Thread(
            last=_event(item["last"]),
            since=_dt(item["since"]),
            occurrences=int(item["occurrences"]),
            window_until=_dt(item["windowUntil"]),
            delivered=bool(item["delivered"]),
            open=bool(item["open"]),
            pending=None if item.get("pending") is None else _tally(item["pending"]),
        )
    windows = {
        (item["key"], item["recipient"]): RateWindow(
            _limit(item["limit"]) or RateLimit(1, timedelta(minutes=1)),
            _dt(item["start"]),
            int(item["sent"]),
            tuple(_tally(line) for line in item["held"]),
        )
        for item in raw.get("windows", ())
    }
    digests = {
        (item["route"], item["recipient"]): DigestBatch(
            _dt(item["due"]),
            UTC if item["zone"] == "UTC" else ZoneInfo(item["zone"]),
            tuple(_tally(line) for line in item["lines"]),
        )
        for item in raw.get("digests", ())
    }
    return NoiseState(
        policy=policy,
        threads=MappingProxyType({key: MappingProxyType(value) for key, value in threads.items()}),
        windows=MappingProxyType(windows),
        digests=MappingProxyType(digests),
        seen=MappingProxyType({str(k): _dt(v) for k, v in (raw.get("seen") or {}).items()}),
    )
