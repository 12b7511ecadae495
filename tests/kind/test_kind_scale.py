"""Test D: 1,000 Applications in the cluster; the operator under the chart's default limits never restarts."""

from __future__ import annotations

import json
import time

import yaml
from kubernetes import client

from argobridge_dev.controlplane import free_port
from argobridge_dev.kind.cluster import KindCluster
from tests.conftest import wait_for
from tests.kind.conftest import (
    ARGOCD_NAMESPACE,
    CHART,
    chart_values,
    create_bridge,
    delete_bridge,
    restricted_namespace,
    start_backstage,
)

NAMESPACE = "argobridge-scale"
APPS = 1000


def working_set_bytes(kind: KindCluster) -> int:
    """The operator container's memory as the kubelet reports it (stats summary, workingSetBytes)."""
    node = client.CoreV1Api().list_node().items[0].metadata.name
    summary = json.loads(kind.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/stats/summary"))
    for pod in summary.get("pods", []):
        if pod["podRef"]["namespace"] == NAMESPACE and pod["podRef"]["name"] in operator_pod_names():
            for container in pod.get("containers", []):
                return int(container.get("memory", {}).get("workingSetBytes", 0))
    return 0


OPERATOR = "app.kubernetes.io/component=operator"


def operator_pod_names() -> set[str]:
    pods = client.CoreV1Api().list_namespaced_pod(NAMESPACE, label_selector=OPERATOR).items
    return {p.metadata.name for p in pods}


def operator_statuses() -> list[client.V1ContainerStatus]:
    """Every container of the release (operator and relay): none may restart."""
    return [
        s for p in client.CoreV1Api().list_namespaced_pod(NAMESPACE).items for s in p.status.container_statuses or []
    ]


def test_thousand_applications_never_oom_kill_the_operator(kind: KindCluster, figures: list[str]) -> None:
    restricted_namespace(NAMESPACE)
    kind.helm("install", "argobridge-scale", str(CHART), "-n", NAMESPACE, *chart_values(), "--wait", "--timeout", "5m")
    host, port = kind.gateway(), free_port()
    create_bridge(host, port)
    backstage = start_backstage(host, port)
    try:
        idle = wait_for(lambda: working_set_bytes(kind), timeout=120, what="kubelet memory stats for the operator")
        apps = [
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Application",
                "metadata": {
                    "name": f"scale-{i:04d}",
                    "namespace": ARGOCD_NAMESPACE,
                    "annotations": {"backstage.io/entity-ref": "component:default/shop"},
                },
                "spec": {
                    "project": "default",
                    "source": {"repoURL": "https://git.example.com/shop.git", "path": f"app{i}"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
                },
            }
            for i in range(APPS)
        ]
        began = time.monotonic()
        kind.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(apps))
        peak, deadline = 0, time.monotonic() + 120
        while time.monotonic() < deadline:
            peak = max(peak, working_set_bytes(kind))
            time.sleep(2)
        operator = client.CoreV1Api().list_namespaced_pod(NAMESPACE, label_selector=OPERATOR).items[0]
        limit = operator.spec.containers[0].resources.limits["memory"]
        figures.append(
            f"D: operator working set (kubelet) idle {idle / 2**20:.0f} MiB, peak over 120 s with {APPS} Applications "
            f"{peak / 2**20:.0f} MiB (limit {limit}); apps applied in {time.monotonic() - began - 120:.0f}s"
        )
        statuses = operator_statuses()
        assert all(s.restart_count == 0 for s in statuses), [s.last_state for s in statuses]
        assert all(s.ready for s in statuses)
    finally:
        backstage.stop()
        delete_bridge()
        kind.kubectl("-n", ARGOCD_NAMESPACE, "delete", "applications", "-l", "!nonexistent", "--wait=false")
        kind.helm("uninstall", "argobridge-scale", "-n", NAMESPACE, "--wait")
