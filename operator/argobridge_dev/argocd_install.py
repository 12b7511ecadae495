"""The two objects Argo CD's install creates in its namespace, created here where a rig stands in for it.

ArgoBridge itself never creates `argocd-notifications-cm` or `argocd-notifications-secret` (a Helm
reinstall of Argo CD would then fail on ownership); the demo and the test rigs, which play the part of
an installed Argo CD, create them the way its manifests do: empty, with Argo CD's labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.spec import DEFAULT_SECRET_NAME, NOTIFICATIONS_CONFIGMAP

_LABELS = {"app.kubernetes.io/part-of": "argocd"}


def install_argocd_objects(
    core: client.CoreV1Api,
    namespace: str,
    config: Mapping[str, str] | None = None,
    secret: Mapping[str, str] | None = None,
) -> None:
    """Create both objects (with `config` data and `secret` string data when given); existing ones stay."""
    objects: list[tuple[Callable[..., Any], dict[str, Any]]] = [
        (
            core.create_namespaced_config_map,
            {"metadata": {"name": NOTIFICATIONS_CONFIGMAP, "labels": _LABELS}, "data": dict(config or {})},
        ),
        (
            core.create_namespaced_secret,
            {"metadata": {"name": DEFAULT_SECRET_NAME, "labels": _LABELS}, "stringData": dict(secret or {})},
        ),
    ]
    for create, body in objects:
        try:
            create(namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise
