"""Annotations mode decisions: exactly our annotations, only on apps with a ref, and no hot loop."""

from __future__ import annotations

from argobridge.core.annotations import desired_annotations, plan_annotations, repair_delay
from argobridge.core.appcheck import AppFacts

SUB = "notifications.argoproj.io/subscribe."
TRIGGERS = ("on-sync-failed-backstage", "on-deployed-backstage")
WANTED = {SUB + "on-sync-failed-backstage.backstage": "", SUB + "on-deployed-backstage.backstage": ""}


def app(annotations, owned=()) -> AppFacts:
    return AppFacts("argocd", "shop", "uid", annotations, {}, frozenset(owned))


def test_only_apps_with_a_deliverable_ref_get_annotations():
    assert desired_annotations(app({"backstage.io/entity-ref": "Component:Shop"}), "backstage", TRIGGERS) == WANTED
    assert desired_annotations(app({"backstage.io/entity-ref": "shop"}), "backstage", TRIGGERS) == {}
    assert desired_annotations(app({}), "backstage", TRIGGERS) == {}


def test_nothing_to_write_when_the_app_already_carries_them():
    assert plan_annotations(app({**WANTED, "team": "x"}, owned=WANTED), WANTED, WANTED) is None
    assert plan_annotations(app(WANTED), WANTED, ()) is None, "a user's identical annotations are enough"


def test_first_write_is_not_a_repair_but_a_reset_is():
    first = plan_annotations(app({}), WANTED, ())
    assert first is not None and first.desired == WANTED and not first.repair
    reset = plan_annotations(app({}), WANTED, WANTED)
    assert reset is not None and reset.repair
    lost_ownership = plan_annotations(app({}), WANTED, (), applied_before=WANTED)
    assert lost_ownership is not None and lost_ownership.repair, "a reset also removes our field ownership"


def test_annotations_we_no_longer_want_are_removed_only_if_ours():
    plan = plan_annotations(app(WANTED, owned=WANTED), {}, WANTED)
    assert plan is not None and plan.desired == {}
    assert plan_annotations(app(WANTED), {}, ()) is None, "a user's own annotations are never touched"


def test_repairs_back_off_exponentially_and_forget_after_half_an_hour():
    assert repair_delay([], 100) == 0
    assert repair_delay([100], 100) == 30
    assert repair_delay([0, 100], 100) == 60
    assert repair_delay([0, 10, 20, 30, 40, 50, 60, 100], 100) == 600
    assert repair_delay([0], 1900) == 0
