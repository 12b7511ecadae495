"""Argo CD Applications, watched with an event handler only: kopf writes nothing onto them.

The store keeps the few annotations and labels the diagnosis needs; the bridge's reconcile reads it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf

from argobridge.core.appcheck import SUBSCRIBE_PREFIX, AppFacts, annotations_owned_by, compact_app_facts
from argobridge.core.configplan import FIELD_MANAGER
from argobridge.core.events import ENTITY_REF_ANNOTATION
from argobridge.handlers.bridge import forget_app
from argobridge.kube.errors import KubeError
from argobridge.steps.annotation_sync import BridgeSettings, needs_sync, settings_for, sync_app_annotations
from argobridge.steps.app_store import APPS

APPLICATIONS = ("argoproj.io", "v1alpha1", "applications")


def _relevant(annotations: Any) -> dict[str, str]:
    return {
        str(key): str(value)
        for key, value in (annotations or {}).items()
        if key == ENTITY_REF_ANNOTATION or str(key).startswith(SUBSCRIBE_PREFIX)
    }


def app_facts(namespace: str, name: str, uid: str, annotations: Any, labels: Any, meta: Any) -> AppFacts:
    return compact_app_facts(
        namespace,
        name,
        uid,
        _relevant(annotations),
        labels or {},
        annotations_owned_by(meta.get("managedFields"), FIELD_MANAGER),
    )


@kopf.on.event(*APPLICATIONS)
async def on_application_event(
    event: Any,
    namespace: str,
    name: str,
    uid: str,
    annotations: Any,
    labels: Any,
    meta: Any,
    bridge_settings_by_namespace: kopf.Index[str, BridgeSettings],
    **_: Any,
) -> None:
    """Annotations mode: put back (with backoff) or take away ArgoBridge's subscription annotations.

    Async, and deciding in the event loop: at 10,000 Applications almost every event needs nothing,
    and only the ones that do pay for a worker thread and an API call.
    """
    if event.get("type") == "DELETED":
        APPS.remove(uid)
        forget_app(uid)
        return
    app = app_facts(namespace, name, uid, annotations, labels, meta)
    APPS.put(app)
    index = bridge_settings_by_namespace
    settings = settings_for(app, [item for ns in list(index) for item in index.get(ns, [])])
    if needs_sync(app, settings):
        try:
            await asyncio.to_thread(sync_app_annotations, app, settings, time.monotonic())
        except KubeError as error:
            if error.status != 403:
                raise
            # RBAC refuses it: the bridge's reconcile posts one Warning with the setting that grants it,
            # rather than a traceback here for every Application event.
