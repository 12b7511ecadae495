"""The rotation state machine: every phase, and resuming from any point a crash could leave behind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from argobridge.core.rotation import (
    Phase,
    RotationFacts,
    Step,
    decide_rotation,
    mirror_state,
    restart_stamp,
    token_digest,
)

OLD, NEW, OTHER = token_digest("old-token-123"), token_digest("new-token-456"), token_digest("other-token-789")
NOW = 1_000_000.0


def facts(**changes) -> RotationFacts:
    base = dict(argocd=OLD, current=OLD, previous=OLD, now=NOW, last_rotation=NOW - 60, grace=600.0)
    return RotationFacts(**{**base, **changes})


def test_digest_never_contains_the_token_and_tells_tokens_apart():
    assert "old-token-123" not in (OLD or "") and len(OLD or "") == 12
    assert OLD != NEW and token_digest(None) is None


def test_first_reconcile_writes_the_mirror():
    decision = decide_rotation(facts(current=None, previous=None, last_rotation=None))
    assert (decision.phase, decision.step) == (Phase.UNMIRRORED, Step.MIRROR)


def test_idle_without_request_or_schedule_does_nothing():
    assert decide_rotation(facts()).step is Step.NONE


def test_annotation_request_starts_a_rotation_once():
    assert decide_rotation(facts(requested="2026-01-01T00:00:00Z")).step is Step.PUBLISH
    handled = facts(requested="2026-01-01T00:00:00Z", handled_request="2026-01-01T00:00:00Z")
    assert decide_rotation(handled).step is Step.NONE


@pytest.mark.parametrize(("age", "step"), [(3599, Step.NONE), (3600, Step.PUBLISH), (90000, Step.PUBLISH)])
def test_schedule_starts_a_rotation_when_the_interval_has_passed(age, step):
    assert decide_rotation(facts(interval=3600.0, last_rotation=NOW - age)).step is step


def test_published_token_waits_until_backstage_accepts_it():
    published = facts(current=NEW, previous=OLD)
    assert decide_rotation(published).step is Step.WAIT
    assert decide_rotation(facts(current=NEW, previous=OLD, current_accepted=False)).step is Step.WAIT
    assert decide_rotation(facts(current=NEW, previous=OLD, current_accepted=True)).step is Step.SWITCH


def test_published_token_restarts_backstage_once_when_configured():
    published = facts(current=NEW, previous=OLD, restart_configured=True, current_accepted=True)
    assert decide_rotation(published).step is Step.RESTART
    restarted = facts(
        current=NEW, previous=OLD, restart_configured=True, current_accepted=True, restarted_for=mirror_state(NEW, OLD)
    )
    assert decide_rotation(restarted).step is Step.SWITCH


def test_argocd_never_switches_before_backstage_accepts():
    for accepted in (None, False):
        for restart in (True, False):
            decision = decide_rotation(
                facts(current=NEW, previous=OLD, current_accepted=accepted, restart_configured=restart)
            )
            assert decision.step is not Step.SWITCH


def test_grace_period_keeps_previous_then_retires_it():
    switched = facts(argocd=NEW, current=NEW, previous=OLD)
    assert decide_rotation(switched).step is Step.MARK_SWITCHED  # crash between switch and note: start grace now
    assert decide_rotation(facts(argocd=NEW, current=NEW, previous=OLD, switched_at=NOW - 599)).step is Step.NONE
    assert decide_rotation(facts(argocd=NEW, current=NEW, previous=OLD, switched_at=NOW - 600)).step is Step.RETIRE


def test_after_retiring_backstage_is_restarted_to_forget_the_old_token():
    retired = facts(
        argocd=NEW, current=NEW, previous=NEW, restart_configured=True, restarted_for=mirror_state(NEW, OLD)
    )
    assert decide_rotation(retired).step is Step.RESTART
    done = facts(argocd=NEW, current=NEW, previous=NEW, restart_configured=True, restarted_for=mirror_state(NEW, NEW))
    assert decide_rotation(done).step is Step.NONE


def test_a_token_changed_by_hand_in_argocd_is_adopted():
    decision = decide_rotation(facts(argocd=OTHER, current=NEW, previous=OLD))
    assert (decision.phase, decision.step) == (Phase.DIVERGED, Step.ADOPT)
    assert "outside ArgoBridge" in decision.reason


def simulate(start: RotationFacts, accept_after_restart: bool) -> list[Step]:
    """Drive the machine like the operator would, 'crashing' (re-deciding from state) after each step."""
    state = dict(
        argocd=start.argocd,
        current=start.current,
        previous=start.previous,
        switched=None,
        restarted=mirror_state(start.current, start.previous),
    )
    handled, steps = start.handled_request, []
    backstage_knows = {start.current, start.previous}
    for tick in range(20):
        now = NOW + tick * 400
        f = RotationFacts(
            argocd=state["argocd"],
            current=state["current"],
            previous=state["previous"],
            now=now,
            last_rotation=NOW,
            switched_at=state["switched"],
            requested=start.requested,
            handled_request=handled,
            restarted_for=state["restarted"],
            restart_configured=True,
            current_accepted=state["current"] in backstage_knows,
            grace=600.0,
        )
        step = decide_rotation(f).step
        steps.append(step)
        if step is Step.PUBLISH:
            state.update(current=NEW, previous=state["argocd"])
            handled = start.requested
        elif step is Step.RESTART:
            state["restarted"] = mirror_state(state["current"], state["previous"])
            if accept_after_restart:
                backstage_knows = {state["current"], state["previous"]}
        elif step is Step.SWITCH:
            assert state["argocd"] in backstage_knows and state["current"] in backstage_knows
            state["argocd"] = state["current"]
        elif step is Step.MARK_SWITCHED:
            state["switched"] = now
        elif step is Step.RETIRE:
            state.update(previous=state["current"], switched=None)
        assert state["argocd"] in backstage_knows, "Argo CD must only ever send a token Backstage accepts"
    return steps


def test_a_full_requested_rotation_runs_every_step_in_order_and_settles():
    steps = simulate(facts(requested="r1"), accept_after_restart=True)
    assert [step for step in steps if step is not Step.NONE] == [
        Step.PUBLISH,
        Step.RESTART,
        Step.SWITCH,
        Step.MARK_SWITCHED,
        Step.RETIRE,
        Step.RESTART,
    ]
    assert steps[-1] is Step.NONE


def test_rotation_stalls_safely_when_backstage_never_learns_the_new_token():
    steps = simulate(facts(requested="r1"), accept_after_restart=False)
    assert Step.SWITCH not in steps and steps[-1] is Step.WAIT


def test_an_adopted_token_restarts_backstage_at_once_not_after_the_grace_period():
    # Just after Adopt: Argo CD's hand-set token is the mirror's current, the old one its previous,
    # and Backstage (restarted for the old pair) does not know it yet: every delivery would get 401.
    adopted = facts(
        argocd=OTHER,
        current=OTHER,
        previous=OLD,
        restart_configured=True,
        restarted_for=mirror_state(OLD, OLD),
        switched_at=None,
    )
    decision = decide_rotation(adopted)
    assert (decision.phase, decision.step) == (Phase.GRACE, Step.RESTART)
    restarted = facts(**{**adopted.__dict__, "restarted_for": mirror_state(OTHER, OLD)})
    assert decide_rotation(restarted).step is Step.MARK_SWITCHED, "once restarted, the grace period runs"


def test_a_normal_switch_does_not_restart_backstage_again_in_the_grace_period():
    switched = facts(
        argocd=NEW, current=NEW, previous=OLD, restart_configured=True, restarted_for=mirror_state(NEW, OLD)
    )
    assert decide_rotation(switched).step is Step.MARK_SWITCHED


def test_adoption_without_restart_configured_only_marks_the_grace_period():
    assert decide_rotation(facts(argocd=OTHER, current=OTHER, previous=OLD)).step is Step.MARK_SWITCHED


def test_two_restarts_in_one_second_stamp_the_pod_template_differently() -> None:
    """A retirement's restart and the next rotation's restart may fall in one second: the same stamp twice
    is no template change, so Kubernetes would roll nothing and Backstage would never read the new token."""
    retire, publish = 1_764_880_226.10, 1_764_880_226.55
    assert restart_stamp(retire) != restart_stamp(publish)
    assert restart_stamp(retire) < restart_stamp(publish)  # later restarts sort later, as RFC 3339 should
    assert datetime.strptime(restart_stamp(publish), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp() == (
        pytest.approx(publish, abs=1e-5)
    )
