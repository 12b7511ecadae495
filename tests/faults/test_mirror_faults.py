"""The token mirror (issue 13, A and C): it writes only into a Secret ArgoBridge created for the bridge
or one that opted in; everything else is left byte for byte, with a condition naming the fix."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.mirrorpolicy import MIRROR_FOR_ANNOTATION
from argobridge_dev.argocd_install import install_argocd_objects
from tests.conftest import wait_for
from tests.integration.test_bridge_reconcile import SECRET, bridge, condition, create_bridge, get_bridge

pytestmark = pytest.mark.usefixtures("argocd_crds", "operator")


def other_namespace(core: client.CoreV1Api) -> str:
    name = f"bs-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def with_mirror(namespace: str, mirror: dict[str, Any]) -> dict[str, Any]:
    body = bridge(namespace)
    body["spec"] = {"backstage": {"url": "http://127.0.0.1:9"}, "token": {"mirror": mirror}}
    return body


def raw_secret(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        secret = core.read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return client.ApiClient().sanitize_for_serialization(secret)


def decoded(secret: dict[str, Any] | None) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in ((secret or {}).get("data") or {}).items()}


def mirrored(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return condition(get_bridge(custom, namespace), "TokenMirrored")


def test_helm_owned_secret_is_left_byte_identical_until_it_opts_in(core, custom, namespace):
    backstage_ns = other_namespace(core)
    helm_secret = {
        "metadata": {
            "name": "backstage-secrets",
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "backstage", "meta.helm.sh/release-namespace": backstage_ns},
        },
        "data": {"POSTGRES_PASSWORD": base64.b64encode(b"db-secret-value").decode()},
    }
    core.create_namespaced_secret(backstage_ns, helm_secret, field_manager="helm")
    before = raw_secret(core, backstage_ns, "backstage-secrets")
    create_bridge(custom, with_mirror(namespace, {"namespace": backstage_ns, "name": "backstage-secrets"}))

    refused = wait_for(
        lambda: (c := mirrored(custom, namespace)).get("reason") == "MirrorNotPermitted" and c, what="refusal"
    )
    assert refused["status"] == "False"
    fix = f"kubectl annotate secret backstage-secrets -n {backstage_ns} {MIRROR_FOR_ANNOTATION}={namespace}/backstage"
    assert fix in refused["message"]
    time.sleep(7)  # two resyncs (3 s in tests): still nothing written
    assert raw_secret(core, backstage_ns, "backstage-secrets") == before, "not one byte of the Secret changed"
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=backstage,type=Warning").items
    assert len([e for e in events if e.reason == "MirrorNotPermitted"]) == 1, "a standing refusal is posted once"

    # The platform engineer opts the Secret in: the token goes in, Helm's labels and data stay.
    core.patch_namespaced_secret(
        "backstage-secrets",
        backstage_ns,
        {"metadata": {"annotations": {MIRROR_FOR_ANNOTATION: f"{namespace}/backstage"}}},
    )
    token = wait_for(lambda: decoded(raw_secret(core, namespace, SECRET)).get("backstage-token"), what="token")
    after = wait_for(
        lambda: (s := raw_secret(core, backstage_ns, "backstage-secrets")) and "current" in decoded(s) and s
    )
    assert decoded(after) == {"POSTGRES_PASSWORD": "db-secret-value", "current": token, "previous": token}
    assert after["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "Helm"}, "Helm keeps its ownership label"
    assert wait_for(lambda: mirrored(custom, namespace).get("status") == "True", what="TokenMirrored True")


def test_mirror_created_by_argobridge_names_its_bridge_and_sets_no_managed_by_label(core, custom, namespace):
    backstage_ns = other_namespace(core)
    create_bridge(custom, with_mirror(namespace, {"namespace": backstage_ns, "name": "argocd-token"}))
    secret = wait_for(lambda: (s := raw_secret(core, backstage_ns, "argocd-token")) and "current" in decoded(s) and s)
    assert secret["metadata"]["annotations"][MIRROR_FOR_ANNOTATION] == f"{namespace}/backstage"
    assert "app.kubernetes.io/managed-by" not in (secret["metadata"].get("labels") or {})
    managers = {entry["manager"] for entry in secret["metadata"]["managedFields"]}
    assert managers == {f"argobridge/{namespace}.backstage"}, "the bridge's own field manager, not a shared one"


def test_mirror_naming_argocds_own_secret_is_refused(core, custom, namespace):
    token = "existing-token-" + uuid.uuid4().hex
    core.replace_namespaced_secret(
        SECRET,
        namespace,
        {"metadata": {"name": SECRET}, "data": {"backstage-token": base64.b64encode(token.encode()).decode()}},
    )
    before = raw_secret(core, namespace, SECRET)
    create_bridge(custom, with_mirror(namespace, {"name": SECRET}))
    body = wait_for(
        lambda: condition(b := get_bridge(custom, namespace), "TokenReady").get("reason") == "InvalidSpec" and b,
        what="InvalidSpec",
    )
    assert "Argo CD's own Secret" in condition(body, "TokenReady")["message"]
    time.sleep(4)
    assert raw_secret(core, namespace, SECRET) == before, "Argo CD's Secret is untouched: no token loop"
    assert token not in str(body)


def test_two_bridges_naming_one_mirror_the_second_is_refused_not_a_fight(core, custom, namespace):
    backstage_ns, second_ns = other_namespace(core), other_namespace(core)
    install_argocd_objects(core, second_ns)  # the second bridge's Argo CD
    mirror = {"namespace": backstage_ns, "name": "argocd-token"}
    create_bridge(custom, with_mirror(namespace, mirror))
    first = wait_for(lambda: (s := raw_secret(core, backstage_ns, "argocd-token")) and "current" in decoded(s) and s)
    create_bridge(custom, with_mirror(second_ns, mirror))
    refused = wait_for(
        lambda: (c := mirrored(custom, second_ns)).get("reason") == "MirrorNotPermitted" and c, what="second refused"
    )
    assert f"BackstageBridge {namespace}/backstage" in refused["message"]
    time.sleep(7)  # resyncs of both bridges
    now = raw_secret(core, backstage_ns, "argocd-token")
    assert now is not None and first is not None
    assert now["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"], "nobody rewrote the mirror"
    assert mirrored(custom, namespace).get("status") == "True"
