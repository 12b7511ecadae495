"""Token rotation without a gap, as a pure decision over what the two Secrets hold right now.

The state lives in the Secrets themselves (which value Argo CD sends, which values Backstage is told
about) plus a few annotations on the mirror Secret, never in the operator's memory: whatever step the
operator died after, the next reconcile reads the same facts and continues from there.

    Idle       argocd == current == previous            rotation due -> Publish
    Published  current != argocd == previous            Backstage accepts current -> Switch
    Grace      argocd == current != previous            grace period over -> Retire (previous := current)
    Diverged   argocd differs from both                 someone edited Argo CD's Secret -> Adopt

Only digests of tokens come in here; the values stay in the edges.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

ANNOTATION_PREFIX = "argobridge.io/"
ROTATE_REQUEST_ANNOTATION = ANNOTATION_PREFIX + "rotate-token"
HANDLED_REQUEST = ANNOTATION_PREFIX + "rotation-request"
LAST_ROTATION = ANNOTATION_PREFIX + "last-rotation"
SWITCHED_AT = ANNOTATION_PREFIX + "switched-at"
RESTARTED_FOR = ANNOTATION_PREFIX + "restarted-for"


def token_digest(value: str | None) -> str | None:
    """The first 12 hex digits of SHA-256: enough to compare two tokens, useless to recover one."""
    return hashlib.sha256(value.encode()).hexdigest()[:12] if value is not None else None


class Phase(StrEnum):
    UNMIRRORED = "Unmirrored"
    IDLE = "Idle"
    PUBLISHED = "Published"
    GRACE = "Grace"
    DIVERGED = "Diverged"


class Step(StrEnum):
    NONE = "None"
    MIRROR = "Mirror"  # first write of the mirror: current = previous = Argo CD's token
    PUBLISH = "Publish"  # new token as current, Argo CD's as previous
    RESTART = "Restart"  # restart Backstage so it reads the mirror again
    WAIT = "Wait"  # Backstage does not accept current yet
    SWITCH = "Switch"  # Argo CD's Secret takes current
    MARK_SWITCHED = "MarkSwitched"  # record when the grace period started
    RETIRE = "Retire"  # previous := current
    ADOPT = "Adopt"  # Argo CD's token becomes current, the old current stays as previous


@dataclass(frozen=True)
class RotationFacts:
    """What the Secrets and the bridge say now; times are seconds since the epoch."""

    argocd: str | None  # digest of the token in Argo CD's Secret
    current: str | None  # digest of the mirror's current value
    previous: str | None  # digest of the mirror's previous value
    now: float
    last_rotation: float | None = None
    switched_at: float | None = None
    requested: str | None = None  # value of the bridge's rotate-token annotation
    handled_request: str | None = None  # the request value the last rotation answered
    restarted_for: str | None = None  # mirror_state() when Backstage was last restarted
    restart_configured: bool = False
    current_accepted: bool | None = None  # probe of the mirror's current value, when one was made
    interval: float | None = None
    grace: float = 600.0


@dataclass(frozen=True)
class Decision:
    phase: Phase
    step: Step
    reason: str  # one sentence for status and Events; names no token


def restart_stamp(epoch: float) -> str:
    """The pod-template stamp of a Backstage restart, RFC 3339 to the microsecond.

    Why not to the second, as `kubectl rollout restart` writes it: a retirement's restart and the next
    rotation's restart can fall in one second, and the same stamp twice is no change to the pod
    template, so no new rollout: Backstage would never read the new token and the rotation would wait
    on it for ever (seen in the suite when a rotation was asked for right after the previous one ended).
    """
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def mirror_state(current: str | None, previous: str | None) -> str:
    """A fingerprint of what Backstage should know, to restart it once per change."""
    return f"{current}/{previous}"


def rotation_due(facts: RotationFacts) -> str | None:
    """Why a rotation should start now, or None."""
    if facts.requested and facts.requested != facts.handled_request:
        return f"requested by annotation {ROTATE_REQUEST_ANNOTATION}"
    if facts.interval is not None:
        if facts.last_rotation is None:
            return None  # the first mirror write sets the clock
        if facts.now - facts.last_rotation >= facts.interval:
            return "the rotation interval has passed"
    return None


def phase_of(facts: RotationFacts) -> Phase:
    if facts.current is None or facts.previous is None:
        return Phase.UNMIRRORED
    if facts.argocd == facts.current == facts.previous:
        return Phase.IDLE
    if facts.argocd == facts.previous:
        return Phase.PUBLISHED
    if facts.argocd == facts.current:
        return Phase.GRACE
    return Phase.DIVERGED


def _needs_restart(facts: RotationFacts) -> bool:
    return facts.restart_configured and facts.restarted_for != mirror_state(facts.current, facts.previous)


def decide_rotation(facts: RotationFacts) -> Decision:
    """The one next step; the caller performs it and the next reconcile decides again."""
    phase = phase_of(facts)
    if phase is Phase.UNMIRRORED:
        return Decision(phase, Step.MIRROR, "Backstage's Secret does not hold the token yet")
    if phase is Phase.DIVERGED:
        return Decision(
            phase,
            Step.ADOPT,
            "Argo CD's token was changed outside ArgoBridge; publishing it to Backstage's Secret as current",
        )
    if phase is Phase.PUBLISHED:
        if _needs_restart(facts):
            return Decision(phase, Step.RESTART, "restarting Backstage so it reads the new token")
        if facts.current_accepted:
            return Decision(phase, Step.SWITCH, "Backstage accepts the new token; switching Argo CD to it")
        return Decision(
            phase,
            Step.WAIT,
            "waiting for Backstage to accept the new token from its Secret (Backstage reads static tokens at"
            " start: restart it, or set spec.token.mirror.restartDeployment); Argo CD keeps the old one",
        )
    if phase is Phase.GRACE:
        if _needs_restart(facts):
            # After an adoption the mirror holds a token Backstage has not read yet: waiting for the
            # grace period to end would leave every delivery rejected with 401 until then.
            return Decision(phase, Step.RESTART, "restarting Backstage so it reads the token adopted from Argo CD")
        if facts.switched_at is None:
            return Decision(phase, Step.MARK_SWITCHED, "Argo CD uses the new token; the previous one stays valid")
        if facts.now - facts.switched_at >= facts.grace:
            return Decision(phase, Step.RETIRE, "grace period over; retiring the previous token")
        return Decision(
            phase, Step.NONE, "Argo CD uses the new token; the previous one stays valid for the grace period"
        )
    if _needs_restart(facts):
        return Decision(
            phase, Step.RESTART, "restarting Backstage so it reads its Secret (and forgets a retired token)"
        )
    why = rotation_due(facts)
    if why:
        return Decision(phase, Step.PUBLISH, f"rotating the token: {why}")
    return Decision(phase, Step.NONE, "Argo CD and Backstage share one token")
