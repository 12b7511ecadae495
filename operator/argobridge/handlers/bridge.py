"""BackstageBridge handlers: each one fetches the bridge fresh and hands it to the reconcile."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import kopf

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge.core.status import Notice
from argobridge.kube.bridges import get_bridge
from argobridge.reconcile import reconcile_bridge, remove_bridge
from argobridge.settings import Settings

RESOURCE = (GROUP, VERSION, PLURAL)
_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


def post_notices(body: Any, notices: list[Notice]) -> None:
    for notice in notices:
        kopf.event(body, type=notice.type, reason=notice.reason, message=notice.message)


def reconcile_named(namespace: str, name: str) -> None:
    """Reconcile one bridge by name, one reconcile at a time per bridge, from its current body."""
    with _locks[(namespace, name)]:
        body = get_bridge(namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return
        report = reconcile_bridge(body)
        post_notices(body, report.notices)


@kopf.index(*RESOURCE)
def bridges_by_namespace(namespace: str, name: str, **_: Any) -> dict[str, str]:
    """Which bridges live in which namespace, for handlers of Argo CD's objects."""
    return {namespace: name}


@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
@kopf.on.resume(*RESOURCE)
def on_bridge_changed(namespace: str, name: str, **_: Any) -> None:
    reconcile_named(namespace, name)


@kopf.timer(*RESOURCE, interval=Settings.from_env().resync_seconds, initial_delay=5)
def on_resync(namespace: str, name: str, **_: Any) -> None:
    """Periodic safety net; drift is normally caught at once by the ConfigMap and Secret watches."""
    reconcile_named(namespace, name)


@kopf.on.delete(*RESOURCE)
def on_bridge_deleted(body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    with _locks[(namespace, name)]:
        post_notices(body, remove_bridge(body))
    _locks.pop((namespace, name), None)
