"""Decide what to apply to the `NotificationsConfiguration` resource, and whether to write at all.

The resource's `spec` holds the ConfigMap's keys sorted into maps (`templates`, `triggers`, `services`,
`subscriptions`, `context`). Its CRD declares them as plain maps, which server-side apply merges key by
key, so ArgoBridge owns exactly its own entries and users' templates stay theirs. `subscriptions` holds
one shared YAML list, merged by meaning as in the ConfigMap; `context` is a map here, so our
`argocdUrl` entry is simply one more owned key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from argobridge.core.configplan import FIELD_MANAGER, merge_subscriptions, parse_subscriptions
from argobridge.core.gitops import context_value_problem
from argobridge.core.render import CONTEXT_KEY, SUBSCRIPTIONS_KEY, RenderedConfig

SECTIONS = ("templates", "triggers", "services", "subscriptions", "context")
Entry = tuple[str, str]  # (section, key)


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


@dataclass(frozen=True)
class ResourcePlan:
    """The `spec` to apply (everything ArgoBridge will own afterwards) and what changes, entry by entry."""

    spec: dict[str, dict[str, str]]
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def needs_write(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    @property
    def entries(self) -> dict[Entry, str]:
        return {(section, key): value for section, values in self.spec.items() for key, value in values.items()}


def _plan(
    current: Mapping[str, Any] | None,
    managed: set[Entry],
    desired: dict[Entry, str],
    subscriptions: Callable[[str | None], str | None],
) -> ResourcePlan:
    spec = current or {}

    def now(entry: Entry) -> str | None:
        value = (spec.get(entry[0]) or {}).get(entry[1])
        return None if value is None else str(value)

    wanted = dict(desired)
    added = [f"{s}.{k}" for (s, k), v in wanted.items() if now((s, k)) is None]
    changed = [f"{s}.{k}" for (s, k), v in wanted.items() if now((s, k)) not in (None, v)]
    shared: Entry = ("subscriptions", SUBSCRIPTIONS_KEY)
    existing = now(shared)
    merged = subscriptions(existing)
    dirty = parse_subscriptions(merged) != parse_subscriptions(existing)
    # Include the shared entry when it must change, or while we own it (left out, the apiserver drops it).
    if merged is not None and (dirty or shared in managed):
        wanted[shared] = merged
    if dirty and merged is not None:
        (changed if existing is not None else added).append(f"{shared[0]}.{shared[1]}")
    removed = sorted(f"{s}.{k}" for (s, k) in managed if (s, k) not in wanted and now((s, k)) is not None)
    body: dict[str, dict[str, str]] = {}
    for (section, key), value in wanted.items():
        body.setdefault(section, {})[key] = value
    return ResourcePlan(spec=body, added=tuple(sorted(added)), changed=tuple(sorted(changed)), removed=tuple(removed))


def plan_resource(current: Mapping[str, Any] | None, managed: set[Entry], rendered: RenderedConfig) -> ResourcePlan:
    """What to apply so the resource holds `rendered`, leaving every entry of other managers alone.

    Raises `UnsafeContextError` when one of our context values would break the operator's output.
    """
    for key, value in rendered.context.items():
        problem = context_value_problem(key, value)
        if problem:
            raise UnsafeContextError(problem)
    desired: dict[Entry, str] = {(section_for(key), key): value for key, value in rendered.owned.items()}
    desired.update({("context", key): value for key, value in rendered.context.items()})
    return _plan(
        current,
        managed,
        desired,
        lambda text: merge_subscriptions(text, rendered.subscriptions, rendered.service, rendered.triggers),
    )


def plan_resource_removal(
    current: Mapping[str, Any] | None, managed: set[Entry], rendered: RenderedConfig
) -> ResourcePlan:
    """What to apply when the bridge goes away: none of our entries, users' subscriptions kept."""
    return _plan(current, managed, {}, lambda text: merge_subscriptions(text, (), rendered.service, rendered.triggers))
