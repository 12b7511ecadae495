"""OpenShift GitOps flavor, pure parts: detection, the Argo CD URL, the enable command, and what goes into
`NotificationsConfiguration` (our entries only, users' entries and subscriptions kept, no needless write)."""

from __future__ import annotations

import shlex

import pytest
import yaml

from argobridge.core.gitops import (
    ArgoCDInstance,
    context_value_problem,
    detect_flavor,
    enable_notifications_command,
    gitops_argocd_url,
    instance_from_resource,
    url_from_route,
)
from argobridge.core.ownership import Owner, Ownership, field_manager, marker_line
from argobridge.core.render import RenderedConfig, render_notifications_config
from argobridge.core.resourceplan import (
    UnsafeContextError,
    entries_managed_by,
    flatten,
    plan_resource,
    plan_resource_removal,
    section_for,
)
from argobridge.core.spec import Flavor, parse_bridge_spec

GITOPS = ArgoCDInstance(name="openshift-gitops", notifications_enabled=True)


@pytest.mark.parametrize(
    ("requested", "crd", "instances", "expected"),
    [
        (Flavor.AUTO, True, [GITOPS], Flavor.OPENSHIFT_GITOPS),
        (Flavor.AUTO, True, [], Flavor.ARGOCD),  # operator installed, but it does not manage this namespace
        (Flavor.AUTO, False, [], Flavor.ARGOCD),
        (Flavor.ARGOCD, True, [GITOPS], Flavor.ARGOCD),  # explicit beats detection, both ways
        (Flavor.OPENSHIFT_GITOPS, False, [], Flavor.OPENSHIFT_GITOPS),
    ],
)
def test_detect_flavor(requested, crd, instances, expected):
    assert detect_flavor(requested, crd, instances) is expected


@pytest.mark.parametrize(
    ("notifications", "enabled"),
    [(None, False), ({}, False), ({"enabled": False}, False), ({"enabled": "true"}, False), ({"enabled": True}, True)],
)
def test_notifications_count_as_enabled_only_when_literally_true(notifications, enabled):
    spec = {"notifications": notifications} if notifications is not None else {}
    body = {"metadata": {"name": "gitops"}, "spec": spec}
    assert instance_from_resource(body).notifications_enabled is enabled


def test_enable_command_is_one_kubectl_patch_of_exactly_that_field():
    words = shlex.split(enable_notifications_command("openshift-gitops", "openshift-gitops"))
    assert words[:4] == ["kubectl", "patch", "argocds.argoproj.io", "openshift-gitops"]
    assert words[words.index("-n") + 1] == "openshift-gitops"
    assert words[words.index("--type") + 1] == "merge"
    assert yaml.safe_load(words[words.index("-p") + 1]) == {"spec": {"notifications": {"enabled": True}}}


def test_url_from_route_prefers_spec_host_and_uses_https_only_with_tls():
    assert url_from_route({"spec": {"host": "cd.apps.example.com", "tls": {"termination": "reencrypt"}}}) == (
        "https://cd.apps.example.com"
    )
    assert url_from_route({"spec": {"host": "cd.example.com"}}) == "http://cd.example.com"
    admitted = {"spec": {"tls": {}}, "status": {"ingress": [{"host": "gen.apps.example.com"}]}}
    assert url_from_route(admitted) == "http://gen.apps.example.com"  # an empty tls block is no TLS
    assert url_from_route({"spec": {}}) is None
    assert url_from_route(None) is None


def test_gitops_url_route_first_then_argocd_host_then_nothing():
    instance = ArgoCDInstance("gitops", True, server_host="argocd.example.com")
    route = {"spec": {"host": "route.example.com", "tls": {"termination": "edge"}}}
    assert gitops_argocd_url(instance, route) == "https://route.example.com"
    assert gitops_argocd_url(instance, None) == "https://argocd.example.com"
    assert gitops_argocd_url(GITOPS, None) is None


@pytest.mark.parametrize("value", ["https://argocd.example.com", "https://cd.example.com:8443/argo", "prod-eu"])
def test_plain_context_values_are_accepted(value):
    assert context_value_problem("argocdUrl", value) is None


@pytest.mark.parametrize("value", ["https://host:", "a: b", "x #comment", "'quoted", "{a}", "[a]", "two\nlines", "yes"])
def test_context_values_the_operator_would_mangle_are_refused(value):
    problem = context_value_problem("argocdUrl", value)
    assert problem is not None and "unquoted" in problem


def rendered(url: str | None = "https://cd.example.com") -> RenderedConfig:
    spec = parse_bridge_spec({"backstage": {"url": "https://backstage.example.com"}})
    return render_notifications_config(spec, url)


def test_keys_go_to_the_sections_the_operator_reads_back():
    assert section_for("template.app-deployed-backstage") == "templates"
    assert section_for("trigger.on-deployed-backstage") == "triggers"
    assert section_for("service.webhook.backstage") == "services"
    assert section_for("subscriptions") == "subscriptions"
    with pytest.raises(ValueError):
        section_for("context")


