"""The operator against a real kube-apiserver: what a platform engineer sees after `kubectl apply`."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.configplan import plan_config
from argobridge.core.ownership import Ownership
from argobridge.core.render import render_notifications_config
from argobridge.core.spec import GROUP, PLURAL, VERSION, parse_bridge_spec
from argobridge.steps.reconcile import reconcile_bridge
from tests.conftest import wait_for

CM = "argocd-notifications-cm"
SECRET = "argocd-notifications-secret"
BACKSTAGE = "https://backstage.example.com"


def bridge(namespace: str, name: str = "backstage", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BackstageBridge",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"backstage": {"url": BACKSTAGE}, **spec},
    }


def create_bridge(custom: client.CustomObjectsApi, body: dict[str, Any]) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"], PLURAL, body)


def get_bridge(custom: client.CustomObjectsApi, namespace: str, name: str = "backstage") -> dict[str, Any]:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def bridge_gone(custom: client.CustomObjectsApi, namespace: str, name: str = "backstage") -> bool:
    """Whether the bridge is gone (its finalizer done), not merely marked for deletion."""
    try:
        get_bridge(custom, namespace, name)
    except ApiException as error:
        return error.status == 404
    return False


def request_rotation(custom: client.CustomObjectsApi, namespace: str, value: str = "1") -> None:
    """Ask for a token rotation the way a user does: the bridge's rotate-token annotation."""
    annotations = {"metadata": {"annotations": {"argobridge.io/rotate-token": value}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage", annotations)


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return item
    return {}


def wait_ready(
    custom: client.CustomObjectsApi, namespace: str, name: str = "backstage", timeout: float = 30.0
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        body = get_bridge(custom, namespace, name)
        generation = body["metadata"]["generation"]
        ok = condition(body, "Ready").get("status") == "True" and body["status"].get("observedGeneration") == generation
        return body if ok else None

    return wait_for(ready, timeout=timeout, what=f"bridge {namespace}/{name} Ready")


def cm_data(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    try:
        return dict(core.read_namespaced_config_map(CM, namespace).data or {})
    except ApiException as error:
        if error.status == 404:
            return {}
        raise


def expected_keys(namespace: str, **spec: Any) -> dict[str, str]:
    """Everything a bridge writes into an empty ConfigMap: its own keys and its subscription entry."""
    rendered = render_notifications_config(parse_bridge_spec(bridge(namespace, **spec)["spec"]), None)
    return plan_config(None, Ownership.of(namespace, "backstage"), rendered).data


def secret_data(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    raw = core.read_namespaced_secret(SECRET, namespace).data or {}
    return {key: base64.b64decode(value).decode() for key, value in raw.items()}


@pytest.mark.usefixtures("operator")
def test_bridge_writes_exact_keys_and_a_token(core, custom, namespace):
    create_bridge(custom, bridge(namespace))
    body = wait_ready(custom, namespace)

    data = cm_data(core, namespace)
    assert data == expected_keys(namespace), "the ConfigMap holds exactly the rendered keys, no more"
    token = secret_data(core, namespace)["backstage-token"]
    assert len(token) >= 32 and not any(c.isspace() for c in token)
    assert body["status"]["flavor"] == "ArgoCD"
    assert condition(body, "TokenReady")["status"] == "True"
    # kopf posts Events from a queue of its own: the Event can follow the status by a moment.
    generated = wait_for(
        lambda: core.list_namespaced_event(namespace, field_selector="reason=TokenGenerated").items,
        what="the TokenGenerated Event",
    )
    assert len(generated) == 1 and token not in generated[0].message
    assert condition(body, "ConfigApplied")["status"] == "True"
    assert "no Argo CD URL" in condition(body, "ConfigApplied")["message"]


@pytest.mark.usefixtures("operator")
def test_foreign_keys_survive_create_update_and_delete(core, custom, namespace):
    core.replace_namespaced_config_map(
        CM,
        namespace,
        {
            "metadata": {"name": CM},
            "data": {
                "template.my-own": "message: hello",
                "service.slack": "token: $slack-token",
                "context": "environmentName: production\n",
            },
        },
    )
    core.replace_namespaced_secret(
        SECRET, namespace, {"metadata": {"name": SECRET}, "stringData": {"slack-token": "xoxb-1"}}
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "argocd-cm"}, "data": {"url": "https://cd.example.com"}}
    )

    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    data = cm_data(core, namespace)
    assert data["template.my-own"] == "message: hello"
    assert data["service.slack"] == "token: $slack-token"
    assert "environmentName: production" in data["context"]
    assert "argocdUrl: https://cd.example.com" in data["context"], "the URL comes from argocd-cm"
    assert secret_data(core, namespace)["slack-token"] == "xoxb-1"

    # Update: switch off two events; their keys go, foreign keys stay.
    events = [{"event": "SyncFailed", "severity": "critical"}, {"event": "Deployed"}]
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage", {"spec": {"events": events}})
    wait_ready(custom, namespace)
    data = cm_data(core, namespace)
    assert "trigger.on-sync-succeeded-backstage" not in data
    assert "trigger.on-health-degraded-backstage" not in data
    assert '"critical"' in data["template.app-sync-failed-backstage"]
    assert data["template.my-own"] == "message: hello"
    assert data["service.slack"] == "token: $slack-token"

    # Delete: only our keys and our context entry go; the token stays by default.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")
    wait_for(lambda: "service.webhook.backstage" not in cm_data(core, namespace), what="owned keys removed")
    data = cm_data(core, namespace)
    assert data == {
        "template.my-own": "message: hello",
        "service.slack": "token: $slack-token",
        "context": "environmentName: production\n",
    }
    secret = secret_data(core, namespace)
    assert secret["slack-token"] == "xoxb-1" and "backstage-token" in secret


@pytest.mark.usefixtures("operator")
def test_token_deletion_policy_delete_removes_only_our_key(core, custom, namespace):
    core.replace_namespaced_secret(
        SECRET, namespace, {"metadata": {"name": SECRET}, "stringData": {"other": "keep-me"}}
    )
    create_bridge(custom, bridge(namespace, token={"deletionPolicy": "Delete"}))
    wait_ready(custom, namespace)
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")
    wait_for(lambda: "backstage-token" not in secret_data(core, namespace), what="token key removed")
    assert secret_data(core, namespace) == {"other": "keep-me"}


@pytest.mark.usefixtures("operator")
def test_existing_token_is_adopted_not_replaced(core, custom, namespace):
    core.replace_namespaced_secret(
        SECRET,
        namespace,
        {"metadata": {"name": SECRET}, "stringData": {"backstage-token": "a-token-set-by-hand-123"}},
    )
    create_bridge(custom, bridge(namespace))
    body = wait_ready(custom, namespace)
    assert secret_data(core, namespace)["backstage-token"] == "a-token-set-by-hand-123"
    assert condition(body, "TokenReady")["reason"] == "Present"


@pytest.mark.usefixtures("operator")
def test_weak_token_is_reported_and_config_held_back(core, custom, namespace):
    core.replace_namespaced_secret(
        SECRET, namespace, {"metadata": {"name": SECRET}, "stringData": {"backstage-token": "t1ny"}}
    )
    create_bridge(custom, bridge(namespace))

    def reported() -> dict[str, Any] | None:
        body = get_bridge(custom, namespace)
        return body if condition(body, "TokenReady").get("reason") == "InvalidToken" else None

    body = wait_for(reported, what="InvalidToken condition")
    assert condition(body, "Ready")["status"] == "False"
    assert "Delete that key" in condition(body, "TokenReady")["message"]
    assert "t1ny" not in str(body["status"]), "the token value never reaches the status"
    assert cm_data(core, namespace) == {}, "no configuration that would send an unusable token"
    assert secret_data(core, namespace)["backstage-token"] == "t1ny", "the user's value is not overwritten"
    events = wait_for(
        lambda: core.list_namespaced_event(namespace, field_selector="reason=InvalidToken").items,
        what="the InvalidToken Event",
    )
    assert events and all("t1ny" not in event.message for event in events)


@pytest.mark.usefixtures("operator")
def test_idle_reconciles_write_nothing(core, custom, namespace):
    create_bridge(custom, bridge(namespace, argocd={"url": "https://cd.example.com"}))
    wait_ready(custom, namespace)
    time.sleep(1)
    before = (
        core.read_namespaced_config_map(CM, namespace).metadata.resource_version,
        core.read_namespaced_secret(SECRET, namespace).metadata.resource_version,
        get_bridge(custom, namespace)["metadata"]["resourceVersion"],
    )
    for _ in range(3):
        report = reconcile_bridge(get_bridge(custom, namespace))
        assert not report.notices, report.notices
    time.sleep(4)  # and at least one timer-driven reconcile of the running operator (every 3 s here)
    after = (
        core.read_namespaced_config_map(CM, namespace).metadata.resource_version,
        core.read_namespaced_secret(SECRET, namespace).metadata.resource_version,
        get_bridge(custom, namespace)["metadata"]["resourceVersion"],
    )
    assert after == before


@pytest.mark.usefixtures("operator")
def test_edited_and_deleted_owned_keys_are_restored(core, custom, namespace):
    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    expected = cm_data(core, namespace)

    core.patch_namespaced_config_map(CM, namespace, {"data": {"trigger.on-deployed-backstage": "- when: true"}})
    wait_for(lambda: cm_data(core, namespace) == expected, what="edited key restored")

    patch = [{"op": "remove", "path": "/data/service.webhook.backstage"}]
    core.patch_namespaced_config_map(CM, namespace, patch, _content_type="application/json-patch+json")
    wait_for(lambda: cm_data(core, namespace) == expected, what="deleted key restored")

    body = wait_for(
        lambda: (b := get_bridge(custom, namespace))["status"].get("driftRepairs", 0) >= 2 and b,
        what="drift repairs counted",
    )
    assert body["status"]["driftRepairs"] == 2
    reasons = {event.reason for event in core.list_namespaced_event(namespace).items}
    assert "DriftRepaired" in reasons


@pytest.mark.usefixtures("operator")
def test_deleted_token_key_is_generated_again(core, custom, namespace):
    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    first = secret_data(core, namespace)["backstage-token"]
    patch = [{"op": "remove", "path": "/data/backstage-token"}]
    core.patch_namespaced_secret(SECRET, namespace, patch, _content_type="application/json-patch+json")
    second = wait_for(lambda: secret_data(core, namespace).get("backstage-token"), what="token regenerated")
    assert second != first


@pytest.mark.usefixtures("operator")
def test_second_bridge_in_a_namespace_is_reported_as_conflict(core, custom, namespace):
    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    expected = cm_data(core, namespace)
    create_bridge(custom, bridge(namespace, name="another", argocd={"serviceName": "other"}))

    def conflicted() -> dict[str, Any] | None:
        body = get_bridge(custom, namespace, "another")
        return body if condition(body, "Ready").get("reason") == "Conflict" else None

    body = wait_for(conflicted, what="Conflict on the second bridge")
    assert "backstage" in condition(body, "Ready")["message"]
    assert cm_data(core, namespace) == expected


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec.backstage"),
        ({"backstage": {}}, "spec.backstage.url"),
        ({"backstage": {"url": "ftp://backstage"}}, "spec.backstage.url"),
        ({"backstage": {"url": BACKSTAGE}, "events": [{"event": "Exploded"}]}, "spec.events[0].event"),
        (
            {"backstage": {"url": BACKSTAGE}, "events": [{"event": "Deployed", "severity": "urgent"}]},
            "spec.events[0].severity",
        ),
        (
            {"backstage": {"url": BACKSTAGE}, "events": [{"event": "Deployed"}, {"event": "Deployed"}]},
            "spec.events[1]",
        ),
        ({"backstage": {"url": BACKSTAGE}, "token": {"key": "backstage.token"}}, "spec.token.key"),
        (
            {"backstage": {"url": BACKSTAGE}, "argocd": {"serviceName": "back.stage"}},
            "spec.argocd.serviceName",
        ),
        ({"backstage": {"url": BACKSTAGE}, "argocd": {"flavor": "Kind"}}, "spec.argocd.flavor"),
        ({"backstage": {"url": BACKSTAGE}, "argocd": {"url": BACKSTAGE}}, "spec.argocd.url"),
    ],
)
def test_invalid_bridge_is_rejected_at_apply_time_naming_the_field(custom, crds, namespace, spec, field):
    body = bridge(namespace)
    body["spec"] = spec
    with pytest.raises(ApiException) as raised:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert raised.value.status == 422
    assert field in raised.value.body, raised.value.body


@pytest.mark.usefixtures("operator")
def test_users_subscriptions_survive_and_manual_mode_takes_ours_out(core, custom, namespace):
    users = "- recipients: [slack:ops]\n  triggers: [on-sync-failed]\n"
    core.replace_namespaced_config_map(CM, namespace, {"metadata": {"name": CM}, "data": {"subscriptions": users}})
    create_bridge(custom, bridge(namespace, subscriptions={"selector": {"matchLabels": {"team": "shop"}}}))
    wait_ready(custom, namespace)
    entries = yaml.safe_load(cm_data(core, namespace)["subscriptions"])
    assert entries[0] == {"recipients": ["slack:ops"], "triggers": ["on-sync-failed"]}
    assert entries[1]["recipients"] == ["backstage"] and entries[1]["selector"] == "team=shop"
    assert len(entries) == 2

    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "backstage", {"spec": {"subscriptions": {"mode": "Manual"}}}
    )
    wait_for(
        lambda: yaml.safe_load(cm_data(core, namespace)["subscriptions"]) == [yaml.safe_load(users)[0]],
        what="only the user's subscription left",
    )
