"""Watch the Argo CD objects a bridge writes or reads, to repair drift the moment it happens.

The ConfigMaps and Secrets are watched by name (kube/namewatch.py), never through kopf: kopf would
list and watch every Secret of the cluster and filter them here. The watch threads only count changes
per namespace; a daemon per bridge (kopf's context, so Events can be posted) reconciles when its
namespace's count moved. The NotificationsConfiguration, a custom resource, is watched by kopf with an
event handler: kopf writes nothing onto Argo CD's objects.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import kopf

from argobridge.core.gitops import ARGOCD_GROUP, NOTIFICATIONS_CONFIGURATION_PLURAL, NOTIFICATIONS_CONFIGURATION_VERSION
from argobridge.core.spec import DEFAULT_SECRET_NAME, NOTIFICATIONS_CONFIGMAP
from argobridge.handlers.bridge import RESOURCE, SHARD, reconcile_named
from argobridge.kube.argocd import ARGOCD_CM
from argobridge.kube.namewatch import NameWatches, WatchedName
from argobridge.steps.app_store import APPS
from argobridge.steps.gitops_config import BACKUP_SECRET_NAME

WATCHED_CONFIGMAPS = (NOTIFICATIONS_CONFIGMAP, ARGOCD_CM)
WATCHED_SECRETS = (DEFAULT_SECRET_NAME, BACKUP_SECRET_NAME)
CHECK_SECONDS = 0.2

# Changes seen per namespace, counted by the watch threads.
_changes: Counter[str] = Counter()
_changes_guard = threading.Lock()


def _count_change(namespace: str) -> None:
    with _changes_guard:
        _changes[namespace] += 1


def watched_names(namespaces: list[str] | None) -> list[WatchedName]:
    """Every (kind, name) the operator reads, cluster-wide or once per served namespace."""
    scopes: list[str | None] = list(namespaces) if namespaces else [None]
    return [
        WatchedName(plural, name, scope)
        for scope in scopes
        for plural, names in (("configmaps", WATCHED_CONFIGMAPS), ("secrets", WATCHED_SECRETS))
        for name in names
    ]


@kopf.on.startup()
def start_name_watches(memo: kopf.Memo, **_: Any) -> None:
    """Start the watches by name with the operator; `memo.namespaces` (set by run_operator) scopes them."""
    watches = NameWatches(watched_names(memo.get("namespaces")), _count_change)
    watches.start()
    memo["name_watches"] = watches


@kopf.on.cleanup()
def stop_name_watches(memo: kopf.Memo, **_: Any) -> None:
    watches = memo.pop("name_watches", None)
    if isinstance(watches, NameWatches):
        watches.close()


@kopf.daemon(*RESOURCE, cancellation_backoff=2, cancellation_timeout=5, **SHARD)
async def follow_config_objects(namespace: str, name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """While the bridge exists: when a watched ConfigMap or Secret of its namespace changes, reconcile it.

    A daemon, not a timer: it polls a counter in memory, so it costs no kopf round and no log line when
    nothing changed, and it runs in kopf's context, so the reconcile can post Events.
    """
    with _changes_guard:
        handled = _changes[namespace]
    # A plain sleep, not `stopped.wait(timeout)`: that is asyncio.wait_for, whose timeout racing kopf's
    # cancellation at shutdown surfaced as a TimeoutError in kopf's root tasks (Python 3.11). The flag is
    # seen within CHECK_SECONDS, well inside cancellation_backoff.
    while not stopped:
        await asyncio.sleep(CHECK_SECONDS)
        with _changes_guard:
            seen = _changes[namespace]
        if seen != handled and not stopped:
            handled = seen
            await asyncio.to_thread(reconcile_named, namespace, name, APPS.all())


def _reconcile_all(namespace: str, names: list[str]) -> None:
    for bridge_name in names:
        reconcile_named(namespace, bridge_name, APPS.all())


# OpenShift GitOps: the resource the Argo CD operator builds the ConfigMap from. Where its CRD is not
# installed kopf serves nothing for it, and starts watching once the CRD appears.
@kopf.on.event(ARGOCD_GROUP, NOTIFICATIONS_CONFIGURATION_VERSION, NOTIFICATIONS_CONFIGURATION_PLURAL)
async def on_config_object_event(namespace: str, bridges_by_namespace: kopf.Index[str, str], **_: Any) -> None:
    """A NotificationsConfiguration changed: reconcile that namespace.

    The index is read here, in the event loop that updates it; the reconcile runs in a worker thread.
    """
    names = list(bridges_by_namespace.get(namespace, []))
    if names:
        await asyncio.to_thread(_reconcile_all, namespace, names)
