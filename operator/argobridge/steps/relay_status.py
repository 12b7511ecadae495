"""One look at the relay for one bridge: read the replicas' status, decide (core.relaystatus), write
status.delivery and the Delivering condition only when they changed.

The replicas' documents cover every bridge, so one fetch serves all bridges whose timers fire close
together (REUSE_SECONDS) instead of one fetch per bridge per tick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from argobridge.core.relaystatus import RelayStatusPlan, ReplicaAnswer, plan_relay_status
from argobridge.kube import bridges
from argobridge.relayapi.status import fetch_status_documents
from argobridge.steps.reconcile import now_rfc3339

REUSE_SECONDS = 5.0

_guard = threading.Lock()
_last: dict[tuple[str, ...], tuple[float, list[ReplicaAnswer]]] = {}


def replica_answers(urls: Sequence[str], now: float) -> list[ReplicaAnswer]:
    """The replicas' documents, fetched at most once per REUSE_SECONDS (monotonic `now`)."""
    key = tuple(urls)
    with _guard:
        cached = _last.get(key)
        if cached is not None and now - cached[0] < REUSE_SECONDS:
            return cached[1]
        answers = fetch_status_documents(urls)
        _last[key] = (time.monotonic(), answers)
        return answers


def plan_for(body: Mapping[str, Any], urls: Sequence[str]) -> RelayStatusPlan:
    """What the relay's current figures mean for this bridge's status (writes nothing)."""
    metadata = body.get("metadata") or {}
    return plan_relay_status(
        body.get("status") or {},
        replica_answers(urls, time.monotonic()),
        f"{metadata.get('namespace')}/{metadata.get('name')}",
        int(metadata.get("generation") or 0),
        now_rfc3339(),
    )


def write(body: Mapping[str, Any], plan: RelayStatusPlan) -> None:
    """Apply the plan's status patch, if it has one."""
    if plan.patch is not None:
        metadata = body.get("metadata") or {}
        bridges.patch_bridge_status(str(metadata.get("namespace")), str(metadata.get("name")), plan.patch)
