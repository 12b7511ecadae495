"""API errors turned into messages safe for logs, Events and status.

The client's exception text carries the whole HTTP response, which for a Secret may echo data; only
the status code and the apiserver's own short message are kept.
"""

from __future__ import annotations

import contextlib
import json

from kubernetes.client.exceptions import ApiException


class KubeError(RuntimeError):
    """An API call failed; the message says which object and why, without any payload."""

    def __init__(self, action: str, error: ApiException) -> None:
        self.status = int(error.status or 0)
        reason = str(error.reason or "")
        with contextlib.suppress(ValueError, AttributeError):
            reason = str(json.loads(error.body or "{}").get("message") or reason)
        super().__init__(f"{action}: HTTP {self.status} {reason[:300]}")


def is_not_found(error: ApiException) -> bool:
    return bool(error.status == 404)
