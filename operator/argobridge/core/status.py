"""Build the bridge's `status` from what a reconcile found and did.

Pure and deterministic for the same inputs, so a reconcile that changes nothing yields an identical
status and the caller can skip the write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from argobridge.core.conditions import Condition, merge_conditions, summarise_ready


@dataclass(frozen=True)
class Notice:
    """Something a human should see as a Kubernetes Event on the bridge."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class ReconcileReport:
    """What one reconcile learned; the wiring turns it into status and Events."""

    conditions: list[Condition] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    flavor: str | None = None
    argocd_url: str | None = None
    config_map: str | None = None
    notifications_configuration: str | None = None  # OpenShift GitOps: the resource written to
    config_hash: str | None = None
    owned_keys: int | None = None
    drift_repaired: bool = False
    applications: dict[str, int] | None = None
    app_problems: list[tuple[Any, str]] = field(default_factory=list)
    token: dict[str, str] | None = None  # phase, lastRotation, digest: never the token itself
    # The bridge's field manager and the keys it applied: the record that tells a key it wrote (and a
    # user edited since) from one that was there before it (see core.ownership).
    ownership: dict[str, Any] | None = None
    # status.delivery's `mode` and `reason` (core/deliveryplan.delivery_status); the relay's counters in
    # the same object belong to the delivery status step and are kept as they are here.
    delivery_mode: dict[str, str | None] | None = None


def config_hash(data: Mapping[str, str]) -> str:
    """A short fingerprint of the rendered configuration, to tell drift from a change of spec."""
    encoded = json.dumps(dict(sorted(data.items())), separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def build_status(
    previous: Mapping[str, Any] | None, report: ReconcileReport, generation: int, now: str
) -> dict[str, Any]:
    """The complete new status; fields this reconcile did not learn keep their previous values."""
    previous = dict(previous or {})
    conditions = [*report.conditions, summarise_ready(report.conditions)]
    kept = OWN_STATUS_KEYS - {"observedGeneration", "conditions"}
    status: dict[str, Any] = {key: value for key, value in previous.items() if key in kept}
    status["observedGeneration"] = generation
    status["conditions"] = merge_conditions(previous.get("conditions"), conditions, generation, now)
    learned = {
        "flavor": report.flavor,
        "configMap": report.config_map,
        "configHash": report.config_hash,
        "ownedKeys": report.owned_keys,
        "applications": report.applications,
        "token": report.token,
        "ownership": report.ownership,
    }
    status.update({key: value for key, value in learned.items() if value is not None})
    if report.flavor is not None:
        # Only the OpenShift GitOps flavor writes through a NotificationsConfiguration.
        if report.notifications_configuration:
            status["notificationsConfiguration"] = report.notifications_configuration
        else:
            status.pop("notificationsConfiguration", None)
    if report.config_hash is not None:
        # argocdUrl is what ArgoBridge put into `context`; absent means it put nothing there.
        if report.argocd_url:
            status["argocdUrl"] = report.argocd_url
        else:
            status.pop("argocdUrl", None)
    status["driftRepairs"] = int(previous.get("driftRepairs") or 0) + (1 if report.drift_repaired else 0)
    with_delivery_mode(status, report.delivery_mode)
    return status


def with_delivery_mode(status: dict[str, Any], mode: Mapping[str, str | None] | None) -> None:
    """Set `mode` and `reason` of status.delivery (a None value removes the key), keeping its other keys."""
    if mode is None:
        return
    delivery = dict(status.get("delivery") or {})
    for key, value in mode.items():
        if value is None:
            delivery.pop(key, None)
        else:
            delivery[key] = value
    status["delivery"] = delivery


OWN_STATUS_KEYS = frozenset(
    {
        "observedGeneration",
        "conditions",
        "flavor",
        "argocdUrl",
        "configMap",
        "notificationsConfiguration",
        "configHash",
        "ownedKeys",
        "driftRepairs",
        "applications",
        "token",
        "ownership",
        "delivery",
    }
)


def _merge_patch(previous: Mapping[str, Any], new: Mapping[str, Any], own: frozenset[str] | None) -> dict[str, Any]:
    """RFC 7396 merge patch from `previous` to `new`; nested maps get explicit nulls for keys that went
    away, or the apiserver would keep them (and every later comparison would differ again)."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        old = previous.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            nested = _merge_patch(old, value, None)
            if nested:
                patch[key] = nested
        elif old != value:
            patch[key] = value
    for key in previous:
        if key not in new and (own is None or key in own):
            patch[key] = None
    return patch


def status_patch(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that turns `previous` into `new`, or None when they already agree.

    Keys of ours that `new` lacks are set to null (removed), at every depth; keys kopf keeps in status
    are left alone.
    """
    return _merge_patch(previous or {}, new, OWN_STATUS_KEYS) or None


def ready_reason(conditions: Sequence[Mapping[str, Any]]) -> str | None:
    """The Ready condition's reason in a status, for logs and the CLI."""
    for condition in conditions:
        if condition.get("type") == "Ready":
            return str(condition.get("reason"))
    return None
