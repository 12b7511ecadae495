"""Test C: the delivery relay as the chart installs it, each replica on a PersistentVolumeClaim.

What a user relies on: a notification the relay accepted survives the pod that holds it (deleted while
Backstage is down, it is delivered once Backstage is back, exactly once), and evicting one replica while
Argo CD sends loses nothing, since the controller reaches the other through the Service.
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
from collections import Counter

from kubernetes import client

from argobridge_dev.backstage import BackstageServer
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

NAMESPACE = "argobridge-relay"
RELEASE = "argobridge-relay"
RELAY = "app.kubernetes.io/component=relay"
STATUS_PORT = 8091


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def relay_pods() -> list[client.V1Pod]:
    pods = client.CoreV1Api().list_namespaced_pod(NAMESPACE, label_selector=RELAY).items
    return [p for p in pods if not p.metadata.deletion_timestamp]


def ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def pending(kind: KindCluster) -> dict[str, int]:
    """Pending notifications per relay pod, from each replica's own /v1/status (through the apiserver)."""
    counts: dict[str, int] = {}
    for pod in relay_pods():
        name = pod.metadata.name
        try:
            raw = kind.kubectl(
                "get", "--raw", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}:{STATUS_PORT}/proxy/v1/status"
            )
        except Exception:
            continue
        bridges = json.loads(raw).get("bridges", {})
        counts[name] = sum(int(entry.get("pending") or 0) for entry in bridges.values())
    return counts


def failed_counts(backstage: BackstageServer, apps: list[str]) -> Counter[str]:
    scopes = Counter((n["payload"].get("scope") or "") for n in backstage.notifications("alice"))
    return Counter(
        {
            app: sum(c for s, c in scopes.items() if s.startswith(f"argocd/{ARGOCD_NAMESPACE}/{app}/SyncFailed"))
            for app in apps
        }
    )


def current_token() -> str:
    secret = client.CoreV1Api().read_namespaced_secret("argocd-notifications-secret", ARGOCD_NAMESPACE)
    return base64.b64decode((secret.data or {})["backstage-token"]).decode()


def fail_syncs(apps: list[str], pause: float = 0.0) -> None:
    for app in apps:
        create_app(app)
        time.sleep(0.5)
        set_failed(app, now())
        time.sleep(pause)


def test_pending_notifications_outlive_the_relay_pod_and_an_eviction_loses_nothing(
    kind: KindCluster, figures: list[str]
) -> None:
    restricted_namespace(NAMESPACE)
    started = time.monotonic()
    kind.helm("install", RELEASE, str(CHART), "-n", NAMESPACE, *chart_values(), "--wait", "--timeout", "5m")
    figures.append(f"C: helm install with the relay on PVCs (default values) {time.monotonic() - started:.0f}s")
    claims = client.CoreV1Api().list_namespaced_persistent_volume_claim(NAMESPACE).items
    assert len(claims) == 2 and all(c.status.phase == "Bound" for c in claims), [
        (c.metadata.name, c.status.phase) for c in claims
    ]

    host, port = kind.gateway(), free_port()
    create_bridge(host, port)
    backstage = start_backstage(host, port)
    try:
        service = client.CoreV1Api().read_namespaced_config_map("argocd-notifications-cm", ARGOCD_NAMESPACE)
        webhook = next(v for k, v in (service.data or {}).items() if k.startswith("service.webhook."))
        assert f"{RELEASE}-relay.{NAMESPACE}.svc" in webhook, webhook

        fail_syncs(["relay-warm"])
        wait_for(lambda: failed_counts(backstage, ["relay-warm"])["relay-warm"], timeout=120, what="the first event")

        # Backstage down: what Argo CD sends waits in the relay's outboxes.
        backstage.stop()
        held = [f"held-{i}" for i in range(10)]
        fail_syncs(held)
        by_pod = wait_for(
            lambda: (counts := pending(kind)) and sum(counts.values()) == len(held) and counts,
            timeout=120,
            interval=1,
            what=f"{len(held)} notifications pending in the relay",
        )
        holders = sorted(name for name, count in by_pod.items() if count)
        old_uids = {p.metadata.name: p.metadata.uid for p in relay_pods()}
        for name in holders:
            client.CoreV1Api().delete_namespaced_pod(name, NAMESPACE)
        wait_for(
            lambda: (
                all(
                    p.metadata.uid != old_uids[p.metadata.name] and ready(p)
                    for p in relay_pods()
                    if p.metadata.name in holders
                )
                and len(relay_pods()) == 2
            ),
            timeout=180,
            what="the deleted relay pods back and Ready",
        )
        after = wait_for(
            lambda: (counts := pending(kind)) and len(counts) == 2 and counts,
            timeout=60,
            what="status of both replicas",
        )
        figures.append(f"C: pending before deleting {holders}: {by_pod}; after they came back: {after}")
        assert sum(after.values()) == len(held), after

        began = time.monotonic()
        backstage = backstage.restart(current_token())
        wait_for(lambda: all(failed_counts(backstage, held).values()), timeout=180, what="every held notification")
        figures.append(
            f"C: all {len(held)} held notifications delivered {time.monotonic() - began:.0f}s after Backstage restarted"
        )
        time.sleep(5)
        assert failed_counts(backstage, held) == Counter(dict.fromkeys(held, 1))

        # Evict one replica (as a node drain does) while Argo CD sends one event a second.
        stream = [f"evict-{i}" for i in range(12)]
        sender = threading.Thread(target=fail_syncs, args=(stream, 0.5))
        sender.start()
        time.sleep(3)
        victim = relay_pods()[0].metadata.name
        client.CoreV1Api().create_namespaced_pod_eviction(
            victim, NAMESPACE, client.V1Eviction(metadata=client.V1ObjectMeta(name=victim, namespace=NAMESPACE))
        )
        sender.join()
        wait_for(
            lambda: len(relay_pods()) == 2 and all(ready(p) for p in relay_pods()),
            timeout=180,
            what="the relay whole again",
        )
        wait_for(
            lambda: all(failed_counts(backstage, stream).values()),
            timeout=180,
            what="every event sent during the eviction",
        )
        time.sleep(5)
        counts = failed_counts(backstage, stream)
        figures.append(f"C: evicted {victim} while 12 syncs failed: {sum(counts.values())} notifications for 12 events")
        assert counts == Counter(dict.fromkeys(stream, 1)), counts
    finally:
        backstage.stop()
        delete_bridge()
        kind.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
