"""State bugs (issue 13, E): what the operator remembers, and what it does while it waits or fights.

Against the real kube-apiserver with the operator running. Where Backstage takes part it is down on
purpose (a closed port, or a listener that only counts connections): each behaviour here is about what
ArgoBridge does while Backstage does not accept the token.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge.kube.deployments import RESTARTED_AT
from tests.conftest import wait_for
from tests.integration.test_applications import WANTED, annotations_of, create_app
from tests.integration.test_bridge_reconcile import (
    CM,
    SECRET,
    bridge,
    bridge_gone,
    cm_data,
    condition,
    create_bridge,
    get_bridge,
    request_rotation,
)

REF = {"backstage.io/entity-ref": "component:default/shop"}
DOWN = "http://127.0.0.1:9"  # nothing listens: Backstage is down


def delete_bridge(custom: client.CustomObjectsApi, namespace: str, name: str = "backstage") -> None:
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def warnings(core: client.CoreV1Api, namespace: str, reason: str) -> list[Any]:
    events = core.list_namespaced_event(namespace, field_selector="type=Warning").items
    return [event for event in events if event.reason == reason]


def subscribed(namespace: str, app: str) -> bool:
    return WANTED.items() <= annotations_of(namespace, app).items()


@pytest.mark.usefixtures("argocd_crds", "operator")
def test_bridge_deleted_and_recreated_with_the_same_name_subscribes_its_applications_again(core, custom, namespace):
    create_app(namespace, "shop", dict(REF))
    annotations_mode = bridge(namespace, subscriptions={"mode": "Annotations"})
    create_bridge(custom, annotations_mode)
    wait_for(lambda: subscribed(namespace, "shop"), what="subscribe annotations added")

    delete_bridge(custom, namespace)
    # kopf handles the deletion after the updates queued before it: under a busy session operator, tens of seconds.
    wait_for(lambda: bridge_gone(custom, namespace), timeout=120, what="bridge deleted")
    wait_for(lambda: not set(WANTED) & set(annotations_of(namespace, "shop")), what="annotations removed")

    create_bridge(custom, annotations_mode)  # same name, new uid
    wait_for(lambda: subscribed(namespace, "shop"), what="subscribe annotations back for the recreated bridge")
    create_app(namespace, "cart", dict(REF))
    wait_for(lambda: subscribed(namespace, "cart"), what="a new Application subscribed by the recreated bridge")


@pytest.mark.usefixtures("crds", "argocd_crds")
def test_invalid_spec_keeps_every_applications_subscribe_annotations_across_an_operator_restart(
    control_plane, core, custom, namespace, tmp_path: Path
):
    from argobridge_dev.operatorproc import OperatorProcess

    shard = f"invalid-{uuid.uuid4().hex[:6]}"
    create_app(namespace, "shop", dict(REF))
    body = bridge(namespace, subscriptions={"mode": "Annotations"})
    body["metadata"]["labels"] = {"argobridge.io/shard": shard}
    create_bridge(custom, body)
    operator = OperatorProcess(
        control_plane.kubeconfig, shard, tmp_path / "operator.log", namespaces=[namespace]
    ).start()
    try:
        wait_for(lambda: subscribed(namespace, "shop"), timeout=60, what="subscribe annotations added")
        before = annotations_of(namespace, "shop")
        operator.stop()
        # Valid for the schema, refused by the operator: a route for an event the bridge does not enable.
        broken = {"name": "running", "match": [{"events": ["SyncRunning"]}], "recipients": ["group:default/oncall"]}
        patch = {"spec": {"routes": [broken]}}
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage", patch)
        operator.start()  # an upgrade, a rescheduled pod: it has never seen a valid spec of this bridge

        def refused() -> dict[str, Any] | None:
            body = get_bridge(custom, namespace)
            current = body["status"].get("observedGeneration") == body["metadata"]["generation"]
            return body if current and condition(body, "ConfigApplied").get("reason") == "InvalidSpec" else None

        wait_for(refused, timeout=60, what="InvalidSpec")
        # Events on the Application while the spec is invalid, as Argo CD's controller makes them all day.
        touch = {"metadata": {"labels": {"touched": "1"}}}
        custom.patch_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "applications", "shop", touch)
        time.sleep(7)  # two resyncs (3 s here) and the 2 s recount: each sees the invalid spec
        assert annotations_of(namespace, "shop") == before, "the running subscriptions are kept byte for byte"
    finally:
        operator.stop()


@pytest.mark.usefixtures("argocd_crds", "operator")
def test_adopted_token_restarts_backstage_at_once_not_after_the_grace_period(core, custom, namespace):
    apps = client.AppsV1Api()
    labels = {"app": "backstage"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "backstage"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "b", "image": "b"}]}},
            },
        },
    )
    mirror = {"name": "backstage-tokens", "restartDeployment": "backstage"}
    create_bridge(custom, {**bridge(namespace), "spec": {"backstage": {"url": DOWN}, "token": {"mirror": mirror}}})

    def stamp() -> str | None:
        template = apps.read_namespaced_deployment("backstage", namespace).spec.template
        return (template.metadata.annotations or {}).get(RESTARTED_AT)

    def tokens() -> dict[str, str]:
        try:
            data = core.read_namespaced_secret("backstage-tokens", namespace).data or {}
        except ApiException:
            return {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    first = wait_for(stamp, what="Backstage restarted once to read the mirror")
    old = wait_for(lambda: tokens().get("current"), what="mirror written")
    # No pause here: two restarts within one second must still be two rollouts (core.rotation.restart_stamp).

    adopted = f"set-by-hand-{uuid.uuid4().hex}"
    core.patch_namespaced_secret(
        SECRET, namespace, {"data": {"backstage-token": base64.b64encode(adopted.encode()).decode()}}
    )
    wait_for(lambda: tokens() == {"current": adopted, "previous": old}, what="hand-set token adopted into the mirror")
    restarted = wait_for(lambda: (s := stamp()) != first and s, what="Backstage restarted for the adopted token")
    assert restarted
    # The grace period is 10 minutes: the restart came within it, not at its end.
    body = wait_for(
        lambda: (b := get_bridge(custom, namespace))["status"]["token"]["phase"] == "Grace" and b, what="phase Grace"
    )
    assert stamp() == restarted, "one restart for the adoption"
    assert adopted not in str(body) and adopted not in str(core.list_namespaced_event(namespace).items)


@pytest.mark.usefixtures("argocd_crds", "operator")
def test_configmap_drift_fight_is_repaired_with_backoff_and_one_warning(core, custom, namespace, figures):
    create_bridge(custom, bridge(namespace))
    wait_for(lambda: condition(get_bridge(custom, namespace), "Ready").get("status") == "True", what="Ready")
    key = next(k for k in sorted(cm_data(core, namespace)) if k.startswith("template.") and k.endswith("-backstage"))
    theirs = "message: written by another tool\n"

    # Another writer that puts its value back within 0.2 s every time ArgoBridge repairs the key.
    stop, reverted = threading.Event(), []

    def fighter() -> None:
        while not stop.is_set():
            if cm_data(core, namespace).get(key) != theirs:
                reverted.append(time.monotonic())
                core.patch_namespaced_config_map(CM, namespace, {"data": {key: theirs}}, field_manager="other-tool")
            stop.wait(0.2)

    thread = threading.Thread(target=fighter, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        contested = wait_for(lambda: warnings(core, namespace, "DriftContested"), timeout=60, what="DriftContested")
        time.sleep(15)  # keep fighting: five more resyncs
    finally:
        stop.set()
        thread.join()
    elapsed = time.monotonic() - started
    repairs = len(reverted) - 1  # the first change is the other writer's own
    figures.append(f"drift fight: {repairs} repairs by ArgoBridge in {elapsed:.0f}s against a writer answering in 0.2s")
    message = contested[0].message
    assert key in message and "--show-managed-fields" in message
    assert len(warnings(core, namespace, "DriftContested")) == 1, "one Warning for the fight, not one per round"
    assert len(warnings(core, namespace, "DriftRepaired")) <= 2, "only the first repairs post their own Event"
    assert repairs <= elapsed / 3 + 3, "at most about one repair per resync interval (3 s here) once fighting"


class FakeDownBackstageCountingConnections:
    """A port where Backstage should be that accepts and closes every connection (Backstage down), and
    counts them: the real Backstage cannot be made to report how often it was asked."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.times: list[float] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.times.append(time.monotonic())
            connection.close()

    def since(self, moment: float) -> int:
        return len([t for t in self.times if t >= moment])

    def stop(self) -> None:
        self.server.close()


