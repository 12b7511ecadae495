"""Conditions and status: conventions kept, and an unchanged reconcile means an unchanged status."""

from __future__ import annotations

from argobridge.core.conditions import Condition, merge_conditions, summarise_ready
from argobridge.core.status import ReconcileReport, build_status, config_hash, status_patch
from argobridge.core.token import generate_token, token_problem


def report(**kwargs):
    base = ReconcileReport(
        conditions=[
            Condition("ConfigApplied", True, "Applied", "ok"),
            Condition("TokenReady", True, "Present", "ok"),
        ],
        flavor="ArgoCD",
        config_map="argocd-notifications-cm",
        config_hash="abc",
        owned_keys=9,
    )
    for key, value in kwargs.items():
        setattr(base, key, value)
    return base


def test_ready_summarises_the_first_failure():
    ready = summarise_ready(
        [
            Condition("ConfigApplied", False, "InvalidSpec", "fix spec.x"),
            Condition("TokenReady", False, "InvalidSpec", "fix spec.x"),
        ]
    )
    assert (ready.status, ready.reason, ready.message) == (False, "InvalidSpec", "fix spec.x")
    assert summarise_ready(
        [Condition("ConfigApplied", True, "Applied", ""), Condition("TokenReady", True, "Present", "")]
    ).status


def test_transition_time_moves_only_when_status_flips():
    first = merge_conditions(None, [Condition("Ready", True, "Ready", "ok")], 1, "2026-01-01T00:00:00Z")
    same = merge_conditions(first, [Condition("Ready", True, "Ready", "still ok")], 2, "2026-01-02T00:00:00Z")
    flipped = merge_conditions(same, [Condition("Ready", False, "Broken", "no")], 3, "2026-01-03T00:00:00Z")
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z" and same[0]["observedGeneration"] == 2
    assert flipped[0]["lastTransitionTime"] == "2026-01-03T00:00:00Z"


def test_second_identical_reconcile_produces_no_patch():
    first = build_status(None, report(), 1, "2026-01-01T00:00:00Z")
    second = build_status(first, report(), 1, "2026-01-05T00:00:00Z")
    assert status_patch(first, second) is None


def test_status_patch_removes_fields_we_no_longer_know():
    first = build_status(None, report(argocd_url="https://cd"), 1, "t")
    second = build_status(first, report(argocd_url=None), 1, "t")
    assert status_patch(first, second) == {"argocdUrl": None}


def test_drift_repairs_accumulate():
    status = build_status(None, report(drift_repaired=True), 1, "t")
    status = build_status(status, report(drift_repaired=True), 1, "t")
    assert status["driftRepairs"] == 2


def test_conditions_are_ordered_ready_first():
    status = build_status(None, report(), 4, "t")
    assert [c["type"] for c in status["conditions"]] == ["Ready", "ConfigApplied", "TokenReady"]
    assert status["observedGeneration"] == 4


def test_config_hash_ignores_key_order():
    assert config_hash({"a": "1", "b": "2"}) == config_hash({"b": "2", "a": "1"}) != config_hash({"a": "1"})


def test_generated_tokens_are_long_unique_and_acceptable_to_backstage():
    tokens = {generate_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) >= 64 and token_problem(t) is None for t in tokens)


def test_token_problems_never_quote_the_token():
    for bad in ("t1ny", "has space in it", "tab\tinside-long-enough"):
        problem = token_problem(bad)
        assert problem and bad not in problem


def test_a_count_that_goes_away_is_removed_not_rewritten_forever():
    previous = {"applications": {"watched": 3, "missingEntity": 0}, "observedGeneration": 1}
    new = {"applications": {"watched": 3}, "observedGeneration": 1}
    assert status_patch(previous, new) == {"applications": {"missingEntity": None}}
    assert status_patch(new, new) is None


def test_notifications_configuration_is_reported_on_gitops_and_dropped_when_the_flavor_changes():
    gitops = build_status(
        None,
        report(flavor="OpenShiftGitOps", notifications_configuration="default-notifications-configuration"),
        1,
        "t",
    )
    assert gitops["flavor"] == "OpenShiftGitOps"
    assert gitops["notificationsConfiguration"] == "default-notifications-configuration"
    plain = build_status(gitops, report(), 2, "t")
    assert plain["flavor"] == "ArgoCD" and "notificationsConfiguration" not in plain
    assert status_patch(gitops, plain)["notificationsConfiguration"] is None