NOBODY = Ownership.of("argocd", "backstage")
MANAGER = field_manager("argocd", "backstage")
OPERATOR = Owner("argocd-operator", "Update")


def ours_after(plan, *extra: str) -> Ownership:
    """The ownership once `plan` was applied: our manager holds every entry it wrote."""
    names = [f"{section}.{key}" for section, key in plan.entries] + list(extra)
    return Ownership.of("argocd", "backstage", {name: [Owner(MANAGER, "Apply")] for name in names})


def test_fresh_resource_gets_every_entry_and_our_global_subscription():
    ours = rendered()
    plan = plan_resource({}, NOBODY, ours)
    assert plan.needs_write
    assert plan.spec["services"] == {"service.webhook.backstage": ours.owned["service.webhook.backstage"]}
    assert set(plan.spec["templates"]) | set(plan.spec["triggers"]) == set(ours.owned) - {"service.webhook.backstage"}
    assert plan.spec["context"] == {"argocdUrl": "https://cd.example.com"}
    text = plan.spec["subscriptions"]["subscriptions"]
    assert text.startswith(marker_line("argocd/backstage"))
    assert yaml.safe_load(text) == [dict(entry) for entry in ours.subscriptions]


def test_users_entries_are_never_in_the_apply_and_their_subscriptions_are_kept():
    ours = rendered()
    theirs = "- recipients: [slack:ops]\n  triggers: [on-sync-failed]\n"
    current = {
        "templates": {"template.app-created": "email: {}\n"},
        "context": {"environmentName": "prod"},
        "subscriptions": {"subscriptions": theirs},
    }
    plan = plan_resource(current, NOBODY, ours)
    assert "template.app-created" not in plan.spec["templates"]
    assert "environmentName" not in plan.spec["context"]
    merged = plan.spec["subscriptions"]["subscriptions"]
    assert merged.startswith(theirs) and len(yaml.safe_load(merged)) == 2


def test_users_entry_of_the_same_name_is_a_conflict_and_nothing_is_written():
    current = {"services": {"service.webhook.backstage": "url: https://theirs\n"}, "context": {"argocdUrl": "x"}}
    owners = {"services.service.webhook.backstage": [OPERATOR], "context.argocdUrl": [OPERATOR]}
    plan = plan_resource(current, Ownership.of("argocd", "backstage", owners), rendered())
    assert {c.key for c in plan.conflicts} == {"services.service.webhook.backstage", "context.argocdUrl"}
    assert not plan.needs_write


def test_up_to_date_resource_needs_no_write():
    ours = rendered()
    first = plan_resource({}, NOBODY, ours)
    current = {section: {**values, "user.key": "x"} for section, values in first.spec.items()}
    again = plan_resource(current, ours_after(first), ours)
    assert not again.needs_write
    assert again.entries == first.entries  # applying it would keep, not drop, what we own


def test_an_entry_we_stop_rendering_is_removed_and_a_hand_edit_is_changed_back():
    ours = rendered()
    first = plan_resource({}, NOBODY, ours)
    current = {section: dict(values) for section, values in first.spec.items()}
    current["templates"]["template.app-deployed-backstage"] = "edited by hand"
    current["templates"]["template.old-backstage"] = "stale"
    plan = plan_resource(current, ours_after(first, "templates.template.old-backstage"), ours)
    assert plan.changed == ("templates.template.app-deployed-backstage",)
    assert plan.removed == ("templates.template.old-backstage",)
    assert ("templates", "template.old-backstage") not in plan.entries


def test_unsafe_argocd_url_is_refused_before_anything_is_planned():
    with pytest.raises(UnsafeContextError):
        plan_resource({}, NOBODY, rendered("https://host:"))


def test_removal_keeps_only_users_subscriptions_byte_for_byte():
    ours = rendered()
    theirs = "# team ops\n- recipients: [slack:ops]\n  triggers: [on-sync-failed]\n"
    first = plan_resource({"subscriptions": {"subscriptions": theirs}}, NOBODY, ours)
    current = {section: dict(values) for section, values in first.spec.items()}
    plan = plan_resource_removal(current, ours_after(first), ours)
    assert plan.entries == {("subscriptions", "subscriptions"): theirs}
    assert plan.needs_write


def test_managed_entries_are_read_from_apply_managed_fields_only():
    managed_fields = [
        {
            "manager": "argobridge",
            "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:templates": {"f:template.a": {}}, "f:context": {"f:argocdUrl": {}}}},
        },
        {"manager": "argocd-operator", "operation": "Update", "fieldsV1": {"f:spec": {"f:templates": {"f:x": {}}}}},
    ]
    assert entries_managed_by(managed_fields) == {("templates", "template.a"), ("context", "argocdUrl")}


def test_flatten_builds_the_configmap_the_operator_would():
    data = flatten(
        {"templates": {"template.a": "x"}, "subscriptions": {"subscriptions": "- y\n"}, "context": {"k": "v"}}
    )
    assert data == {"template.a": "x", "subscriptions": "- y\n", "context": "k: v\n"}