@pytest.mark.usefixtures("crds")
def test_rotation_waiting_for_backstage_probes_it_with_backoff_not_every_two_seconds(
    control_plane, core, custom, namespace, tmp_path: Path, figures
):
    from argobridge_dev.operatorproc import OperatorProcess

    backstage = FakeDownBackstageCountingConnections()
    shard = f"probe-{uuid.uuid4().hex[:6]}"
    body = bridge(namespace)
    body["metadata"]["labels"] = {"argobridge.io/shard": shard}
    body["spec"] = {"backstage": {"url": f"http://127.0.0.1:{backstage.port}"}, "token": {"mirror": {"name": "tokens"}}}
    create_bridge(custom, body)
    operator = OperatorProcess(control_plane.kubeconfig, shard, tmp_path / "operator.log", namespaces=[namespace])
    operator.env["ARGOBRIDGE_RESYNC_SECONDS"] = "120"
    operator.start()
    try:
        wait_for(lambda: (get_bridge(custom, namespace).get("status") or {}).get("token"), timeout=60, what="mirror")
        request_rotation(custom, namespace)
        wait_for(
            lambda: condition(get_bridge(custom, namespace), "TokenMirrored").get("reason") == "WaitingForBackstage",
            timeout=60,
            what="rotation waiting for Backstage",
        )
        watched_from = time.monotonic()
        time.sleep(40)
        probes = backstage.since(watched_from)
    finally:
        operator.stop()
        backstage.stop()
    figures.append(f"rotation waiting for Backstage: {probes} connections to Backstage in 40 s (every 2 s: 20 or more)")
    assert get_bridge(custom, namespace)["status"]["token"]["phase"] == "Published"
    assert probes <= 10, f"{probes} probes in 40 s: the wait must back off (5 s, 10 s, 20 s ...), not probe every 2 s"


