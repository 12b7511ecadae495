"""Other people's data in Argo CD's notifications configuration: never taken over, never rewritten, never lost.

Against the real kube-apiserver with the operator running (and the real `argocd` engine reading what was
written). Users write the way they do in real life: `kubectl create`/`edit` (Update managers), by hand.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.ownership import field_manager, marker_line
from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge.kube import configmaps
from argobridge.kube.apply import StaleReadError
from argobridge.steps.reconcile import reconcile_bridge
from tests.conftest import wait_for
from tests.integration.test_bridge_reconcile import (
    CM,
    bridge,
    bridge_gone,
    cm_data,
    condition,
    create_bridge,
    get_bridge,
    wait_ready,
)

pytestmark = pytest.mark.usefixtures("operator")

URL = "https://cd.example.com"
USERS_CONTEXT = "# platform settings: keep as written\na: 1.10\nb: 0755\nc:   yes    # a YAML 1.1 boolean\nd: 12:30\n\n"
LOOK_ALIKE = (
    "# the ops team's own Backstage subscription\n"
    "- recipients: [backstage]\n"
    "  triggers: [on-sync-failed-backstage, on-deployed-backstage]\n"
    "  selector: team=mine\n"
)


def read_cm(core: client.CoreV1Api, namespace: str) -> client.V1ConfigMap:
    return core.read_namespaced_config_map(CM, namespace)


def create_users_cm(core: client.CoreV1Api, namespace: str, data: dict[str, str], manager: str) -> None:
    """The ConfigMap as a user's tool created it (the `namespace` fixture's empty one is replaced)."""
    core.delete_namespaced_config_map(CM, namespace)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": CM}, "data": data}, field_manager=manager)


def delete_bridge(custom: client.CustomObjectsApi, namespace: str, name: str = "backstage") -> None:
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    # kopf handles one object's events in order: the deletion waits for queued updates' reconciles.
    wait_for(lambda: bridge_gone(custom, namespace, name), timeout=120, what="the bridge's finalizer done")


def reason_is(custom: client.CustomObjectsApi, namespace: str, reason: str) -> Any:
    def check() -> dict[str, Any] | None:
        body = get_bridge(custom, namespace)
        return body if condition(body, "ConfigApplied").get("reason") == reason else None

    return wait_for(check, what=f"ConfigApplied reason {reason}")


def events(core: client.CoreV1Api, namespace: str, reason: str) -> list[str]:
    found = core.list_namespaced_event(namespace, field_selector=f"reason={reason}").items
    return [event.message or "" for event in found]


def test_users_webhook_service_of_the_same_name_is_a_conflict_and_stays_byte_identical(core, custom, namespace):
    theirs = {"service.webhook.backstage": "url: https://their-backstage.example.com\n", "template.mine": "m: 1\n"}
    create_users_cm(core, namespace, theirs, "kubectl-create")
    before = read_cm(core, namespace)

    create_bridge(custom, bridge(namespace))
    body = reason_is(custom, namespace, "KeyConflict")
    message = condition(body, "ConfigApplied")["message"]
    assert "service.webhook.backstage" in message and "'kubectl-create' (Update)" in message
    assert "spec.argocd.serviceName" in message and "delete that key" in message
    assert condition(body, "ConfigApplied")["status"] == "False" and condition(body, "Ready")["status"] == "False"
    wait_for(lambda: events(core, namespace, "KeyConflict"), what="a KeyConflict Event")
    after = read_cm(core, namespace)
    assert after.data == theirs, "nothing written, not even the keys that did not conflict"
    assert after.metadata.resource_version == before.metadata.resource_version

    delete_bridge(custom, namespace)
    assert read_cm(core, namespace).data == theirs, "deleting the bridge takes nothing of theirs"


def test_renaming_our_service_as_the_conflict_says_keeps_theirs_and_applies_ours(core, custom, namespace):
    theirs = {"service.webhook.backstage": "url: https://their-backstage.example.com\n"}
    create_users_cm(core, namespace, theirs, "kubectl-create")
    create_bridge(custom, bridge(namespace))
    reason_is(custom, namespace, "KeyConflict")

    patch = {"spec": {"argocd": {"serviceName": "backstage-bridge"}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage", patch)
    wait_ready(custom, namespace)
    data = cm_data(core, namespace)
    assert data["service.webhook.backstage"] == theirs["service.webhook.backstage"]
    assert "service.webhook.backstage-bridge" in data
    delete_bridge(custom, namespace)
    assert cm_data(core, namespace) == theirs


def test_users_context_stays_byte_identical_except_our_line_and_the_engine_reads_both(core, custom, namespace):
    from argobridge_dev.engine import OfflineEngine
    from tests.contract.test_engine_contract import app

    probe = "message: '{{.context.a}} {{.context.b}} {{.context.c}} {{.context.d}} {{.context.argocdUrl}}'\n"
    create_users_cm(core, namespace, {"context": USERS_CONTEXT, "template.ctx-probe": probe}, "kubectl-edit")
    ours = f"{marker_line(f'{namespace}/backstage')}\nargocdUrl: {URL}\n"

    create_bridge(custom, bridge(namespace, argocd={"url": URL}))
    wait_ready(custom, namespace)
    data = cm_data(core, namespace)
    assert data["context"] == USERS_CONTEXT + ours
    secret = {"backstage-token": "fault-test-token"}
    before = OfflineEngine({"context": USERS_CONTEXT, "template.ctx-probe": probe}, secret).notify("ctx-probe", app())
    after = OfflineEngine(data, secret).notify("ctx-probe", app())
    # Argo CD reads the users' values exactly as it did before ArgoBridge came (its YAML reads `12:30` as the
    # string it is, where a PyYAML round trip wrote 750), and our line beside them.
    assert after["message"] == before["message"].replace("<no value>", URL)
    assert after["message"].endswith(f" 12:30 {URL}")

    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "backstage", {"spec": {"argocd": {"url": "https://cd2.example.com"}}}
    )
    wait_for(
        lambda: cm_data(core, namespace)["context"] == USERS_CONTEXT + ours.replace(URL, "https://cd2.example.com"),
        what="only our line changed",
    )
    delete_bridge(custom, namespace)
    assert cm_data(core, namespace) == {"context": USERS_CONTEXT, "template.ctx-probe": probe}


def test_users_own_argocd_url_in_context_is_a_conflict_not_a_takeover(core, custom, namespace):
    theirs = {"context": "argocdUrl: https://their-argocd.example.com\n"}
    create_users_cm(core, namespace, theirs, "kubectl-create")
    create_bridge(custom, bridge(namespace, argocd={"url": URL}))
    body = reason_is(custom, namespace, "KeyConflict")
    assert "context.argocdUrl" in condition(body, "ConfigApplied")["message"]
    assert cm_data(core, namespace) == theirs
    delete_bridge(custom, namespace)
    assert cm_data(core, namespace) == theirs


def test_users_look_alike_subscription_survives_create_update_and_delete(core, custom, namespace):
    create_users_cm(core, namespace, {"subscriptions": LOOK_ALIKE}, "kubectl-create")
    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    text = cm_data(core, namespace)["subscriptions"]
    assert text.startswith(LOOK_ALIKE)
    assert f"{marker_line(f'{namespace}/backstage')}\n- recipients:" in text
    assert len(yaml.safe_load(text)) == 2

    patch = {"spec": {"subscriptions": {"selector": {"matchLabels": {"team": "shop"}}}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage", patch)
    wait_for(lambda: "team=shop" in cm_data(core, namespace)["subscriptions"], what="our entry updated")
    assert cm_data(core, namespace)["subscriptions"].startswith(LOOK_ALIKE)
    assert len(yaml.safe_load(cm_data(core, namespace)["subscriptions"])) == 2

    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "backstage", {"spec": {"subscriptions": {"mode": "Manual"}}}
    )
    wait_for(lambda: cm_data(core, namespace)["subscriptions"] == LOOK_ALIKE, what="only ours taken out")
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "backstage", {"spec": {"subscriptions": {"mode": "Global"}}}
    )
    wait_for(lambda: len(yaml.safe_load(cm_data(core, namespace)["subscriptions"])) == 2, what="ours back")
    delete_bridge(custom, namespace)
    assert cm_data(core, namespace) == {"subscriptions": LOOK_ALIKE}


PARKED = {"argobridge.io/shard": "parked-by-a-test"}  # the running operator leaves this bridge alone


def parked_bridge(custom: client.CustomObjectsApi, namespace: str, **spec: Any) -> dict[str, Any]:
    body = bridge(namespace, **spec)
    body["metadata"]["labels"] = dict(PARKED)
    create_bridge(custom, body)
    return get_bridge(custom, namespace)


def test_a_users_edit_between_our_read_and_our_apply_is_not_lost(core, custom, namespace, monkeypatch, figures):
    create_users_cm(core, namespace, {"context": "env: prod\n"}, "kubectl-create")
    body = parked_bridge(custom, namespace, argocd={"url": URL})
    reads: list[str] = []
    real_read = configmaps.read_config_map

    def read_then_user_edits(ns: str, name: str) -> configmaps.ObservedConfigMap:
        observed = real_read(ns, name)
        if ns != namespace:
            return observed  # the running operator's reconciles of other tests' bridges
        reads.append(str(observed.resource_version))
        if len(reads) == 1:  # the user saves `kubectl edit` right after our read, before our apply
            core.patch_namespaced_config_map(
                CM, namespace, {"data": {"context": "env: prod\nregion: eu-1\n"}}, field_manager="kubectl-edit"
            )
        return observed

    monkeypatch.setattr(configmaps, "read_config_map", read_then_user_edits)
    report = reconcile_bridge(body)
    assert [c.reason for c in report.conditions if c.type == "ConfigApplied"] == ["Applied"]
    context = cm_data(core, namespace)["context"]
    assert context == f"env: prod\nregion: eu-1\n{marker_line(f'{namespace}/backstage')}\nargocdUrl: {URL}\n"
    assert len(reads) == 2, "the first apply was refused on its stale resourceVersion, then re-read and re-planned"
    figures.append(f"race on `context`: {len(reads)} reads, the user's line kept")


def test_a_users_key_created_between_our_read_and_our_apply_is_a_conflict_not_a_takeover(
    core, custom, namespace, monkeypatch
):
    create_users_cm(core, namespace, {"template.mine": "m: 1\n"}, "kubectl-create")
    body = parked_bridge(custom, namespace)
    real_read = configmaps.read_config_map
    raced: list[bool] = []
    theirs = {"template.mine": "m: 1\n", "service.webhook.backstage": "url: https://theirs\n"}

    def read_then_user_adds_the_key(ns: str, name: str) -> configmaps.ObservedConfigMap:
        observed = real_read(ns, name)
        if ns == namespace and not raced:
            raced.append(True)
            core.patch_namespaced_config_map(CM, namespace, {"data": theirs}, field_manager="kubectl-edit")
        return observed

    monkeypatch.setattr(configmaps, "read_config_map", read_then_user_adds_the_key)
    report = reconcile_bridge(body)
    applied = [c for c in report.conditions if c.type == "ConfigApplied"]
    assert [c.reason for c in applied] == ["KeyConflict"]
    assert "service.webhook.backstage" in applied[0].message and "kubectl-edit" in applied[0].message
    assert cm_data(core, namespace) == theirs, "nothing of ours was written"


def test_the_apiserver_refuses_an_apply_on_a_stale_resource_version(core, namespace):
    create_users_cm(core, namespace, {"context": "env: prod\n"}, "kubectl-create")
    stale = read_cm(core, namespace).metadata.resource_version
    core.patch_namespaced_config_map(CM, namespace, {"data": {"context": "env: staging\n"}})
    with pytest.raises(StaleReadError):
        configmaps.apply_config_map_data(
            namespace, CM, {"context": "env: prod\nargocdUrl: x\n"}, "argobridge/t/x", stale, force=True
        )
    assert cm_data(core, namespace) == {"context": "env: staging\n"}


def test_concurrent_user_edits_during_reconciles_are_all_kept(core, custom, namespace):
    """A user appends lines to `context` in a loop while the operator keeps applying: none is lost."""
    create_users_cm(core, namespace, {"context": "n0: 0\n"}, "kubectl-create")
    create_bridge(custom, bridge(namespace, argocd={"url": URL}))
    wait_ready(custom, namespace)

    def user() -> None:
        for number in range(1, 16):
            for _ in range(20):
                cm = read_cm(core, namespace)
                cm.data["context"] = cm.data["context"] + f"n{number}: {number}\n"
                try:
                    core.replace_namespaced_config_map(CM, namespace, cm, field_manager="kubectl-edit")
                    break
                except ApiException as error:
                    if error.status != 409:
                        raise
            # each edit triggers a reconcile through the ConfigMap watch, racing the next edit

    editor = threading.Thread(target=user)
    editor.start()
    editor.join()
    expected = {f"n{number}": number for number in range(16)} | {"argocdUrl": URL}
    wait_for(lambda: yaml.safe_load(cm_data(core, namespace)["context"]) == expected, what="every line kept")


def test_legacy_argobridge_manager_is_taken_over_once_and_released(core, custom, namespace):
    from argobridge.core.render import render_notifications_config
    from argobridge.core.spec import parse_bridge_spec

    spec = {"argocd": {"url": URL}}
    rendered = render_notifications_config(parse_bridge_spec(bridge(namespace, **spec)["spec"]), URL)
    users_sub = "- recipients: [slack:ops]\n  triggers: [on-sync-failed]\n"
    legacy = {
        **rendered.owned,
        "trigger.on-sync-running-backstage": "- when: 'false'\n  send: [x]\n",  # a key it no longer renders
        "context": f"argocdUrl: {URL}\nenv: prod\n",
        "subscriptions": users_sub + yaml.safe_dump(list(rendered.subscriptions), sort_keys=False),
    }
    core.patch_namespaced_config_map(
        CM,
        namespace,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CM, "namespace": namespace}, "data": legacy},
        field_manager="argobridge",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    # The bridge as the previous version left it: its status says which argocdUrl it wrote.
    parked_bridge(custom, namespace, **spec)
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "backstage", {"status": {"argocdUrl": URL}}
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "backstage", {"metadata": {"labels": {"argobridge.io/shard": None}}}
    )
    wait_ready(custom, namespace)
    cm = read_cm(core, namespace)
    managers = {entry.manager for entry in cm.metadata.managed_fields}
    assert "argobridge" not in managers and field_manager(namespace, "backstage") in managers
    mark = marker_line(f"{namespace}/backstage")
    assert cm.data["context"] == f"{mark}\nargocdUrl: {URL}\nenv: prod\n"
    assert cm.data["subscriptions"].startswith(users_sub)
    assert yaml.safe_load(cm.data["subscriptions"]) == [yaml.safe_load(users_sub)[0], *rendered.subscriptions]
    assert "trigger.on-sync-running-backstage" not in cm.data
    delete_bridge(custom, namespace)
    assert cm_data(core, namespace) == {"context": "env: prod\n", "subscriptions": users_sub}


def test_deleting_a_bridge_with_an_unreadable_shared_key_finishes_and_says_so(core, custom, namespace):
    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    ours = cm_data(core, namespace)["subscriptions"]
    broken = "- recipients: [slack:ops\n"  # a user's unclosed bracket
    core.patch_namespaced_config_map(CM, namespace, {"data": {"subscriptions": broken + ours}})
    wait_for(
        lambda: condition(get_bridge(custom, namespace), "ConfigApplied").get("reason") == "UnreadableConfig",
        what="UnreadableConfig",
    )
    delete_bridge(custom, namespace)
    assert cm_data(core, namespace) == {"subscriptions": broken}
    messages = events(core, namespace, "UnreadableConfig")
    assert any("`subscriptions` key" in message and "took out only its own" in message for message in messages)


# --- OpenShift GitOps flavor: the NotificationsConfiguration, with the real Argo CD operator ---


def patch_nc(custom: client.CustomObjectsApi, namespace: str, spec: dict[str, Any], manager: str) -> None:
    from tests.integration.test_openshift_gitops import NC

    custom.patch_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "notificationsconfigurations", NC, {"spec": spec}, field_manager=manager
    )


def test_a_second_bridge_takes_over_cleanly_when_the_first_goes(core, custom, namespace):
    """Per-bridge field managers: the first bridge's deletion takes only its own fields, the second applies its own."""
    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    create_bridge(custom, bridge(namespace, name="successor", argocd={"url": URL}))
    wait_for(
        lambda: condition(get_bridge(custom, namespace, "successor"), "Ready").get("reason") == "Conflict",
        what="the second bridge waiting its turn",
    )
    delete_bridge(custom, namespace)
    wait_ready(custom, namespace, "successor")
    cm = read_cm(core, namespace)
    managers = {entry.manager for entry in cm.metadata.managed_fields if (entry.fields_v1 or {}).get("f:data")}
    assert managers == {field_manager(namespace, "successor")}
    assert cm.data["context"] == f"{marker_line(f'{namespace}/successor')}\nargocdUrl: {URL}\n"
    assert marker_line(f"{namespace}/backstage") not in cm.data.get("subscriptions", "")


