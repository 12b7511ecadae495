"""A bridge's delivery, as `kubectl get` and `kubectl describe` show it: an operator process told where
a real relay's status port is, the real relay delivering to the real Backstage test backend, and the
real apiserver holding the status, the Events and the printer columns."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge_dev.backstage import BackstageServer
from argobridge_dev.controlplane import ControlPlane, free_port
from argobridge_dev.processes import spawn, stop
from argobridge_dev.relayproc import RelayProcess, config_entry
from tests.conftest import wait_for

TOKEN = "relay-status-token-0123456789abcdef"
WRONG = "relay-status-wrong-token-fedcba9876543210"
LATER = "relay-status-later-token-00112233445566"
SHARD = f"relay-status-{uuid.uuid4().hex[:6]}"
INTERVAL = 3.0  # the timer's period for this test (15 s in production)
NAME = "backstage"
METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def backstage() -> Iterator[BackstageServer]:
    with BackstageServer(token=TOKEN) as server:
        yield server


def entry(url: str, token: str = TOKEN, **extra: Any) -> dict[str, Any]:
    return config_entry(url, token, **{"attemptTimeoutSeconds": 2.0, **extra})


def start_operator(kubeconfig: Path, namespace: str, relay: RelayProcess, log: Path) -> subprocess.Popen[bytes]:
    """`argobridge run` as its own process, serving only this test's shard, told where the relay is."""
    env = {
        "KUBECONFIG": str(kubeconfig),
        "ARGOBRIDGE_SHARD": SHARD,
        # Relay mode needs a relay URL and a config Secret; the operator writes its entry into that Secret,
        # while this test drives the relay through a config file of its own to stage each case.
        "ARGOBRIDGE_RELAY_URL": relay.url,
        "ARGOBRIDGE_RELAY_CONFIG_SECRET": f"{namespace}/relay-config",
        "ARGOBRIDGE_RELAY_STATUS_URLS": relay.status_url,
        "ARGOBRIDGE_RELAY_STATUS_SECONDS": str(INTERVAL),
        "ARGOBRIDGE_METRICS_PORT": str(METRICS_PORT),
        "ARGOBRIDGE_LOG_FORMAT": "plain",
    }
    command = [sys.executable, "-m", "argobridge.commands.cli", "run", "-n", namespace]
    command += [f"--liveness=http://127.0.0.1:{free_port()}/healthz"]
    return spawn(command, log, env={**os.environ, **env})


def send(relay: RelayProcess, namespace: str, scope: str, token: str = TOKEN) -> None:
    """What Argo CD's webhook does in Relay mode: POST to the relay with the bridge's token."""
    relay.send_until_accepted(namespace, NAME, scope, token, f"relay status {scope}")


def bridge_body(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)


def _changed(before: Any, after: Any, path: str = "") -> list[str]:
    """The paths whose values differ between two bodies, so a failed idleness check names the write."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            change
            for key in sorted(set(before) | set(after))
            if key != "resourceVersion"
            for change in _changed(before.get(key), after.get(key), f"{path}.{key}")
        ]
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def status_write_time(body: dict[str, Any]) -> list[str]:
    """When each manager last wrote the status subresource (managedFields), so one write shows."""
    return sorted(
        f"{entry['manager']} {entry['time']}"
        for entry in body["metadata"].get("managedFields") or []
        if entry.get("subresource") == "status"
    )


def delivery(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return dict((bridge_body(custom, namespace).get("status") or {}).get("delivery") or {})


def delivering(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    for item in (bridge_body(custom, namespace).get("status") or {}).get("conditions") or []:
        if item["type"] == "Delivering":
            return dict(item)
    return {}


def table_row(namespace: str) -> dict[str, Any]:
    """The row `kubectl get backstagebridge` prints: the server-side Table, with the CRD's columns."""
    api = client.ApiClient()
    method, url, headers, body, _ = api.param_serialize(
        "GET",
        f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{NAME}",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    answer = api.call_api(method, url, header_params=headers, body=body)
    answer.read()
    response = json.loads(answer.data)
    names = [column["name"] for column in response["columnDefinitions"]]
    return dict(zip(names, response["rows"][0]["cells"], strict=True))


def events(core: client.CoreV1Api, namespace: str, reason: str) -> list[Any]:
    listed = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={NAME},reason={reason}")
    return list(listed.items)


def operator_pending_gauge(namespace: str) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).text
    prefix = f'argobridge_delivery_pending{{bridge="{NAME}",namespace="{namespace}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


