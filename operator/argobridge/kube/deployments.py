"""Restart a Deployment the way `kubectl rollout restart` does, and read whether one is available."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.kube.client import api_client
from argobridge.kube.errors import KubeError, is_not_found

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def apps_v1() -> client.AppsV1Api:
    return client.AppsV1Api(api_client())


def restart_deployment(namespace: str, name: str, now: str) -> None:
    """Stamp the pod template, as kubectl does: a rolling restart keeps old pods serving until new ones are ready."""
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
    try:
        apps_v1().patch_namespaced_deployment(name, namespace, patch)
    except ApiException as error:
        action = f"restarting Deployment {namespace}/{name}"
        if error.status == 403:
            action += (
                f" (the chart grants it with --set backstage.namespace={namespace},backstage.restartDeployment={name})"
            )
        raise KubeError(action, error) from None


def list_deployments(namespace: str) -> list[dict[str, Any]]:
    """Deployments of a namespace as plain dicts (for doctor)."""
    try:
        result = apps_v1().list_namespaced_deployment(namespace)
    except ApiException as error:
        if is_not_found(error):
            return []
        raise KubeError(f"listing Deployments in {namespace}", error) from None
    return [api_client().sanitize_for_serialization(item) for item in result.items]
