"""The catalog of application events ArgoBridge turns into notifications.

Each entry says when Argo CD's engine should fire (an expr-lang condition over `app`) and what the
notification says. Names carry the `-backstage` suffix so they never collide with Argo CD's own catalog,
whose templates have no webhook body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

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


class MessageSource(StrEnum):
    """What `{message}` reads for an event: what Argo CD said about the thing that happened."""

    OPERATION = "operation"  # status.operationState.message
    HEALTH = "health"  # status.health.message
    CONDITIONS = "conditions"  # the first message of status.conditions (ComparisonError and the like)
    NONE = "none"


def _timestamp_recent(path: str) -> Callable[[int], str]:
    return lambda minutes: f"{path} != nil and {_within(path, minutes)}"


def _health_recent(minutes: int) -> str:
    # Without a transition time (older Argo CD) there is no way to tell, so the event is let through.
    return (
        f"((app.status.health.lastTransitionTime ?? '') == ''"
        f" or {_within('app.status.health.lastTransitionTime', minutes)})"
    )


def _conditions_recent(minutes: int) -> str:
    # Argo CD reports why sync status is Unknown as a condition (ComparisonError, ...) with a time; an
    # app without any condition is let through, there is nothing to tell the age by.
    return (
        "(len(app.status?.conditions ?? []) == 0 or any(app.status.conditions,"
        f" {{ .lastTransitionTime == nil or {_within('.lastTransitionTime', minutes)} }}))"
    )


# Where `{time}` reads when the event happened: the latest of these timestamps that Argo CD recorded, else
# the time the engine renders the notification. Paths are keys into the Application, as `dig` takes them.
Timestamp = tuple[str, ...]
FINISHED_AT: Timestamp = ("status", "operationState", "finishedAt")
STARTED_AT: Timestamp = ("status", "operationState", "startedAt")
HEALTH_CHANGED_AT: Timestamp = ("status", "health", "lastTransitionTime")
CREATED_AT: Timestamp = ("metadata", "creationTimestamp")
DELETED_AT: Timestamp = ("metadata", "deletionTimestamp")


@dataclass(frozen=True)
class EventDefinition:
    """How one event is detected by the engine and described to a person.

    `title` and `description` are the default texts in placeholder syntax (`{app}`, `{message}`, ...);
    a bridge may replace them per event and per route.
    """

    name: EventName
    trigger: str
    template: str
    condition: str
    once_per: str | None
    label: str
    title: str
    description: str
    recency: Callable[[int], str]  # the event happened within N minutes: enabling ArgoBridge is quiet
    message: MessageSource = MessageSource.OPERATION
    times: tuple[Timestamp, ...] = ()  # what `{time}` reads (the latest set); none: the time of rendering


CATALOG: Mapping[EventName, EventDefinition] = {
    EventName.SYNC_SUCCEEDED: EventDefinition(
        name=EventName.SYNC_SUCCEEDED,
        trigger="on-sync-succeeded-backstage",
        template="app-sync-succeeded-backstage",
        condition=f"{_OPERATION} and app.status.operationState.phase in ['Succeeded']",
        once_per=_ONCE_PER_OPERATION,
        label="sync succeeded",
        recency=_operation_recent,
        title="{app}: sync succeeded",
        description="Application {app} (project {project}) was synced to revision {revision}.",
        times=(FINISHED_AT,),
    ),
    EventName.SYNC_FAILED: EventDefinition(
        name=EventName.SYNC_FAILED,
        trigger="on-sync-failed-backstage",
        template="app-sync-failed-backstage",
        condition=f"{_OPERATION} and app.status.operationState.phase in ['Error', 'Failed']",
        once_per=_ONCE_PER_OPERATION,
        label="sync failed",
        recency=_operation_recent,
        title="{app}: sync failed",
        description="Sync of application {app} (project {project}) failed: {message}",
        times=(FINISHED_AT,),
    ),
    EventName.HEALTH_DEGRADED: EventDefinition(
        name=EventName.HEALTH_DEGRADED,
        trigger="on-health-degraded-backstage",
        template="app-health-degraded-backstage",
        condition="app.status?.health?.status == 'Degraded'",
        # No oncePer: each new transition into Degraded is news, a long degradation is not.
        once_per=None,
        label="health degraded",
        recency=_health_recent,
        title="{app}: health degraded",
        description="Application {app} (project {project}) is Degraded. {message}",
        message=MessageSource.HEALTH,
        times=(HEALTH_CHANGED_AT,),
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
        title="{app}: deployed",
        description="Application {app} (project {project}) is running revision {revision} and is Healthy.",
        times=(FINISHED_AT, HEALTH_CHANGED_AT),  # deployed once both synced and healthy: the later
    ),
    EventName.SYNC_RUNNING: EventDefinition(
        name=EventName.SYNC_RUNNING,
        trigger="on-sync-running-backstage",
        template="app-sync-running-backstage",
        condition=f"{_OPERATION} and app.status.operationState.phase in ['Running']",
        once_per=_ONCE_PER_OPERATION,
        label="sync running",
        # A running operation has no finishedAt yet: its start is what must be recent.
        recency=_timestamp_recent("app.status.operationState.startedAt"),
        title="{app}: sync running",
        description="Application {app} (project {project}) is being synced to revision {revision}.",
        times=(STARTED_AT,),
    ),
    EventName.SYNC_STATUS_UNKNOWN: EventDefinition(
        name=EventName.SYNC_STATUS_UNKNOWN,
        trigger="on-sync-status-unknown-backstage",
        template="app-sync-status-unknown-backstage",
        condition="app.status?.sync?.status == 'Unknown'",
        once_per=None,  # like Degraded: each transition into Unknown
        label="sync status unknown",
        recency=_conditions_recent,
        title="{app}: sync status unknown",
        description="Argo CD cannot tell whether application {app} (project {project}) is in sync. {message}",
        message=MessageSource.CONDITIONS,
    ),
    EventName.HEALTH_MISSING: EventDefinition(
        name=EventName.HEALTH_MISSING,
        trigger="on-health-missing-backstage",
        template="app-health-missing-backstage",
        condition="app.status?.health?.status == 'Missing'",
        once_per=None,
        label="health missing",
        recency=_health_recent,
        title="{app}: health missing",
        description="Resources of application {app} (project {project}) are missing. {message}",
        message=MessageSource.HEALTH,
        times=(HEALTH_CHANGED_AT,),
    ),
    EventName.CREATED: EventDefinition(
        name=EventName.CREATED,
        trigger="on-created-backstage",
        template="app-created-backstage",
        condition="app.metadata.creationTimestamp != nil",
        once_per="app.metadata.name",  # as Argo CD's catalog: a recreated app is a new object, new state
        label="created",
        recency=_timestamp_recent("app.metadata.creationTimestamp"),
        title="{app}: created",
        description="Application {app} was created in project {project}.",
        message=MessageSource.NONE,
        times=(CREATED_AT,),
    ),
    EventName.DELETED: EventDefinition(
        name=EventName.DELETED,
        trigger="on-deleted-backstage",
        template="app-deleted-backstage",
        # Seen only while a finalizer (Argo CD's resources-finalizer) holds the app back from deletion.
        condition="app.metadata.deletionTimestamp != nil",
        once_per="app.metadata.deletionTimestamp",
        label="deleted",
        recency=_timestamp_recent("app.metadata.deletionTimestamp"),
        title="{app}: deleted",
        description="Application {app} (project {project}) is being deleted.",
        message=MessageSource.NONE,
        times=(DELETED_AT,),
    ),
    EventName.HEALTH_RECOVERED: EventDefinition(
        name=EventName.HEALTH_RECOVERED,
        trigger="on-health-recovered-backstage",
        template="app-health-recovered-backstage",
        condition="app.status?.health?.status == 'Healthy'",
        # No oncePer: each return to Healthy (after Degraded, Progressing, ...) fires once.
        once_per=None,
        label="health recovered",
        # Strict, unlike Degraded: a Healthy app without a transition time is no news of a recovery, and
        # every healthy app of an older Argo CD would fire once when subscribed.
        recency=_health_changed_recently,
        title="{app}: healthy again",
        description="Application {app} (project {project}) is Healthy again.",
        message=MessageSource.HEALTH,
        times=(HEALTH_CHANGED_AT,),
    ),
}
