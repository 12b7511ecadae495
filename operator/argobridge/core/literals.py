"""String literals for the two languages ArgoBridge writes: Go templates and expr-lang conditions.

Whatever a user types (a title, a label value, a glob) reaches Argo CD only as a quoted literal, never
as code. Both languages unquote the same escapes (`\\"`, `\\\\`, `\\n`, `\\uXXXX`, `\\UXXXXXXXX`); Go rejects
a `\\u` escape of a UTF-16 surrogate, so characters beyond the BMP are written as `\\U` escapes and
lone surrogates (which no YAML document can carry anyway) become U+FFFD.
"""

from __future__ import annotations

_SIMPLE = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Braces are escaped too: a `{{` or `}}` never appears in the template text, even inside a string.
_ESCAPED_ASCII = {"{", "}", "`", "'"}


def _escape(char: str) -> str:
    if char in _SIMPLE:
        return _SIMPLE[char]
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return "\\ufffd"
    if code > 0xFFFF:
        return f"\\U{code:08x}"
    if code < 0x20 or code >= 0x7F or char in _ESCAPED_ASCII:
        return f"\\u{code:04x}"
    return char


def quoted(text: str) -> str:
    """A double-quoted, ASCII-only literal that Go's and expr-lang's parsers both read back as `text`."""
    return '"' + "".join(_escape(char) for char in text) + '"'


def quoted_list(items: list[str] | tuple[str, ...]) -> str:
    """An expr-lang array literal of strings."""
    return "[" + ", ".join(quoted(item) for item in items) + "]"
