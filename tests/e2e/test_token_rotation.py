"""Token rotation while Argo CD delivers a steady stream of events to the real Backstage.

The operator runs as its own process (so it can be killed mid-rotation), serving only bridges
labelled with this module's shard. Backstage reads its two static tokens from ArgoBridge's mirror
Secret at start; ArgoBridge restarts its Deployment the way `kubectl rollout restart` does, and the
test plays the Deployment controller and kubelet: when the pod template changes it rolls a new
Backstage process, with the tokens the mirror Secret holds then, in behind a stand-in Service.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from argobridge.backstage.client import probe_create_endpoint
from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge.kube.deployments import RESTARTED_AT
from argobridge_dev.argocd_install import install_argocd_objects
from argobridge_dev.backstage import BackstageServer
from argobridge_dev.controlplane import ControlPlane
from argobridge_dev.engine import NotificationsController
from argobridge_dev.operatorproc import OperatorProcess
from argobridge_dev.relayproc import RelayProcess
from tests.conftest import wait_for
from tests.e2e.conftest import Rig, create_default_project
from tests.e2e.service_proxy import ServiceProxy

MIRROR = "backstage-tokens"
DEPLOYMENT = "backstage"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BackstageKubelet(threading.Thread):
    """Rolls Backstage over whenever the Deployment's pod template is stamped, as the Deployment
    controller and the kubelet would with a RollingUpdate: a new pod reading the tokens the mirror
    Secret holds at that moment starts, becomes ready (catalog ingested), takes the Service's
    traffic, and only then the old pod stops. Each pod has its own database here (SQLite files
    cannot be shared by two processes), so what the old one stored is collected before it stops."""

    def __init__(self, namespace: str, service: ServiceProxy, databases: Path) -> None:
        super().__init__(daemon=True)
        self.namespace, self.service, self.databases = namespace, service, databases
        self.apps, self.core = client.AppsV1Api(), client.CoreV1Api()
        self.stopping = threading.Event()
        self.seen: str | None = None
        self.pod: BackstageServer | None = None
        self.archived: list[dict[str, Any]] = []  # notifications stored by pods that are gone
        self.rollouts: list[float] = []
        self.error: BaseException | None = None

    def stamp(self) -> str | None:
        deployment = self.apps.read_namespaced_deployment(DEPLOYMENT, self.namespace)
        return (deployment.spec.template.metadata.annotations or {}).get(RESTARTED_AT)

    def tokens(self) -> tuple[str, str]:
        data = self.core.read_namespaced_secret(MIRROR, self.namespace).data
        return base64.b64decode(data["current"]).decode(), base64.b64decode(data["previous"]).decode()

    def roll(self) -> None:
        """Start a new pod with the Secret's current tokens; switch traffic; retire the old pod."""
        started = time.monotonic()
        current, previous = self.tokens()
        database = self.databases / f"pod-{len(self.rollouts)}"
        database.mkdir()
        pod = BackstageServer(token=current, previous_token=previous, database=database).start()
        old, self.pod = self.pod, pod
        self.service.retarget(pod.port)
        if old is not None:
            time.sleep(1.0)  # requests already inside the old pod finish
            self.service.close_to(old.port)
            self.archived += old.notifications("alice")
            old.stop()
        self.rollouts.append(time.monotonic() - started)

    def run(self) -> None:
        try:
            while not self.stopping.wait(0.5):
                stamp = self.stamp()
                if stamp != self.seen:
                    self.seen = stamp
                    self.roll()
        except BaseException as error:  # reported by the test
            self.error = error

    def notifications(self) -> list[dict[str, Any]]:
        """Everything alice received, from the pods that are gone and from the serving one."""
        pod = self.pod
        return self.archived + (pod.notifications("alice") if pod else [])

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=120)
        if self.pod:
            self.pod.stop()


class EventStream(threading.Thread):
    """One new Application per interval, synced successfully: one SyncSucceeded notification each."""

    def __init__(self, rig: Rig, interval: float) -> None:
        super().__init__(daemon=True)
        self.rig, self.interval = rig, interval
        self.stopping = threading.Event()
        self.sent: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            index = 0
            while not self.stopping.is_set():
                name = f"stream-{index:03d}"
                self.rig.create_app(name, subscribe=False)
                self.stopping.wait(0.3)
                self.rig.set_status(name, "Succeeded", "Healthy", "synced", started=now(), revision=f"r{index}")
                self.sent.append(name)
                index += 1
                self.stopping.wait(self.interval)
        except BaseException as error:
            self.error = error


