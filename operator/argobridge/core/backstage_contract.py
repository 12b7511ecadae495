"""What Backstage's notifications backend accepts in a create request (notifications-backend 0.6).

Kept next to the renderer so that tests, and later `preview` and `doctor`, judge a rendered body by
the same rules the backend applies, including its length limits counted the way JavaScript counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SEVERITIES = frozenset({"critical", "high", "normal", "low"})
MAX_TITLE = 255
MAX_SCOPE = 255
CANONICAL_REF = re.compile(r"^[a-z0-9][a-z0-9._-]*:[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")


def js_length(text: str) -> int:
    """String length as JavaScript reports it (UTF-16 code units), which is what Backstage checks."""
    return len(text.encode("utf-16-le")) // 2


def _recipient_problems(recipients: Any) -> list[str]:
    if not isinstance(recipients, Mapping):
        return ["recipients must be an object"]
    kind = recipients.get("type")
    if kind == "broadcast":
        return []
    if kind != "entity":
        return [f"recipients.type must be entity or broadcast, not {kind!r}"]
    ref = recipients.get("entityRef")
    refs = ref if isinstance(ref, list) else [ref]
    if not refs or not all(isinstance(item, str) and item for item in refs):
        return ["recipients.entityRef must be a non-empty string or list of strings"]
    return []


def create_request_problems(body: Any) -> list[str]:
    """Every reason Backstage would answer 400 to this create request; empty when it is valid."""
    if not isinstance(body, Mapping):
        return ["the body must be a JSON object"]
    problems = _recipient_problems(body.get("recipients"))
    payload = body.get("payload")
    if not isinstance(payload, Mapping):
        return [*problems, "payload must be an object"]
    title = payload.get("title")
    if not isinstance(title, str) or not title:
        problems.append("payload.title is required")
    elif js_length(title) > MAX_TITLE:
        problems.append(f"payload.title is {js_length(title)} characters, more than {MAX_TITLE}")
    severity = payload.get("severity")
    if severity is not None and severity not in SEVERITIES:
        problems.append(f"payload.severity {severity!r} is not one of {sorted(SEVERITIES)}")
    link = payload.get("link")
    if link is not None and not (isinstance(link, str) and re.match(r"^https?://", link)):
        problems.append(f"payload.link {link!r} is not an http(s) URL")
    scope = payload.get("scope")
    if scope is not None and (not isinstance(scope, str) or js_length(scope) > MAX_SCOPE):
        problems.append(f"payload.scope must be a string of at most {MAX_SCOPE} characters")
    for key in ("description", "topic", "icon"):
        if key in payload and payload[key] is not None and not isinstance(payload[key], str):
            problems.append(f"payload.{key} must be a string")
    return problems