@pytest.mark.usefixtures("argocd_operator")
def test_gitops_users_entry_of_the_same_name_is_a_conflict_and_the_resource_stays_as_it_was(core, custom, namespace):
    from tests.integration.test_openshift_gitops import gitops_namespace, read_nc

    gitops_namespace(core, custom, namespace)
    patch_nc(custom, namespace, {"services": {"service.webhook.backstage": "url: https://theirs\n"}}, "kubectl-edit")
    before = read_nc(custom, namespace)
    create_bridge(custom, bridge(namespace))
    body = reason_is(custom, namespace, "KeyConflict")
    message = condition(body, "ConfigApplied")["message"]
    assert "services.service.webhook.backstage" in message and "'kubectl-edit' (Update)" in message
    after = read_nc(custom, namespace)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    delete_bridge(custom, namespace)
    assert read_nc(custom, namespace)["spec"] == before["spec"]


@pytest.mark.usefixtures("argocd_operator")
def test_gitops_look_alike_subscription_survives_and_our_marker_survives_the_operators_copy(core, custom, namespace):
    from argobridge_dev.engine import OfflineEngine
    from tests.contract.test_engine_contract import app
    from tests.integration.test_openshift_gitops import gitops_namespace, read_cm, read_nc

    gitops_namespace(core, custom, namespace)
    patch_nc(custom, namespace, {"subscriptions": {"subscriptions": LOOK_ALIKE}}, "kubectl-edit")
    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    text = read_nc(custom, namespace)["spec"]["subscriptions"]["subscriptions"]
    assert text.startswith(LOOK_ALIKE) and marker_line(f"{namespace}/backstage") in text
    data = wait_for(
        lambda: (cm := read_cm(core, namespace)) and (cm.data or {}).get("subscriptions") == text and cm.data,
        what="the operator copying the subscriptions text, marker and all",
    )
    # The engine parses the whole configuration (subscriptions included) before it renders anything.
    body = OfflineEngine(data, {"backstage-token": "fault-test-token"}).webhook_body("app-deployed-backstage", app())
    assert '"topic":"argocd.deployed"' in body.replace(" ", "")

    delete_bridge(custom, namespace)
    assert read_nc(custom, namespace)["spec"]["subscriptions"]["subscriptions"] == LOOK_ALIKE
