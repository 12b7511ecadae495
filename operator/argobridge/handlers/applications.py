"""Argo CD Applications, watched as metadata on a thread of their own (kube/appwatch.py), not by kopf.

The store keeps the few annotations and labels the decisions need; each bridge's reconcile reads it,
and its timer (`on_applications_changed`, every 2 s after a change) recounts and, in Annotations mode,
puts back or takes away ArgoBridge's subscription annotations for the whole batch. Nothing is written
onto Applications except those annotations.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import kopf

from argobridge.core.appcheck import SUBSCRIBE_PREFIX, AppFacts, annotations_owned_by, compact_app_facts
from argobridge.core.configplan import FIELD_MANAGER
from argobridge.core.events import ENTITY_REF_ANNOTATION
from argobridge.handlers.bridge import forget_app
from argobridge.kube.appwatch import ApplicationWatches
from argobridge.steps.app_store import APPS


def _relevant(annotations: Any) -> dict[str, str]:
    return {
        str(key): str(value)
        for key, value in (annotations or {}).items()
        if key == ENTITY_REF_ANNOTATION or str(key).startswith(SUBSCRIBE_PREFIX)
    }


def app_facts(metadata: Mapping[str, Any]) -> AppFacts:
    return compact_app_facts(
        str(metadata.get("namespace")),
        str(metadata.get("name")),
        str(metadata.get("uid")),
        _relevant(metadata.get("annotations")),
        metadata.get("labels") or {},
        annotations_owned_by(metadata.get("managedFields"), FIELD_MANAGER),
    )


class StoreSink:
    """What the watch threads report goes into the store; a relist forgets the apps it did not find."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._list_started: dict[str | None, int] = {}

    def list_begins(self, scope: str | None) -> None:
        with self._lock:
            self._list_started[scope] = APPS.version

    def put(self, metadata: Mapping[str, Any]) -> None:
        APPS.put(app_facts(metadata))

    def remove(self, uid: str) -> None:
        APPS.remove(uid)
        forget_app(uid)

    def list_ends(self, scope: str | None, present: Mapping[str, set[str]]) -> None:
        """Apps stored before the list began and missing from it were deleted while no watch ran."""
        with self._lock:
            listed_after = self._list_started.pop(scope, APPS.version)
        namespaces = {scope} if scope is not None else APPS.namespaces() | set(present)
        for namespace in sorted(namespaces):
            for uid in APPS.drop_vanished(namespace, present.get(namespace, set()), listed_after):
                forget_app(uid)


@kopf.on.startup()
def start_application_watches(memo: kopf.Memo, **_: Any) -> None:
    """Watch Applications with the operator: cluster-wide, or in each of `memo.namespaces`."""
    namespaces = memo.get("namespaces") or []
    scopes: list[str | None] = list(namespaces) if namespaces else [None]
    watches = ApplicationWatches(scopes, StoreSink())
    watches.start()
    memo["application_watches"] = watches


@kopf.on.cleanup()
def stop_application_watches(memo: kopf.Memo, **_: Any) -> None:
    watches = memo.pop("application_watches", None)
    if isinstance(watches, ApplicationWatches):
        watches.close()
