"""Carry out token rotation: read both Secrets, ask the core for the next step, do it, repeat.

Every step is one write (or a write and a note of it), decided again from freshly read Secrets, so
an operator killed between any two steps resumes where it stopped. Argo CD's Secret changes only
after Backstage has been seen to accept the new value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from argobridge.core.conditions import Condition
from argobridge.core.mirrorpolicy import bridge_field_manager, bridge_ref, mirror_refusal
from argobridge.core.rotation import (
    HANDLED_REQUEST,
    LAST_ROTATION,
    RESTARTED_FOR,
    ROTATE_REQUEST_ANNOTATION,
    SWITCHED_AT,
    Decision,
    Phase,
    RotationFacts,
    Step,
    decide_rotation,
    mirror_state,
    phase_of,
    restart_stamp,
    token_digest,
)
from argobridge.core.spec import BridgeSpec, MirrorSpec
from argobridge.core.status import Notice, ReconcileReport
from argobridge.core.token import generate_token
from argobridge.kube import deployments, mirror, secrets

log = logging.getLogger(__name__)

TOKEN_MIRRORED = "TokenMirrored"
MAX_STEPS = 8  # a full rotation is at most Publish, Restart, Switch, MarkSwitched; Retire, Restart later


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _facts(
    spec: BridgeSpec,
    where: MirrorSpec,
    argocd_token: str,
    content: mirror.MirrorContent,
    requested: str | None,
    now: float,
) -> RotationFacts:
    notes = content.annotations
    return RotationFacts(
        argocd=token_digest(argocd_token),
        current=token_digest(content.current),
        previous=token_digest(content.previous),
        now=now,
        last_rotation=_epoch(notes.get(LAST_ROTATION)),
        switched_at=_epoch(notes.get(SWITCHED_AT)),
        requested=requested,
        handled_request=notes.get(HANDLED_REQUEST),
        restarted_for=notes.get(RESTARTED_FOR),
        restart_configured=where.restart_deployment is not None,
        interval=spec.rotation_interval_seconds,
        grace=spec.rotation_grace_seconds,
    )


def rotate_token(
    namespace: str,
    spec: BridgeSpec,
    argocd_token: str,
    annotations: Mapping[str, str],
    report: ReconcileReport,
    accepts: Callable[[str], bool],
    clock: Callable[[], float],
    bridge: str = "",
    before_switch: Callable[[str], None] | None = None,
) -> str:
    """Advance the mirror and rotation as far as possible now; return the token Argo CD holds afterwards.

    `before_switch(new_token)` runs just before Argo CD's Secret takes a new token (the relay, told first)."""
    where = spec.mirror
    requested = annotations.get(ROTATE_REQUEST_ANNOTATION)
    if where is None:
        if requested:
            message = (
                f"Annotation {ROTATE_REQUEST_ANNOTATION} asks for a rotation, but a gap-free rotation needs"
                " spec.token.mirror (the Secret Backstage reads); set it, or replace the token by hand"
            )
            report.notices.append(Notice("Warning", "RotationNeedsMirror", message))
            report.conditions.append(Condition(TOKEN_MIRRORED, False, "RotationNeedsMirror", message))
        return argocd_token
    decision = Decision(Phase.IDLE, Step.NONE, "")
    this = bridge_ref(namespace, bridge)
    for _ in range(MAX_STEPS):
        content = mirror.read_mirror(where.namespace, where.name, where.key, where.previous_key)
        refusal = mirror_refusal(content.exists, content.mirror_for, content.legacy, this, where.namespace, where.name)
        if refusal:
            report.conditions.append(Condition(TOKEN_MIRRORED, False, "MirrorNotPermitted", refusal))
            report.notices.append(Notice("Warning", "MirrorNotPermitted", refusal))
            return argocd_token
        if not content.exists:
            mirror.create_mirror(where.namespace, where.name, this, bridge_field_manager(namespace, bridge))
            content = mirror.MirrorContent(exists=True, mirror_for=this)
        facts = _facts(spec, where, argocd_token, content, requested, clock())
        if phase_of(facts) is Phase.PUBLISHED and content.current is not None:
            facts = RotationFacts(**{**facts.__dict__, "current_accepted": accepts(content.current)})
        decision = decide_rotation(facts)
        if decision.step in (Step.NONE, Step.WAIT):
            break
        argocd_token = _perform(
            namespace, spec, where, decision, argocd_token, content, requested, facts, report, bridge, before_switch
        )
    _report(spec, where, decision, argocd_token, report)
    return argocd_token


