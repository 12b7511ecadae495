"""Decide what to write to the notifications ConfigMap, and whether to write at all.

ArgoBridge owns whole keys (its service, templates, triggers) through server-side apply as its own field
manager, and shares two keys with users, `context` and `subscriptions`: there it owns only the lines it
marked as its own, and every other byte stays as the user wrote it. A key of the same name that someone
else wrote is a conflict, reported and never taken over. An idle reconcile must make no write, so the
decision compares the exact text that would be applied with what is there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from argobridge.core.ownership import (
    LEGACY_MANAGER,
    ForeignDataError,
    KeyConflict,
    Ownership,
    SharedEdit,
    conflict_hint,
    edit_context,
    edit_subscriptions,
    marker_line,
    strip_marked,
)
from argobridge.core.render import ARGOCD_URL_CONTEXT, CONTEXT_KEY, SUBSCRIPTIONS_KEY, RenderedConfig

# The manager of every write before per-bridge managers (see core.ownership); other objects (Secrets,
# Applications) are still written under it by their own modules.
FIELD_MANAGER = LEGACY_MANAGER
SHARED_KEYS = (CONTEXT_KEY, SUBSCRIPTIONS_KEY)

__all__ = ["FIELD_MANAGER", "ConfigPlan", "ForeignDataError", "keys_managed_by", "plan_config", "plan_removal"]


@dataclass(frozen=True)
class ConfigPlan:
    """The body to apply (every key ArgoBridge will own afterwards), what changes, and what stops it.

    `conflicts` non-empty means nothing may be written. `takeover` are the keys the apply may take from
    another field manager (force, only together with the read's resourceVersion): shared keys whose text
    was merged from exactly that version, and keys this bridge wrote that a user edited since.
    """

    data: dict[str, str]
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    owned_keys: tuple[str, ...] = ()
    conflicts: tuple[KeyConflict, ...] = ()
    takeover: frozenset[str] = frozenset()
    release_legacy: bool = False
    left: tuple[str, ...] = ()  # keys this bridge wrote that a user has changed since: theirs now, left alone
    unreadable: tuple[str, ...] = ()  # shared keys (removal only) whose users' part could not be read

    @property
    def needs_write(self) -> bool:
        return not self.conflicts and bool(self.added or self.changed or self.removed or self.release_legacy)


def keys_managed_by(managed_fields: Sequence[Mapping[str, Any]] | None, manager: str = FIELD_MANAGER) -> set[str]:
    """The `data` keys a field manager owns through apply, read from `metadata.managedFields`."""
    keys: set[str] = set()
    for entry in managed_fields or ():
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        data = (entry.get("fieldsV1") or {}).get("f:data") or {}
        keys.update(name[2:] for name in data if name.startswith("f:"))
    return keys


def merge_context(existing: str | None, ours: Mapping[str, str], bridge: str) -> str | None:
    """The shared `context` text with this bridge's marked `argocdUrl` line set (see core.ownership)."""
    return edit_context(existing, ARGOCD_URL_CONTEXT, ours.get(ARGOCD_URL_CONTEXT), bridge).text


def merge_subscriptions(existing: str | None, ours: Sequence[Mapping[str, Any]], bridge: str) -> str | None:
    """The shared `subscriptions` text with this bridge's marked items set (see core.ownership)."""
    return edit_subscriptions(existing, ours, bridge).text


@dataclass(frozen=True)
class Shared:
    """One shared key after the edit: its new text (None: nothing left) and whether it was merged at all."""

    key: str
    edit: SharedEdit | None  # None: unreadable, left exactly as it is


def plan_keys(
    current: Mapping[str, str],
    ownership: Ownership,
    owned: Mapping[str, str],
    shared: Sequence[Shared],
    conflicts: Sequence[KeyConflict] = (),
) -> ConfigPlan:
    """The plan for any object whose keys are plain strings (the ConfigMap, or the resource flattened).

    An owned key that exists and is not this bridge's (by its field manager, the legacy one, or the
    bridge's own record) is a conflict. A key this bridge owns and no longer renders is left out, so the
    apiserver removes it, unless a user changed it since (then it is theirs and stays).
    """
    found = list(conflicts)
    for key in owned:
        if key in current and not ownership.is_ours(key):
            found.append(KeyConflict(key, ownership.foreign_owners(key), conflict_hint(key)))
    data = dict(owned)
    takeover = {key for key in owned if ownership.is_ours(key)}
    added = [key for key in owned if key not in current]
    changed = [key for key in owned if key in current and current[key] != owned[key]]
    removed: list[str] = []
    shared_names = {item.key for item in shared}
    for item in shared:
        existing = current.get(item.key)
        if item.edit is None:
            if ownership.applied(item.key) and existing is not None:
                data[item.key] = existing  # left out, the apiserver would delete the users' text with ours
            continue
        text = item.edit.text
        dirty = text != existing
        if text is None:
            if existing is not None and dirty:
                if all(ownership.ours(owner) for owner in ownership.owners.get(item.key, ())) and ownership.applied(
                    item.key
                ):
                    removed.append(item.key)  # only ours was in it: omitted, the apiserver removes it
                else:  # someone else holds the key too: leave it, empty, rather than our entry in it
                    data[item.key] = ""
                    changed.append(item.key)
                    takeover.add(item.key)
            continue
        if dirty or ownership.applied(item.key):
            data[item.key] = text
            takeover.add(item.key)
        if dirty:
            (changed if existing is not None else added).append(item.key)
    left: list[str] = []
    for key in sorted({*ownership.owners, *ownership.recorded}):
        if key in data or key in shared_names or key not in current:
            continue
        if ownership.applied(key):
            removed.append(key)
        elif key in ownership.recorded:
            left.append(key)
    return ConfigPlan(
        data=data,
        added=tuple(sorted(added)),
        changed=tuple(sorted(changed)),
        removed=tuple(sorted(removed)),
        owned_keys=tuple(sorted(owned)),
        conflicts=tuple(found),
        takeover=frozenset(takeover),
        release_legacy=bool(ownership.legacy_keys),
        left=tuple(left),
    )


def _context_edit(
    current: Mapping[str, str], ownership: Ownership, url: str | None, previous_url: str | None
) -> tuple[Shared, list[KeyConflict]]:
    adopt = previous_url if ownership.legacy(CONTEXT_KEY) else None
    edit = edit_context(current.get(CONTEXT_KEY), ARGOCD_URL_CONTEXT, url, ownership.bridge, adopt)
    conflicts = []
    if url and ARGOCD_URL_CONTEXT in edit.foreign:
        key = f"{CONTEXT_KEY}.{ARGOCD_URL_CONTEXT}"
        conflicts.append(KeyConflict(key, ownership.foreign_owners(CONTEXT_KEY), conflict_hint(key)))
    return Shared(CONTEXT_KEY, edit), conflicts


def plan_config(
    current: Mapping[str, str] | None,
    ownership: Ownership,
    rendered: RenderedConfig,
    previous_url: str | None = None,
) -> ConfigPlan:
    """What to apply so the ConfigMap holds `rendered`, leaving every foreign key and entry alone.

    `previous_url` is the `argocdUrl` the bridge's status says it wrote: an unmarked line with exactly
    that value, in a `context` the legacy manager owns, is the legacy operator's and is adopted once.
    Raises `ForeignDataError` when a shared key we must change is unreadable.
    """
    current = current or {}
    context, conflicts = _context_edit(current, ownership, rendered.context.get(ARGOCD_URL_CONTEXT), previous_url)
    subscriptions = edit_subscriptions(
        current.get(SUBSCRIPTIONS_KEY),
        rendered.subscriptions,
        ownership.bridge,
        adopt=ownership.legacy(SUBSCRIPTIONS_KEY),
    )
    shared = [context, Shared(SUBSCRIPTIONS_KEY, subscriptions)]
    return plan_keys(current, ownership, rendered.owned, shared, conflicts)


def removal_edits(
    current: Mapping[str, str],
    ownership: Ownership,
    subscriptions: Sequence[Mapping[str, Any]],
    previous_url: str | None,
    context_key: str | None = CONTEXT_KEY,
    subscriptions_key: str = SUBSCRIPTIONS_KEY,
) -> tuple[list[Shared], list[str]]:
    """The shared keys without this bridge's marked entries, and the names of those that could not be read.

    The legacy operator's unmarked entries (in a key the legacy manager owns, equal to what this bridge
    renders or last wrote) go too. An unreadable key still loses our marked lines (they are ours, and
    taking them out cannot make it worse); what remains is left exactly as the user wrote it.
    """
    shared: list[Shared] = []
    unreadable: list[str] = []
    marker = marker_line(ownership.bridge)
    for key in (context_key, subscriptions_key):
        if key is None or key not in current:
            continue
        legacy = ownership.legacy(key)
        try:
            if key == context_key:
                adopt = previous_url if legacy else None
                edit = edit_context(current[key], ARGOCD_URL_CONTEXT, None, ownership.bridge, adopt)
            else:
                edit = edit_subscriptions(current[key], subscriptions, ownership.bridge, adopt=legacy, remove=True)
            shared.append(Shared(key, edit))
        except ForeignDataError:
            unreadable.append(key)
            stripped = strip_marked(current[key], marker)
            kept = SharedEdit(stripped or None, None, True) if stripped != current[key] else None
            shared.append(Shared(key, kept))
    return shared, unreadable


def plan_removal(
    current: Mapping[str, str] | None,
    ownership: Ownership,
    rendered: RenderedConfig | None = None,
    previous_url: str | None = None,
) -> ConfigPlan:
    """What to apply when the bridge goes away: none of its keys, the shared keys without its entries.

    Works from the records alone (field managers, markers), so a bridge whose spec no longer parses is
    still cleaned up; an unreadable shared key is named in `unreadable`, never a reason to stop.
    """
    current = current or {}
    subscriptions = rendered.subscriptions if rendered else ()
    shared, unreadable = removal_edits(current, ownership, subscriptions, previous_url)
    plan = plan_keys(current, ownership, {}, shared)
    return ConfigPlan(**{**plan.__dict__, "unreadable": tuple(unreadable)})
