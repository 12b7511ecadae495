"""Watch the Argo CD objects a bridge writes or reads, to repair drift the moment it happens.

Event handlers only: they make kopf write nothing onto these objects (no finalizers, no annotations).
"""

from __future__ import annotations

from typing import Any

import kopf

from argobridge.core.appcheck import AppFacts
from argobridge.core.spec import DEFAULT_SECRET_NAME, NOTIFICATIONS_CONFIGMAP
from argobridge.handlers.bridge import all_applications, reconcile_named
from argobridge.kube.argocd import ARGOCD_CM

WATCHED_CONFIGMAPS = frozenset({NOTIFICATIONS_CONFIGMAP, ARGOCD_CM})


def _reconcile_namespace(
    namespace: str, bridges: kopf.Index[str, str], applications: kopf.Index[str, AppFacts]
) -> None:
    for bridge_name in bridges.get(namespace, []):
        reconcile_named(namespace, bridge_name, all_applications(applications))


@kopf.on.event("", "v1", "configmaps", when=lambda name, **_: name in WATCHED_CONFIGMAPS)
def on_configmap_event(
    namespace: str,
    bridges_by_namespace: kopf.Index[str, str],
    applications_by_namespace: kopf.Index[str, AppFacts],
    **_: Any,
) -> None:
    _reconcile_namespace(namespace, bridges_by_namespace, applications_by_namespace)


@kopf.on.event("", "v1", "secrets", when=lambda name, **_: name == DEFAULT_SECRET_NAME)
def on_secret_event(
    namespace: str,
    bridges_by_namespace: kopf.Index[str, str],
    applications_by_namespace: kopf.Index[str, AppFacts],
    **_: Any,
) -> None:
    _reconcile_namespace(namespace, bridges_by_namespace, applications_by_namespace)
