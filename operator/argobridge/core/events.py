"""The catalog of application events ArgoBridge turns into notifications.

Each entry says when Argo CD's engine should fire (an expr-lang condition over `app`) and what the
notification says. Names carry the `-backstage` suffix so they never collide with Argo CD's own catalog,
whose templates have no webhook body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from argobridge.core.spec import EventName

ENTITY_REF_ANNOTATION = "backstage.io/entity-ref"

# An Application without the annotation must never fire: there would be nobody to notify and the body
# would carry an empty recipient. Written with plain `!= nil` checks, which short-circuit under `and`.
# At least one ref of the annotation must be deliverable, by the same rule the template applies when
# it builds the recipient list (kind, optional namespace, name; any case). Otherwise the body would carry
# an empty list, which Backstage rejects with 400, retried by the engine on every processing.
DELIVERABLE_REF_PATTERN = (
    "(?i)(^|,)[ ]*[a-z][a-z0-9]*:([a-z0-9]+([-_.][a-z0-9]+)*/)?[a-z0-9]+([-_.][a-z0-9]+)*[ ]*(,|$)"
)
HAS_ENTITY_REF = (
    f"app.metadata.annotations != nil and app.metadata.annotations['{ENTITY_REF_ANNOTATION}'] != nil"
    f" and app.metadata.annotations['{ENTITY_REF_ANNOTATION}'] matches '{DELIVERABLE_REF_PATTERN}'"
)

# `app.status` itself is absent on a freshly created Application: every path into it is guarded with
# `?.`, or the engine logs "cannot fetch operationState from <nil>" for each such app (seen with the
# real controller, v3.5).
_OPERATION = "app.status?.operationState != nil"
# One firing per sync operation: the start time changes with every operation, also for multi-source
# applications whose syncResult carries no single revision.
_ONCE_PER_OPERATION = "app.status.operationState?.startedAt"


def _within(path: str, minutes: int) -> str:
    return f"time.Now().Sub(time.Parse({path})).Minutes() < {minutes}"


def _operation_recent(minutes: int) -> str:
    return f"app.status.operationState.finishedAt != nil and {_within('app.status.operationState.finishedAt', minutes)}"


def _health_changed_recently(minutes: int) -> str:
    return f"app.status.health.lastTransitionTime != nil and {_within('app.status.health.lastTransitionTime', minutes)}"


@dataclass(frozen=True)
class EventDefinition:
    """How one event is detected by the engine and described to a person."""

    name: EventName
    trigger: str
    template: str
    condition: str
    once_per: str | None
    label: str
    description: str  # a Go template fragment evaluated with $name, $project, $revision, $message, $health
    recency: Callable[[int], str]  # the event happened within N minutes: enabling ArgoBridge is quiet


CATALOG: Mapping[EventName, EventDefinition] = {
    EventName.SYNC_SUCCEEDED: EventDefinition(
        name=EventName.SYNC_SUCCEEDED,
        trigger="on-sync-succeeded-backstage",
        template="app-sync-succeeded-backstage",
        condition=f"{_OPERATION} and app.status.operationState.phase in ['Succeeded']",
        once_per=_ONCE_PER_OPERATION,
        label="sync succeeded",
        recency=_operation_recent,
        description='printf "Application %s (project %s) was synced to revision %s." $name $project $revision',
    ),
    EventName.SYNC_FAILED: EventDefinition(
        name=EventName.SYNC_FAILED,
        trigger="on-sync-failed-backstage",
        template="app-sync-failed-backstage",
        condition=f"{_OPERATION} and app.status.operationState.phase in ['Error', 'Failed']",
        once_per=_ONCE_PER_OPERATION,
        label="sync failed",
        recency=_operation_recent,
        description='printf "Sync of application %s (project %s) failed: %s" $name $project $message',
    ),
    EventName.HEALTH_DEGRADED: EventDefinition(
        name=EventName.HEALTH_DEGRADED,
        trigger="on-health-degraded-backstage",
        template="app-health-degraded-backstage",
        condition="app.status?.health?.status == 'Degraded'",
        # No oncePer: each new transition into Degraded is news, a long degradation is not.
        once_per=None,
        label="health degraded",
        # Without a transition time (older Argo CD) there is no way to tell, so the event is let through.
        recency=lambda minutes: (
            f"((app.status.health.lastTransitionTime ?? '') == ''"
            f" or {_within('app.status.health.lastTransitionTime', minutes)})"
        ),
        description='printf "Application %s (project %s) is Degraded. %s" $name $project $healthMessage',
    ),
    EventName.DEPLOYED: EventDefinition(
        name=EventName.DEPLOYED,
        trigger="on-deployed-backstage",
        template="app-deployed-backstage",
        condition=(
            f"{_OPERATION} and app.status.operationState.phase in ['Succeeded']"
            " and app.status.health?.status == 'Healthy'"
        ),
        once_per=_ONCE_PER_OPERATION,
        label="deployed",
        # Healthy can come well after the sync finished (a slow rollout): either being recent counts.
        recency=lambda minutes: f"({_operation_recent(minutes)} or {_health_changed_recently(minutes)})",
        description=(
            'printf "Application %s (project %s) is running revision %s and is Healthy." $name $project $revision'
        ),
    ),
}
