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

# Direct mode: Argo CD's engine sends what the Go template builds, nothing fits it afterwards, so the
# template bounds every field by its size as serialised JSON and the worst cases together stay under
# BODY_LIMIT_BYTES. One character takes at most 6 bytes of JSON: Go writes a control character as \u0001
# and a stray byte of a cut UTF-8 sequence as \ufffd (U+2028 is 3 bytes written as 6, 4-byte emoji are 4).
JSON_BYTES_PER_CHAR = 6
DIRECT_DESCRIPTION_JSON_BYTES = 65_536
"""The description as JSON, quotes and marker included: ASCII keeps 64 KiB, control characters 10,921."""
DIRECT_RECIPIENTS_JSON_BYTES = 24_576
"""Entity refs as JSON (each with its quotes and comma): about 1,200 refs of 17 characters, 125 of 191."""
DIRECT_LINK_JSON_BYTES = 2_048
"""A longer link to Argo CD is left out: a cut link would lead nowhere."""
_DIRECT_FRAME_BYTES = 256
"""Keys, braces and separators of the body: 140 bytes with every field present."""


def direct_body_worst_case_bytes(max_topic: int, max_icon: int) -> int:
    """The largest body the Direct-mode template can build, from each field's own bound."""
    title = SHORT_FIELD_CHARS * JSON_BYTES_PER_CHAR + 2  # cut to 255 characters
    scope = SHORT_FIELD_CHARS * JSON_BYTES_PER_CHAR + 2  # cut to 255 bytes
    severity = max(len(name) for name in SEVERITIES) + 2
    words = max_topic + 2 + max_icon + 2  # spec words of letters, digits and . _ : / - (never escaped)
    return (
        title
        + scope
        + severity
        + words
        + DIRECT_DESCRIPTION_JSON_BYTES
        + DIRECT_RECIPIENTS_JSON_BYTES
        + 2  # the list's brackets
        + DIRECT_LINK_JSON_BYTES
        + _DIRECT_FRAME_BYTES
    )


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
