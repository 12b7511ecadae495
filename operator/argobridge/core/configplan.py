"""Decide what to write to the notifications ConfigMap, and whether to write at all.

ArgoBridge owns whole keys (its service, templates, triggers) through server-side apply, and shares
one key, `context`, with the user: there it owns only the entries it sets. An idle reconcile must make
no write, so the decision compares meaning (parsed `context`), not formatting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from argobridge.core.render import CONTEXT_KEY, RenderedConfig, to_yaml

FIELD_MANAGER = "argobridge"


class ForeignDataError(ValueError):
    """Data ArgoBridge must merge with is unreadable; overwriting it would lose the user's work."""


@dataclass(frozen=True)
class ConfigPlan:
    """The `data` to apply (all keys ArgoBridge will own afterwards) and what changes, key by key."""

    data: dict[str, str]
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    owned_keys: tuple[str, ...] = field(default=())

    @property
    def needs_write(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def keys_managed_by(managed_fields: Sequence[Mapping[str, Any]] | None, manager: str = FIELD_MANAGER) -> set[str]:
    """The `data` keys a field manager owns through apply, read from `metadata.managedFields`."""
    keys: set[str] = set()
    for entry in managed_fields or ():
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        data = (entry.get("fieldsV1") or {}).get("f:data") or {}
        keys.update(name[2:] for name in data if name.startswith("f:"))
    return keys


def parse_context(value: str | None) -> dict[str, Any]:
    """The shared `context` as a mapping; raises if a user left it unreadable."""
    if not value:
        return {}
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise ForeignDataError(
            f"the `{CONTEXT_KEY}` key of the notifications ConfigMap is not valid YAML ({error.__class__.__name__});"
            " fix or remove it, ArgoBridge will not overwrite it"
        ) from None
    if parsed is None:
        return {}
    if not isinstance(parsed, Mapping):
        raise ForeignDataError(
            f"the `{CONTEXT_KEY}` key of the notifications ConfigMap is not a mapping of name: value;"
            " fix or remove it, ArgoBridge will not overwrite it"
        )
    return dict(parsed)


def merge_context(existing: str | None, ours: Mapping[str, str], drop: Mapping[str, str]) -> str | None:
    """The shared `context` value with our entries set and `drop` entries removed where still ours.

    Users keep their own entries (`environmentName`, ...). An entry in `drop` is removed only while it
    still holds the value we wrote, so a value a user set by hand survives our clean-up. None means
    nothing is left and the key should not exist.
    """
    current = parse_context(existing)
    for key, value in drop.items():
        if key not in ours and current.get(key) == value:
            current.pop(key)
    current.update(ours)
    return to_yaml(current) if current else None


def _context_holds(current: Mapping[str, Any], ours: Mapping[str, str]) -> bool:
    return all(current.get(key) == value for key, value in ours.items())


def plan_config(
    current: Mapping[str, str] | None,
    managed: set[str],
    rendered: RenderedConfig,
    previous_context: Mapping[str, str],
) -> ConfigPlan:
    """What to apply so the ConfigMap holds `rendered`, leaving every foreign key and entry alone.

    `managed` is what the field manager owns now (a key left out of the apply is then removed by the
    apiserver); `previous_context` is what we last set in `context`, so an entry we stop rendering is
    taken back out if it still holds our value.
    """
    current = current or {}
    data = dict(rendered.owned)
    added = sorted(key for key in data if key not in current)
    changed = sorted(key for key in data if key in current and current[key] != data[key])

    current_context = parse_context(current.get(CONTEXT_KEY))
    stale_context = {
        key: value
        for key, value in previous_context.items()
        if key not in rendered.context and current_context.get(key) == value
    }
    context_dirty = not _context_holds(current_context, rendered.context) or bool(stale_context)
    if rendered.context or CONTEXT_KEY in managed or context_dirty:
        merged = merge_context(current.get(CONTEXT_KEY), rendered.context, previous_context)
        if merged is not None:
            data[CONTEXT_KEY] = merged
        if context_dirty:
            (changed if CONTEXT_KEY in current else added).append(CONTEXT_KEY)
    removed = sorted(key for key in managed if key not in data and key in current)
    return ConfigPlan(
        data=data,
        added=tuple(sorted(added)),
        changed=tuple(sorted(changed)),
        removed=tuple(removed),
        owned_keys=tuple(sorted(rendered.owned)),
    )


def plan_removal(current: Mapping[str, str] | None, managed: set[str], our_context: Mapping[str, str]) -> ConfigPlan:
    """What to apply when the bridge goes away: no owned keys, `context` without our entries."""
    current = current or {}
    data: dict[str, str] = {}
    remainder = merge_context(current.get(CONTEXT_KEY), {}, our_context) if CONTEXT_KEY in managed else None
    changed: list[str] = []
    if remainder is not None:
        data[CONTEXT_KEY] = remainder
        if parse_context(remainder) != parse_context(current.get(CONTEXT_KEY)):
            changed.append(CONTEXT_KEY)
    removed = sorted(key for key in managed if key not in data and key in current)
    return ConfigPlan(data=data, changed=tuple(changed), removed=tuple(removed))
