"""Argo CD Applications, watched with an index only: kopf writes nothing onto them.

The index keeps the few annotations and labels the diagnosis needs; the bridge's reconcile reads it.
"""

from __future__ import annotations

from typing import Any

import kopf

from argobridge.core.appcheck import SUBSCRIBE_PREFIX, AppFacts
from argobridge.core.events import ENTITY_REF_ANNOTATION

APPLICATIONS = ("argoproj.io", "v1alpha1", "applications")


def _relevant(annotations: Any) -> dict[str, str]:
    return {
        str(key): str(value)
        for key, value in (annotations or {}).items()
        if key == ENTITY_REF_ANNOTATION or str(key).startswith(SUBSCRIBE_PREFIX)
    }


@kopf.index(*APPLICATIONS)
def applications_by_namespace(
    namespace: str, name: str, uid: str, annotations: Any, labels: Any, **_: Any
) -> dict[str, AppFacts]:
    """Every Application by namespace, reduced to what ArgoBridge checks."""
    return {namespace: AppFacts(namespace, name, uid, _relevant(annotations), dict(labels or {}))}
