"""The small text language users write titles and descriptions in: `{app}`, `{project}`, ... .

Users never write Go templates into the spec. Their text is split into literal parts and placeholders;
literal parts become quoted Go string literals and placeholders become variables the webhook template
read from the Application with `dig`, so nothing a user (or an Application) writes can change the
template's code, break the JSON body or the notifications configuration. `{{` and `}}` stand for a
literal brace, as in Python's format strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from argobridge.core.literals import quoted

# Placeholder -> the Go template variable the webhook body defines before the text is built.
PLACEHOLDERS: Mapping[str, str] = {
    "app": "$name",
    "project": "$project",
    "namespace": "$namespace",
    "revision": "$revision",
    "message": "$message",
    "health": "$health",
    "phase": "$phase",
    "initiatedBy": "$initiatedBy",
    "repo": "$repo",
    "destination": "$destination",
    "time": "$time",
}
MAX_TEXT = 4096

PLACEHOLDER_PATTERN = r"^([^{}]|[{][{]|[}][}]|[{](" + "|".join(PLACEHOLDERS) + r")[}])*$"
"""The same grammar as a regular expression, for the CRD's CEL rules."""


class PlaceholderError(ValueError):
    """Text that is not valid placeholder syntax; the message says what to write instead."""


@dataclass(frozen=True)
class Placeholder:
    name: str


Part = str | Placeholder


def _unknown(name: str) -> PlaceholderError:
    known = ", ".join(f"{{{key}}}" for key in PLACEHOLDERS)
    return PlaceholderError(f"unknown placeholder {{{name}}}; use one of {known}, or write {{{{ and }}}} for a brace")


def parse_placeholders(text: str) -> tuple[Part, ...]:
    """Literal strings and placeholders, in order; adjacent literal text is joined."""
    if len(text) > MAX_TEXT:
        raise PlaceholderError(f"is {len(text)} characters long; keep it under {MAX_TEXT}")
    parts: list[Part] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        pair = text[index : index + 2]
        if pair in ("{{", "}}"):
            literal.append(char)
            index += 2
        elif char == "{":
            end = text.find("}", index + 1)
            name = text[index + 1 : end] if end != -1 else ""
            if end == -1 or "{" in name:
                raise PlaceholderError(f"has an unclosed {{ at character {index + 1}; write {{{{ for a literal brace")
            if name not in PLACEHOLDERS:
                raise _unknown(name)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Placeholder(name))
            index = end + 1
        elif char == "}":
            raise PlaceholderError(f"has a stray }} at character {index + 1}; write }}}} for a literal brace")
        else:
            literal.append(char)
            index += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def go_text_expression(text: str) -> str:
    """A Go template expression (for use in parentheses) that evaluates to `text` with placeholders filled."""
    parts = parse_placeholders(text)
    if not parts:
        return '""'
    arguments = [PLACEHOLDERS[part.name] if isinstance(part, Placeholder) else quoted(part) for part in parts]
    # printf with a constant format of %v verbs only: user text is always an argument, never the format.
    return f'printf "{"%v" * len(arguments)}" {" ".join(arguments)}'


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """The text as the engine will produce it, for previews and tests without the engine."""
    return "".join(
        values.get(part.name, "") if isinstance(part, Placeholder) else part for part in parse_placeholders(text)
    )
