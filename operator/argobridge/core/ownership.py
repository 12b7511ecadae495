"""Who owns what in Argo CD's shared objects: recorded by the apiserver and by ArgoBridge, never guessed.

Three records, read and written here as pure functions:
- the field manager of each bridge (`argobridge/<namespace>/<name>`), so the apiserver's `managedFields`
  say which bridge wrote a key, and two bridges never remove each other's fields;
- a comment line naming the bridge right before each entry ArgoBridge adds to a key it shares with users
  (`context`, `subscriptions`); the notifications engine ignores comments, and the text around the entry
  is kept byte for byte, so a user's entry is never re-serialised and never mistaken for ours;
- the apiserver's answer to an apply that met someone else's field (HTTP 409, `details.causes`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

# One serialiser for everything written into Argo CD's configuration: it quotes what Go's YAML reader
# would take as a boolean or number (a service named `y` in a subscription broke the whole config).
from argobridge.core.labels import label_key_problem
from argobridge.core.render import to_yaml

# The one field manager every ArgoBridge before per-bridge managers used. Fields it owns through apply
# count as the reconciling bridge's during the upgrade; its first apply takes them over and then releases
# this manager (one bridge per namespace applies, see reconcile._older_bridge).
LEGACY_MANAGER = "argobridge"
MANAGER_PREFIX = "argobridge/"
# The apiserver refuses a fieldManager longer than 128 characters or with a non-printable character.
MAX_MANAGER_LENGTH = 128
MARKER_PREFIX = "# argobridge.io/bridge: "
MARKER_SUFFIX = " (managed, do not edit)"


class ForeignDataError(ValueError):
    """Data ArgoBridge must merge with is unreadable; overwriting it would lose the user's work."""


def field_manager(namespace: str, name: str) -> str:
    """This bridge's field manager: `argobridge/<namespace>/<name>`, shortened with a digest past 128.

    A namespace has at most 63 characters and a bridge name up to 253, so a long name keeps its start
    and gets 10 hex digits of SHA-256 of the full `namespace/name`, which keeps it unique.
    """
    manager = f"{MANAGER_PREFIX}{namespace}/{name}"
    if len(manager) <= MAX_MANAGER_LENGTH:
        return manager
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:10]
    return f"{manager[: MAX_MANAGER_LENGTH - 11]}-{digest}"


FINALIZER = "argobridge.io/finalizer"


def shard_finalizer(shard: str) -> str:
    """The finalizer an operator serving `shard` puts on its bridges; `argobridge.io/finalizer` unsharded.

    One name per shard, because kopf removes its finalizer from every object none of its deletion
    handlers match: with one shared name, the operator of another shard (or the unsharded one) strips
    it from each bridge it does not serve, the serving operator puts it back, and a bridge deleted in
    between is gone without its keys being taken out of Argo CD's configuration.
    """
    if not shard:
        return FINALIZER
    finalizer = f"{FINALIZER}-{shard}"
    if label_key_problem(finalizer) is None:  # a finalizer is a qualified name, like a label key
        return finalizer
    return f"{FINALIZER}-{hashlib.sha256(shard.encode()).hexdigest()[:20]}"


def bridge_id(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def marker_line(bridge: str) -> str:
    """The comment that records an entry of a shared key as this bridge's."""
    return f"{MARKER_PREFIX}{bridge}{MARKER_SUFFIX}"


@dataclass(frozen=True)
class Owner:
    """One field manager's claim on a field, as `metadata.managedFields` records it."""

    manager: str
    operation: str

    def __str__(self) -> str:
        return f"{self.manager!r} ({self.operation})"


def owners_at(managed_fields: Sequence[Mapping[str, Any]] | None, path: Sequence[str]) -> dict[str, list[Owner]]:
    """Every child key under `path` (e.g. `("data",)`) with the managers that own it."""
    owners: dict[str, list[Owner]] = {}
    for entry in managed_fields or ():
        node: Any = entry.get("fieldsV1") or {}
        for part in path:
            node = node.get(f"f:{part}") if isinstance(node, Mapping) else None
        for name in node or {}:
            if isinstance(name, str) and name.startswith("f:"):
                owner = Owner(str(entry.get("manager") or ""), str(entry.get("operation") or ""))
                owners.setdefault(name[2:], []).append(owner)
    return owners


@dataclass(frozen=True)
class Ownership:
    """Everything that says which keys are this bridge's, gathered before a plan.

    `recorded` is what the bridge's status lists as applied by it: a key a user edited since (which moves
    the field to the user's manager) is still ours to repair, while a key that was there before the
    bridge came is never in it.
    """

    bridge: str
    manager: str
    owners: Mapping[str, Sequence[Owner]]
    recorded: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        namespace: str,
        name: str,
        owners: Mapping[str, Sequence[Owner]] | None = None,
        recorded: Iterable[str] = (),
    ) -> Ownership:
        return cls(bridge_id(namespace, name), field_manager(namespace, name), dict(owners or {}), frozenset(recorded))

    def ours(self, owner: Owner) -> bool:
        return owner.manager == self.manager or (owner.manager == LEGACY_MANAGER and owner.operation == "Apply")

    def applied(self, key: str) -> bool:
        """Whether this bridge's manager (or the legacy one) owns `key` through apply now."""
        return any(self.ours(owner) for owner in self.owners.get(key, ()))

    def legacy(self, key: str) -> bool:
        return any(o.manager == LEGACY_MANAGER and o.operation == "Apply" for o in self.owners.get(key, ()))

    def is_ours(self, key: str) -> bool:
        return self.applied(key) or key in self.recorded

    def foreign_owners(self, key: str) -> tuple[str, ...]:
        return tuple(sorted({str(owner) for owner in self.owners.get(key, ()) if not self.ours(owner)}))

    @property
    def legacy_keys(self) -> frozenset[str]:
        return frozenset(key for key in self.owners if self.legacy(key))


@dataclass(frozen=True)
class KeyConflict:
    """A key ArgoBridge would write that someone else wrote first (or owns now)."""

    key: str
    owners: tuple[str, ...]
    hint: str

    def describe(self, where: str) -> str:
        owner = " and ".join(self.owners) if self.owners else "no recorded field manager (written without one)"
        return f"{self.key} in {where} is not ArgoBridge's (owned by {owner}); {self.hint}"


def conflict_hint(key: str) -> str:
    """How to hand a key over to ArgoBridge, or keep it and make room."""
    if "service.webhook." in key:
        return (
            "to hand it over, delete that key and ArgoBridge writes its own; to keep it, set"
            " spec.argocd.serviceName to another name"
        )
    if key.endswith("argocdUrl"):
        return (
            "to hand it over, delete your argocdUrl entry from context (set spec.argocd.url to the URL you want);"
            " ArgoBridge never overwrites it"
        )
    return (
        "to hand it over, delete that key and ArgoBridge writes its own; to keep yours, rename it (ArgoBridge"
        " names its templates and triggers with a -backstage suffix) or turn that event off in spec.events"
    )


def describe_conflicts(conflicts: Sequence[KeyConflict], where: str, limit: int = 5) -> str:
    """One message for a KeyConflict condition: which keys, whose, how to hand them over; nothing written."""
    shown = "; ".join(item.describe(where) for item in conflicts[:limit])
    more = f" (and {len(conflicts) - limit} more)" if len(conflicts) > limit else ""
    return f"ArgoBridge wrote nothing: {shown}{more}"


@dataclass(frozen=True)
class FieldConflict:
    """One cause of an apply the apiserver refused: the field path and the manager that owns it."""

    field: str
    manager: str


_CONFLICT_WITH = re.compile(r'conflict with "([^"]{0,256})"')


def parse_apply_conflicts(body: str | bytes | None) -> tuple[FieldConflict, ...]:
    """The `FieldManagerConflict` causes of a 409 answer to an apply; empty when it is not one.

    A 409 without them is an optimistic-lock failure (the resourceVersion sent is stale). Only the field
    path and the manager name are kept, cut to printable characters, so the message is safe to show.
    """
    try:
        status = json.loads(body or "{}")
    except ValueError:
        return ()
    causes = ((status.get("details") or {}).get("causes") or []) if isinstance(status, dict) else []
    found: list[FieldConflict] = []
    for cause in causes:
        if not isinstance(cause, Mapping) or cause.get("reason") != "FieldManagerConflict":
            continue
        match = _CONFLICT_WITH.search(str(cause.get("message") or ""))
        manager = _printable(match.group(1) if match else "unknown manager")
        found.append(FieldConflict(_printable(str(cause.get("field") or "")), manager))
    return tuple(found)


