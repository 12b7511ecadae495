"""Read, add and remove one key of a Secret without touching its other keys.

Values pass through here and nowhere else in clear; no function logs, and errors carry no payload.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from argobridge.core.metricsview import key_written_at
from argobridge.kube import snapshot
from argobridge.kube.apply import server_side_apply
from argobridge.kube.client import core_v1
from argobridge.kube.errors import ArgoCDObjectMissing, KubeError, is_not_found, is_uid_mismatch


def _read_secret(namespace: str, name: str) -> dict[str, Any] | None:
    """The Secret as raw JSON (no client model that could end up in a log), or None when it is absent;
    read once per reconcile (kube/snapshot.py)."""
    return snapshot.read("Secret", namespace, name, lambda: _fetch_secret(namespace, name))


def _fetch_secret(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        raw = core_v1().read_namespaced_secret(name, namespace, _preload_content=False)
    except ApiException as error:
        if is_not_found(error):
            return None
        raise KubeError(f"reading Secret {namespace}/{name}", error) from None
    body: dict[str, Any] = json.loads(raw.data)
    return body


def read_secret_key(namespace: str, name: str, key: str) -> str | None:
    """The decoded value of `key`, or None when the Secret or the key does not exist."""
    body = _read_secret(namespace, name) or {}
    encoded = (body.get("data") or {}).get(key)
    if encoded is None:
        return None
    return base64.b64decode(encoded).decode("utf-8", errors="replace")


def secret_uid(namespace: str, name: str) -> str | None:
    """The Secret's uid (a precondition for writes that must not create it), or None when it is absent."""
    body = _read_secret(namespace, name)
    return None if body is None else str((body.get("metadata") or {}).get("uid") or "") or None


def apply_secret_key(
    namespace: str, name: str, key: str, value: str, *, uid: str | None = None, may_create: bool = False
) -> None:
    """Server-side apply one key; other keys stay as they are.

    The Secret must already exist unless `may_create` (ArgoBridge's own Secrets only): the apply carries
    its `metadata.uid`, so a Secret missing, or deleted between the read and this write, makes the
    apiserver refuse the write (409) instead of creating a Secret that Argo CD's install owns.
    """
    metadata: dict[str, str] = {"name": name, "namespace": namespace}
    if not may_create:
        uid = uid or secret_uid(namespace, name)
        if uid is None:
            raise ArgoCDObjectMissing("Secret", namespace, name)
        metadata["uid"] = uid
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "data": {key: base64.b64encode(value.encode()).decode()},
    }
    action = f"writing key {key} of Secret {namespace}/{name}"
    snapshot.forget("Secret", namespace, name)
    try:
        server_side_apply(core_v1().patch_namespaced_secret, name, namespace, body=body, action=action)
    except KubeError as error:
        if is_uid_mismatch(error):
            raise ArgoCDObjectMissing("Secret", namespace, name) from None
        raise


def remove_secret_key(namespace: str, name: str, key: str) -> bool:
    """Remove `key` only; True if it was there. A JSON patch, so a concurrent writer is never undone."""
    patch = [{"op": "remove", "path": "/data/" + key.replace("~", "~0").replace("/", "~1")}]
    snapshot.forget("Secret", namespace, name)
    try:
        core_v1().patch_namespaced_secret(name, namespace, patch, _content_type="application/json-patch+json")
    except ApiException as error:
        if is_not_found(error) or error.status == 422:
            return False  # the Secret or the key is already gone
        raise KubeError(f"removing key {key} of Secret {namespace}/{name}", error) from None
    return True


def read_key_written_at(namespace: str, name: str, key: str) -> datetime | None:
    """When `key` of the Secret was last written, from managedFields (the value is not looked at)."""
    metadata = (_read_secret(namespace, name) or {}).get("metadata") or {}
    return key_written_at(metadata.get("managedFields"), key)