def test_relay_deliveries_show_in_the_bridge_status_events_and_columns(
    control_plane: ControlPlane,
    crds: list[str],
    argocd_crds: list[str],
    namespace: str,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    backstage: BackstageServer,
    tmp_path: Path,
) -> None:
    url = f"{backstage.url}/api/notifications/notifications"
    key = f"{namespace}.{NAME}"
    relay = RelayProcess(tmp_path / "relay", config_file=tmp_path / "relay-config.json")
    relay.write_config({key: entry(url)})
    relay.start()
    core.create_namespaced_secret(namespace, {"metadata": {"name": "relay-config"}})
    operator = start_operator(control_plane.kubeconfig, namespace, relay, tmp_path / "operator.log")
    try:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "BackstageBridge",
            "metadata": {"name": NAME, "namespace": namespace, "labels": {f"{GROUP}/shard": SHARD}},
            "spec": {"backstage": {"url": backstage.url}, "argocd": {"url": "https://argocd.example.com"}},
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

        wait_for(lambda: delivery(custom, namespace).get("mode") == "Relay", what="the bridge in Relay mode")
        # 1. Delivered: the relay's count reaches the bridge's status, with the time of the delivery.
        send(relay, namespace, "first")
        wait_for(lambda: delivery(custom, namespace).get("delivered") == 1, timeout=60, what="delivered 1 in status")
        status = delivery(custom, namespace)
        assert status["pending"] == 0 and "oldestPendingSeconds" not in status
        assert status["lastDeliveryTime"] == relay.bridge_status(namespace, NAME)["lastDeliveryTime"]
        condition = delivering(custom, namespace)
        assert (condition["status"], condition["reason"]) == ("True", "Delivered")
        assert table_row(namespace)["Pending"] == 0

        # 2. Held: Backstage refuses the token; the queue waits and the bridge says what to fix.
        relay.write_config({key: entry(url, token=WRONG)})
        for scope in ("held-1", "held-2"):
            send(relay, namespace, scope, token=WRONG)
        wait_for(lambda: delivering(custom, namespace).get("reason") == "Held", timeout=60, what="Delivering Held")
        wait_for(lambda: delivery(custom, namespace).get("pending") == 2, timeout=30, what="pending 2")
        condition = delivering(custom, namespace)
        assert condition["status"] == "False" and "token" in condition["message"]
        assert WRONG not in condition["message"] and TOKEN not in condition["message"]
        assert table_row(namespace)["Pending"] == 2
        wait_for(lambda: operator_pending_gauge(namespace) == 2, what="the operator's pending gauge")

        # The right token again: everything held is delivered, and the bridge says so.
        relay.write_config({key: entry(url)})
        wait_for(lambda: delivery(custom, namespace).get("delivered") == 3, timeout=60, what="held ones delivered")
        wait_for(lambda: delivering(custom, namespace).get("reason") == "Delivered", what="Delivering again")
        assert table_row(namespace)["Pending"] == 0

        # 3. Dead-lettered: Backstage unreachable past retryFor; a Warning names the count and the scope.
        stopped = f"http://127.0.0.1:{free_port()}/api/notifications/notifications"
        # A token of its own, so the relay accepts the notification only once it has read this config.
        relay.write_config({key: entry(stopped, token=LATER, retryForSeconds=1.0, attemptTimeoutSeconds=1.0)})
        send(relay, namespace, "lost-scope", token=LATER)
        wait_for(lambda: delivery(custom, namespace).get("deadLettered") == 1, timeout=60, what="deadLettered 1")
        (event,) = wait_for(lambda: events(core, namespace, "DeadLettered"), what="a DeadLettered Event")
        assert event.type == "Warning"
        assert "1 notification" in event.message and "lost-scope" in event.message
        assert TOKEN not in event.message and "relay status" not in event.message  # no token, no body

        # 4. Idle: nothing changes, so over three timer periods nothing is written to the bridge.
        settled = wait_for(
            lambda: delivery(custom, namespace).get("pending") == 0 and bridge_body(custom, namespace),
            what="settled",
        )
        time.sleep(INTERVAL)  # one more period, so a write the last answer caused has landed
        first = bridge_body(custom, namespace)
        time.sleep(3 * INTERVAL + 1)
        after = bridge_body(custom, namespace)
        # The status subresource is what the relay's figures are written to: not one write to it. (kopf's
        # own bookkeeping in metadata, a retry's touch on a loaded machine, is not the relay's doing.)
        assert status_write_time(after) == status_write_time(first), (
            f"an idle relay caused a write to the bridge's status: {_changed(first['status'], after['status'])}"
        )
        assert after["status"] == first["status"]
        assert after["status"]["delivery"]["deadLettered"] == 1 and settled["status"]["delivery"]["delivered"] == 3
        assert len(events(core, namespace, "DeadLettered")) == 1
    finally:
        stop(operator)
        relay.stop()
    log = (tmp_path / "operator.log").read_text(errors="replace")
    assert TOKEN not in log and WRONG not in log and LATER not in log