class RotationRig(Rig):
    def __init__(
        self,
        *args: Any,
        operator: OperatorProcess,
        kubelet: BackstageKubelet,
        service: ServiceProxy,
        relay: RelayProcess | None = None,
    ) -> None:
        super().__init__(*args)
        self.operator, self.kubelet, self.service, self.relay = operator, kubelet, service, relay

    def mirror(self) -> tuple[str, str]:
        return self.kubelet.tokens()

    def delivered(self) -> set[str]:
        """The apps alice got a notification for, across every Backstage pod so far."""
        prefix = f"argocd/{self.namespace}/"
        try:
            notifications = self.kubelet.notifications()
        except (OSError, RuntimeError):
            return set()
        return {
            scope[len(prefix) :].split("/")[0]
            for item in notifications
            if (scope := item["payload"].get("scope") or "").startswith(prefix)
        }


RELAY_CONFIG = "argobridge-relay-config"


@pytest.fixture(scope="module", params=["Direct", "Relay"])
def rotation(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    crds: list[str],
    argocd_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RotationRig]:
    """Direct: Argo CD posts to Backstage. Relay: through a real relay process, which must accept the
    token Argo CD holds at every moment of a rotation and forward with one Backstage accepts."""
    core, custom, apps = client.CoreV1Api(), client.CustomObjectsApi(), client.AppsV1Api()
    suffix = uuid.uuid4().hex[:6]
    namespace, backstage_ns, shard = f"argocd-rot-{suffix}", f"backstage-{suffix}", f"rotation-{suffix}"
    for name in (namespace, backstage_ns):
        core.create_namespace({"metadata": {"name": name}})
    logs = tmp_path_factory.mktemp("rotation")
    relay, relay_env = None, {}
    if request.param == "Relay":
        core.create_namespaced_secret(backstage_ns, {"metadata": {"name": RELAY_CONFIG}})
        config = f"{backstage_ns}/{RELAY_CONFIG}"
        relay = RelayProcess(logs / "relay", config_secret=config, kubeconfig=control_plane.kubeconfig).start()
        relay_env = {"ARGOBRIDGE_RELAY_URL": relay.url, "ARGOBRIDGE_RELAY_CONFIG_SECRET": config}
    install_argocd_objects(core, namespace)
    create_default_project(custom, namespace)
    labels = {"app": "backstage"}
    apps.create_namespaced_deployment(
        backstage_ns,
        {
            "metadata": {"name": DEPLOYMENT},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "backstage", "image": "backstage:local"}]},
                },
            },
        },
    )
    service = ServiceProxy().start()
    port = service.port
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "BackstageBridge",
            "metadata": {"name": "backstage", "namespace": namespace, "labels": {"argobridge.io/shard": shard}},
            "spec": {
                "backstage": {"url": f"http://127.0.0.1:{port}"},
                "argocd": {"url": "https://argocd.example.com"},
                "events": [{"event": "SyncSucceeded"}],
                "delivery": {"mode": request.param},
                "token": {
                    "mirror": {"namespace": backstage_ns, "name": MIRROR, "restartDeployment": DEPLOYMENT},
                    "rotation": {"gracePeriod": "15s"},
                },
            },
        },
    )
    # --debug: the test proves that no token reaches even a debug-level log.
    operator = OperatorProcess(
        control_plane.kubeconfig, shard, logs / "operator.log", env=relay_env, namespaces=[namespace], debug=True
    ).start()
    kubelet = BackstageKubelet(backstage_ns, service, logs)
    controller = NotificationsController(control_plane.kubeconfig, namespace, logs / "controller.log")
    try:
        wait_for(lambda: _mirror_exists(core, backstage_ns), timeout=60, what="mirror Secret written by ArgoBridge")
        kubelet.seen = kubelet.stamp()
        kubelet.roll()
        kubelet.start()
        controller.start()
        assert kubelet.pod is not None
        yield RotationRig(
            namespace, kubelet.pod, controller, operator=operator, kubelet=kubelet, service=service, relay=relay
        )
    finally:
        kubelet.stop()
        operator.stop()
        controller.stop()
        service.stop()
        if relay is not None:
            relay.stop()


