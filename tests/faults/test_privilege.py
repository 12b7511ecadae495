"""Least privilege, against the real apiserver with the operator running: a bridge cannot make the operator
read or send a Secret it has no business with, never creates Argo CD's objects, and the chart's rules
grant Secrets and ConfigMaps by name only."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge.kube import configmaps, secrets
from argobridge.kube.errors import ArgoCDObjectMissing, KubeError
from argobridge_dev.argocd_install import install_argocd_objects
from argobridge_dev.chart import INSTALL_MANIFEST
from tests.conftest import wait_for

CM = "argocd-notifications-cm"
SECRET = "argocd-notifications-secret"
BACKUP = "argocd-notifications-secret-argobridge"


def bridge(namespace: str, backstage: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BackstageBridge",
        "metadata": {"name": "backstage", "namespace": namespace},
        "spec": {"backstage": backstage or {"url": "https://backstage.example.com"}, **spec},
    }


def create(custom: client.CustomObjectsApi, body: dict[str, Any]) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"], PLURAL, body)


def refusal(custom: client.CustomObjectsApi, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as refused:
        create(custom, body)
    assert refused.value.status == 422
    return str(refused.value.body)


def conditions(custom: client.CustomObjectsApi, namespace: str) -> dict[str, dict[str, Any]]:
    body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}


def exists(read: Any, name: str, namespace: str) -> bool:
    try:
        read(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


# --- the token lives in Argo CD's Secret, and no value reaches another Secret through `$` ---------------


@pytest.mark.usefixtures("crds")
def test_bridge_naming_another_secret_for_its_token_is_refused_by_the_schema(custom, namespace, core):
    core.create_namespaced_secret(namespace, {"metadata": {"name": "db-credentials"}, "stringData": {"pw": "x" * 20}})
    message = refusal(custom, bridge(namespace, token={"secretName": "db-credentials", "key": "pw"}))
    assert "spec.token.secretName must be argocd-notifications-secret" in message
    assert "x" * 20 not in message


@pytest.mark.usefixtures("operator")
def test_bridge_naming_argocds_secret_explicitly_still_applies(custom, namespace):
    create(custom, bridge(namespace, token={"secretName": SECRET}))
    ready = wait_for(lambda: conditions(custom, namespace).get("ConfigApplied", {}).get("status") == "True")
    assert ready


@pytest.mark.parametrize(
    ("backstage", "field"),
    [
        ({"url": "https://x.example/$slack-token"}, "spec.backstage.url"),
        ({"url": "https://$slack-token.example"}, "spec.backstage.url"),
        (
            {"url": "https://x.example", "notificationsPath": "/api/notifications/$slack-token"},
            "spec.backstage.notificationsPath",
        ),
    ],
    ids=["url-path", "url-host", "notifications-path"],
)
@pytest.mark.usefixtures("crds")
def test_dollar_in_a_value_of_the_webhook_service_is_refused_by_the_schema(custom, namespace, backstage, field):
    message = refusal(custom, bridge(namespace, backstage))
    assert f"{field} must not contain $" in message


@pytest.mark.usefixtures("operator")
def test_token_key_that_another_service_reads_is_refused_with_a_condition(core, custom, namespace):
    slack = "xoxb-slack-credential-of-another-team"
    core.replace_namespaced_secret(
        SECRET, namespace, {"metadata": {"name": SECRET}, "stringData": {"slack-token": slack}}
    )
    core.replace_namespaced_config_map(
        CM, namespace, {"metadata": {"name": CM}, "data": {"service.slack": "token: $slack-token"}}
    )
    create(custom, bridge(namespace, token={"key": "slack-token"}))

    def refused() -> dict[str, Any] | None:
        token = conditions(custom, namespace).get("TokenReady", {})
        return token if token.get("reason") == "KeyInUse" else None

    token = wait_for(refused, what="TokenReady KeyInUse")
    assert "service.slack" in token["message"] and "choose a key of ArgoBridge's own" in token["message"]
    assert conditions(custom, namespace)["ConfigApplied"]["reason"] == "KeyInUse"
    assert core.read_namespaced_config_map(CM, namespace).data == {"service.slack": "token: $slack-token"}
    body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")
    events = " ".join(e.message for e in core.list_namespaced_event(namespace).items)
    assert slack not in str(body) and slack not in events


# --- Argo CD's objects: waited for, never created -------------------------------------------------------


@pytest.mark.usefixtures("operator")
def test_missing_configmap_and_secret_give_a_condition_and_nothing_is_created(core, custom, bare_namespace):
    namespace = bare_namespace
    create(custom, bridge(namespace))

    def waiting() -> dict[str, dict[str, Any]] | None:
        found = conditions(custom, namespace)
        return found if found.get("ConfigApplied", {}).get("reason") == "WaitingForArgoCD" else None

    found = wait_for(waiting, what="ConfigApplied WaitingForArgoCD")
    message = found["ConfigApplied"]["message"]
    assert f"ConfigMap {namespace}/{CM} does not exist" in message and "Argo CD's install creates it" in message
    assert found["TokenReady"]["reason"] == "WaitingForArgoCD" and found["Ready"]["status"] == "False"
    wait_for(
        lambda: any(e.reason == "WaitingForArgoCD" for e in core.list_namespaced_event(namespace).items),
        what="a WaitingForArgoCD Event",
    )
    assert not exists(core.read_namespaced_config_map, CM, namespace)
    assert not exists(core.read_namespaced_secret, SECRET, namespace)
    assert not exists(core.read_namespaced_secret, BACKUP, namespace)

    # Argo CD's install arrives: the watch by name notices, the bridge goes ahead without a restart.
    install_argocd_objects(core, namespace)
    wait_for(
        lambda: conditions(custom, namespace).get("ConfigApplied", {}).get("status") == "True",
        what="ConfigApplied once Argo CD's objects exist",
    )
    assert "service.webhook.backstage" in (core.read_namespaced_config_map(CM, namespace).data or {})
    assert "backstage-token" in (core.read_namespaced_secret(SECRET, namespace).data or {})


@pytest.mark.usefixtures("operator")
def test_missing_secret_alone_holds_everything_back_and_the_configmap_is_untouched(core, custom, bare_namespace):
    namespace = bare_namespace
    core.create_namespaced_config_map(namespace, {"metadata": {"name": CM}, "data": {"service.slack": "token: $t"}})
    before = core.read_namespaced_config_map(CM, namespace)
    create(custom, bridge(namespace))

    def waiting() -> dict[str, Any] | None:
        token = conditions(custom, namespace).get("TokenReady", {})
        return token if token.get("reason") == "WaitingForArgoCD" else None

    token = wait_for(waiting, what="TokenReady WaitingForArgoCD")
    assert f"Secret {namespace}/{SECRET} does not exist" in token["message"]
    after = core.read_namespaced_config_map(CM, namespace)
    assert after.data == {"service.slack": "token: $t"}
    assert after.metadata.resource_version == before.metadata.resource_version
    assert not exists(core.read_namespaced_secret, SECRET, namespace)


@pytest.mark.usefixtures("operator")
def test_argocds_secret_deleted_while_running_is_waited_for_not_recreated(core, custom, namespace):
    create(custom, bridge(namespace))
    wait_for(lambda: conditions(custom, namespace).get("Ready", {}).get("status") == "True" or None, what="Ready")
    core.delete_namespaced_secret(SECRET, namespace)
    wait_for(
        lambda: conditions(custom, namespace).get("TokenReady", {}).get("reason") == "WaitingForArgoCD",
        what="TokenReady WaitingForArgoCD after the Secret was deleted",
    )
    assert not exists(core.read_namespaced_secret, SECRET, namespace)
    install_argocd_objects(core, namespace)
    wait_for(
        lambda: "backstage-token" in (core.read_namespaced_secret(SECRET, namespace).data or {}),
        what="a token in the Secret Argo CD's install put back",
    )


def test_a_write_prepared_before_a_deletion_fails_instead_of_creating(core, namespace):
    """The race between read and write: the uid read first makes the apiserver refuse, never create."""
    observed = configmaps.read_config_map(namespace, CM)
    secret_uid = secrets.secret_uid(namespace, SECRET)
    core.delete_namespaced_config_map(CM, namespace)
    core.delete_namespaced_secret(SECRET, namespace)
    with pytest.raises(ArgoCDObjectMissing, match=f"ConfigMap {namespace}/{CM} does not exist"):
        configmaps.apply_config_map_data(namespace, CM, {"k": "v"}, uid=observed.uid)
    with pytest.raises(ArgoCDObjectMissing, match=f"Secret {namespace}/{SECRET} does not exist"):
        secrets.apply_secret_key(namespace, SECRET, "backstage-token", "a-token-of-forty-chars-" * 2, uid=secret_uid)
    assert not exists(core.read_namespaced_config_map, CM, namespace)
    assert not exists(core.read_namespaced_secret, SECRET, namespace)

    # Recreated by someone else meanwhile (a new uid): refused too (the next reconcile reads it afresh),
    # their object untouched.
    install_argocd_objects(core, namespace, config={"mine": "1"})
    with pytest.raises(KubeError, match=r"HTTP 422 .*metadata\.uid"):
        configmaps.apply_config_map_data(namespace, CM, {"k": "v"}, uid=observed.uid)
    assert core.read_namespaced_config_map(CM, namespace).data == {"mine": "1"}

    # ArgoBridge's own copy of the token is the one Secret it may create.
    secrets.apply_secret_key(namespace, BACKUP, "backstage-token", "kept-copy-of-the-token", may_create=True)
    kept = core.read_namespaced_secret(BACKUP, namespace).data["backstage-token"]
    assert base64.b64decode(kept).decode() == "kept-copy-of-the-token"


# --- the chart's cluster-wide rules, judged by the real apiserver's RBAC -----------------------------------


@pytest.fixture
def as_default_install(control_plane: Any) -> client.CoreV1Api:
    """A user bound to the default install's ClusterRole (manifests/install), impersonated."""
    admin = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    rbac = client.RbacAuthorizationV1Api(admin)
    (role,) = [doc for doc in yaml.safe_load_all(INSTALL_MANIFEST.read_text()) if doc and doc["kind"] == "ClusterRole"]
    suffix = uuid.uuid4().hex[:8]
    role["metadata"] = {"name": f"privilege-{suffix}"}
    rbac.create_cluster_role(role)
    user = f"privilege-{suffix}"
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": user},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role["metadata"]["name"],
            },
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
        }
    )
    impersonating = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    impersonating.set_default_header("Impersonate-User", user)
    api = client.CoreV1Api(impersonating)
    wait_for(lambda: _allowed(lambda: api.read_namespaced_config_map("argocd-cm", "default")) != 403, what="binding")
    return api


