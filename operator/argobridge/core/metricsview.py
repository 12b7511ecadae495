"""What one reconcile means for the operator's metrics, as plain data.

Pure: the Prometheus registry lives at the edge (`argobridge.metrics`); deciding which labels a
reconcile yields, and how old a token is, is testable without a registry or a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from argobridge.core.conditions import READY, Condition, summarise_ready

PROBE_CONDITION = "BackstageReachable"


@dataclass(frozen=True)
class ReconcileView:
    """The facts of one reconcile that metrics publish: outcome, failure reasons, probe, app counts."""

    result: str
    error_reasons: tuple[str, ...]
    probe_reason: str | None
    probe_ok: bool | None
    applications: Mapping[str, int] = field(default_factory=dict)


def view_of(conditions: Sequence[Condition], applications: Mapping[str, int] | None) -> ReconcileView:
    """Summarise a reconcile: `ready` or `not_ready`, the reasons of the conditions that are False."""
    ready = summarise_ready([c for c in conditions if c.type != READY])
    reasons = tuple(sorted({c.reason for c in conditions if not c.status and c.type != READY}))
    probe = next((c for c in conditions if c.type == PROBE_CONDITION), None)
    return ReconcileView(
        result="ready" if ready.status else "not_ready",
        error_reasons=reasons,
        probe_reason=probe.reason if probe else None,
        probe_ok=probe.status if probe else None,
        applications=dict(applications or {}),
    )


def key_written_at(managed_fields: Sequence[Mapping[str, Any]] | None, key: str) -> datetime | None:
    """When a field manager last wrote `data.<key>` of a Secret, from its managedFields.

    This is the token's age whoever wrote it (ArgoBridge or a user), without storing a timestamp
    anywhere: the apiserver already records it.
    """
    newest: datetime | None = None
    for entry in managed_fields or ():
        data = ((entry.get("fieldsV1") or {}).get("f:data")) or {}
        if f"f:{key}" not in data or not entry.get("time"):
            continue
        written = datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00"))
        newest = written if newest is None or written > newest else newest
    return newest
