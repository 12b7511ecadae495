"""The Backstage probe, `send-test` and `doctor` against the real Backstage, healthy and broken,
and proof that no token leaks into Events, status, command output or error messages."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from argobridge.backstage.client import probe_create_endpoint, tls_verify
from argobridge.core.probe import probe_condition
from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge.kube import secrets
from argobridge.kube.errors import KubeError
from argobridge_dev.argocd_install import install_argocd_objects
from argobridge_dev.backstage import CATALOG_ONLY_TOKEN, BackstageServer
from argobridge_dev.controlplane import free_port
from tests.conftest import wait_for
from tests.e2e.conftest import Rig
from tests.e2e.tls_terminator import TlsTerminator

WRONG_TOKEN = "wrong-token-that-backstage-never-heard-of-0123456789"
CLI = str(Path(sys.executable).parent / "argobridge")


def reason(rig: Rig, url: str, token: str, verify: Any = True) -> str:
    result = probe_create_endpoint(url, token, verify=verify)
    return probe_condition(result, url, "argocd-notifications-secret", "backstage-token").reason


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in body.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def new_bridge(
    rig: Rig, backstage: dict[str, Any], token: str | None = None, argocd: dict[str, Any] | None = None
) -> str:
    """A fresh namespace with a bridge (and a token placed there first, when given); returns the namespace."""
    namespace = f"chk-{uuid.uuid4().hex[:8]}"
    rig.core.create_namespace({"metadata": {"name": namespace}})
    install_argocd_objects(rig.core, namespace, secret={"backstage-token": token} if token is not None else None)
    spec: dict[str, Any] = {"backstage": backstage}
    if argocd is not None:
        spec["argocd"] = argocd
    rig.apps.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "BackstageBridge",
            "metadata": {"name": "backstage"},
            "spec": spec,
        },
    )
    return namespace


def reachable(rig: Rig, namespace: str, expected: str) -> dict[str, Any]:
    def current() -> dict[str, Any] | None:
        body = rig.apps.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")
        return body if condition(body, "BackstageReachable").get("reason") == expected else None

    return wait_for(current, timeout=60, what=f"BackstageReachable {expected} in {namespace}")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, env=dict(os.environ))


@pytest.fixture(scope="module")
def tls(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsTerminator]:
    terminator = TlsTerminator(rig.backstage.port, tmp_path_factory.mktemp("tls")).start()
    yield terminator
    terminator.stop()


# --- the probe, each outcome against the real Backstage ---------------------------------------------------


def test_probe_tells_every_answer_of_the_real_backstage_apart(rig: Rig):
    create = rig.backstage.url + "/api/notifications/notifications"
    assert reason(rig, create, rig.token()) == "TokenAccepted"
    assert reason(rig, create, WRONG_TOKEN) == "TokenRejected"
    assert reason(rig, create, CATALOG_ONLY_TOKEN) == "TokenRestricted"
    assert reason(rig, rig.backstage.url + "/api/nothing-here/notifications", rig.token()) == "NotFound"
    assert reason(rig, f"http://127.0.0.1:{free_port()}/api/notifications/notifications", rig.token()) == "Unreachable"


def test_bridge_reports_a_token_backstage_rejects_or_restricts(rig: Rig):
    wrong = new_bridge(rig, {"url": rig.backstage.url}, token=WRONG_TOKEN)
    restricted = new_bridge(rig, {"url": rig.backstage.url}, token=CATALOG_ONLY_TOKEN)
    rejected = condition(reachable(rig, wrong, "TokenRejected"), "BackstageReachable")
    assert "401" in rejected["message"] and "externalAccess" in rejected["message"]
    limited = condition(reachable(rig, restricted, "TokenRestricted"), "BackstageReachable")
    assert "403" in limited["message"] and "plugin notifications" in limited["message"]


def test_bridge_sees_its_backstage_stop(rig: Rig):
    token = "stop-test-token-0123456789abcdef"
    server = BackstageServer(token=token).start()
    try:
        namespace = new_bridge(rig, {"url": server.url}, token=token)
        reachable(rig, namespace, "TokenAccepted")
        server.stop()
        message = condition(reachable(rig, namespace, "Unreachable"), "BackstageReachable")["message"]
        assert "cannot connect" in message and "spec.backstage.url" in message
    finally:
        server.stop()
        if server.database:
            shutil.rmtree(server.database, ignore_errors=True)


def test_tls_errors_are_named_and_a_ca_bundle_or_skip_verify_fixes_them(rig: Rig, tls: TlsTerminator):
    create = tls.url + "/api/notifications/notifications"
    assert reason(rig, create, rig.token()) == "TLSError"
    assert reason(rig, create, rig.token(), verify=tls_verify(tls.cert.read_text(), False)) == "TokenAccepted"

    untrusted = new_bridge(rig, {"url": tls.url}, token=rig.token())
    message = condition(reachable(rig, untrusted, "TLSError"), "BackstageReachable")["message"]
    assert "certificate" in message.lower() and "caBundle" in message

    trusted = new_bridge(rig, {"url": tls.url, "caBundle": {"secretName": "backstage-ca"}}, token=rig.token())
    assert condition(reachable(rig, trusted, "CABundleMissing"), "BackstageReachable")["status"] == "False"
    rig.core.create_namespaced_secret(
        trusted, {"metadata": {"name": "backstage-ca"}, "stringData": {"ca.crt": tls.cert.read_text()}}
    )
    reachable(rig, trusted, "TokenAccepted")
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop", "annotations": {"backstage.io/entity-ref": "component:default/shop"}},
        "spec": {"project": "default", "destination": {}, "source": {"repoURL": "https://x"}},
    }
    rig.apps.create_namespaced_custom_object("argoproj.io", "v1alpha1", trusted, "applications", app)

    def catalog_checked() -> bool:
        body = rig.apps.get_namespaced_custom_object(GROUP, VERSION, trusted, PLURAL, "backstage")
        return condition(body, "EntitiesResolved").get("reason") == "AllFound"

    wait_for(catalog_checked, timeout=60, what="the catalog asked through TLS with the CA bundle")

    skipping = new_bridge(rig, {"url": tls.url, "insecureSkipVerify": True}, token=rig.token())
    reachable(rig, skipping, "TokenAccepted")
    cm = rig.core.read_namespaced_config_map("argocd-notifications-cm", skipping)
    assert "insecureSkipVerify: true" in cm.data["service.webhook.backstage"], "Argo CD must skip it too"


# --- send-test ----------------------------------------------------------------------------------------------


def test_send_test_reaches_the_owning_team_and_names_who_received_it(rig: Rig):
    result = run_cli(
        "send-test", "--bridge", "backstage", "-n", rig.namespace, "--entity-ref", "component:default/shop"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Delivered to 1 recipient(s): user:default/alice" in result.stdout
    received = [n for n in rig.backstage.notifications("alice") if n["payload"].get("topic") == "argobridge.test"]
    assert received and received[0]["payload"]["title"] == "ArgoBridge test notification"
    assert "send-test" in received[0]["payload"]["description"]


def test_send_test_explains_an_empty_answer_and_canonicalises_refs(rig: Rig):
    result = run_cli("send-test", "-n", rig.namespace, "--entity-ref", "Component:default/no-such-service")
    assert result.returncode == 1
    assert "component:default/no-such-service" in result.stdout  # sent in canonical form
    assert "no recipient resolved" in result.stdout and "names no entity" in result.stdout


def test_send_test_broadcast_and_a_broken_bridge(rig: Rig):
    result = run_cli("send-test", "-n", rig.namespace, "--broadcast")
    assert result.returncode == 0 and "Broadcast delivered" in result.stdout
    wrong = new_bridge(rig, {"url": rig.backstage.url}, token=WRONG_TOKEN)
    result = run_cli("send-test", "-n", wrong, "--broadcast")
    assert result.returncode == 1 and "401" in result.stdout and WRONG_TOKEN not in result.stdout


# --- doctor -------------------------------------------------------------------------------------------------


def available_controller(rig: Rig, namespace: str) -> None:
    """The controller runs as a local process here; its Deployment (with the status the deployment
    controller would write, since this control plane runs no controllers) stands for it."""
    apps = client.AppsV1Api()
    labels = {"app": "argocd-notifications-controller"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "argocd-notifications-controller"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
            },
        },
    )
    apps.patch_namespaced_deployment_status(
        "argocd-notifications-controller",
        namespace,
        {"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}},
    )


def test_doctor_passes_a_healthy_installation(rig: Rig):
    available_controller(rig, rig.namespace)
    wait_for(lambda: condition(rig.bridge(), "Ready").get("status") == "True", what="Ready")
    result = run_cli("doctor", "-n", rig.namespace)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems found" in result.stdout
    for check in ("crd", "controller", "config", "config-parse", "engine", "context", "token", "backstage"):
        assert any(line.startswith("ok") and f" {check} " in line for line in result.stdout.splitlines()), check
    assert rig.token() not in result.stdout


def test_doctor_names_each_problem_of_a_broken_installation_and_its_fix(rig: Rig):
    broken = new_bridge(rig, {"url": rig.backstage.url}, token=WRONG_TOKEN)  # no Argo CD URL, no controller
    reachable(rig, broken, "TokenRejected")
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "bad-ref", "annotations": {"backstage.io/entity-ref": "not a ref"}},
        "spec": {"project": "default", "destination": {}, "source": {"repoURL": "https://x"}},
    }
    rig.apps.create_namespaced_custom_object("argoproj.io", "v1alpha1", broken, "applications", app)
    result = run_cli("doctor", "-n", broken, "-o", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    failed = {item["check"]: item for item in report["checks"] if not item["ok"]}
    assert report["ok"] is False
    assert "controller" in failed and "notifications.enabled" in failed["controller"]["fix"]
    assert "context" in failed and "spec.argocd.url" in failed["context"]["fix"]
    assert "backstage" in failed and "401" in failed["backstage"]["fix"]
    assert "application" in failed and "bad-ref" in failed["application"]["message"]
    text = run_cli("doctor", "-n", broken)
    assert text.returncode == 1 and "FAIL" in text.stdout and "fix:" in text.stdout
    assert WRONG_TOKEN not in result.stdout + text.stdout


def test_doctor_reports_a_missing_bridge(rig: Rig):
    namespace = f"empty-{uuid.uuid4().hex[:6]}"
    rig.core.create_namespace({"metadata": {"name": namespace}})
    result = run_cli("doctor", "-n", namespace)
    assert result.returncode == 1 and "no BackstageBridge" in result.stdout


# --- no token anywhere --------------------------------------------------------------------------------------


def test_no_token_in_events_status_or_error_messages(rig: Rig):
    token = rig.token()
    namespaces = [rig.namespace] + [
        ns.metadata.name for ns in rig.core.list_namespace().items if ns.metadata.name.startswith("chk-")
    ]
    secrets_seen = {token, WRONG_TOKEN, CATALOG_ONLY_TOKEN}
    for namespace in namespaces:
        events = rig.core.list_namespaced_event(namespace).items
        text = " ".join(f"{e.reason} {e.message}" for e in events)
        bridges = rig.apps.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        status = json.dumps([b.get("status") for b in bridges])
        for secret in secrets_seen:
            assert secret not in text and secret not in status
        assert base64.b64encode(token.encode()).decode() not in text + status
    with pytest.raises(KubeError) as failure:
        secrets.apply_secret_key(
            "no-such-namespace", "argocd-notifications-secret", "backstage-token", token, may_create=True
        )
    assert token not in str(failure.value) and base64.b64encode(token.encode()).decode() not in str(failure.value)