def _printable(text: str, limit: int = 256) -> str:
    return "".join(ch for ch in text if ch.isprintable())[:limit]


def data_key(field: str) -> str | None:
    """`.data.service.webhook.backstage` -> `service.webhook.backstage` (ConfigMap keys hold no other path)."""
    return field[len(".data.") :] if field.startswith(".data.") else None


def spec_entry(field: str, sections: Iterable[str]) -> str | None:
    """`.spec.templates.template.x` -> `templates.template.x` for the resource's map sections."""
    for section in sections:
        prefix = f".spec.{section}."
        if field.startswith(prefix):
            return f"{section}.{field[len(prefix) :]}"
    return None


# --- Shared keys, edited as text ---------------------------------------------------------------------------


def _lines(text: str | None) -> list[str]:
    return (text or "").splitlines(keepends=True)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _block_end(lines: Sequence[str], start: int, indent: int) -> int:
    """The line after the entry that starts at `start`: its continuation lines are indented deeper."""
    end = start + 1
    while end < len(lines) and lines[end].strip() and _indent(lines[end]) > indent:
        end += 1
    return end


def _joined(lines: Sequence[str]) -> str:
    return "".join(lines)


@dataclass(frozen=True)
class SharedEdit:
    """The new text of a shared key (None: nothing is left, the key should not exist) and what was there."""

    text: str | None
    foreign: Any  # the users' part, parsed (a mapping for context, a list for subscriptions)
    had_ours: bool


def strip_marked(text: str, marker: str) -> str:
    """`text` without the marked entries, for a key too broken to parse: our lines go, theirs stay."""
    lines, _ = _remove_marked(_lines(text), marker, _content)
    return _joined(lines)


def _remove_marked(lines: list[str], marker: str, is_entry: Callable[[str], bool]) -> tuple[list[str], int | None]:
    """Lines without our marked entries; the index where the first one stood (to put ours back there)."""
    kept: list[str] = []
    position: int | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.strip() == marker:
            position = len(kept) if position is None else position
            index += 1
            if index < len(lines) and is_entry(lines[index]):
                index = _block_end(lines, index, _indent(lines[index]))
            continue
        kept.append(line)
        index += 1
    return kept, position


def _parse(text: str, key: str, kind: type, what: str) -> Any:
    try:
        parsed = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as error:
        raise ForeignDataError(
            f"the `{key}` key is not valid YAML ({error.__class__.__name__}); fix or remove it, ArgoBridge will"
            " not overwrite it"
        ) from None
    if parsed is None:
        return kind()
    if not isinstance(parsed, kind):
        raise ForeignDataError(f"the `{key}` key is not {what}; fix or remove it, ArgoBridge will not overwrite it")
    return parsed


def _where(lines: Sequence[str], position: int | None) -> int:
    """Where our block goes: back where it stood, else at the end, else (the users' last line has no
    newline) at the start, so taking it out again gives back their exact bytes."""
    if position is not None:
        return position
    return 0 if lines and not lines[-1].endswith("\n") else len(lines)


def _insert(lines: list[str], position: int | None, block: str) -> str:
    where = _where(lines, position)
    return _joined(lines[:where]) + block + _joined(lines[where:])


def edit_context(text: str | None, key: str, value: str | None, bridge: str, adopt: str | None = None) -> SharedEdit:
    """`context` with only this bridge's `key: value` line (and its marker) replaced, added or removed.

    Every other byte stays: users' values are never re-serialised (YAML 1.1 would turn `1.10` into `1.1`,
    `0755` into `493`, `yes` into `true`). `adopt` is the value the legacy operator wrote: an unmarked
    line holding exactly it is taken as ours once (the caller passes it only for a key the legacy manager
    owns). Raises `ForeignDataError` when the users' part is unreadable or holds `key` itself (the caller
    reports a conflict for the latter when it has a value to write).
    """
    marker = marker_line(bridge)
    entry = re.compile(rf"^{re.escape(key)}\s*:")
    lines, position = _remove_marked(_lines(text), marker, lambda line: bool(entry.match(line)))
    had_ours = position is not None
    if adopt is not None and not had_ours:
        for index, line in enumerate(lines):
            if entry.match(line):
                end = _block_end(lines, index, 0)
                try:
                    parsed = yaml.safe_load(_joined(lines[index:end]))
                except yaml.YAMLError:
                    parsed = None
                if parsed == {key: adopt}:
                    lines, position, had_ours = [*lines[:index], *lines[end:]], index, True
                break
    foreign_text = _joined(lines)
    foreign = _parse(foreign_text, "context", dict, "a mapping of name: value")
    if value is None or key in foreign:
        return SharedEdit(foreign_text or None, foreign, had_ours)
    block = f"{marker}\n{to_yaml({key: value})}"
    merged = _insert(lines, position, block)
    if _parse(merged, "context", dict, "a mapping") != {**foreign, key: value}:
        raise ForeignDataError(
            "the `context` key is not a block mapping ArgoBridge can add one line to; write it as `name: value`"
            " lines, ArgoBridge will not rewrite it"
        )
    return SharedEdit(merged, foreign, had_ours)


