"""OpenShift GitOps flavor against the real Argo CD operator: ArgoBridge writes the NotificationsConfiguration,
the operator turns it into argocd-notifications-cm, and nothing ArgoBridge does fights the operator."""

from __future__ import annotations

import base64
import json
import shlex
import time
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.render import render_notifications_config
from argobridge.core.resourceplan import flatten
from argobridge.core.spec import parse_bridge_spec
from argobridge_dev.argocd_install import install_argocd_objects
from tests.conftest import wait_for
from tests.integration.test_bridge_reconcile import bridge, condition, create_bridge, get_bridge, wait_ready

CM = "argocd-notifications-cm"
SECRET = "argocd-notifications-secret"
NC = "default-notifications-configuration"
ARGOCD = "gitops"
HOST = "argocd.apps.example.com"
# How long to wait for the Argo CD operator's own work. It runs one worker for every ArgoCD resource of
# the suite (namespaces never finish terminating without a controller manager) and backs off after errors,
# so on a loaded 2-core machine its turn can take well over 30 s; ArgoBridge's own reactions keep 30 s.
OPERATOR_PACE = 120.0

pytestmark = pytest.mark.usefixtures("operator", "argocd_operator")


def create_argocd(custom: client.CustomObjectsApi, namespace: str, notifications: bool = True) -> None:
    """An `ArgoCD` resource as a platform team writes it: notifications on, the server published by a Route."""
    body = {
        "apiVersion": "argoproj.io/v1beta1",
        "kind": "ArgoCD",
        "metadata": {"name": ARGOCD, "namespace": namespace},
        "spec": {"notifications": {"enabled": notifications}, "server": {"host": HOST, "route": {"enabled": True}}},
    }
    custom.create_namespaced_custom_object("argoproj.io", "v1beta1", namespace, "argocds", body)


