"""Read and server-side-apply ConfigMap data keys, as a bridge's own field manager."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from argobridge.core.configplan import FIELD_MANAGER, keys_managed_by
from argobridge.core.ownership import Owner, owners_at
from argobridge.kube import snapshot
from argobridge.kube.apply import server_side_apply
from argobridge.kube.client import core_v1
from argobridge.kube.errors import ArgoCDObjectMissing, KubeError, is_not_found, is_uid_mismatch


@dataclass(frozen=True)
class ObservedConfigMap:
    """What the apiserver holds: `data` (None when the ConfigMap does not exist), who owns each key, and
    the resourceVersion the next apply must carry so it lands on exactly this version."""

    data: dict[str, str] | None
    managed: set[str]  # keys the legacy manager `argobridge` owns through apply
    resource_version: str | None
    owners: dict[str, list[Owner]] = field(default_factory=dict)
    uid: str | None = None


def read_config_map(namespace: str, name: str) -> ObservedConfigMap:
    """The ConfigMap's data and the owners of its keys; a missing ConfigMap reads as empty. Read once
    per reconcile (kube/snapshot.py): the install check and the plan see the same version."""
    return snapshot.read("ConfigMap", namespace, name, lambda: _fetch_config_map(namespace, name))


def _fetch_config_map(namespace: str, name: str) -> ObservedConfigMap:
    try:
        raw = core_v1().read_namespaced_config_map(name, namespace, _preload_content=False)
    except ApiException as error:
        if is_not_found(error):
            return ObservedConfigMap(None, set(), None)
        raise KubeError(f"reading ConfigMap {namespace}/{name}", error) from None
    body: dict[str, Any] = json.loads(raw.data)
    metadata = body.get("metadata") or {}
    managed_fields = metadata.get("managedFields")
    return ObservedConfigMap(
        data=dict(body.get("data") or {}),
        managed=keys_managed_by(managed_fields),
        resource_version=metadata.get("resourceVersion"),
        owners=owners_at(managed_fields, ("data",)),
        uid=metadata.get("uid"),
    )


def apply_config_map_data(
    namespace: str,
    name: str,
    data: dict[str, str],
    manager: str = FIELD_MANAGER,
    resource_version: str | None = None,
    force: bool = True,
    uid: str | None = None,
) -> None:
    """Server-side apply exactly `data` as `manager`: these keys become its, keys it owned and omits go.

    Never creates the ConfigMap (Argo CD's install owns it): the apply carries its `metadata.uid` (read
    now when not given), so a ConfigMap missing or deleted since it was read is refused. With
    `resource_version` the apply is refused (409, `StaleReadError`) unless the ConfigMap is still at that
    version; without `force` a key another manager owns is refused (`FieldConflictError`).
    """
    uid = uid or read_config_map(namespace, name).uid
    if uid is None:
        raise ArgoCDObjectMissing("ConfigMap", namespace, name)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if data:  # an empty `data: {}` would make the manager own the map itself and block the next bridge
        body["data"] = data
    action = f"applying ConfigMap {namespace}/{name}"
    try:
        snapshot.forget("ConfigMap", namespace, name)
        server_side_apply(
            core_v1().patch_namespaced_config_map,
            name,
            namespace,
            body=body,
            action=action,
            manager=manager,
            force=force,
        )
    except KubeError as error:
        if is_uid_mismatch(error):
            raise ArgoCDObjectMissing("ConfigMap", namespace, name) from None
        raise


def release_legacy_manager(namespace: str, name: str, uid: str | None = None) -> None:
    """Apply nothing as the legacy manager `argobridge`: it gives up every key, and a key only it still
    owned (one the bridge no longer renders) goes. Called after the bridge's own manager took over."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if uid:
        metadata["uid"] = uid
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    action = f"releasing the legacy field manager on ConfigMap {namespace}/{name}"
    snapshot.forget("ConfigMap", namespace, name)
    server_side_apply(core_v1().patch_namespaced_config_map, name, namespace, body=body, action=action, force=False)
