"""Test data helper: an Application document with some fields changed, shared by unit and contract tests."""

from __future__ import annotations

import copy
from typing import Any


def with_fields(app: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """A deep copy of `app` with fields set (or removed, with None), given as paths joined by `__`."""
    result = copy.deepcopy(app)
    for path, value in paths.items():
        *parents, last = path.split("__")
        node = result
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return result