def read_nc(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any] | None:
    try:
        return custom.get_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "notificationsconfigurations", NC
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def read_cm(core: client.CoreV1Api, namespace: str) -> client.V1ConfigMap | None:
    try:
        return core.read_namespaced_config_map(CM, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def token(core: client.CoreV1Api, namespace: str) -> str | None:
    try:
        data = core.read_namespaced_secret(SECRET, namespace).data or {}
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    value = data.get("backstage-token")
    return base64.b64decode(value).decode() if value else None


def ours(namespace: str, url: str | None = f"https://{HOST}") -> dict[str, str]:
    """Every ConfigMap key the bridge stands for (our keys, our argocdUrl)."""
    return render_notifications_config(parse_bridge_spec(bridge(namespace)["spec"]), url).owned


@pytest.fixture
def namespace(bare_namespace: str) -> str:
    """Here the Argo CD operator is the install: it creates (and owns, so it reverts edits of) the ConfigMap
    and the Secret itself, so the namespace starts bare."""
    return bare_namespace


def gitops_namespace(core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    """An Argo CD namespace managed by the operator, up to the moment its NotificationsConfiguration exists."""
    create_argocd(custom, namespace)
    return wait_for(
        lambda: read_nc(custom, namespace), timeout=OPERATOR_PACE, what="the operator's NotificationsConfiguration"
    )


def test_detects_gitops_and_writes_through_the_resource_which_the_operator_copies(core, custom, namespace):
    nc = gitops_namespace(core, custom, namespace)
    users_templates = dict(nc["spec"]["templates"])  # the operator's catalog, now the users' to keep
    custom.patch_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        namespace,
        "notificationsconfigurations",
        NC,
        {"spec": {"templates": {"template.mine": "message: mine\n"}}},
    )
    create_bridge(custom, bridge(namespace))
    body = wait_ready(custom, namespace)
    assert body["status"]["flavor"] == "OpenShiftGitOps"
    assert body["status"]["notificationsConfiguration"] == NC
    assert body["status"]["argocdUrl"] == f"https://{HOST}"  # from the operator's server Route (reencrypt)

    spec = read_nc(custom, namespace)["spec"]
    flat = flatten(spec)
    for key, value in ours(namespace).items():
        assert flat[key] == value
    assert spec["context"]["argocdUrl"] == f"https://{HOST}"
    assert spec["templates"]["template.mine"] == "message: mine\n"
    for key, value in users_templates.items():
        assert spec["templates"][key] == value

    def copied() -> dict[str, str] | None:
        cm = read_cm(core, namespace)
        data = dict((cm.data if cm else None) or {})
        return data if all(data.get(key) == value for key, value in ours(namespace).items()) else None

    data = wait_for(copied, timeout=OPERATOR_PACE, what="the operator copying our keys into the ConfigMap")
    assert yaml.safe_load(data["context"])["argocdUrl"] == f"https://{HOST}"
    assert data["template.mine"] == "message: mine\n"
    subscriptions = yaml.safe_load(data["subscriptions"])
    assert {"recipients": ["backstage"]}.items() <= subscriptions[0].items()
    managers = {entry.manager for entry in read_cm(core, namespace).metadata.managed_fields or []}
    assert "argobridge" not in managers  # the ConfigMap is the operator's; ArgoBridge never wrote it


def test_without_an_argocd_resource_the_namespace_is_plain_argocd(core, custom, namespace):
    install_argocd_objects(core, namespace)  # a plain Argo CD's install
    create_bridge(custom, bridge(namespace))
    body = wait_ready(custom, namespace)
    assert body["status"]["flavor"] == "ArgoCD"
    assert "notificationsConfiguration" not in body["status"]
    assert read_nc(custom, namespace) is None
    assert read_cm(core, namespace).data["service.webhook.backstage"] == ours(namespace)["service.webhook.backstage"]


def test_hand_edit_of_the_configmap_is_reverted_by_the_operator_not_by_argobridge(core, custom, namespace):
    gitops_namespace(core, custom, namespace)
    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    key = "template.app-sync-failed-backstage"
    wait_for(lambda: (read_cm(core, namespace).data or {}).get(key) == ours(namespace)[key], what="key copied")
    core.patch_namespaced_config_map(CM, namespace, {"data": {key: "message: edited by hand\n"}})
    wait_for(
        lambda: (read_cm(core, namespace).data or {}).get(key) == ours(namespace)[key],
        what="the operator putting the key back",
    )
    managers = {entry.manager for entry in read_cm(core, namespace).metadata.managed_fields or []}
    assert "argobridge" not in managers


def test_unsafe_context_value_is_refused_with_a_condition(custom, core, namespace):
    gitops_namespace(core, custom, namespace)
    create_bridge(custom, bridge(namespace, argocd={"url": "https://argocd.example.com/a:"}))
    body = wait_for(
        lambda: (
            (b := get_bridge(custom, namespace))
            and condition(b, "ConfigApplied").get("reason") == "UnsafeContext"
            and b
        ),
        what="UnsafeContext condition",
    )
    assert "unquoted" in condition(body, "ConfigApplied")["message"]
    spec = read_nc(custom, namespace)["spec"]
    assert "argocdUrl" not in (spec.get("context") or {})
    assert not any(key.endswith("-backstage") for key in spec.get("templates") or {})


def test_disabled_notifications_give_the_exact_patch_and_the_token_comes_back(core, custom, namespace):
    gitops_namespace(core, custom, namespace)
    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    first = wait_for(lambda: token(core, namespace), what="token")

    off = {"spec": {"notifications": {"enabled": False}}}
    custom.patch_namespaced_custom_object("argoproj.io", "v1beta1", namespace, "argocds", ARGOCD, off)
    wait_for(
        lambda: token(core, namespace) is None,
        timeout=OPERATOR_PACE,
        what="the operator deleting argocd-notifications-secret",
    )
    # v0.18.0 deletes the resource too, but only from a predicate that runs once and logs its error, or
    # from a reconcile that may back off for minutes: seen kept for over 120 s on a loaded machine. So
    # whether it is gone is noted, and ArgoBridge must never re-create it either way.
    deleted = read_nc(custom, namespace) is None
    body = wait_for(
        lambda: (
            (b := get_bridge(custom, namespace))
            and condition(b, "ConfigApplied").get("reason") == "NotificationsDisabled"
            and b
        ),
        what="NotificationsDisabled condition",
    )
    assert condition(body, "Ready")["status"] == "False"
    message = condition(body, "ConfigApplied")["message"]
    command = shlex.split(message.split("Enable them with: ", 1)[1])
    assert command[:4] == ["kubectl", "patch", "argocds.argoproj.io", ARGOCD]
    assert token(core, namespace) is None  # ArgoBridge does not fight the operator over the Secret
    if deleted:
        assert read_nc(custom, namespace) is None  # and nobody re-created it
    argocd = custom.get_namespaced_custom_object("argoproj.io", "v1beta1", namespace, "argocds", ARGOCD)
    assert argocd["spec"]["notifications"] == {"enabled": False}  # and never edits the ArgoCD resource

    # Apply exactly the patch the message gives, as the user would.
    patch = json.loads(command[command.index("-p") + 1])
    assert command[command.index("--type") + 1] == "merge"
    custom.patch_namespaced_custom_object("argoproj.io", "v1beta1", namespace, "argocds", ARGOCD, patch)
    wait_ready(custom, namespace, timeout=OPERATOR_PACE)  # after the operator re-creates the resource
    assert wait_for(lambda: token(core, namespace), what="token back") == first
    spec = wait_for(lambda: (nc := read_nc(custom, namespace)) and nc["spec"], what="NotificationsConfiguration")
    assert "template.app-created" in spec["templates"]  # re-created with the operator's default catalog
    assert flatten(spec)["service.webhook.backstage"] == ours(namespace)["service.webhook.backstage"]
    events = wait_for(
        lambda: core.list_namespaced_event(namespace, field_selector="reason=TokenRestored").items,
        what="the TokenRestored Event",
    )
    assert events and all(first not in (event.message or "") for event in events)


def test_our_entry_removed_from_the_resource_is_put_back_and_reported(core, custom, namespace):
    gitops_namespace(core, custom, namespace)
    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    key = "template.app-deployed-backstage"
    patch = [{"op": "remove", "path": f"/spec/templates/{key}"}]
    custom.patch_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        namespace,
        "notificationsconfigurations",
        NC,
        patch,
        _content_type="application/json-patch+json",
    )
    wait_for(lambda: (read_nc(custom, namespace)["spec"]["templates"]).get(key) == ours(namespace)[key], what="repair")
    events = wait_for(
        lambda: core.list_namespaced_event(namespace, field_selector="reason=DriftRepaired").items, what="event"
    )
    assert key in events[0].message
    assert get_bridge(custom, namespace)["status"]["driftRepairs"] >= 1