@pytest.mark.usefixtures("crds", "argocd_operator")
def test_relay_mode_on_openshift_gitops_points_the_notifications_configuration_at_the_relay(
    control_plane: ControlPlane,
    bare_namespace: str,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    backstage: BackstageServer,
    tmp_path: Path,
) -> None:
    """The other flavor: the real Argo CD operator owns argocd-notifications-cm, ArgoBridge writes the
    NotificationsConfiguration, and in Relay mode the webhook it writes there (and the operator copies into
    the ConfigMap Argo CD reads) is the relay's, while the relay's config Secret gets the bridge's entry."""
    from tests.integration.test_openshift_gitops import gitops_namespace, read_cm, read_nc

    namespace = bare_namespace
    gitops_namespace(core, custom, namespace)
    relay = RelayProcess(tmp_path / "relay", config_file=tmp_path / "relay-config.json")
    relay.write_config({})
    relay.start()
    core.create_namespaced_secret(namespace, {"metadata": {"name": "relay-config"}})
    operator = start_operator(control_plane.kubeconfig, namespace, relay, tmp_path / "operator.log")
    relay_service = f"{relay.url}/v1/bridges/{namespace}/{NAME}/notifications"
    try:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "BackstageBridge",
            "metadata": {"name": NAME, "namespace": namespace, "labels": {f"{GROUP}/shard": SHARD}},
            "spec": {"backstage": {"url": backstage.url}},
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        wait_for(lambda: delivery(custom, namespace).get("mode") == "Relay", timeout=60, what="Relay mode")
        assert bridge_body(custom, namespace)["status"]["flavor"] == "OpenShiftGitOps"

        def webhook_in_resource() -> str:
            nc = read_nc(custom, namespace) or {}
            return str(((nc.get("spec") or {}).get("services") or {}).get("service.webhook.backstage") or "")

        wait_for(lambda: relay_service in webhook_in_resource(), what="the relay's URL in the resource")
        assert backstage.url not in webhook_in_resource()

        def webhook_argocd_reads() -> str:
            cm = read_cm(core, namespace)
            return str(((cm.data if cm else None) or {}).get("service.webhook.backstage") or "")

        wait_for(lambda: relay_service in webhook_argocd_reads(), what="the operator copying it into the ConfigMap")
        secret = wait_for(
            lambda: (s := core.read_namespaced_secret("relay-config", namespace)).data and s,
            what="the bridge's entry in the relay's config Secret",
        )
        relayed = json.loads(base64.b64decode(secret.data[f"{namespace}.{NAME}"]))
        assert relayed["url"] == f"{backstage.url}/api/notifications/notifications"
    finally:
        stop(operator)
        relay.stop()
