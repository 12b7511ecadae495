"""Deciding what to write: only our keys, our marked lines in shared keys, nothing at all when nothing differs,
and never a key someone else wrote."""

from __future__ import annotations

import pytest
import yaml

from argobridge.core.configplan import ForeignDataError, keys_managed_by, merge_context, plan_config, plan_removal
from argobridge.core.ownership import LEGACY_MANAGER, Owner, Ownership, marker_line
from argobridge.core.render import RenderedConfig

OURS = RenderedConfig(
    owned={"service.webhook.backstage": "url: x\n", "template.t-backstage": "webhook: {}\n"},
    context={"argocdUrl": "https://cd"},
)
BRIDGE = ("argocd", "backstage")
MARK = marker_line("argocd/backstage")
MANAGER = "argobridge/argocd/backstage"
USER = Owner("kubectl-edit", "Update")


def owned_by(manager: str, *keys: str, operation: str = "Apply", **more: list[Owner]) -> Ownership:
    owners = {key: [Owner(manager, operation)] for key in keys}
    for key, claims in more.items():
        owners.setdefault(key, []).extend(claims)
    return Ownership.of(*BRIDGE, owners)


NOBODY = Ownership.of(*BRIDGE)


def applied(current: dict[str, str] | None, rendered: RenderedConfig = OURS) -> dict[str, str]:
    """The ConfigMap after the first plan is applied and our manager owns what it wrote."""
    plan = plan_config(current, NOBODY, rendered)
    return {**(current or {}), **plan.data}


def test_fresh_configmap_gets_every_key_added():
    plan = plan_config(None, NOBODY, OURS)
    assert plan.needs_write and not plan.conflicts
    assert set(plan.added) == {"service.webhook.backstage", "template.t-backstage", "context"}
    assert plan.data["context"] == f"{MARK}\nargocdUrl: https://cd\n"
    assert yaml.safe_load(plan.data["context"]) == {"argocdUrl": "https://cd"}


def test_up_to_date_configmap_needs_no_write():
    current = {**applied(None), "template.mine": "x"}
    plan = plan_config(current, owned_by(MANAGER, *OURS.owned, "context"), OURS)
    assert not plan.needs_write


def test_users_context_is_kept_byte_for_byte_when_we_add_our_line():
    users = "# ours, hands off\na: 1.10\nb:   0755\nc: yes  # really\nd: 12:30\n\n"
    plan = plan_config({"context": users}, Ownership.of(*BRIDGE, {"context": [USER]}), OURS)
    assert plan.data["context"] == users + f"{MARK}\nargocdUrl: https://cd\n"
    assert "context" in plan.takeover  # merged from exactly this text: may be taken with the precondition
    removed = plan_removal({"context": plan.data["context"]}, owned_by(MANAGER, "context"))
    assert removed.data["context"] == users


def test_users_own_argocd_url_is_a_conflict_and_nothing_is_planned_to_be_written():
    plan = plan_config({"context": "argocdUrl: https://hand-set\n"}, Ownership.of(*BRIDGE, {"context": [USER]}), OURS)
    assert [c.key for c in plan.conflicts] == ["context.argocdUrl"]
    assert "'kubectl-edit' (Update)" in plan.conflicts[0].describe("ConfigMap x")
    assert not plan.needs_write


def test_pre_existing_key_of_another_manager_is_a_conflict_naming_it_and_the_fix():
    current = {"service.webhook.backstage": "url: https://theirs\n"}
    plan = plan_config(current, Ownership.of(*BRIDGE, {"service.webhook.backstage": [USER]}), OURS)
    assert [c.key for c in plan.conflicts] == ["service.webhook.backstage"]
    message = plan.conflicts[0].describe("ConfigMap argocd-notifications-cm")
    assert "kubectl-edit" in message and "spec.argocd.serviceName" in message
    assert not plan.needs_write


def test_pre_existing_key_without_any_recorded_owner_is_a_conflict_too():
    plan = plan_config({"template.t-backstage": "x"}, NOBODY, OURS)
    assert [c.key for c in plan.conflicts] == ["template.t-backstage"]
    assert "no recorded field manager" in plan.conflicts[0].describe("here")


