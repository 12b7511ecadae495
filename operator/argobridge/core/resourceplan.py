"""Decide what to apply to the `NotificationsConfiguration` resource, and whether to write at all.

The resource's `spec` holds the ConfigMap's keys sorted into maps (`templates`, `triggers`, `services`,
`subscriptions`, `context`). Its CRD declares them as plain maps, which server-side apply merges key by
key, so ArgoBridge owns exactly its own entries (as its own field manager) and users' entries stay theirs;
an entry of the same name that someone else wrote is a conflict, never taken over. `subscriptions` holds
one shared YAML list, edited as text as in the ConfigMap (our items marked, users' items kept byte for
byte); `context` is a map here, so our `argocdUrl` entry is simply one more owned entry.

The plan works on the entries flattened to `section.key` names (sections hold no dots), the same
planner as the ConfigMap's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from argobridge.core.configplan import FIELD_MANAGER, ConfigPlan, Shared, plan_keys, removal_edits
from argobridge.core.gitops import context_value_problem
from argobridge.core.ownership import KeyConflict, Owner, Ownership, edit_subscriptions, owners_at
from argobridge.core.render import CONTEXT_KEY, SUBSCRIPTIONS_KEY, RenderedConfig

SECTIONS = ("templates", "triggers", "services", "subscriptions", "context")
Entry = tuple[str, str]  # (section, key)
SHARED_SUBSCRIPTIONS = f"subscriptions.{SUBSCRIPTIONS_KEY}"


class UnsafeContextError(ValueError):
    """A context value the operator would write in a form that breaks the notifications YAML."""


def section_for(key: str) -> str:
    """Which map of the resource's spec a ConfigMap key belongs in, as the operator reads them back."""
    if key.startswith("template."):
        return "templates"
    if key.startswith("trigger."):
        return "triggers"
    if key.startswith("service."):
        return "services"
    if key == SUBSCRIPTIONS_KEY:
        return "subscriptions"
    raise ValueError(f"no section of NotificationsConfiguration holds the key {key!r}")


def entries_managed_by(managed_fields: Sequence[Mapping[str, Any]] | None, manager: str = FIELD_MANAGER) -> set[Entry]:
    """The (section, key) entries of `spec` a field manager owns through apply, from `managedFields`."""
    owned: set[Entry] = set()
    for item in managed_fields or ():
        if item.get("manager") != manager or item.get("operation") != "Apply":
            continue
        spec = (item.get("fieldsV1") or {}).get("f:spec") or {}
        for section in SECTIONS:
            for name in spec.get(f"f:{section}") or {}:
                if name.startswith("f:"):
                    owned.add((section, name[2:]))
    return owned


def entry_owners(managed_fields: Sequence[Mapping[str, Any]] | None) -> dict[str, list[Owner]]:
    """Who owns each `section.key` entry of the resource's spec."""
    owners: dict[str, list[Owner]] = {}
    for section in SECTIONS:
        for key, claims in owners_at(managed_fields, ("spec", section)).items():
            owners[f"{section}.{key}"] = claims
    return owners


def flatten(spec: Mapping[str, Any] | None) -> dict[str, str]:
    """The ConfigMap `data` the operator builds from a resource `spec` (context rendered as it does)."""
    spec = spec or {}
    data: dict[str, str] = {}
    for section in ("triggers", "templates", "services", "subscriptions"):
        data.update({str(k): str(v) for k, v in (spec.get(section) or {}).items()})
    context = spec.get("context") or {}
    if context:
        data[CONTEXT_KEY] = "".join(f"{key}: {value}\n" for key, value in context.items())
    return data


def entries_of(spec: Mapping[str, Any] | None) -> dict[str, str]:
    """The resource's map entries as `section.key` -> value."""
    flat: dict[str, str] = {}
    for section in SECTIONS:
        values = (spec or {}).get(section)
        if isinstance(values, Mapping):
            flat.update({f"{section}.{key}": str(value) for key, value in values.items() if value is not None})
    return flat


@dataclass(frozen=True)
class ResourcePlan:
    """The `spec` to apply (everything ArgoBridge will own afterwards) and what changes, entry by entry."""

    spec: dict[str, dict[str, str]]
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    conflicts: tuple[KeyConflict, ...] = ()
    takeover: frozenset[str] = frozenset()
    release_legacy: bool = False
    left: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    owned_keys: tuple[str, ...] = ()

    @property
    def needs_write(self) -> bool:
        return not self.conflicts and bool(self.added or self.changed or self.removed or self.release_legacy)

    @property
    def entries(self) -> dict[Entry, str]:
        return {(section, key): value for section, values in self.spec.items() for key, value in values.items()}


def _resource_plan(plan: ConfigPlan, unreadable: Sequence[str] = ()) -> ResourcePlan:
    body: dict[str, dict[str, str]] = {}
    for name, value in plan.data.items():
        section, key = name.split(".", 1)
        body.setdefault(section, {})[key] = value
    return ResourcePlan(
        spec=body,
        added=plan.added,
        changed=plan.changed,
        removed=plan.removed,
        conflicts=plan.conflicts,
        takeover=plan.takeover,
        release_legacy=plan.release_legacy,
        left=plan.left,
        unreadable=tuple(unreadable),
        owned_keys=plan.owned_keys,
    )


def desired_entries(rendered: RenderedConfig) -> dict[str, str]:
    """Our entries by `section.key`; raises `UnsafeContextError` for a context value the operator would break."""
    for key, value in rendered.context.items():
        problem = context_value_problem(key, value)
        if problem:
            raise UnsafeContextError(problem)
    desired = {f"{section_for(key)}.{key}": value for key, value in rendered.owned.items()}
    desired.update({f"context.{key}": value for key, value in rendered.context.items()})
    return desired


def plan_resource(current: Mapping[str, Any] | None, ownership: Ownership, rendered: RenderedConfig) -> ResourcePlan:
    """What to apply so the resource holds `rendered`, leaving every entry of other managers alone.

    Raises `UnsafeContextError` when one of our context values would break the operator's output, and
    `ForeignDataError` when the shared subscriptions entry we must change is unreadable.
    """
    desired = desired_entries(rendered)
    flat = entries_of(current)
    edit = edit_subscriptions(
        flat.get(SHARED_SUBSCRIPTIONS),
        rendered.subscriptions,
        ownership.bridge,
        adopt=ownership.legacy(SHARED_SUBSCRIPTIONS),
    )
    return _resource_plan(plan_keys(flat, ownership, desired, [Shared(SHARED_SUBSCRIPTIONS, edit)]))


def plan_resource_removal(
    current: Mapping[str, Any] | None, ownership: Ownership, rendered: RenderedConfig | None = None
) -> ResourcePlan:
    """What to apply when the bridge goes away: none of our entries, users' entries and subscriptions kept."""
    flat = entries_of(current)
    subscriptions = rendered.subscriptions if rendered else ()
    shared, unreadable = removal_edits(
        flat, ownership, subscriptions, None, context_key=None, subscriptions_key=SHARED_SUBSCRIPTIONS
    )
    return _resource_plan(plan_keys(flat, ownership, {}, shared), unreadable)
