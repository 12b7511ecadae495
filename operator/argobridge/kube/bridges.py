"""Read BackstageBridge objects and write their status subresource."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge.kube.client import custom_objects
from argobridge.kube.errors import KubeError


def list_bridges(namespace: str) -> list[dict[str, Any]]:
    """Every BackstageBridge in a namespace (there should be one; more is a conflict we report)."""
    try:
        result = custom_objects().list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    except ApiException as error:
        raise KubeError(f"listing BackstageBridges in {namespace}", error) from None
    return list(result.get("items") or [])


def patch_bridge_status(namespace: str, name: str, status: dict[str, Any]) -> None:
    """Merge-patch `status` (lists such as conditions are replaced whole, as intended)."""
    try:
        custom_objects().patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )
    except ApiException as error:
        raise KubeError(f"writing status of BackstageBridge {namespace}/{name}", error) from None


def get_bridge(namespace: str, name: str) -> dict[str, Any] | None:
    """The current body of a bridge, or None once it is gone."""
    try:
        result: dict[str, Any] = custom_objects().get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise KubeError(f"reading BackstageBridge {namespace}/{name}", error) from None
    return result
