"""Server-side apply: the one way the operator writes objects it shares.

Two ways to call it. `server_side_apply` with its defaults forces ownership as the legacy manager
`argobridge` (what the Secret and Application writers still use). Argo CD's notifications configuration is
written with `apply_planned` instead: as the bridge's own field manager, never forced blindly, and with
the resourceVersion of the read the plan was made from, so a user's edit in between is never lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from kubernetes.client.exceptions import ApiException

from argobridge.core.configplan import FIELD_MANAGER
from argobridge.core.ownership import LEGACY_MANAGER, FieldConflict, parse_apply_conflicts
from argobridge.kube.errors import KubeError

APPLY_PATCH = "application/apply-patch+yaml"
# Re-read, re-plan and retry this many times when someone writes between our read and our apply.
APPLY_ATTEMPTS = 5


class FieldConflictError(KubeError):
    """The apiserver refused an apply because another field manager owns some of its fields (409)."""

    def __init__(self, action: str, error: ApiException, conflicts: tuple[FieldConflict, ...]) -> None:
        super().__init__(action, error)
        self.conflicts = conflicts
        self.api_error = error


class StaleReadError(KubeError):
    """The object changed since it was read (409 on the resourceVersion precondition): read it again."""


def server_side_apply(
    patch: Callable[..., Any],
    *target: str,
    body: Mapping[str, Any],
    action: str,
    manager: str = FIELD_MANAGER,
    force: bool = True,
) -> Any:
    """Call a client `patch_*` method as an apply of `body` as `manager`.

    Fields the manager applied before and leaves out of `body` are removed by the apiserver; fields other
    managers own are untouched. Without `force`, a field another manager owns is refused with
    `FieldConflictError` (its `conflicts` name field and manager); a stale `metadata.resourceVersion` in
    `body` gives `StaleReadError`. Errors never carry the request body.
    """
    try:
        return patch(*target, dict(body), field_manager=manager, force=force, _content_type=APPLY_PATCH)
    except ApiException as error:
        if error.status == 409:
            conflicts = parse_apply_conflicts(error.body)
            if conflicts:
                raise FieldConflictError(action, error, conflicts) from None
            raise StaleReadError(action, error) from None
        raise KubeError(action, error) from None


class Plan(Protocol):
    @property
    def needs_write(self) -> bool: ...

    @property
    def conflicts(self) -> tuple[Any, ...]: ...

    @property
    def takeover(self) -> frozenset[str]: ...


class Observed(Protocol):
    @property
    def resource_version(self) -> str | None: ...


ObservedT = TypeVar("ObservedT", bound=Observed)
PlanT = TypeVar("PlanT", bound=Plan)


@dataclass(frozen=True)
class Outcome:
    """How `apply_planned` ended: `written` (or nothing was needed), or the conflicts that stopped it."""

    written: bool
    attempts: int
    field_conflicts: tuple[FieldConflict, ...] = ()


def apply_planned(
    read: Callable[[], ObservedT],
    plan: Callable[[ObservedT], PlanT],
    write: Callable[[ObservedT, PlanT, bool], None],
    field_key: Callable[[str], str | None],
    attempts: int = APPLY_ATTEMPTS,
) -> tuple[ObservedT, PlanT, Outcome]:
    """Read, plan and write until the write lands on the version it was planned from.

    Each write carries the read's resourceVersion. It is first sent without force: if the apiserver
    names fields of other managers, and every one is a key the plan may take (`plan.takeover`: a shared
    key whose text was merged from exactly this version, or a key of ours a user edited; anything of the
    legacy manager `argobridge`, whose fields count as this bridge's during the upgrade), it is sent again
    with force and the same resourceVersion. That is safe: the precondition guarantees the object is the
    one the plan read, so force takes only those keys, and the users' text in them is the text we kept.
    Any other conflict stops with nothing written; a stale version starts over from a fresh read.
    """
    observed = read()
    current = plan(observed)
    for attempt in range(1, attempts + 1):
        if current.conflicts or not current.needs_write:
            return observed, current, Outcome(False, attempt)
        try:
            try:
                write(observed, current, False)
            except FieldConflictError as error:
                if observed.resource_version is None:
                    raise StaleReadError("the object was created since it was read", error.api_error) from None
                foreign = tuple(
                    item
                    for item in error.conflicts
                    if item.manager != LEGACY_MANAGER and field_key(item.field) not in current.takeover
                )
                if foreign:
                    return observed, current, Outcome(False, attempt, foreign)
                write(observed, current, True)
            return observed, current, Outcome(True, attempt)
        except StaleReadError:
            if attempt == attempts:
                raise
            observed = read()
            current = plan(observed)
    raise AssertionError("unreachable")  # pragma: no cover
