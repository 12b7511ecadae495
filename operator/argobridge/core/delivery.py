"""Pure decisions of the delivery relay: what a Backstage answer means and when to try again.

Why pure: the relay's guarantees (no loss, nothing retried after a final result, a held queue never
dead-letters early) are properties of these functions, tested over generated sequences of answers.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0
HOLD_RETRY_SECONDS = 30.0
# A notification with nobody to send to is looked at again for a while before it is finished unresolved:
# a new Application's first event can reach the relay before the operator has found its owners in the
# catalog and the relay has re-read its config (a reconcile plus a 2 s poll).
UNRESOLVED_GRACE_SECONDS = 60.0
UNRESOLVED_RETRY_SECONDS = 5.0
RETRYABLE_400_TEXT = "Failed to send user notifications"


class Outcome(enum.Enum):
    """What an attempt's answer means for the item."""

    DELIVERED = "delivered"
    NO_RECIPIENTS = "noRecipients"
    RETRY = "retry"
    REJECTED = "rejected"
    HOLD = "hold"
    DEAD_LETTERED = "deadLettered"
    UNRESOLVED = "unresolved"  # nobody to send to (no ref, none from the catalog): finished without a POST

    @property
    def final(self) -> bool:
        """A final outcome removes the item from the outbox; it is never attempted again."""
        return self in {
            Outcome.DELIVERED,
            Outcome.NO_RECIPIENTS,
            Outcome.REJECTED,
            Outcome.DEAD_LETTERED,
            Outcome.UNRESOLVED,
        }


@dataclass(frozen=True)
class Answer:
    """One attempt's result as the edge saw it: an HTTP status, or None for no answer (error/timeout)."""

    status: int | None
    body_prefix: str = ""
    error: str | None = None
    unresolved: bool = False  # not sent: the body had no recipient and the catalog named none


def classify(answer: Answer) -> Outcome:
    """Map a Backstage answer to an outcome, following the relay contract's Delivery section."""
    status = answer.status
    if answer.unresolved:
        return Outcome.UNRESOLVED
    if status is None:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.NO_RECIPIENTS if answer.body_prefix.strip() == "[]" else Outcome.DELIVERED
    if status in (401, 403):
        return Outcome.HOLD
    if status in (408, 429) or status >= 500:
        return Outcome.RETRY
    if status == 400 and RETRYABLE_400_TEXT in answer.body_prefix:
        return Outcome.RETRY
    if 400 <= status < 500:
        return Outcome.REJECTED
    return Outcome.RETRY


def backoff_seconds(attempts: int, random_fraction: float) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempts-1))], from a passed random in [0, 1)."""
    exponent = min(max(attempts - 1, 0), 30)
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2.0**exponent))
    return ceiling * min(max(random_fraction, 0.0), 1.0)


def next_attempt_at(outcome: Outcome, now: float, attempts: int, random_fraction: float) -> float | None:
    """When to try again; None for a final outcome (never retried)."""
    if outcome.final:
        return None
    if outcome is Outcome.HOLD:
        return now + HOLD_RETRY_SECONDS
    return now + backoff_seconds(attempts, random_fraction)


def expired(received_at: float, now: float, retry_for_seconds: float) -> bool:
    """An item older than retryFor is dead-lettered instead of attempted."""
    return now - received_at > retry_for_seconds


def decide(
    answer: Answer, *, received_at: float, now: float, attempts: int, retry_for_seconds: float, random_fraction: float
) -> tuple[Outcome, float | None]:
    """Outcome after an attempt (attempts counts this one) and the next attempt time, dead-lettering by age."""
    if answer.unresolved and now - received_at < UNRESOLVED_GRACE_SECONDS:
        return Outcome.RETRY, now + UNRESOLVED_RETRY_SECONDS
    outcome = classify(answer)
    if not outcome.final and expired(received_at, now, retry_for_seconds):
        return Outcome.DEAD_LETTERED, None
    return outcome, next_attempt_at(outcome, now, attempts, random_fraction)


def coalesce_key(bridge: str, body: dict[str, Any]) -> str | None:
    """(bridge, payload.scope, canonical recipients); None when there is no scope (no coalescing)."""
    payload = body.get("payload")
    scope = payload.get("scope") if isinstance(payload, dict) else None
    if not isinstance(scope, str) or not scope:
        return None
    recipients = json.dumps(body.get("recipients"), sort_keys=True, separators=(",", ":"))
    return json.dumps([bridge, scope, recipients], separators=(",", ":"))


# A bridge whose Backstage fails is probed with one notification at a time, at most this far apart, so
# that it is found back within seconds of returning (a probe costs one request; the other pending
# notifications wait untouched, without attempts of their own).
PROBE_CAP_SECONDS = 5.0


def backstage_failing(answer: Answer) -> bool:
    """Whether an answer says Backstage itself is unwell for this bridge (down, overloaded, token refused),
    rather than something about this one notification: then the bridge's other notifications wait."""
    return classify(answer) in (Outcome.RETRY, Outcome.HOLD)


