"""Read and server-side-apply ConfigMap data keys, as the field manager `argobridge`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from argobridge.core.configplan import keys_managed_by
from argobridge.kube.apply import server_side_apply
from argobridge.kube.client import core_v1
from argobridge.kube.errors import ArgoCDObjectMissing, KubeError, is_not_found, is_uid_mismatch


@dataclass(frozen=True)
class ObservedConfigMap:
    """What the apiserver holds: `data` (None when the ConfigMap does not exist) and our owned keys."""

    data: dict[str, str] | None
    managed: set[str]
    resource_version: str | None
    uid: str | None = None


def read_config_map(namespace: str, name: str) -> ObservedConfigMap:
    """The ConfigMap's data and the keys ArgoBridge owns in it; a missing ConfigMap reads as empty."""
    try:
        raw = core_v1().read_namespaced_config_map(name, namespace, _preload_content=False)
    except ApiException as error:
        if is_not_found(error):
            return ObservedConfigMap(None, set(), None)
        raise KubeError(f"reading ConfigMap {namespace}/{name}", error) from None
    body: dict[str, Any] = json.loads(raw.data)
    metadata = body.get("metadata") or {}
    return ObservedConfigMap(
        data=dict(body.get("data") or {}),
        managed=keys_managed_by(metadata.get("managedFields")),
        resource_version=metadata.get("resourceVersion"),
        uid=metadata.get("uid"),
    )


def apply_config_map_data(namespace: str, name: str, data: dict[str, str], uid: str | None = None) -> None:
    """Server-side apply exactly `data`: these keys become ours, keys we owned and omit are removed.

    Never creates the ConfigMap (Argo CD's install owns it): the apply carries its `metadata.uid` (read
    now when not given), so a ConfigMap missing or deleted since it was read is refused with a 409.
    """
    uid = uid or read_config_map(namespace, name).uid
    if uid is None:
        raise ArgoCDObjectMissing("ConfigMap", namespace, name)
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "data": data,
    }
    action = f"applying ConfigMap {namespace}/{name}"
    try:
        server_side_apply(core_v1().patch_namespaced_config_map, name, namespace, body=body, action=action)
    except KubeError as error:
        if is_uid_mismatch(error):
            raise ArgoCDObjectMissing("ConfigMap", namespace, name) from None
        raise
