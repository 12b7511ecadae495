"""Bytes the operator holds per Application in its store, measured with tracemalloc.

Deterministic (it counts allocations, not time), so it is a figure to decide on even on a busy machine.
The Applications look like a real fleet's: a few shared label keys and values, an entity ref, one
subscription annotation that ArgoBridge applied (so managedFields name it), and the annotations Argo CD
and kubectl leave that the store must not keep.
"""

from __future__ import annotations

import json
import sys
import tracemalloc
from typing import Any

from argobridge.handlers.applications import app_facts
from argobridge.steps.app_store import AppStore

COUNT = 10_000
SUB_KEY = "notifications.argoproj.io/subscribe.on-sync-failed-backstage.backstage"


def application(index: int) -> dict[str, Any]:
    """One Application's metadata as the watch delivers it (fresh strings each time, as JSON decoding makes)."""
    team = f"team-{index % 20}"
    body = {
        "namespace": "argocd",
        "name": f"app-{index:05d}",
        "uid": f"6f0c1d2e-0000-4000-8000-{index:012d}",
        "annotations": {
            "backstage.io/entity-ref": f"component:default/svc-{index}",
            SUB_KEY: "",
            "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 400 + "}",
        },
        "labels": {"app.kubernetes.io/part-of": team, "environment": "production", "tier": "backend"},
        "managedFields": [
            {
                "manager": "argobridge",
                "operation": "Apply",
                "fieldsV1": {"f:metadata": {"f:annotations": {f"f:{SUB_KEY}": {}}}},
            },
            {"manager": "argocd-controller", "operation": "Update", "fieldsV1": {"f:status": {}}},
        ],
    }
    decoded: dict[str, Any] = json.loads(json.dumps(body))  # distinct string objects, like the watch's
    return decoded


def bytes_per_application(count: int = COUNT) -> float:
    store = AppStore()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    bodies = [application(i) for i in range(count)]  # traced too: what the store keeps of them counts
    for body in bodies:
        store.put(app_facts(body))
    del bodies  # what the store holds must not lean on the watch's event bodies, which it drops
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held / count


if __name__ == "__main__":
    figure = bytes_per_application()
    json.dump({"bytes_per_application": round(figure)}, sys.stdout)
    print()