def test_explicit_flavor_without_the_resource_waits_and_says_why(core, custom, namespace):
    install_argocd_objects(core, namespace)  # Argo CD's Secret is there, its NotificationsConfiguration is not
    create_bridge(custom, bridge(namespace, argocd={"flavor": "OpenShiftGitOps"}))
    body = wait_for(
        lambda: (
            (b := get_bridge(custom, namespace))
            and condition(b, "ConfigApplied").get("reason") == "WaitingForNotificationsConfiguration"
            and b
        ),
        what="waiting condition",
    )
    assert body["status"]["flavor"] == "OpenShiftGitOps"
    assert NC in condition(body, "ConfigApplied")["message"]
    assert read_nc(custom, namespace) is None  # ArgoBridge does not create it in the operator's place


def test_what_the_operator_does_to_the_configmap_as_the_readme_says(core, custom, namespace, figures):
    """The operator's own behaviour, which the flavor relies on (and the README's table states)."""

    def patch_nc(spec: dict[str, Any]) -> None:
        custom.patch_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "notificationsconfigurations", NC, {"spec": spec}
        )

    def data() -> dict[str, str]:
        return dict(read_cm(core, namespace).data or {})

    gitops_namespace(core, custom, namespace)
    wait_for(lambda: read_cm(core, namespace), timeout=OPERATOR_PACE, what="ConfigMap created by the operator")
    # With an empty `context` its change check always says "changed": every event rewrites the whole data.
    core.patch_namespaced_config_map(CM, namespace, {"data": {"template.by-hand": "message: x\n"}})
    wait_for(lambda: "template.by-hand" not in data(), what="the operator dropping a foreign key at once")

    patch_nc({"context": {"environmentName": "prod"}})
    wait_for(lambda: data().get("context") == "environmentName: prod\n", what="context copied, unquoted")
    core.patch_namespaced_config_map(CM, namespace, {"data": {"template.by-hand": "message: x\n"}})
    time.sleep(3)
    assert "template.by-hand" in data()  # with a context, a foreign key alone is left...

    started = time.monotonic()
    patch_nc({"templates": {"template.mine": "message: mine\n"}})
    wait_for(lambda: "template.mine" in data(), interval=0.05, what="rewrite")
    figures.append(
        f"Argo CD operator: NotificationsConfiguration change to ConfigMap {time.monotonic() - started:.2f}s"
    )
    assert "template.by-hand" not in data()  # ...until the next rewrite replaces the whole data