def test_key_we_wrote_and_a_user_edited_is_repaired_not_a_conflict():
    current = {**applied(None), "template.t-backstage": "tampered"}
    owners = {key: [Owner(MANAGER, "Apply")] for key in ("service.webhook.backstage", "context")}
    owners["template.t-backstage"] = [USER]  # an Update moves the field to the user's manager
    ownership = Ownership.of(*BRIDGE, owners, recorded=OURS.owned)
    plan = plan_config(current, ownership, OURS)
    assert not plan.conflicts and plan.changed == ("template.t-backstage",)
    assert "template.t-backstage" in plan.takeover


def test_legacy_managers_keys_count_as_ours_and_are_released():
    current = applied(None)
    plan = plan_config(current, owned_by(LEGACY_MANAGER, *current), OURS)
    assert not plan.conflicts and plan.release_legacy and plan.needs_write
    assert set(plan.data) == set(current)  # ours co-owns everything before the legacy manager lets go


def test_key_we_no_longer_render_is_removed_but_foreign_keys_are_not():
    current = {**applied(None), "trigger.old-backstage": "x", "trigger.users": "y"}
    ownership = owned_by(MANAGER, *OURS.owned, "trigger.old-backstage", "context", **{"trigger.users": [USER]})
    plan = plan_config(current, ownership, OURS)
    assert plan.removed == ("trigger.old-backstage",)
    assert "trigger.users" not in plan.data


def test_url_we_stop_rendering_takes_out_only_our_line():
    no_url = RenderedConfig(owned=OURS.owned, context={})
    current = applied({"context": "environmentName: prod\n"})
    plan = plan_config(current, owned_by(MANAGER, *OURS.owned, "context"), no_url)
    assert plan.data["context"] == "environmentName: prod\n"


def test_unreadable_context_is_never_overwritten():
    with pytest.raises(ForeignDataError, match="not valid YAML"):
        plan_config({"context": "a: [unclosed"}, NOBODY, OURS)
    with pytest.raises(ForeignDataError, match="not a mapping"):
        plan_config({"context": "- a list"}, NOBODY, OURS)


def test_removal_keeps_users_context_and_drops_ours():
    current = {**applied({"context": "environmentName: prod\n"}), "x": "y"}
    plan = plan_removal(current, owned_by(MANAGER, *OURS.owned, "context", **{"x": [USER]}))
    assert plan.data == {"context": "environmentName: prod\n"}
    assert set(plan.removed) == set(OURS.owned)


def test_removal_of_context_that_held_only_our_entry_removes_the_key():
    current = applied(None)
    plan = plan_removal(current, owned_by(MANAGER, *OURS.owned, "context"))
    assert plan.data == {} and "context" in plan.removed


def test_removal_with_unreadable_subscriptions_takes_our_lines_and_names_the_key():
    broken = f"- recipients: [slack:ops\n{MARK}\n- recipients:\n  - backstage\n  triggers:\n  - on-x-backstage\n"
    plan = plan_removal({"subscriptions": broken}, owned_by(MANAGER, "subscriptions"))
    assert plan.unreadable == ("subscriptions",)
    assert plan.data["subscriptions"] == "- recipients: [slack:ops\n"


def test_removal_leaves_a_key_we_wrote_that_a_user_changed_since():
    ownership = Ownership.of(*BRIDGE, {"template.t-backstage": [USER]}, recorded=OURS.owned)
    plan = plan_removal({"template.t-backstage": "theirs now"}, ownership)
    assert plan.left == ("template.t-backstage",) and "template.t-backstage" not in plan.data


def test_merge_context_without_anything_left_is_none():
    assert merge_context(f"{MARK}\nargocdUrl: a\n", {}, "argocd/backstage") is None


