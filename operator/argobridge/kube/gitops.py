"""Read the Argo CD operator's objects (CRD, `ArgoCD`, server Route) and apply to `NotificationsConfiguration`.

ArgoBridge reads the `ArgoCD` resource and the Route and never writes them; it writes only its own
entries of the `NotificationsConfiguration`, by server-side apply as the bridge's own field manager.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from argobridge.core.configplan import FIELD_MANAGER
from argobridge.core.gitops import (
    ARGOCD_GROUP,
    ARGOCD_PLURAL,
    ARGOCD_VERSION,
    NOTIFICATIONS_CONFIGURATION_PLURAL,
    NOTIFICATIONS_CONFIGURATION_VERSION,
    ArgoCDInstance,
    instance_from_resource,
)
from argobridge.core.ownership import Owner
from argobridge.core.resourceplan import Entry, entries_managed_by, entry_owners
from argobridge.kube.apply import server_side_apply
from argobridge.kube.client import custom_objects
from argobridge.kube.errors import KubeError, is_not_found

ROUTE_GROUP = "route.openshift.io"
ROUTE_VERSION = "v1"


def notifications_configuration_served(namespace: str) -> bool:
    """Whether the apiserver serves `NotificationsConfiguration` (the Argo CD operator is installed).

    Asked with a namespaced list, not by reading the CRD, so a namespaced install needs no cluster-scoped
    permission: a type that is not served answers 404.
    """
    try:
        custom_objects().list_namespaced_custom_object(
            ARGOCD_GROUP, NOTIFICATIONS_CONFIGURATION_VERSION, namespace, NOTIFICATIONS_CONFIGURATION_PLURAL, limit=1
        )
    except ApiException as error:
        if is_not_found(error):
            return False
        raise KubeError(f"listing NotificationsConfigurations in {namespace}", error) from None
    return True


def list_argocd_instances(namespace: str) -> list[ArgoCDInstance]:
    """The `ArgoCD` resources of a namespace; none when the operator's CRD is not installed."""
    try:
        result = custom_objects().list_namespaced_custom_object(ARGOCD_GROUP, ARGOCD_VERSION, namespace, ARGOCD_PLURAL)
    except ApiException as error:
        if is_not_found(error):
            return []
        raise KubeError(f"listing ArgoCD resources in {namespace}", error) from None
    return [instance_from_resource(item) for item in result.get("items") or []]


def read_route(namespace: str, name: str) -> dict[str, Any] | None:
    """An OpenShift Route, or None when it (or the Route API) does not exist."""
    try:
        route: dict[str, Any] = custom_objects().get_namespaced_custom_object(
            ROUTE_GROUP, ROUTE_VERSION, namespace, "routes", name
        )
    except ApiException as error:
        if is_not_found(error):
            return None
        raise KubeError(f"reading Route {namespace}/{name}", error) from None
    return route


@dataclass(frozen=True)
class ObservedResource:
    """The resource's `spec` (None when it does not exist), who owns each `section.key` entry, and the
    resourceVersion the next apply must carry."""

    spec: dict[str, Any] | None
    managed: set[Entry]  # entries the legacy manager `argobridge` owns through apply
    resource_version: str | None = None
    owners: dict[str, list[Owner]] = field(default_factory=dict)


def read_notifications_configuration(namespace: str, name: str) -> ObservedResource:
    try:
        raw = custom_objects().get_namespaced_custom_object(
            ARGOCD_GROUP,
            NOTIFICATIONS_CONFIGURATION_VERSION,
            namespace,
            NOTIFICATIONS_CONFIGURATION_PLURAL,
            name,
            _preload_content=False,
        )
    except ApiException as error:
        if is_not_found(error):
            return ObservedResource(None, set())
        raise KubeError(f"reading NotificationsConfiguration {namespace}/{name}", error) from None
    body: dict[str, Any] = json.loads(raw.data)
    metadata = body.get("metadata") or {}
    return ObservedResource(
        spec=dict(body.get("spec") or {}),
        managed=entries_managed_by(metadata.get("managedFields")),
        resource_version=metadata.get("resourceVersion"),
        owners=entry_owners(metadata.get("managedFields")),
    )


def apply_notifications_configuration(
    namespace: str,
    name: str,
    spec: dict[str, dict[str, str]] | None,
    manager: str = FIELD_MANAGER,
    resource_version: str | None = None,
    force: bool = True,
) -> None:
    """Server-side apply exactly these entries as `manager`: they become its, entries it owned and omits go.

    `resource_version` and `force` as in `configmaps.apply_config_map_data`; `spec` None applies nothing
    (the manager gives up every entry, used to release the legacy manager).
    """
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    body: dict[str, Any] = {
        "apiVersion": f"{ARGOCD_GROUP}/{NOTIFICATIONS_CONFIGURATION_VERSION}",
        "kind": "NotificationsConfiguration",
        "metadata": metadata,
    }
    if spec:  # an empty `spec: {}` would make the manager own the map itself (see configmaps)
        body["spec"] = spec
    server_side_apply(
        custom_objects().patch_namespaced_custom_object,
        ARGOCD_GROUP,
        NOTIFICATIONS_CONFIGURATION_VERSION,
        namespace,
        NOTIFICATIONS_CONFIGURATION_PLURAL,
        name,
        body=body,
        action=f"applying NotificationsConfiguration {namespace}/{name}",
        manager=manager,
        force=force,
    )
