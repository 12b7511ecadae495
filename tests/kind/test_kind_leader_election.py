"""Test B: two operator replicas under a real kubelet: one leads, both stay live and ready, handover works."""

from __future__ import annotations

import datetime
import threading
import time

from kubernetes import client

from argobridge_dev.controlplane import free_port
from argobridge_dev.kind.cluster import KindCluster
from tests.conftest import wait_for
from tests.kind.conftest import (
    ARGOCD_NAMESPACE,
    CHART,
    chart_values,
    create_app,
    create_bridge,
    delete_bridge,
    restricted_namespace,
    set_failed,
    start_backstage,
)

NAMESPACE = "argobridge-ha"
LEASE_SECONDS = 15


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def release_pods(selector: str = "") -> list[client.V1Pod]:
    pods = client.CoreV1Api().list_namespaced_pod(NAMESPACE, label_selector=selector).items
    return [p for p in pods if not p.metadata.deletion_timestamp]


def operator_pods() -> list[client.V1Pod]:
    """The operator's replicas (the release's relay pods run beside them)."""
    return release_pods("app.kubernetes.io/component=operator")


def ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def holder() -> str:
    leases = client.CoordinationV1Api().list_namespaced_lease(NAMESPACE).items
    return next((lease.spec.holder_identity or "" for lease in leases), "")


class ProbeWatch:
    """Samples the pods every half second: any container restart or a Ready pod turning unready is recorded."""

    def __init__(self) -> None:
        self.faults: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for pod in release_pods():  # the relay's pods too: nothing of the release may restart
                for status in pod.status.container_statuses or []:
                    if status.restart_count:
                        self.faults.append(f"{pod.metadata.name} restarted ({status.last_state})")
                if pod.status.phase == "Running" and pod.status.container_statuses and not ready(pod):
                    age = time.time() - pod.metadata.creation_timestamp.timestamp()
                    if age > 60:
                        self.faults.append(f"{pod.metadata.name} not Ready at {age:.0f}s old")

    def __enter__(self) -> ProbeWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def failed_syncs(backstage: object, app: str) -> list[dict[str, object]]:
    items = backstage.notifications("alice")  # type: ignore[attr-defined]
    return [
        n for n in items if (n["payload"].get("scope") or "").startswith(f"argocd/{ARGOCD_NAMESPACE}/{app}/SyncFailed")
    ]


def test_two_replicas_one_leads_handover_and_rolling_upgrade_lose_nothing(
    kind: KindCluster, figures: list[str]
) -> None:
    restricted_namespace(NAMESPACE)
    values = chart_values(**{"replicaCount": "2", "leaderElection.enabled": "true"})
    kind.helm("install", "argobridge-ha", str(CHART), "-n", NAMESPACE, *values, "--wait", "--timeout", "5m")
    host, port = kind.gateway(), free_port()
    create_bridge(host, port)
    backstage = start_backstage(host, port)
    try:
        with ProbeWatch() as probes:
            pods = wait_for(
                lambda: [p for p in operator_pods() if ready(p)] if len(operator_pods()) == 2 else [],
                timeout=120,
                what="two Ready replicas",
            )
            names = {p.metadata.name for p in pods}
            leader = wait_for(lambda: holder() if holder() in names else "", timeout=60, what="a leader among the pods")
            assert len([n for n in names if n == leader]) == 1

            started = time.monotonic()
            client.CoreV1Api().delete_namespaced_pod(leader, NAMESPACE)
            survivor = (names - {leader}).pop()

            def new_leader() -> str:
                """A live replica other than the deleted one: the survivor, or the Deployment's replacement
                pod, which may win the released Lease before the survivor's next 2 s retry."""
                current = holder()
                live = {p.metadata.name for p in operator_pods()}
                return current if current != leader and current in live else ""

            successor = wait_for(new_leader, timeout=LEASE_SECONDS + 5, interval=0.2, what="handover to a live replica")
            handover = time.monotonic() - started
            who = "the survivor" if successor == survivor else "the replacement pod"
            figures.append(
                f"B: leader handover after deleting its pod {handover:.1f}s to {who} (target <= {LEASE_SECONDS}s)"
            )
            assert handover <= LEASE_SECONDS

            create_app("after-handover")
            time.sleep(1)
            set_failed("after-handover", now())
            wait_for(
                lambda: failed_syncs(backstage, "after-handover"),
                timeout=120,
                interval=0.5,
                what="the event after handover",
            )

            upgrade = threading.Thread(
                target=kind.helm,
                args=(
                    "upgrade",
                    "argobridge-ha",
                    str(CHART),
                    "-n",
                    NAMESPACE,
                    *values,
                    "--set",
                    "operator.resyncSeconds=120",
                    "--wait",
                    "--timeout",
                    "5m",
                ),
            )
            began = time.monotonic()
            upgrade.start()
            apps = [f"rolling-{i}" for i in range(10)]
            for app in apps:
                create_app(app)
                time.sleep(1)
                set_failed(app, now())
                time.sleep(2)
            upgrade.join()
            kind.kubectl("-n", NAMESPACE, "rollout", "status", "deployment", "--timeout=300s")
            figures.append(f"B: helm upgrade rolled out in {time.monotonic() - began:.0f}s while 10 syncs failed")
            for app in apps:
                wait_for(lambda app=app: failed_syncs(backstage, app), timeout=120, interval=0.5, what=f"{app}")
            time.sleep(5)
            counts = {app: len(failed_syncs(backstage, app)) for app in apps}
            assert counts == dict.fromkeys(apps, 1), counts
        assert probes.faults == [], probes.faults
    finally:
        backstage.stop()
        delete_bridge()
        kind.helm("uninstall", "argobridge-ha", "-n", NAMESPACE, "--wait")