def _allowed(call: Any) -> int:
    """200 when the call succeeds, else its HTTP status."""
    try:
        call()
    except ApiException as error:
        return int(error.status)
    return 200


def test_default_install_reads_secrets_and_configmaps_by_name_only(core, namespace, as_default_install):
    api = as_default_install
    core.create_namespaced_secret(namespace, {"metadata": {"name": "sh.helm.release.v1.web.v1"}, "data": {}})
    by_name = f"metadata.name={SECRET}"
    assert _allowed(lambda: api.list_secret_for_all_namespaces(field_selector=by_name)) == 200
    assert (
        _allowed(
            lambda: api.list_secret_for_all_namespaces(
                field_selector=by_name, watch=True, timeout_seconds=1, _preload_content=False
            ).read()
        )
        == 200
    )
    assert _allowed(lambda: api.list_config_map_for_all_namespaces(field_selector=f"metadata.name={CM}")) == 200
    assert _allowed(lambda: api.read_namespaced_secret(SECRET, namespace)) == 200
    # Everything else is refused: an unrelated Secret, a list without the selector, another name.
    assert _allowed(lambda: api.read_namespaced_secret("sh.helm.release.v1.web.v1", namespace)) == 403
    assert _allowed(lambda: api.list_secret_for_all_namespaces()) == 403
    assert _allowed(lambda: api.list_namespaced_secret(namespace)) == 403
    assert _allowed(lambda: api.list_config_map_for_all_namespaces()) == 403
    selector = "metadata.name=sh.helm.release.v1.web.v1"
    assert _allowed(lambda: api.list_secret_for_all_namespaces(field_selector=selector)) == 403

    # Creating: only ArgoBridge's own copy of the token, never Argo CD's objects or any other Secret.
    def applying(kind: str, name: str) -> Any:
        body = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}}
        patch = api.patch_namespaced_secret if kind == "Secret" else api.patch_namespaced_config_map
        return lambda: patch(name, namespace, body, field_manager="t", _content_type="application/apply-patch+yaml")

    core.delete_namespaced_secret(SECRET, namespace)
    core.delete_namespaced_config_map(CM, namespace)
    assert _allowed(applying("Secret", BACKUP)) == 200
    assert _allowed(applying("Secret", SECRET)) == 403
    assert _allowed(applying("ConfigMap", CM)) == 403
    assert _allowed(lambda: api.create_namespaced_secret(namespace, {"metadata": {"name": "x"}})) == 403


