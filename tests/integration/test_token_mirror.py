"""The token mirror and rotation against a real kube-apiserver, where no Backstage answers: the
operator publishes, but never switches Argo CD to a token Backstage has not been seen to accept."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from kubernetes import client

from argobridge.core.spec import GROUP, PLURAL, VERSION
from tests.conftest import wait_for
from tests.integration.test_bridge_reconcile import request_rotation

SECRET = "argocd-notifications-secret"


def decoded(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, str]:
    try:
        data = core.read_namespaced_secret(name, namespace).data or {}
    except client.exceptions.ApiException:
        return {}
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def make_bridge(custom: client.CustomObjectsApi, namespace: str, token: dict[str, Any]) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BackstageBridge",
        "metadata": {"name": "backstage", "namespace": namespace},
        "spec": {"backstage": {"url": "http://127.0.0.1:9"}, "token": token},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def bridge(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def test_token_is_mirrored_into_another_namespace_with_current_and_previous(operator, core, custom, namespace):
    backstage_ns = f"bs-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": backstage_ns}})
    make_bridge(custom, namespace, {"mirror": {"namespace": backstage_ns, "name": "argocd-token"}})
    mirror = wait_for(lambda: decoded(core, backstage_ns, "argocd-token"), what="mirror Secret")
    token = decoded(core, namespace, SECRET)["backstage-token"]
    assert mirror == {"current": token, "previous": token}
    body = wait_for(lambda: (b := bridge(custom, namespace)).get("status", {}).get("token") and b, what="status.token")
    assert body["status"]["token"]["phase"] == "Idle"
    assert token not in str(body["status"]) and body["status"]["token"]["digest"] in str(body["status"])


def test_rotation_publishes_but_waits_while_backstage_does_not_accept(operator, core, custom, namespace):
    make_bridge(custom, namespace, {"mirror": {"name": "backstage-tokens"}})
    mirror = wait_for(lambda: decoded(core, namespace, "backstage-tokens"), what="mirror Secret")
    old = mirror["current"]
    request_rotation(custom, namespace)
    published = wait_for(
        lambda: (m := decoded(core, namespace, "backstage-tokens")) and m["current"] != old and m,
        what="new token published",
    )
    assert published["previous"] == old
    waiting = wait_for(
        lambda: condition(b := bridge(custom, namespace), "TokenMirrored").get("reason") == "WaitingForBackstage" and b,
        what="TokenMirrored WaitingForBackstage",
    )
    assert "restartDeployment" in condition(waiting, "TokenMirrored")["message"]
    assert decoded(core, namespace, SECRET)["backstage-token"] == old, "Argo CD keeps the token Backstage accepts"
    assert waiting["status"]["token"]["phase"] == "Published"


def test_rotation_request_without_mirror_is_refused_with_a_warning(operator, core, custom, namespace):
    make_bridge(custom, namespace, {})
    token = wait_for(lambda: decoded(core, namespace, SECRET).get("backstage-token"), what="token")
    request_rotation(custom, namespace)

    def warning() -> Any:
        events = core.list_namespaced_event(namespace).items
        return next((e for e in events if e.reason == "RotationNeedsMirror"), None)

    event = wait_for(warning, what="RotationNeedsMirror Event")
    assert "spec.token.mirror" in event.message
    time.sleep(8)  # several resyncs (3 s in tests): the standing problem is not posted again
    repeats = [e for e in core.list_namespaced_event(namespace).items if e.reason == "RotationNeedsMirror"]
    assert len(repeats) == 1 and (repeats[0].count or 1) == 1
    assert decoded(core, namespace, SECRET)["backstage-token"] == token


def test_schema_rejects_a_schedule_without_mirror(custom, crds, namespace):
    try:
        make_bridge(custom, namespace, {"rotation": {"interval": "24h"}})
    except client.exceptions.ApiException as error:
        assert error.status == 422 and "needs spec.token.mirror" in str(error.body)
    else:
        raise AssertionError("the CRD must reject rotation.interval without mirror")
