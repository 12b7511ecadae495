"""A Relay-mode bridge, end to end: an operator with a relay, the real relay process reading its config
Secret, the real notifications controller and the real Backstage backend.

The operator here is a process of its own (OperatorProcess) serving one shard, so the session's operator
(Direct, no relay) keeps serving every other test; the bridge carries that shard's label.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from kubernetes import client

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge_dev.controlplane import ControlPlane
from argobridge_dev.operatorproc import OperatorProcess
from argobridge_dev.relayproc import RelayProcess
from tests.conftest import ExternalCluster, wait_for
from tests.e2e.conftest import Rig, running_rig
from tests.integration.test_bridge_reconcile import bridge, create_bridge

CONFIG_SECRET = "argobridge-relay-config"
# A key someone else put into the config Secret (another operator's bridge, a person): never ours to touch.
FOREIGN_KEY = "elsewhere.other-bridge"
FOREIGN_VALUE = json.dumps({"url": "http://127.0.0.1:9/x", "token": "not-ours", "acceptTokens": []})


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RelayWorld:
    rig: Rig
    relay: RelayProcess
    operator: OperatorProcess
    relay_namespace: str

    @property
    def key(self) -> str:
        return f"{self.rig.namespace}.backstage"

    def config_secret(self) -> client.V1Secret:
        return self.rig.core.read_namespaced_secret(CONFIG_SECRET, self.relay_namespace)

    def entry(self) -> dict[str, Any] | None:
        value = (self.config_secret().data or {}).get(self.key)
        return json.loads(base64.b64decode(value)) if value else None

    def service(self) -> dict[str, Any]:
        cm = self.rig.core.read_namespaced_config_map("argocd-notifications-cm", self.rig.namespace)
        loaded: dict[str, Any] = yaml.safe_load((cm.data or {})["service.webhook.backstage"])
        return loaded

    def delivery(self) -> dict[str, Any]:
        delivery: dict[str, Any] = (self.rig.bridge().get("status") or {}).get("delivery") or {}
        return delivery


@pytest.fixture(scope="module")
def world(
    control_plane: ControlPlane | ExternalCluster,
    crds: list[str],
    argocd_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[RelayWorld]:
    failed_before = request.session.testsfailed
    core = client.CoreV1Api()
    relay_namespace = f"relay-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": relay_namespace}})
    # What the chart creates: the config Secret, here with a key that is not ours.
    core.create_namespaced_secret(
        relay_namespace,
        {
            "metadata": {"name": CONFIG_SECRET},
            "data": {FOREIGN_KEY: base64.b64encode(FOREIGN_VALUE.encode()).decode()},
        },
    )
    relay = RelayProcess(
        tmp_path_factory.mktemp("relay"),
        config_secret=f"{relay_namespace}/{CONFIG_SECRET}",
        kubeconfig=control_plane.kubeconfig,
    ).start()
    operator = OperatorProcess(
        control_plane.kubeconfig,
        shard=f"relay-wire-{uuid.uuid4().hex[:6]}",
        log_path=tmp_path_factory.mktemp("operator") / "operator.log",
        env={
            "ARGOBRIDGE_RELAY_URL": relay.url,
            "ARGOBRIDGE_RELAY_CONFIG_SECRET": f"{relay_namespace}/{CONFIG_SECRET}",
            "ARGOBRIDGE_RELAY_STATUS_URLS": relay.status_url,
        },
    ).start()
    token = ""
    try:
        with running_rig(
            control_plane, tmp_path_factory, argocd={"url": "https://argocd.example.com"}, bridge_labels=operator.labels
        ) as rig:
            token = rig.token()
            yield RelayWorld(rig, relay, operator, relay_namespace)
    finally:
        operator.stop()
        relay.stop()
        if request.session.testsfailed > failed_before:  # what the two processes did, beside the failure
            for name, text in (("operator", operator.log()), ("relay", relay.log())):
                print(f"----- the {name}'s log (last 150 lines) -----", *text.splitlines()[-150:], sep="\n")
    # The token went into the config Secret and nowhere else: not into either process's log.
    for name, text in (("operator", operator.log()), ("relay", relay.log())):
        assert token and token not in text, f"the bridge's token is in the {name}'s log"


def foreign_value(world: RelayWorld) -> str:
    return base64.b64decode((world.config_secret().data or {})[FOREIGN_KEY]).decode()


def test_relay_mode_bridge_delivers_a_sync_failure_to_backstage_through_the_relay(world: RelayWorld):
    rig = world.rig
    ingress = f"{world.relay.url}/v1/bridges/{rig.namespace}/backstage/notifications"
    wait_for(lambda: world.delivery().get("mode") == "Relay", timeout=60, what="status.delivery.mode Relay")
    assert "reason" not in world.delivery()
    assert wait_for(
        lambda: world.service()["url"] == ingress and world.service(), timeout=60, what="Argo CD pointed at the relay"
    )
    assert {"name": "Authorization", "value": "Bearer $backstage-token"} in world.service()["headers"]

    entry = wait_for(world.entry, timeout=60, what="the bridge's entry in the relay's config Secret")
    assert entry["url"] == f"{rig.backstage.url}/api/notifications/notifications"
    assert entry["token"] == rig.token() and entry["acceptTokens"] == []
    assert entry["retryForSeconds"] == 86400.0 and entry["attemptTimeoutSeconds"] == 10.0
    assert set(world.config_secret().data) == {FOREIGN_KEY, world.key}
    assert foreign_value(world) == FOREIGN_VALUE
    managers = {
        item.manager
        for item in world.config_secret().metadata.managed_fields
        if f"f:{world.key}" in json.dumps(item.fields_v1)
    }
    assert managers == {f"argobridge/{rig.namespace}/backstage"}

    rig.create_app("shop-relayed")
    time.sleep(1)
    rig.set_status("shop-relayed", "Failed", "Degraded", "sync failed: through the relay", started=now())
    failed = rig.wait_received("alice", "shop-relayed", "SyncFailed", timeout=150)
    assert "through the relay" in failed["payload"]["description"]
    counts = wait_for(
        lambda: (entry := world.relay.bridge_status(rig.namespace, "backstage")).get("delivered", 0) >= 1 and entry,
        timeout=60,
        what="the relay counting its delivery",
    )
    assert counts["pending"] == 0 and counts["deadLettered"] == 0


def test_send_test_via_relay_goes_the_way_argo_cd_does_and_arrives(world: RelayWorld):
    """`argobridge send-test --via-relay`: to the URL in Argo CD's own service, with Argo CD's token; the
    relay stores it (202) and delivers it to the entity's owner."""
    from argobridge.commands.send_test import send_test

    rig = world.rig
    wait_for(lambda: world.delivery().get("mode") == "Relay", timeout=60, what="status.delivery.mode Relay")
    wait_for(world.entry, timeout=60, what="the bridge's entry")
    before = world.relay.bridge_status(rig.namespace, "backstage").get("delivered", 0)
    outcome = wait_for(
        lambda: (sent := send_test(rig.namespace, "backstage", "component:default/shop", via_relay=True)).ok and sent,
        timeout=30,
        what="the relay accepting the test notification",
    )
    assert "stored the test notification (202)" in outcome.lines[0]
    assert rig.token() not in "\n".join(outcome.lines)
    scope = f"argobridge-test/{rig.namespace}/backstage"
    wait_for(
        lambda: any(item["payload"].get("scope") == scope for item in rig.backstage.notifications("alice")),
        timeout=60,
        what="the relayed test notification in alice's Backstage",
    )
    wait_for(
        lambda: world.relay.bridge_status(rig.namespace, "backstage").get("delivered", 0) > before,
        what="the relay counting it",
    )
    # A relay that does not know the token says so instead of a bare 401.
    wrong = send_test(rig.namespace, "backstage", None, via_relay=True, relay_url=world.relay.url + "/nowhere")
    assert not wrong.ok and "relay" in wrong.lines[0]


