"""Parse `backstage.io/entity-ref` the way Backstage's catalog understands refs.

Backstage stores a notification under exactly the ref it was sent and answers `200 []` when the ref
resolves to nobody, so a ref that is not canonical lowercase `kind:namespace/name` is lost without an
error. Where the intent is unambiguous (letter case, a missing `default` namespace) the canonical form
is delivered, and the template does the same normalisation; anything else is reported, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Backstage's default validators: kinds are letters and digits starting with a letter; namespaces and
# names are 1 to 63 characters of letters and digits, separated by single '-', '_' or '.'.
_KIND = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*$")
_PART = re.compile(r"^[a-zA-Z0-9]+(?:[-_.][a-zA-Z0-9]+)*$")
MAX_PART = 63


@dataclass(frozen=True)
class EntityRef:
    """One ref as written, its canonical form (None when it cannot be delivered), and why."""

    raw: str
    canonical: str | None
    problem: str | None = None

    @property
    def corrected(self) -> bool:
        """Delivered, but not as written: worth telling the owner so the annotation gets fixed."""
        return self.canonical is not None and self.canonical != self.raw


def parse_entity_ref(raw: str) -> EntityRef:
    """One ref: `kind:namespace/name`, `kind:name` (namespace default), any letter case."""
    text = raw.strip()
    if ":" not in text:
        return EntityRef(
            raw, None, f"{text!r} has no kind; write it as kind:namespace/name, e.g. component:default/{text}"
        )
    kind, rest = text.split(":", 1)
    namespace, name = rest.split("/", 1) if "/" in rest else ("default", rest)
    if not _KIND.match(kind):
        return EntityRef(raw, None, f"{text!r}: the kind {kind!r} is not a Backstage kind (letters and digits)")
    for label, part in (("namespace", namespace), ("name", name)):
        if not part or len(part) > MAX_PART or not _PART.match(part):
            return EntityRef(
                raw, None, f"{text!r}: the {label} {part!r} is not valid (1-63 letters or digits, joined by - _ .)"
            )
    return EntityRef(raw, f"{kind}:{namespace}/{name}".lower())


def parse_entity_refs(annotation: str) -> list[EntityRef]:
    """Every ref of the annotation (comma-separated), empty items skipped."""
    return [parse_entity_ref(item) for item in annotation.split(",") if item.strip()]