@pytest.mark.usefixtures("argocd_crds", "operator")
def test_bridge_deletion_finishes_when_the_shared_context_key_is_unreadable(core, custom, namespace):
    create_bridge(custom, bridge(namespace, argocd={"url": "https://argocd.example.com"}))
    wait_for(lambda: condition(get_bridge(custom, namespace), "Ready").get("status") == "True", what="Ready")
    core.patch_namespaced_config_map(
        CM, namespace, {"data": {"context": "argocdUrl: [unclosed"}}, field_manager="someone"
    )
    delete_bridge(custom, namespace)
    wait_for(lambda: bridge_gone(custom, namespace), timeout=120, what="deletion finished despite the unreadable key")

    def told() -> list[Any]:
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=backstage,type=Warning")
        return [e for e in events.items if "context" in e.message]

    assert wait_for(told, what="a Warning naming what was left and why")
    assert cm_data(core, namespace)["context"] == "argocdUrl: [unclosed", "the user's key is left as it was"


@pytest.mark.usefixtures("argocd_crds", "operator")
def test_memory_of_a_deleted_application_and_a_deleted_bridge_is_dropped(core, custom, namespace):
    from argobridge.handlers import bridge as bridge_handlers
    from argobridge.steps import annotation_sync, probing

    app = create_app(namespace, "shop", dict(REF))
    uid = app["metadata"]["uid"]
    create_bridge(custom, bridge(namespace, subscriptions={"mode": "Annotations"}))
    wait_for(lambda: subscribed(namespace, "shop"), what="subscribe annotations added")
    # The operator records the app once its patch has returned, a moment after the apiserver shows it.
    wait_for(
        lambda: uid in annotation_sync._applied and (namespace, "backstage") in probing._probes,
        what="the operator remembering the app and the bridge's probe",
    )
    custom.delete_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "applications", "shop")
    wait_for(lambda: uid not in annotation_sync._applied and uid not in bridge_handlers._posted, what="app forgotten")
    delete_bridge(custom, namespace)
    wait_for(lambda: bridge_gone(custom, namespace), timeout=120, what="bridge deleted")
    key = (namespace, "backstage")
    records = {"probes": probing._probes, "counted": bridge_handlers._counted, "locks": bridge_handlers._locks}

    def kept() -> list[str]:
        return [name for name, record in records.items() if key in record]

    try:
        wait_for(lambda: not kept(), what="bridge forgotten")
    except AssertionError:
        raise AssertionError(f"still kept for the deleted bridge: {kept()}") from None


def test_an_operator_of_another_shard_never_takes_the_finalizer_off_a_bridge(
    operator: Any,
    control_plane: Any,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
):
    """Two operators (this session's, unsharded, and one serving a shard) side by side: the sharded
    bridge keeps its own shard's finalizer, is not rewritten while nothing changes, and its deletion
    still takes its keys out of Argo CD's configuration. With one finalizer name for every shard, kopf
    in the unsharded operator removed it on every event and the serving one put it back: the bridge
    was written without end, and one deleted at the wrong moment left its keys behind."""
    from argobridge.core.ownership import shard_finalizer
    from argobridge_dev.operatorproc import OperatorProcess

    shard = f"finalizers-{uuid.uuid4().hex[:6]}"
    body = bridge(namespace)
    body["metadata"]["labels"] = {"argobridge.io/shard": shard}
    create_bridge(custom, body)
    served = OperatorProcess(control_plane.kubeconfig, shard, tmp_path / "operator.log", namespaces=[namespace])
    served.start()
    try:
        wait_for(lambda: "service.webhook.backstage" in cm_data(core, namespace), timeout=60, what="config applied")
        wait_for(
            lambda: get_bridge(custom, namespace)["metadata"].get("finalizers") == [shard_finalizer(shard)],
            what="the shard's own finalizer, alone",
        )
        time.sleep(3)  # the first reconcile's status writes settle
        before = get_bridge(custom, namespace)["metadata"]["resourceVersion"]
        time.sleep(8)  # more than two resyncs of the sharded operator (3 s), plenty of events for the other
        after = get_bridge(custom, namespace)
        assert after["metadata"]["resourceVersion"] == before, "an idle sharded bridge was written"
        assert after["metadata"]["finalizers"] == [shard_finalizer(shard)]
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")
        wait_for(lambda: bridge_gone(custom, namespace), timeout=60, what="the bridge deleted")
        assert "service.webhook.backstage" not in cm_data(core, namespace)
    finally:
        served.stop()
