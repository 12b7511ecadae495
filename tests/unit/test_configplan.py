"""Deciding what to write: only our keys, merged `context`, and nothing at all when nothing differs."""

from __future__ import annotations

import pytest
import yaml

from argobridge.core.configplan import (
    ForeignDataError,
    keys_managed_by,
    merge_context,
    plan_config,
    plan_removal,
)
from argobridge.core.render import RenderedConfig

OURS = RenderedConfig(
    owned={"service.webhook.backstage": "url: x\n", "template.t-backstage": "webhook: {}\n"},
    context={"argocdUrl": "https://cd"},
)


def test_fresh_configmap_gets_every_key_added():
    plan = plan_config(None, set(), OURS, {})
    assert plan.needs_write
    assert set(plan.added) == {"service.webhook.backstage", "template.t-backstage", "context"}
    assert yaml.safe_load(plan.data["context"]) == {"argocdUrl": "https://cd"}


def test_up_to_date_configmap_needs_no_write_even_with_other_formatting():
    current = {
        **OURS.owned,
        "context": "{argocdUrl: 'https://cd', environmentName: prod}",
        "template.mine": "x",
    }
    plan = plan_config(current, {*OURS.owned, "context"}, OURS, {"argocdUrl": "https://cd"})
    assert not plan.needs_write


def test_users_context_entries_are_kept_when_we_add_ours():
    current = {"context": "environmentName: prod\n"}
    plan = plan_config(current, set(), OURS, {})
    assert yaml.safe_load(plan.data["context"]) == {"environmentName": "prod", "argocdUrl": "https://cd"}
    assert plan.changed == ("context",)


def test_edited_owned_key_is_a_change():
    current = {**OURS.owned, "template.t-backstage": "tampered", "context": "argocdUrl: https://cd\n"}
    plan = plan_config(current, {*OURS.owned, "context"}, OURS, {"argocdUrl": "https://cd"})
    assert plan.changed == ("template.t-backstage",) and not plan.added


def test_key_we_no_longer_render_is_removed_but_foreign_keys_are_not():
    current = {
        **OURS.owned,
        "trigger.old-backstage": "x",
        "trigger.users": "y",
        "context": "argocdUrl: https://cd\n",
    }
    plan = plan_config(current, {*OURS.owned, "trigger.old-backstage", "context"}, OURS, {"argocdUrl": "https://cd"})
    assert plan.removed == ("trigger.old-backstage",)
    assert "trigger.users" not in plan.data  # not ours: not in the apply, and not removed either


def test_url_we_stop_rendering_leaves_context_unless_a_user_changed_it():
    no_url = RenderedConfig(owned=OURS.owned, context={})
    current = {**OURS.owned, "context": "argocdUrl: https://cd\nenvironmentName: prod\n"}
    plan = plan_config(current, {*OURS.owned, "context"}, no_url, {"argocdUrl": "https://cd"})
    assert yaml.safe_load(plan.data["context"]) == {"environmentName": "prod"}
    current = {**OURS.owned, "context": "argocdUrl: https://hand-set\n"}
    plan = plan_config(current, {*OURS.owned, "context"}, no_url, {"argocdUrl": "https://cd"})
    assert yaml.safe_load(plan.data["context"]) == {"argocdUrl": "https://hand-set"}


def test_unreadable_context_is_never_overwritten():
    with pytest.raises(ForeignDataError, match="not valid YAML"):
        plan_config({"context": "a: [unclosed"}, set(), OURS, {})
    with pytest.raises(ForeignDataError, match="not a mapping"):
        plan_config({"context": "- a list"}, set(), OURS, {})


def test_removal_keeps_users_context_and_drops_ours():
    current = {**OURS.owned, "context": "argocdUrl: https://cd\nenvironmentName: prod\n", "x": "y"}
    plan = plan_removal(current, {*OURS.owned, "context"}, OURS, {"argocdUrl": "https://cd"})
    assert plan.data == {"context": "environmentName: prod\n"}
    assert set(plan.removed) == set(OURS.owned)


def test_removal_of_context_that_held_only_our_entry_removes_the_key():
    current = {**OURS.owned, "context": "argocdUrl: https://cd\n"}
    plan = plan_removal(current, {*OURS.owned, "context"}, OURS, {"argocdUrl": "https://cd"})
    assert plan.data == {} and "context" in plan.removed


def test_merge_context_without_anything_left_is_none():
    assert merge_context("argocdUrl: a\n", {}, {"argocdUrl": "a"}) is None


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


def test_global_subscription_is_added_after_users_entries():
    current = {"subscriptions": yaml.safe_dump([USERS_SUBSCRIPTION])}
    plan = plan_config(current, set(), SUBSCRIBED, {})
    assert yaml.safe_load(plan.data["subscriptions"]) == [USERS_SUBSCRIPTION, *SUBSCRIBED.subscriptions]
    assert "subscriptions" in plan.changed


def test_our_subscription_is_replaced_not_duplicated():
    stale = {"recipients": ["backstage"], "triggers": ["on-sync-failed-backstage", "on-deployed-backstage"]}
    current = {**OURS.owned, "subscriptions": yaml.safe_dump([stale, USERS_SUBSCRIPTION])}
    plan = plan_config(current, {*OURS.owned, "subscriptions"}, SUBSCRIBED, {})
    assert yaml.safe_load(plan.data["subscriptions"]) == [USERS_SUBSCRIPTION, *SUBSCRIBED.subscriptions]


def test_up_to_date_subscriptions_need_no_write():
    current = {**OURS.owned, "subscriptions": yaml.safe_dump([USERS_SUBSCRIPTION, *SUBSCRIBED.subscriptions])}
    assert not plan_config(current, {*OURS.owned, "subscriptions"}, SUBSCRIBED, {}).needs_write


def test_users_entry_naming_our_service_with_their_own_trigger_is_theirs():
    theirs = {"recipients": ["backstage"], "triggers": ["on-sync-failed"]}  # the manual guide's mistake
    current = {"subscriptions": yaml.safe_dump([theirs])}
    plan = plan_config(current, set(), SUBSCRIBED, {})
    assert yaml.safe_load(plan.data["subscriptions"])[0] == theirs


def test_removal_takes_only_our_subscription_out():
    current = {**OURS.owned, "subscriptions": yaml.safe_dump([USERS_SUBSCRIPTION, *SUBSCRIBED.subscriptions])}
    plan = plan_removal(current, {*OURS.owned, "subscriptions"}, SUBSCRIBED, {})
    assert yaml.safe_load(plan.data["subscriptions"]) == [USERS_SUBSCRIPTION]


def test_unreadable_subscriptions_are_never_overwritten():
    with pytest.raises(ForeignDataError, match="subscriptions"):
        plan_config({"subscriptions": "recipients: [x]"}, set(), SUBSCRIBED, {})