# --- the watch by name: what the operator follows, and how it resumes ------------------------------------


def compact_etcd(control_plane: Any) -> None:
    """Compact etcd at its current revision, as the apiserver does every few minutes: older versions are gone."""
    import json
    import urllib.request

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            control_plane.etcd_url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))

    revision = post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"]
    post("/v3/kv/compaction", {"revision": revision, "physical": True})


def test_name_watch_follows_only_its_name_and_lists_again_when_its_version_is_compacted(caplog, figures):
    """On a control plane of its own without the watch cache, so that etcd's compaction makes the version
    the watch would resume from unavailable, as a long-running operator meets it after a disconnection
    (410 Gone through the watch cache; this apiserver, serving from etcd, ends the watch with an ERROR)."""
    import logging
    import threading

    from argobridge.kube.namewatch import NameWatch, WatchedName
    from argobridge_dev.controlplane import ControlPlane

    caplog.set_level(logging.INFO, logger="argobridge.kube.namewatch")
    with ControlPlane(watch_cache=False) as plane:
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(plane.kubeconfig)))
        namespace = "argocd"
        core.create_namespace({"metadata": {"name": namespace}})
        install_argocd_objects(core, namespace)
        seen: list[str] = []
        stop = threading.Event()
        watch = NameWatch(WatchedName("configmaps", CM, namespace), seen.append, stop, api=core)
        watch.version = watch._relist(notify=False)  # the list at start; then the operator is cut off...
        core.patch_namespaced_config_map(CM, namespace, {"data": {"while": "disconnected"}})
        compact_etcd(plane)  # ...long enough for the version it resumes from to be compacted away
        thread = threading.Thread(target=watch.run, daemon=True)
        thread.start()
        try:
            wait_for(lambda: seen, what="the change missed while cut off, found by a list again")
            ended = [r.getMessage() for r in caplog.records if "listing again" in r.getMessage()]
            assert ended, caplog.text
            figures.append(f"name watch resuming from a compacted version: {ended[0]}")
            assert seen == [namespace]
            core.create_namespaced_config_map(namespace, {"metadata": {"name": "unrelated"}, "data": {"a": "1"}})
            core.patch_namespaced_config_map(CM, namespace, {"data": {"edited": "yes"}})
            wait_for(lambda: len(seen) == 2, what="the change of argocd-notifications-cm")
            assert seen == [namespace, namespace]  # the unrelated ConfigMap never reached the operator
        finally:
            stop.set()
            watch.close()
            thread.join(10)
        assert not thread.is_alive(), "the watch stops with the operator"
