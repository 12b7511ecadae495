"""What the relay replicas report, turned into the bridge's `status.delivery`, its Delivering condition
and the DeadLettered Event (RELAY_CONTRACT, "Bridge status written by the operator").

Pure: the replica documents, the previous status and `now` come in; a patch (or None) and a notice go
out. The same documents against the status they produced give no patch, so an idle relay makes the
operator write nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from argobridge.core.conditions import Condition, merge_conditions
from argobridge.core.status import Notice

DELIVERING = "Delivering"
# A notification waiting longer than this means Backstage is down or slow, not a passing blip.
BACKLOG_SECONDS = 300.0
# Cumulative per replica (since its volume was created): summed over replicas.
COUNTERS = ("delivered", "noRecipients", "rejected", "deadLettered", "unresolved")
# The keys of status.delivery this module writes; `mode` and `reason` belong to the reconcile.
OWN_DELIVERY_KEYS = frozenset(
    {*COUNTERS, "pending", "waiting", "oldestPendingSeconds", "lastDeliveryTime", "lastError"}
)
ERROR_TEXT_LIMIT = 300
SCOPES_NAMED = 10


@dataclass(frozen=True)
class ReplicaAnswer:
    """One replica's /v1/status document, or None when it did not answer (in time, or with JSON)."""

    url: str
    document: Mapping[str, Any] | None


@dataclass(frozen=True)
class DeadLetter:
    """One entry of a replica's recentDeadLetters: what the Event names (never a body or token)."""

    scope: str
    time: str
    reason: str


@dataclass(frozen=True)
class MergedDelivery:
    """One bridge's delivery figures over the replicas that answered."""

    replicas: int
    answered: int
    known: int  # answering replicas whose config has this bridge
    counters: Mapping[str, int]
    pending: int
    oldest_pending_seconds: float | None
    last_delivery_time: str | None
    last_error: str | None
    held: str | None
    dead_letters: tuple[DeadLetter, ...]  # newest first, over all replicas
    waiting: int = 0  # events noise control holds for a later notification (flap/rate windows, digests)

    @property
    def complete(self) -> bool:
        """Every replica answered: the sums are the whole truth."""
        return self.replicas > 0 and self.answered == self.replicas


@dataclass(frozen=True)
class RelayStatusPlan:
    """What the operator does with one look at the relay: a status merge patch (None: write nothing),
    an Event to post, and the pending count for its own metrics."""

    patch: dict[str, Any] | None
    notice: Notice | None
    pending: int | None


def _count(value: Any) -> int:
    """A counter from the network: a non-negative int, anything else counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _seconds(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return max(float(value), 0.0)
    return None


def _text(value: Any) -> str | None:
    return value[:ERROR_TEXT_LIMIT] if isinstance(value, str) and value else None


def _entry(document: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    bridges = document.get("bridges") if isinstance(document, Mapping) else None
    entry = bridges.get(key) if isinstance(bridges, Mapping) else None
    return entry if isinstance(entry, Mapping) else None


def merge_replicas(answers: Sequence[ReplicaAnswer], key: str) -> MergedDelivery:
    """Sums of the counters and pending, the oldest pending and newest delivery as maxima, the first
    error and hold reason in replica order (`key` is "<ns>/<name>")."""
    answered = [answer for answer in answers if isinstance(answer.document, Mapping)]
    entries = [entry for entry in (_entry(answer.document, key) for answer in answered) if entry is not None]
    counters = {name: sum(_count(entry.get(name)) for entry in entries) for name in COUNTERS}
    oldest = [s for s in (_seconds(entry.get("oldestPendingSeconds")) for entry in entries) if s is not None]
    times = [t for t in (entry.get("lastDeliveryTime") for entry in entries) if isinstance(t, str) and t]
    errors = [e for e in (_text(entry.get("lastError")) for entry in entries) if e]
    held = [h for h in (_text(entry.get("held")) for entry in entries) if h]
    letters: list[DeadLetter] = []
    for entry in entries:
        for item in entry.get("recentDeadLetters") or ():
            if isinstance(item, Mapping) and isinstance(item.get("time"), str):
                scope = item.get("scope") if isinstance(item.get("scope"), str) else ""
                letters.append(DeadLetter(str(scope), str(item["time"]), _text(item.get("reason")) or ""))
    letters.sort(key=lambda letter: letter.time, reverse=True)
    return MergedDelivery(
        replicas=len(answers),
        answered=len(answered),
        known=len(entries),
        counters=counters,
        pending=sum(_count(entry.get("pending")) for entry in entries),
        oldest_pending_seconds=max(oldest) if oldest else None,
        last_delivery_time=max(times) if times else None,
        last_error=errors[0] if errors else None,
        held=held[0] if held else None,
        dead_letters=tuple(letters),
        waiting=sum(_count(entry.get("waiting")) for entry in entries),
    )


def whole_seconds(seconds: float | None) -> int | None:
    """oldestPendingSeconds as status shows it: rounded half up to whole seconds."""
    return None if seconds is None else math.floor(seconds + 0.5)


def delivery_fields(merged: MergedDelivery, previous: Mapping[str, Any]) -> dict[str, Any]:
    """Our keys of status.delivery (absent rather than null). While some replica is silent, the
    cumulative counters never go below what status already shows, so its return is not a jump."""
    if merged.answered == 0:
        return {key: value for key, value in previous.items() if key in OWN_DELIVERY_KEYS}
    fields: dict[str, Any] = {}
    for name in COUNTERS:
        fields[name] = (
            merged.counters[name] if merged.complete else max(merged.counters[name], _count(previous.get(name)))
        )
    fields["pending"] = merged.pending
    optional = {
        "waiting": merged.waiting or None,
        "oldestPendingSeconds": whole_seconds(merged.oldest_pending_seconds) if merged.pending else None,
        "lastDeliveryTime": merged.last_delivery_time,
        "lastError": merged.last_error,
    }
    fields.update({key: value for key, value in optional.items() if value is not None})
    return fields


def delivering_condition(merged: MergedDelivery) -> Condition:
    """Is the relay getting this bridge's notifications to Backstage? The first problem wins."""
    partial = "" if merged.complete else f" ({merged.answered} of {merged.replicas} relay replicas answered)"
    if merged.answered == 0:
        return Condition(
            DELIVERING,
            False,
            "RelayUnreachable",
            f"None of the {merged.replicas} relay replicas answered on its status port"
            " (ARGOBRIDGE_RELAY_STATUS_URLS); the delivery figures are from the last answer. Check the relay pods",
        )
    if merged.known == 0:
        return Condition(
            DELIVERING,
            False,
            "NotConfigured",
            "The relay has no entry for this bridge yet (the operator writes it into the relay's config);"
            " until it has, the relay refuses this bridge's notifications" + partial,
        )
    if merged.held:
        return Condition(
            DELIVERING,
            False,
            "Held",
            f"{merged.held}. Backstage refuses the token: fix the bridge's token or Backstage's static token list;"
            f" {merged.pending} pending notifications are kept and delivered once it is accepted" + partial,
        )
    oldest = merged.oldest_pending_seconds
    if merged.pending and oldest is not None and oldest > BACKLOG_SECONDS:
        error = f"; last error: {merged.last_error}" if merged.last_error else ""
        return Condition(
            DELIVERING,
            False,
            "Backlogged",
            f"{merged.pending} notifications pending, the oldest for {int(oldest // 60)} min"
            f" (over {int(BACKLOG_SECONDS // 60)}){error}. Check that Backstage is up and reachable from the relay"
            + partial,
        )
    delivered = merged.counters["delivered"] + merged.counters["noRecipients"]
    if delivered == 0 and merged.pending == 0:
        return Condition(
            DELIVERING, True, "Idle", "The relay is ready; nothing delivered yet, nothing pending" + partial
        )
    return Condition(
        DELIVERING,
        True,
        "Delivered",
        f"{delivered} notifications delivered to Backstage through the relay, {merged.pending} pending" + partial,
    )


