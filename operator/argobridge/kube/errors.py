"""API errors turned into messages safe for logs, Events and status.

The client's exception text carries the whole HTTP response, which for a Secret may echo data; only
the status code and the apiserver's own short message are kept.
"""

from __future__ import annotations

import contextlib
import json

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

# What the client raises when no HTTP answer came at all: a refused or reset connection, a timeout,
# retries used up (MaxRetryError, ProtocolError, ReadTimeoutError, ...). Their text holds URLs and
# socket details, so only the types' names are kept.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (Urllib3Error,)


def transport_message(error: BaseException) -> str:
    """A safe sentence for a transport error: its type, and the type of what caused it."""
    cause = getattr(error, "reason", None)
    kind = type(error).__name__ + (f" after {type(cause).__name__}" if isinstance(cause, BaseException) else "")
    return f"the Kubernetes API did not answer ({kind}); check that the apiserver is up and reachable"


class KubeError(RuntimeError):
    """An API call failed; the message says which object and why, without any payload."""

    def __init__(self, action: str, error: ApiException | BaseException) -> None:
        if not isinstance(error, ApiException):
            self.status = 0  # no HTTP answer at all
            super().__init__(f"{action}: {transport_message(error)}")
            return
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
