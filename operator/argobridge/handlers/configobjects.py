"""Watch the Argo CD objects a bridge writes or reads, to repair drift the moment it happens.

Event handlers only: they make kopf write nothing onto these objects (no finalizers, no annotations).
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from argobridge.app_store import APPS
from argobridge.core.gitops import ARGOCD_GROUP, NOTIFICATIONS_CONFIGURATION_PLURAL, NOTIFICATIONS_CONFIGURATION_VERSION
from argobridge.core.spec import DEFAULT_SECRET_NAME, NOTIFICATIONS_CONFIGMAP
from argobridge.handlers.bridge import reconcile_named
from argobridge.kube.argocd import ARGOCD_CM

WATCHED_CONFIGMAPS = frozenset({NOTIFICATIONS_CONFIGMAP, ARGOCD_CM})


def _reconcile_all(namespace: str, names: list[str]) -> None:
    for bridge_name in names:
        reconcile_named(namespace, bridge_name, APPS.all())


# OpenShift GitOps: the resource the Argo CD operator builds the ConfigMap from. Where its CRD is not
# installed kopf serves nothing for it, and starts watching once the CRD appears.
@kopf.on.event(ARGOCD_GROUP, NOTIFICATIONS_CONFIGURATION_VERSION, NOTIFICATIONS_CONFIGURATION_PLURAL)
@kopf.on.event("", "v1", "configmaps", when=lambda name, **_: name in WATCHED_CONFIGMAPS)
@kopf.on.event("", "v1", "secrets", when=lambda name, **_: name == DEFAULT_SECRET_NAME)
async def on_config_object_event(namespace: str, bridges_by_namespace: kopf.Index[str, str], **_: Any) -> None:
    """A watched ConfigMap, NotificationsConfiguration or the token's Secret changed: reconcile that namespace.

    The index is read here, in the event loop that updates it; the reconcile runs in a worker thread.
    """
    names = list(bridges_by_namespace.get(namespace, []))
    if names:
        await asyncio.to_thread(_reconcile_all, namespace, names)
