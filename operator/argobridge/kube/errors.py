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


class ArgoCDObjectMissing(RuntimeError):
    """An object of Argo CD's install that ArgoBridge writes into, but never creates, does not exist.

    Creating it would make ArgoBridge its owner in Helm's and Argo CD's eyes (a reinstall of Argo CD then
    fails on ownership), so the bridge waits for Argo CD's install instead.
    """

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        super().__init__(
            f"{kind} {namespace}/{name} does not exist; Argo CD's install creates it and ArgoBridge never does:"
            f" install (or repair) Argo CD's notifications controller in namespace {namespace}; ArgoBridge"
            " continues once it exists"
        )


def is_uid_mismatch(error: KubeError) -> bool:
    """A write preconditioned on `metadata.uid` found no object, or a new one of the same name (409)."""
    return error.status == 409 and "uid mismatch" in str(error)


def is_not_found(error: ApiException) -> bool:
    return bool(error.status == 404)
