"""Decide what to write to the notifications ConfigMap, and whether to write at all.

ArgoBridge owns whole keys (its service, templates, triggers) through server-side apply, and shares
one key, `context`, with the user: there it owns only the entries it sets. An idle reconcile must make
no write, so the decision compares meaning (parsed `context`), not formatting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from argobridge.core.render import CONTEXT_KEY, SUBSCRIPTIONS_KEY, RenderedConfig, to_yaml

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


def parse_subscriptions(value: str | None) -> list[Any]:
    """The shared `subscriptions` list; raises if a user left it unreadable."""
    if not value:
        return []
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise ForeignDataError(
            f"the `{SUBSCRIPTIONS_KEY}` key of the notifications ConfigMap is not valid YAML"
            f" ({error.__class__.__name__}); fix or remove it, ArgoBridge will not overwrite it"
        ) from None
    if parsed is None:
        return []
    if not isinstance(parsed, list):
        raise ForeignDataError(
            f"the `{SUBSCRIPTIONS_KEY}` key of the notifications ConfigMap is not a list of subscriptions;"
            " fix or remove it, ArgoBridge will not overwrite it"
        )
    return parsed


def is_our_subscription(entry: Any, service: str, triggers: frozenset[str]) -> bool:
    """An entry that sends only ArgoBridge's triggers to ArgoBridge's service is ArgoBridge's."""
    if not isinstance(entry, Mapping):
        return False
    entry_triggers = entry.get("triggers") or []
    return (
        entry.get("recipients") == [service]
        and bool(entry_triggers)
        and all(trigger in triggers for trigger in entry_triggers)
    )


def merge_subscriptions(
    existing: str | None, ours: Sequence[Mapping[str, Any]], service: str, triggers: frozenset[str]
) -> str | None:
    """Users' subscriptions kept in order, ours (if any) replaced or appended; None if nothing is left."""
    kept = [entry for entry in parse_subscriptions(existing) if not is_our_subscription(entry, service, triggers)]
    merged = [*kept, *(dict(entry) for entry in ours)]
    return to_yaml(merged) if merged else None


@dataclass(frozen=True)
class SharedKey:
    """A key ArgoBridge shares with users: how to merge our part in, and how to compare by meaning."""

    key: str
    merge: Callable[[str | None], str | None]
    parse: Callable[[str | None], Any]


def shared_keys(
    rendered: RenderedConfig, previous_context: Mapping[str, str], removing: bool = False
) -> tuple[SharedKey, ...]:
    """The shared keys with our contributions (none when the bridge is being removed)."""
    context = {} if removing else rendered.context
    subscriptions = () if removing else rendered.subscriptions
    return (
        SharedKey(CONTEXT_KEY, lambda text: merge_context(text, context, previous_context), parse_context),
        SharedKey(
            SUBSCRIPTIONS_KEY,
            lambda text: merge_subscriptions(text, subscriptions, rendered.service, rendered.triggers),
            parse_subscriptions,
        ),
    )


def _plan(
    current: Mapping[str, str], managed: set[str], owned: Mapping[str, str], shared: Sequence[SharedKey]
) -> ConfigPlan:
    data = dict(owned)
    added = [key for key in data if key not in current]
    changed = [key for key in data if key in current and current[key] != data[key]]
    for item in shared:
        existing = current.get(item.key)
        merged = item.merge(existing)
        dirty = item.parse(merged) != item.parse(existing)
        # Include the key when it must change, or when we own it (left out, the apiserver would drop it).
        if merged is not None and (dirty or item.key in managed):
            data[item.key] = merged
        if dirty and merged is not None:
            (changed if item.key in current else added).append(item.key)
    removed = sorted(key for key in managed if key not in data and key in current)
    return ConfigPlan(
        data=data,
        added=tuple(sorted(added)),
        changed=tuple(sorted(changed)),
        removed=tuple(removed),
        owned_keys=tuple(sorted(owned)),
    )


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
    return _plan(current or {}, managed, rendered.owned, shared_keys(rendered, previous_context))


def plan_removal(
    current: Mapping[str, str] | None, managed: set[str], rendered: RenderedConfig, our_context: Mapping[str, str]
) -> ConfigPlan:
    """What to apply when the bridge goes away: no owned keys, shared keys without our entries."""
    return _plan(current or {}, managed, {}, shared_keys(rendered, our_context, removing=True))