def test_deleting_the_bridge_takes_only_our_entries_out_of_the_resource(core, custom, namespace):
    gitops_namespace(core, custom, namespace)
    theirs = {"recipients": ["slack:ops"], "triggers": ["on-sync-failed"]}
    patch = {
        "spec": {"subscriptions": {"subscriptions": yaml.safe_dump([theirs])}, "templates": {"template.mine": "m"}}
    }
    custom.patch_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "notificationsconfigurations", NC, patch
    )
    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    assert len(yaml.safe_load(read_nc(custom, namespace)["spec"]["subscriptions"]["subscriptions"])) == 2

    custom.delete_namespaced_custom_object("argobridge.io", "v1alpha1", namespace, "backstagebridges", "backstage")
    spec = wait_for(
        lambda: (
            (s := read_nc(custom, namespace)["spec"]) and "service.webhook.backstage" not in s.get("services", {}) and s
        ),
        what="our entries removed",
    )
    assert not any(key.endswith("-backstage") for key in [*spec["templates"], *spec.get("triggers", {})])
    assert "argocdUrl" not in (spec.get("context") or {})
    assert spec["templates"]["template.mine"] == "m"
    assert "template.app-created" in spec["templates"]
    assert yaml.safe_load(spec["subscriptions"]["subscriptions"]) == [theirs]


def test_the_operator_maps_any_notifications_configuration_even_without_an_argocd_resource(core, custom, namespace):
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "NotificationsConfiguration",
        "metadata": {"name": "team-config", "namespace": namespace},
        "spec": {"templates": {"template.mine": "message: mine\n"}},
    }
    custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "notificationsconfigurations", body)
    install_argocd_objects(core, namespace)  # no ArgoCD resource to create them: an install of Argo CD's own
    argocd = {"flavor": "OpenShiftGitOps", "notificationsConfiguration": "team-config", "url": "https://cd.example.com"}
    create_bridge(custom, bridge(namespace, argocd=argocd))
    status = wait_ready(custom, namespace)["status"]
    assert (status["flavor"], status["notificationsConfiguration"]) == ("OpenShiftGitOps", "team-config")
    key = "service.webhook.backstage"
    data = wait_for(lambda: (cm := read_cm(core, namespace)) and key in (cm.data or {}) and cm.data, what="mapped")
    assert data[key] == ours(namespace, "https://cd.example.com")[key]
    assert data["template.mine"] == "message: mine\n"
