"""Status conditions as the Kubernetes API conventions define them (type, status, reason, message).

Pure: the caller passes `now`; a condition's lastTransitionTime moves only when its status flips, so a
reconcile that learns nothing new produces an identical status and therefore no write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

READY = "Ready"
CONFIG_APPLIED = "ConfigApplied"
TOKEN_READY = "TokenReady"

# Ready summarises these, in this order; the first that is not True explains why Ready is not.
READY_DEPENDS_ON = (CONFIG_APPLIED, TOKEN_READY)


@dataclass(frozen=True)
class Condition:
    """One observation about the bridge, with a CamelCase reason and a message that names the fix."""

    type: str
    status: bool | None  # None: Unknown (the check could not be made)
    reason: str
    message: str


def status_word(status: bool | None) -> str:
    """The condition's `status` as the API spells it: True, False or Unknown."""
    return "Unknown" if status is None else "True" if status else "False"


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    updates: Sequence[Condition],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """The new `status.conditions`: updates applied, others kept, transition times kept when unchanged."""
    by_type = {str(item.get("type")): dict(item) for item in previous or ()}
    for condition in updates:
        old = by_type.get(condition.type)
        status = status_word(condition.status)
        changed = old is None or old.get("status") != status
        by_type[condition.type] = {
            "type": condition.type,
            "status": status,
            "reason": condition.reason,
            "message": condition.message,
            "observedGeneration": generation,
            "lastTransitionTime": now if changed or not old else old.get("lastTransitionTime", now),
        }
    order = {name: index for index, name in enumerate((READY, *READY_DEPENDS_ON))}
    return sorted(by_type.values(), key=lambda item: (order.get(item["type"], len(order)), item["type"]))


def summarise_ready(conditions: Sequence[Condition]) -> Condition:
    """Ready is True when every condition it depends on is; otherwise it carries the first failure."""
    by_type = {condition.type: condition for condition in conditions}
    for name in READY_DEPENDS_ON:
        condition = by_type.get(name)
        if condition is None:
            return Condition(READY, False, "Pending", f"{name} has not been evaluated yet")
        if not condition.status:
            return Condition(READY, False, condition.reason, condition.message)
    return Condition(READY, True, "Ready", "Argo CD is configured to deliver notifications to Backstage")
