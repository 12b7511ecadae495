"""`make bench`, many bridges: 100 Argo CD namespaces with a bridge and 100 Applications each, one operator.

The single-bridge bench (`run_bench.py`) measures one big namespace; a platform team's cluster is more
often many small ones, where the cost is per bridge: its reconciles, its timers, its watches by name, its
share of the store. Figures are printed beside their targets; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from argobridge_dev.argocd_install import install_argocd_objects
from argobridge_dev.controlplane import ControlPlane
from tests.bench.run_bench import (
    Operator,
    app_body,
    create_bridge,
    describe,
    operator_writes,
    percentile,
    prepare_cluster,
    spec_to_configmap,
    wait_quiet,
    wait_until,
)

TARGETS = {"rss_peak_mb": ("<", 200.0), "idle_writes": ("<=", 0), "spec_to_configmap_p95_s": ("<", 1.0)}
SPEC = {"backstage": {"url": "http://127.0.0.1:9"}, "argocd": {"url": "https://argocd.example.com"}}


def namespace_of(index: int) -> str:
    return f"team-{index:03d}"


def subscribed(custom: client.CustomObjectsApi) -> dict[str, int]:
    """Subscribed Applications per namespace, as every bridge's status says, in one list."""
    items = custom.list_cluster_custom_object("argobridge.io", "v1alpha1", "backstagebridges")["items"]
    return {
        item["metadata"]["namespace"]: int(((item.get("status") or {}).get("applications") or {}).get("subscribed", 0))
        for item in items
    }


def ready_count(custom: client.CustomObjectsApi) -> int:
    items = custom.list_cluster_custom_object("argobridge.io", "v1alpha1", "backstagebridges")["items"]
    return sum(
        1
        for item in items
        for condition in (item.get("status") or {}).get("conditions", [])
        if condition.get("type") == "Ready" and condition.get("status") == "True"
    )


def run(bridges: int, apps: int, idle_seconds: float, changes: int, workdir: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {"bridges": bridges, "applications_per_bridge": apps}
    with ControlPlane(audit=True) as plane:
        core, custom = prepare_cluster(plane)
        started = time.monotonic()

        def populate(index: int) -> None:
            namespace = namespace_of(index)
            core.create_namespace({"metadata": {"name": namespace}})
            install_argocd_objects(core, namespace)
            for app in range(apps):
                custom.create_namespaced_custom_object(
                    "argoproj.io", "v1alpha1", namespace, "applications", app_body(app, namespace)
                )
            create_bridge(custom, SPEC, namespace)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(populate, range(bridges)))
        figures["populate_s"] = time.monotonic() - started

        operator = Operator(plane.kubeconfig, workdir / "operator-many-bridges.log")
        try:
            expected = {namespace_of(index): apps for index in range(bridges)}
            figures["all_indexed_and_counted_s"] = wait_until(
                lambda: subscribed(custom) == expected, timeout=900, interval=1.0
            )
            figures["startup_cpu_s"] = operator.cpu_seconds()
            figures["settled_s"] = figures["all_indexed_and_counted_s"] + wait_quiet(plane)
            figures["ready_bridges"] = ready_count(custom)
            writes, cpu = len(operator_writes(plane)), operator.cpu_seconds()
            time.sleep(idle_seconds)
            idle = operator_writes(plane)[writes:]
            figures["idle_seconds"] = idle_seconds
            figures["idle_writes"] = len(idle)
            figures["idle_write_requests"] = [describe(event) for event in idle][:20]
            figures["idle_cpu_s"] = operator.cpu_seconds() - cpu
            figures["rss_steady_mb"], figures["rss_peak_mb"] = operator.rss_mb()

            # Reaction: a change of one bridge's spec until its namespace's ConfigMap holds it, spread
            # over the bridges (37 is prime to 100: consecutive changes hit different namespaces).
            latencies, severities = [], {}
            for change in range(changes):
                namespace = namespace_of(change * 37 % bridges)
                severity = "high" if severities.get(namespace) == "critical" else "critical"
                severities[namespace] = severity
                latencies.append(spec_to_configmap(core, custom, namespace, severity))
            figures["spec_to_configmap_p50_s"] = statistics.median(latencies)
            figures["spec_to_configmap_p95_s"] = percentile(latencies, 0.95)
        finally:
            operator.stop()
    return figures


def against_targets(figures: dict[str, Any]) -> list[str]:
    lines = []
    for key, (relation, target) in TARGETS.items():
        value = figures[key]
        met = value < target if relation == "<" else value <= target
        lines.append(f"{key}: {value:.3g} (target {relation} {target:g}: {'met' if met else 'NOT met'})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bridges", type=int, default=100)
    parser.add_argument("--apps", type=int, default=100, help="Applications per bridge's namespace")
    parser.add_argument("--idle", type=float, default=120.0, help="idle period in seconds")
    parser.add_argument("--changes", type=int, default=30, help="spec changes for the reaction time")
    parser.add_argument("--json", default="build/bench-many-bridges.json")
    args = parser.parse_args()
    workdir = Path(args.json).resolve().parent
    workdir.mkdir(parents=True, exist_ok=True)
    figures = run(args.bridges, args.apps, args.idle, args.changes, workdir)
    figures["against_targets"] = against_targets(figures)
    Path(args.json).write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