def test_an_idle_bridge_does_not_rewrite_its_relay_entry(world: RelayWorld):
    wait_for(world.entry, what="the entry")
    before = world.config_secret().metadata.resource_version
    time.sleep(10)  # three resync periods (ARGOBRIDGE_RESYNC_SECONDS=3) of the relay's operator
    world.operator.alive()
    assert world.config_secret().metadata.resource_version == before


def test_leaving_relay_mode_removes_the_entry_and_points_argocd_at_backstage(world: RelayWorld):
    rig = world.rig
    wait_for(world.entry, what="the entry")
    rig.patch_bridge({"delivery": {"mode": "Direct"}})
    try:
        wait_for(lambda: world.entry() is None, what="the entry removed")
        wait_for(
            lambda: world.service()["url"] == f"{rig.backstage.url}/api/notifications/notifications",
            what="Argo CD pointed at Backstage",
        )
        wait_for(lambda: world.delivery().get("mode") == "Direct", what="status.delivery.mode Direct")
        assert "reason" not in world.delivery()
        assert foreign_value(world) == FOREIGN_VALUE
    finally:
        rig.patch_bridge({"delivery": {"mode": "Relay", "retryFor": "2h"}})
    entry = wait_for(world.entry, what="the entry written again")
    assert entry["retryForSeconds"] == 7200.0
    wait_for(lambda: world.service()["url"].startswith(world.relay.url), what="Argo CD pointed at the relay again")


def test_deleting_the_bridge_removes_only_its_key(world: RelayWorld):
    rig = world.rig
    wait_for(world.entry, what="the entry")
    rig.apps.delete_namespaced_custom_object(GROUP, VERSION, rig.namespace, PLURAL, "backstage")
    wait_for(lambda: world.entry() is None, what="the bridge's key removed")
    assert set(world.config_secret().data or {}) == {FOREIGN_KEY}
    assert foreign_value(world) == FOREIGN_VALUE


def test_relay_asked_of_an_operator_without_relay_is_direct_and_says_why(
    operator: Any, namespace: str, custom: client.CustomObjectsApi, core: client.CoreV1Api
):
    url = "http://127.0.0.1:9"
    create_bridge(custom, bridge(namespace, backstage={"url": url}, delivery={"mode": "Relay"}))

    def delivery() -> dict[str, Any]:
        body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")
        found: dict[str, Any] = (body.get("status") or {}).get("delivery") or {}
        return found

    assert wait_for(delivery, what="status.delivery") == {"mode": "Direct", "reason": "RelayNotInstalled"}
    cm = core.read_namespaced_config_map("argocd-notifications-cm", namespace)
    assert yaml.safe_load(cm.data["service.webhook.backstage"])["url"] == f"{url}/api/notifications/notifications"
    events = wait_for(
        lambda: [e for e in core.list_namespaced_event(namespace).items if e.reason == "RelayNotInstalled"],
        what="a RelayNotInstalled Event",
    )
    assert events[0].type == "Warning" and "ARGOBRIDGE_RELAY_URL" in events[0].message