def _mirror_exists(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        return bool(core.read_namespaced_secret(MIRROR, namespace).data)
    except client.exceptions.ApiException:
        return False


def _rotated_from(rig: RotationRig, old: str) -> str | None:
    """The new token once a rotation from `old` is complete: Argo CD switched and the old one retired."""
    current, previous = rig.mirror()
    token = rig.token()
    bridge = rig.bridge()
    phase = (bridge.get("status") or {}).get("token", {}).get("phase")
    if token != old and current == previous == token and phase == "Idle":
        return token
    return None


@pytest.mark.timeout(900)
def test_two_rotations_one_with_the_operator_killed_lose_no_event(rotation: RotationRig, figures: list[str]):
    rig = rotation
    wait_for(lambda: rig.token() == rig.mirror()[0] == rig.mirror()[1], timeout=60, what="token mirrored")
    first = rig.token()
    wait_for(
        lambda: (
            probe_create_endpoint(f"http://127.0.0.1:{rig.service.port}/api/notifications/notifications", first).status
            == 400
        ),
        timeout=120,
        what="Backstage accepts the mirrored token",
    )
    stream = EventStream(rig, interval=1.0)
    stream.start()
    started = time.monotonic()
    try:
        # Rotation 1, on request, undisturbed.
        assert (
            subprocess.run(
                [
                    str(Path(sys.executable).parent / "argobridge"),
                    "rotate-token",
                    "--bridge",
                    "backstage",
                    "-n",
                    rig.namespace,
                ],
                check=True,
                capture_output=True,
                text=True,
            ).returncode
            == 0
        )
        second = wait_for(lambda: _rotated_from(rig, first), timeout=240, interval=1, what="first rotation complete")
        first_done = time.monotonic() - started

        # Rotation 2: kill the operator once the new token is published but before Argo CD switched.
        rig.apps.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            rig.namespace,
            PLURAL,
            "backstage",
            {"metadata": {"annotations": {"argobridge.io/rotate-token": "second"}}},
        )
        wait_for(
            lambda: rig.mirror()[0] != second and rig.mirror()[1] == second,
            timeout=60,
            interval=0.2,
            what="second rotation published",
        )
        rig.operator.kill()
        assert rig.token() == second, "Argo CD must not have switched before Backstage was seen to accept"
        time.sleep(5)
        rig.operator.start()
        third = wait_for(lambda: _rotated_from(rig, second), timeout=240, interval=1, what="second rotation complete")
        assert third not in (first, second)
    finally:
        stream.stopping.set()
        stream.join(timeout=30)
    assert stream.error is None and rig.kubelet.error is None, (stream.error, rig.kubelet.error)
    sent = set(stream.sent)
    assert len(sent) >= 20, "the stream must have run through both rotations"
    try:
        wait_for(lambda: rig.delivered() >= sent, timeout=180, interval=2, what=f"all {len(sent)} events delivered")
    except AssertionError as error:
        raise AssertionError(f"{error}; missing {sorted(sent - rig.delivered())}") from None
    assert rig.delivered() == sent, "count sent = count received, nothing extra"
    # A 401 status, not any "401" (the relay's loopback port can contain those digits).
    rejected = [line for line in rig.controller.log_lines() if re.search(r"(?<!\d)401(?!\d)", str(line.get("msg", "")))]
    assert rejected == [], "no delivery may be rejected for its token"
    mode = "Direct"
    if rig.relay is not None:
        mode = "Relay"
        counts = rig.relay.bridge_status(rig.namespace, "backstage")
        assert (counts["rejected"], counts["deadLettered"], counts["pending"]) == (0, 0, 0), counts
        assert counts["delivered"] >= len(sent)
    figures.append(
        f"rotation ({mode}): {len(sent)} events sent = received across 2 rotations (operator killed in the second);"
        f" first rotation {first_done:.0f}s; Backstage rollouts {', '.join(f'{s:.0f}s' for s in rig.kubelet.rollouts)}"
    )
    # Debug-level operator log across everything above: not one of the three tokens.
    log = rig.operator.log()
    assert "is invoked" in log, "the log must really be at debug level (kopf logs handler invocations there)"
    relay_log = rig.relay.log() if rig.relay is not None else ""
    for token in (first, second, third):
        assert token not in log and token not in relay_log
