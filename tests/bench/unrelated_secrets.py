"""`make bench`, second line: the operator's memory does not grow with the Secrets of the cluster.

The operator watches Secrets and ConfigMaps by name (kube/namewatch.py), so 5,000 unrelated Secrets of
about 100 KiB each (~500 MiB, the size of a cluster full of Helm release Secrets) never reach it. Two
fresh control planes: one without them, one with them created before the operator starts (a LIST of
every Secret at start would be the worst moment) and changed while it runs. Figures only, no verdict
beyond printing the target beside them.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from argobridge_dev.controlplane import ControlPlane
from tests.bench.run_bench import Operator, bridge_status, create_bridge, prepare_cluster, wait_until

TARGET_MB = 10.0
SECRET_BYTES = 100 * 1024
SETTLE_SECONDS = 20.0


def create_unrelated_secrets(core: client.CoreV1Api, count: int, namespaces: int = 50) -> float:
    """`count` Secrets of SECRET_BYTES each spread over `namespaces` namespaces; seconds it took."""
    started = time.monotonic()
    for index in range(namespaces):
        core.create_namespace({"metadata": {"name": f"team-{index:02d}"}})
    payload = base64.b64encode(os.urandom(SECRET_BYTES * 3 // 4)).decode()  # ~100 KiB once encoded

    def create(index: int) -> None:
        body = {
            "metadata": {"name": f"sh.helm.release.v1.app-{index:05d}.v1", "labels": {"owner": "helm"}},
            "type": "helm.sh/release.v1",
            "data": {"release": payload},
        }
        core.create_namespaced_secret(f"team-{index % namespaces:02d}", body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))
    return time.monotonic() - started


def ready(custom: client.CustomObjectsApi) -> bool:
    conditions = bridge_status(custom).get("conditions") or []
    return any(c.get("type") == "ConfigApplied" and c.get("status") == "True" for c in conditions)


def measure(secrets: int, churn: int, workdir: Path) -> dict[str, Any]:
    """Operator RSS once configured and settled, and again after `churn` updates of unrelated Secrets."""
    figures: dict[str, Any] = {"unrelated_secrets": secrets}
    with ControlPlane() as plane:
        core, custom = prepare_cluster(plane)
        if secrets:
            figures["create_s"] = create_unrelated_secrets(core, secrets)
        create_bridge(
            custom, {"backstage": {"url": "http://127.0.0.1:9"}, "argocd": {"url": "https://argocd.example.com"}}
        )
        operator = Operator(plane.kubeconfig, workdir / f"operator-secrets-{secrets}.log")
        try:
            figures["configured_s"] = wait_until(lambda: ready(custom), timeout=300, interval=0.2)
            time.sleep(SETTLE_SECONDS)
            figures["rss_mb"], figures["rss_peak_mb"] = operator.rss_mb()
            for index in range(churn):
                core.patch_namespaced_secret(
                    f"sh.helm.release.v1.app-{index:05d}.v1",
                    f"team-{index % 50:02d}",
                    {"metadata": {"labels": {"status": f"superseded-{index}"}}},
                )
            time.sleep(5)
            figures["rss_after_churn_mb"], figures["rss_peak_after_churn_mb"] = operator.rss_mb()
        finally:
            operator.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--secrets", type=int, default=5000, help="unrelated Secrets of ~100 KiB each")
    parser.add_argument("--churn", type=int, default=500, help="updates of unrelated Secrets while it runs")
    parser.add_argument("--json", default="build/bench-secrets.json", help="where to write the figures")
    args = parser.parse_args()
    workdir = Path(args.json).resolve().parent
    workdir.mkdir(parents=True, exist_ok=True)
    without = measure(0, 0, workdir)
    print(json.dumps(without), flush=True)
    with_secrets = measure(args.secrets, args.churn, workdir)
    print(json.dumps(with_secrets), flush=True)
    delta = with_secrets["rss_after_churn_mb"] - without["rss_mb"]
    peak_delta = with_secrets["rss_peak_after_churn_mb"] - without["rss_peak_mb"]
    total_mib = args.secrets * SECRET_BYTES / 2**20
    Path(args.json).write_text(json.dumps({"without": without, "with": with_secrets}, indent=2))
    print(
        f"\noperator RSS with {args.secrets} unrelated Secrets (~{total_mib:.0f} MiB, {args.churn} changed while"
        f" running): {with_secrets['rss_after_churn_mb']:.1f} MB (peak {with_secrets['rss_peak_after_churn_mb']:.1f})"
        f" vs {without['rss_mb']:.1f} MB (peak {without['rss_peak_mb']:.1f}) without them:"
        f" {delta:+.1f} MB (peak {peak_delta:+.1f}); target: within {TARGET_MB:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