def _perform(
    namespace: str,
    spec: BridgeSpec,
    where: MirrorSpec,
    decision: Decision,
    argocd_token: str,
    content: mirror.MirrorContent,
    requested: str | None,
    facts: RotationFacts,
    report: ReconcileReport,
    bridge: str = "",
    before_switch: Callable[[str], None] | None = None,
) -> str:
    """One step; returns Argo CD's token after it."""
    now = _rfc3339(facts.now)
    notes = dict(content.annotations)
    target = f"Secret {where.namespace}/{where.name}"
    log.info("token rotation step %s for %s: %s", decision.step.value, target, decision.reason)

    def write(current: str, previous: str, **changes: str | None) -> None:
        merged = {**notes, **changes}
        merged = {key: value for key, value in merged.items() if value is not None}
        this = bridge_ref(namespace, bridge)
        mirror.apply_mirror(
            where.namespace,
            where.name,
            where.key,
            where.previous_key,
            mirror.MirrorContent(current, previous, merged),
            manager=bridge_field_manager(namespace, bridge),
            owner=this,
            forget=[key for key, value in changes.items() if value is None and key in notes] if content.legacy else (),
        )

    step = decision.step
    if step is Step.MIRROR:
        write(argocd_token, argocd_token, **{LAST_ROTATION: now, HANDLED_REQUEST: requested or ""})
        report.notices.append(Notice("Normal", "TokenMirrored", f"Wrote the token to {target} for Backstage"))
    elif step is Step.PUBLISH:
        write(generate_token(), argocd_token, **{HANDLED_REQUEST: requested or "", SWITCHED_AT: None})
        report.notices.append(
            Notice("Normal", "TokenRotationStarted", f"Published a new token to {target}; {decision.reason}")
        )
    elif step is Step.RESTART:
        assert where.restart_deployment is not None
        deployments.restart_deployment(where.namespace, where.restart_deployment, restart_stamp(facts.now))
        assert content.current is not None and content.previous is not None
        write(content.current, content.previous, **{RESTARTED_FOR: mirror_state(facts.current, facts.previous)})
        report.notices.append(
            Notice(
                "Normal",
                "BackstageRestarted",
                f"Restarted Deployment {where.namespace}/{where.restart_deployment} so Backstage reads {target}",
            )
        )
    elif step is Step.SWITCH:
        assert content.current is not None and content.previous is not None
        if before_switch is not None:
            before_switch(content.current)
        secrets.apply_secret_key(namespace, spec.secret_name, spec.token_key, content.current)
        argocd_token = content.current
        write(content.current, content.previous, **{SWITCHED_AT: now})
        report.notices.append(
            Notice(
                "Normal",
                "TokenSwitched",
                f"Argo CD now sends the new token (key {spec.token_key} of {spec.secret_name})",
            )
        )
    elif step is Step.MARK_SWITCHED:
        assert content.current is not None and content.previous is not None
        write(content.current, content.previous, **{SWITCHED_AT: now})
    elif step is Step.RETIRE:
        assert content.current is not None
        write(content.current, content.current, **{SWITCHED_AT: None, LAST_ROTATION: now})
        report.notices.append(Notice("Normal", "TokenRotated", f"Retired the previous token in {target}"))
    elif step is Step.ADOPT:
        assert content.current is not None
        write(argocd_token, content.current, **{SWITCHED_AT: None})
        report.notices.append(Notice("Warning", "TokenChangedOutside", decision.reason))
    return argocd_token


def _report(
    spec: BridgeSpec, where: MirrorSpec, decision: Decision, argocd_token: str, report: ReconcileReport
) -> None:
    content = mirror.read_mirror(where.namespace, where.name, where.key, where.previous_key)
    target = f"Secret {where.namespace}/{where.name}"
    phase = decision.phase.value
    report.token = {
        "phase": phase,
        "lastRotation": content.annotations.get(LAST_ROTATION, ""),
        "digest": token_digest(argocd_token) or "",
    }
    if decision.step is Step.WAIT:
        report.conditions.append(Condition(TOKEN_MIRRORED, False, "WaitingForBackstage", decision.reason))
    else:
        message = f"Backstage's tokens are in {target}: {decision.reason}" if decision.reason else f"Token in {target}"
        report.conditions.append(Condition(TOKEN_MIRRORED, True, phase, message))