def _list_indent(lines: Sequence[str]) -> int | None:
    first = next((line for line in lines if _content(line)), None)
    return None if first is None else _indent(first)


def _top_items(lines: Sequence[str], indent: int) -> list[int]:
    """Line numbers where the top-level items of a block list (at `indent`) start."""
    return [i for i, line in enumerate(lines) if _indent(line) == indent and line.lstrip(" ").startswith("-")]


def edit_subscriptions(
    text: str | None, ours: Sequence[Mapping[str, Any]], bridge: str, adopt: bool = False, remove: bool = False
) -> SharedEdit:
    """`subscriptions` with this bridge's marked items replaced, added or removed; users' items kept as text.

    Ownership is the marker line, never the content: a user's item that names our service and triggers
    is theirs. With `adopt` (a key the legacy manager owns, before any marked item exists) an unmarked item
    exactly equal to one of `ours` is taken as ours once; with `remove` ours are only taken out. Every edit
    is checked by parsing it back: the users' items, in their order, and ours where they stood; anything
    else is refused, never rewritten.
    """
    marker = marker_line(bridge)
    lines, position = _remove_marked(_lines(text), marker, lambda line: line.lstrip(" ").startswith("-"))
    had_ours = position is not None
    wanted = [dict(item) for item in ours]
    if adopt and not had_ours and wanted:
        lines, position = _adopt_item(lines, wanted)
        had_ours = position is not None
    foreign_text = _joined(lines)
    foreign = _parse(foreign_text, "subscriptions", list, "a list of subscriptions")
    if not wanted or remove:
        return SharedEdit(foreign_text or None, foreign, had_ours)
    indent = _list_indent(lines)
    if indent is not None and not next(line for line in lines if _content(line)).lstrip(" ").startswith("-"):
        raise ForeignDataError(
            "the `subscriptions` key is not a block list (`- recipients: ...` items); write it as one, ArgoBridge"
            " adds its own item and will not rewrite yours"
        )
    pad = " " * (indent or 0)
    rendered = to_yaml(wanted)
    items = [item for item in re.split(r"(?m)^(?=- )", rendered) if item]
    block = "".join(f"{pad}{marker}\n" + "".join(pad + line for line in _lines(item)) for item in items)
    where = _where(lines, position)
    before = len([i for i in _top_items(lines, indent or 0) if i < where])
    merged = _insert(lines, position, block)
    if _parse(merged, "subscriptions", list, "a list") != [*foreign[:before], *wanted, *foreign[before:]]:
        raise ForeignDataError(
            "the `subscriptions` key is laid out in a way ArgoBridge cannot add an item to without rewriting it;"
            " write it as a plain block list of `- recipients: ...` items"
        )
    return SharedEdit(merged, foreign, had_ours)


def _adopt_item(lines: list[str], wanted: Sequence[dict[str, Any]]) -> tuple[list[str], int | None]:
    """Take out the first unmarked top-level item equal to one of ours (the legacy operator's entry)."""
    indent = _list_indent(lines)
    if indent is None:
        return lines, None
    for index in _top_items(lines, indent):
        end = _block_end(lines, index, indent)
        item = "".join(line[indent:] for line in lines[index:end])
        try:
            parsed = yaml.safe_load(item)
        except yaml.YAMLError:
            continue
        if isinstance(parsed, list) and len(parsed) == 1 and parsed[0] in wanted:
            return [*lines[:index], *lines[end:]], index
    return lines, None