def probe_delay_seconds(answer: Answer, failures: int, random_fraction: float) -> float:
    """How long a failing bridge waits before its next probe: the hold interval for a refused token, else
    exponential from the backoff base up to PROBE_CAP_SECONDS, half of it jittered."""
    if classify(answer) is Outcome.HOLD:
        return HOLD_RETRY_SECONDS
    exponent = min(max(failures - 1, 0), 30)
    ceiling = min(PROBE_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2.0**exponent))
    return ceiling * (0.5 + 0.5 * min(max(random_fraction, 0.0), 1.0))


# Results that mean Backstage took the notification: what lastDeliveryTime reports.
ACCEPTED_RESULTS = ("delivered", "noRecipients")
# How many dead letters the status document lists per bridge (newest first).
RECENT_DEAD_LETTERS = 10


def rfc3339(timestamp: float) -> str:
    """A Unix time as RFC 3339 UTC with a Z, to the second (the form Kubernetes uses in status)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def held_after(previous: str | None, outcome: Outcome, answer: Answer) -> str | None:
    """The bridge's `held` reason after an attempt: set by a 401/403, cleared by any other answer from
    Backstage, unchanged when Backstage did not answer (a timeout says nothing about the token)."""
    if outcome is Outcome.HOLD:
        return (
            f"Backstage answered {answer.status}: it refuses the bridge's token; fix the token"
            " (the queue is kept and sent once Backstage accepts it)"
        )
    if answer.status is not None:
        return None
    return previous


def changed_entries(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Bridges whose config entry is new or differs: their queue is tried again at once (a fixed token
    must not wait out the hold interval)."""
    return sorted(key for key, entry in new.items() if old.get(key) != entry)


def tls_settings(entry: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The (caBundle, insecureSkipVerify) pair of a config entry, the key of the relay's client cache."""
    ca = entry.get("caBundle")
    return (str(ca) if ca else None), bool(entry.get("insecureSkipVerify", False))


def status_entry(
    *,
    counters: Mapping[str, int],
    pending: int,
    oldest_received_at: float | None,
    last_times: Mapping[str, float],
    last_error: str | None,
    held: str | None,
    dead_letters: Sequence[tuple[str | None, float, str]],
    now: float,
    waiting: int = 0,
) -> dict[str, Any]:
    """One bridge's entry of the relay's /v1/status document (RELAY_CONTRACT, "Relay status document")."""
    accepted = [last_times[result] for result in ACCEPTED_RESULTS if result in last_times]
    return {
        "delivered": int(counters.get("delivered", 0)),
        "noRecipients": int(counters.get("noRecipients", 0)),
        "rejected": int(counters.get("rejected", 0)),
        "deadLettered": int(counters.get("deadLettered", 0)),
        "unresolved": int(counters.get("unresolved", 0)),
        "pending": pending,
        "waiting": waiting,
        "oldestPendingSeconds": max(now - oldest_received_at, 0.0) if pending and oldest_received_at else None,
        "lastDeliveryTime": rfc3339(max(accepted)) if accepted else None,
        "lastError": last_error,
        "held": held,
        "recentDeadLetters": [
            {"scope": scope or "", "time": rfc3339(when), "reason": reason}
            for scope, when, reason in list(dead_letters)[:RECENT_DEAD_LETTERS]
        ],
    }
