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
    return relay_counter(kind, "pending")


def relay_counter(kind: KindCluster, field: str) -> dict[str, int]:
    """One figure of every relay pod's /v1/status, summed over its bridges."""
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
        counts[name] = sum(int(entry.get(field) or 0) for entry in bridges.values())
    return counts


# What one failed sync produces (set_failed also marks the app Degraded, as Argo CD does): two notifications.
EVENTS = ("SyncFailed", "HealthDegraded")


def delivered(backstage: BackstageServer, apps: list[str]) -> Counter[tuple[str, str]]:
    """alice's notifications per (app, event), read from their scopes `argocd/<ns>/<app>/<event>`."""
    got: Counter[tuple[str, str]] = Counter()
    for item in backstage.notifications("alice"):
        parts = (item["payload"].get("scope") or "").split("/")
        if len(parts) == 4 and parts[1] == ARGOCD_NAMESPACE and parts[2] in apps:
            got[(parts[2], parts[3])] += 1
    return got


def expected(apps: list[str]) -> Counter[tuple[str, str]]:
    return Counter({(app, event): 1 for app in apps for event in EVENTS})


def complete(backstage: BackstageServer, apps: list[str]) -> bool:
    return set(delivered(backstage, apps)) >= set(expected(apps))


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
        wait_for(lambda: complete(backstage, ["relay-warm"]), timeout=120, what="the first event")

        # Backstage down: what Argo CD sends waits in the relay's outboxes.
        backstage.stop()
        held = [f"held-{i}" for i in range(10)]
        fail_syncs(held)
        by_pod = wait_for(
            lambda: (counts := pending(kind)) and sum(counts.values()) == len(expected(held)) and counts,
            timeout=120,
            interval=1,
            what=f"{len(expected(held))} notifications pending in the relay",
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
        assert sum(after.values()) == len(expected(held)), after

        began = time.monotonic()
        backstage = backstage.restart(current_token())
        wait_for(lambda: complete(backstage, held), timeout=180, what="every held notification")
        figures.append(
            f"C: all {len(held)} held notifications delivered {time.monotonic() - began:.0f}s after Backstage restarted"
        )
        time.sleep(5)
        assert delivered(backstage, held) == expected(held)

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
            lambda: complete(backstage, stream),
            timeout=180,
            what="every event sent during the eviction",
        )
        time.sleep(5)
        counts = delivered(backstage, stream)
        figures.append(
            f"C: evicted {victim} while 12 syncs failed: {sum(counts.values())} notifications"
            f" for {len(expected(stream))} events"
        )
        assert counts == expected(stream), counts
        # Backstage shows one notification per scope even if it was posted twice: the relays' own counters
        # (kept on the volumes through the deletions and the eviction) say each was delivered once.
        posts = relay_counter(kind, "delivered")
        assert sum(posts.values()) == len(expected(["relay-warm", *held, *stream])), posts
    finally:
        backstage.stop()
        delete_bridge()
        kind.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
