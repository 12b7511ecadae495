"""Limits Backstage's notifications API enforces, and a pure fit of a body to them.

Why: a body Backstage refuses is lost (400) or retried forever (Postgres "value too long" is a 500), so
both Direct and Relay mode fit the body before sending. Evidence (file/line in the test backend) is in
the "Amendment (limits)" of the relay contract: express.json() default 100 kB body limit, title and
scope/topic/icon varchar(255), severity enum, http/https links only, NUL refused by Postgres text.
"""

from __future__ import annotations

import json
from typing import Any

BODY_LIMIT_BYTES = 102_400
"""express.json() default limit (body-parser 100 kB) on the notifications router."""
FITTED_BODY_TARGET_BYTES = 65_536
"""What a fitted body aims to stay under, leaving room for recipients and metadata."""
SHORT_FIELD_CHARS = 255
"""varchar(255) columns: title, scope, topic, icon."""
DESCRIPTION_CHARS = 16_000
TRUNCATION_MARKER = "\u2026"
SEVERITIES = frozenset({"critical", "high", "normal", "low"})
_SHORT_FIELDS = ("title", "scope", "topic", "icon")


def clean_text(text: str) -> str:
    """Drop NUL and lone surrogates: Postgres text refuses NUL, UTF-8 cannot carry a surrogate."""
    return "".join(ch for ch in text if ch != "\x00" and not 0xD800 <= ord(ch) <= 0xDFFF)


def truncate(text: str, limit: int) -> str:
    """Cut to at most `limit` characters with a visible marker; code-point slicing keeps UTF-8 valid."""
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def _link_allowed(link: str) -> bool:
    """Backstage resolves the link against its frontend URL and allows only http: and https:."""
    head = link.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if ":" not in head:
        return True
    return head.split(":", 1)[0].lower() in {"http", "https"}


def fit_notification(body: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `body` that Backstage accepts: fields cleaned, shortened and fixed, never enlarged."""
    payload_in = body.get("payload")
    payload: dict[str, Any] = dict(payload_in) if isinstance(payload_in, dict) else {}
    for field in _SHORT_FIELDS:
        value = payload.get(field)
        if isinstance(value, str):
            payload[field] = truncate(clean_text(value), SHORT_FIELD_CHARS)
        elif value is not None and field != "title":
            del payload[field]
    title = payload.get("title")
    if not isinstance(title, str) or not title:
        payload["title"] = "(no title)"
    description = payload.get("description")
    if isinstance(description, str):
        payload["description"] = truncate(clean_text(description), DESCRIPTION_CHARS)
    elif description is not None:
        del payload["description"]
    link = payload.get("link")
    if link is not None and (not isinstance(link, str) or not _link_allowed(clean_text(link))):
        del payload["link"]
    elif isinstance(link, str):
        payload["link"] = clean_text(link)
    severity = payload.get("severity")
    if severity is not None and severity not in SEVERITIES:
        payload["severity"] = "normal"
    fitted = dict(body)
    fitted["payload"] = payload
    while _size(fitted) > FITTED_BODY_TARGET_BYTES and len(payload.get("description", "")) > 1:
        text = payload["description"]
        payload["description"] = truncate(text, max(1, len(text) // 2))
    return fitted


def _size(body: dict[str, Any]) -> int:
    return len(json.dumps(body, ensure_ascii=False).encode("utf-8"))