def test_keys_managed_by_reads_only_our_apply_entries():
    fields = [
        {"manager": "argobridge", "operation": "Apply", "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}}}},
        {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:data": {"f:c": {}}}},
        {"manager": "argobridge", "operation": "Update", "fieldsV1": {"f:data": {"f:d": {}}}},
    ]
    assert keys_managed_by(fields) == {"a", "b"}
    assert keys_managed_by(None) == set()


SUBSCRIBED = RenderedConfig(
    owned=OURS.owned,
    context={},
    subscriptions=({"recipients": ["backstage"], "triggers": ["on-deployed-backstage"]},),
)
USERS_SUBSCRIPTION = {"recipients": ["slack:ops"], "triggers": ["on-sync-failed"]}


def test_global_subscription_is_added_after_users_entries_which_keep_their_text():
    users = "- {recipients: [slack:ops], triggers: [on-sync-failed]}   # flow style, a comment\n"
    plan = plan_config({"subscriptions": users}, NOBODY, SUBSCRIBED)
    assert plan.data["subscriptions"].startswith(users)
    assert yaml.safe_load(plan.data["subscriptions"]) == [USERS_SUBSCRIPTION, *SUBSCRIBED.subscriptions]
    assert "subscriptions" in plan.changed


def test_our_subscription_is_replaced_not_duplicated():
    first = applied({"subscriptions": yaml.safe_dump([USERS_SUBSCRIPTION])}, SUBSCRIBED)
    entry = {"recipients": ["backstage"], "triggers": ["t"]}
    other = RenderedConfig(owned=OURS.owned, context={}, subscriptions=(entry,))
    plan = plan_config(first, owned_by(MANAGER, *OURS.owned, "subscriptions"), other)
    assert yaml.safe_load(plan.data["subscriptions"]) == [USERS_SUBSCRIPTION, *other.subscriptions]


def test_up_to_date_subscriptions_need_no_write():
    current = applied({"subscriptions": yaml.safe_dump([USERS_SUBSCRIPTION])}, SUBSCRIBED)
    assert not plan_config(current, owned_by(MANAGER, *OURS.owned, "subscriptions"), SUBSCRIBED).needs_write


def test_users_look_alike_entry_is_theirs_and_survives_create_and_removal():
    theirs = "- recipients: [backstage]\n  triggers: [on-deployed-backstage]\n  selector: team=mine\n"
    plan = plan_config({"subscriptions": theirs}, NOBODY, SUBSCRIBED)
    assert plan.data["subscriptions"].startswith(theirs)
    exact = yaml.safe_dump(list(SUBSCRIBED.subscriptions))  # even one exactly equal to ours, unmarked
    removal = plan_removal({"subscriptions": plan.data["subscriptions"] + exact}, owned_by(MANAGER, "subscriptions"))
    assert removal.data["subscriptions"] == theirs + exact


def test_legacy_entry_exactly_ours_is_adopted_once():
    legacy = yaml.safe_dump([USERS_SUBSCRIPTION, *SUBSCRIBED.subscriptions], sort_keys=False)
    plan = plan_config({"subscriptions": legacy}, owned_by(LEGACY_MANAGER, "subscriptions"), SUBSCRIBED)
    assert yaml.safe_load(plan.data["subscriptions"]) == [USERS_SUBSCRIPTION, *SUBSCRIBED.subscriptions]
    assert MARK in plan.data["subscriptions"]
    not_legacy = plan_config({"subscriptions": legacy}, Ownership.of(*BRIDGE, {"subscriptions": [USER]}), SUBSCRIBED)
    assert len(yaml.safe_load(not_legacy.data["subscriptions"])) == 3  # without the record, it is the user's


def test_legacy_argocd_url_equal_to_what_we_wrote_is_adopted():
    plan = plan_config(
        {"context": "argocdUrl: https://old\nenv: prod\n"}, owned_by(LEGACY_MANAGER, "context"), OURS, "https://old"
    )
    assert not plan.conflicts
    assert plan.data["context"] == f"{MARK}\nargocdUrl: https://cd\nenv: prod\n"


def test_flow_style_subscriptions_are_refused_not_rewritten():
    with pytest.raises(ForeignDataError, match="block list"):
        plan_config({"subscriptions": "[{recipients: [x]}]"}, NOBODY, SUBSCRIBED)


def test_unreadable_subscriptions_are_never_overwritten():
    with pytest.raises(ForeignDataError, match="subscriptions"):
        plan_config({"subscriptions": "recipients: [x]"}, NOBODY, SUBSCRIBED)