def direct_condition() -> Condition:
    """Delivering in Direct mode: nothing to measure, and the status says so."""
    return Condition(
        DELIVERING,
        True,
        "Direct",
        "Argo CD sends notifications to Backstage directly (delivery mode Direct): a notification Backstage"
        " misses is lost and not counted. Use spec.delivery.mode Relay to have them kept and retried",
    )


def dead_letter_notice(previous: Mapping[str, Any], merged: MergedDelivery) -> Notice | None:
    """A Warning when the dead-lettered count grew since the status the operator last wrote; judged
    only on a complete answer, so a replica coming back is not mistaken for new losses."""
    if not merged.complete:
        return None
    total = merged.counters["deadLettered"]
    grown = total - _count(previous.get("deadLettered"))
    if grown <= 0:
        return None
    scopes = [letter.scope or "(no scope)" for letter in merged.dead_letters[: min(grown, SCOPES_NAMED)]]
    more = f" and {grown - len(scopes)} more" if grown > len(scopes) else ""
    named = f"; scopes: {', '.join(scopes)}{more}" if scopes else ""
    return Notice(
        "Warning",
        "DeadLettered",
        f"The relay gave up on {grown} notification{'s' if grown != 1 else ''} ({total} in all): Backstage did"
        f" not take them within spec.delivery.retryFor{named}",
    )


def plan_relay_status(
    previous_status: Mapping[str, Any] | None,
    answers: Sequence[ReplicaAnswer],
    key: str,
    generation: int,
    now: str,
) -> RelayStatusPlan:
    """The status patch (our delivery keys and the Delivering condition) and Event for one bridge."""
    status = previous_status or {}
    previous = status.get("delivery") if isinstance(status.get("delivery"), Mapping) else {}
    assert isinstance(previous, Mapping)
    merged = merge_replicas(answers, key)
    fields = delivery_fields(merged, previous)
    delivery_patch: dict[str, Any] = {k: v for k, v in fields.items() if previous.get(k) != v}
    delivery_patch.update({k: None for k in previous if k in OWN_DELIVERY_KEYS and k not in fields})
    patch: dict[str, Any] = {"delivery": delivery_patch} if delivery_patch else {}
    old_conditions = list(status.get("conditions") or [])
    conditions = merge_conditions(old_conditions, [delivering_condition(merged)], generation, now)
    if conditions != old_conditions:
        patch["conditions"] = conditions
    return RelayStatusPlan(
        patch=patch or None,
        notice=dead_letter_notice(previous, merged),
        pending=fields.get("pending") if merged.answered else None,
    )
