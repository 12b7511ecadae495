"""Kubernetes' rules for label keys and values, as `k8s.io/apimachinery` applies them.

Argo CD's engine parses the `selector` of a global subscription with `labels.Parse`; one key or value
it refuses (a space, a second `/`, an empty key, 64 characters) makes it refuse the whole notifications
configuration, and a comma or `=` inside a value would silently change what the selector means. The
same rules are in the CRD schema; they are repeated here for `argobridge render` on a file and as a
second line of defence.
"""

from __future__ import annotations

import re

MAX_NAME = 63
MAX_PREFIX = 253
# `IsQualifiedName`'s name part and `IsValidLabelValue`, without the length (checked separately).
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

# The same rules for the CRD's schema: key (a CEL rule over map keys) and value (a pattern).
CEL_KEY_PATTERN = (
    "^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    + "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
CEL_KEY_RULE = f"self.all(k, k.matches('{CEL_KEY_PATTERN}') && (!k.contains('/') || k.indexOf('/') <= {MAX_PREFIX}))"
VALUE_PATTERN = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
KEY_HINT = (
    "a label key is a name of at most 63 letters, digits, -, _ and . (starting and ending with a letter or digit),"
    " optionally after a DNS prefix and a slash, like team or example.com/team"
)
VALUE_HINT = (
    "a label value is empty or at most 63 letters, digits, -, _ and . starting and ending with a letter or digit"
)


def label_key_problem(key: object) -> str | None:
    """Why `key` is not a Kubernetes label key, or None when it is one."""
    if not isinstance(key, str) or not key:
        return "is empty" if key == "" else "is not a string"
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "has an empty prefix before /"
        if len(prefix) > MAX_PREFIX or not _DNS_SUBDOMAIN.fullmatch(prefix):
            return f"has a prefix {prefix!r} that is not a lowercase DNS subdomain of at most {MAX_PREFIX} characters"
    if not name:
        return "has an empty name after /"
    if len(name) > MAX_NAME:
        return f"has a name of {len(name)} characters, more than {MAX_NAME}"
    if not _NAME.fullmatch(name):
        return "holds a character other than letters, digits, -, _ and . (or does not start and end with one)"
    return None


def label_value_problem(value: object) -> str | None:
    """Why `value` is not a Kubernetes label value, or None when it is one (empty is allowed)."""
    if not isinstance(value, str):
        return "is not a string (quote numbers and booleans in YAML)"
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long, more than {MAX_NAME}"
    if value and not _NAME.fullmatch(value):
        return "holds a character other than letters, digits, -, _ and . (or does not start and end with one)"
    return None
