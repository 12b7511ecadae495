"""Annotations mode, carried out: apply or remove ArgoBridge's subscription annotations on Applications.

Called for one Application when it changes, and for all of them when a bridge is reconciled or
deleted. Repairs (our annotations taken away by another writer) wait longer each time, so ArgoBridge
never fights an ApplicationSet in a hot loop; the Application gets a Warning Event saying so.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kopf

from argobridge.core.annotations import FIGHT_MEMORY_SECONDS, desired_annotations, plan_annotations, repair_delay
from argobridge.core.appcheck import AppFacts, in_scope
from argobridge.core.catalogmatch import recipients_for
from argobridge.core.events import CATALOG
from argobridge.core.spec import SpecError, SubscriptionMode, parse_bridge_spec
from argobridge.kube.applications import apply_annotations, read_app_facts
from argobridge.steps import catalog_owners
from argobridge.steps.app_store import APPS

FIGHT_WARNING_AFTER = 3


@dataclass(frozen=True)
class BridgeSettings:
    """What an Application's handler needs to know about the bridge whose scope it is in."""

    namespace: str
    name: str
    mode: SubscriptionMode
    service: str
    triggers: tuple[str, ...]
    application_namespaces: tuple[str, ...]
    uid: str = ""
    catalog_instance: str | None = None  # spec.subscriptions.catalogInstanceName
    # The spec is invalid and no valid one was seen since the operator started: leave the annotations
    # of its Applications exactly as they are (the running configuration is kept).
    hold: bool = False


# The last valid settings of each bridge (by uid), used while its spec is invalid: an invalid edit must
# not strip every Application's subscriptions.
_last_valid: dict[str, BridgeSettings] = {}


def bridge_settings(body: Mapping[str, Any]) -> BridgeSettings | None:
    """The bridge's settings; while its spec is invalid, the last valid ones (or a hold on its apps)."""
    metadata = body.get("metadata") or {}
    namespace, name, uid = str(metadata.get("namespace")), str(metadata.get("name")), str(metadata.get("uid") or "")
    try:
        spec = parse_bridge_spec(body.get("spec") or {}, namespace)
    except SpecError:
        kept = _last_valid.get(uid)
        if kept is not None:
            return kept
        return BridgeSettings(namespace, name, SubscriptionMode.MANUAL, "", (), (), uid=uid, hold=True)
    settings = BridgeSettings(
        namespace=namespace,
        name=name,
        mode=spec.subscription_mode,
        service=spec.service_name,
        triggers=tuple(CATALOG[event.event].trigger for event in spec.events),
        application_namespaces=spec.application_namespaces,
        uid=uid,
        catalog_instance=spec.catalog_instance,
    )
    if uid:
        _last_valid[uid] = settings
    return settings


def settings_for(app: AppFacts, settings: Iterable[BridgeSettings]) -> BridgeSettings | None:
    """The bridge whose scope holds the app: its own namespace's first, else one listing it."""
    candidates = [item for item in settings if in_scope(app.namespace, item.namespace, item.application_namespaces)]
    candidates.sort(key=lambda item: (item.namespace != app.namespace, item.namespace, item.name))
    return candidates[0] if candidates else None


_lock = threading.Lock()
_repairs: defaultdict[str, list[float]] = defaultdict(list)
_warned: set[str] = set()
_applied: dict[str, frozenset[str]] = {}
# When each app was last written, and the store's version just before: the bulk pass skips an app written
# in the last IN_FLIGHT_SECONDS whose stored facts have not moved since (they predate our own write);
# once the watch has stored anything newer (our write's event, or another writer's change), the pass
# judges the app again, so a reset by someone else is seen by the next pass.
_applied_at: dict[str, tuple[float, int]] = {}
IN_FLIGHT_SECONDS = 30.0
# Bridges being deleted (by uid, so a bridge recreated with the same name is not mistaken for the old
# one): their Applications must lose ArgoBridge's annotations, not get them back from an event that
# still sees the bridge.
_deleting: set[str] = set()
# Bridges deleted, by uid, the newest GONE_REMEMBERED of them: kopf's index can still hand out a deleted
# bridge's settings for a moment after it is gone, and an Application event seen then must not put the
# annotations back. A uid never comes again, so remembering one is always right; the bound keeps it small.
_gone: OrderedDict[str, None] = OrderedDict()
GONE_REMEMBERED = 4096


def mark_deleting(uid: str) -> None:
    _deleting.add(uid)


def forget_bridge(uid: str) -> None:
    """The bridge is gone: drop its deletion mark and its last valid settings, remember only its uid."""
    _deleting.discard(uid)
    _last_valid.pop(uid, None)
    if uid:
        _gone[uid] = None
        while len(_gone) > GONE_REMEMBERED:
            _gone.popitem(last=False)


def forget_app(uid: str) -> None:
    """The Application is gone: drop what was remembered of its annotations."""
    with _lock:
        _repairs.pop(uid, None)
        _warned.discard(uid)
        _applied.pop(uid, None)
        _applied_at.pop(uid, None)


def _is_deleting(settings: BridgeSettings) -> bool:
    return settings.uid in _deleting or settings.uid in _gone


def _desired(app: AppFacts, settings: BridgeSettings | None) -> dict[str, str]:
    if settings is None or settings.mode is not SubscriptionMode.ANNOTATIONS or _is_deleting(settings):
        return {}
    # The reconcile keeps an index only while the relay may fill owners in from the catalog (Relay mode,
    # entityRefFrom not Annotation); without one, only the app's own annotation counts.
    index = catalog_owners.latest_index(settings.namespace, settings.name)
    owned = index is not None and bool(
        recipients_for(index, app.name, app.labels, settings.catalog_instance, app_namespace=app.namespace)
    )
    return desired_annotations(app, settings.service, settings.triggers, owned)


def _held(settings: BridgeSettings | None) -> bool:
    return settings is not None and settings.hold and not _is_deleting(settings)


def needs_sync(app: AppFacts, settings: BridgeSettings | None) -> bool:
    """Whether the app's annotations differ from what its bridge asks of ArgoBridge (no I/O).

    An app no bridge of this operator covers is left alone: it may belong to a bridge another operator
    (another shard) serves, whose annotations are not this one's to take away. A bridge's deletion
    removes its annotations explicitly (`sync_all` with that bridge marked deleting).
    """
    if settings is None or _held(settings):
        return False
    applied = _applied.get(app.uid, frozenset())
    return plan_annotations(app, _desired(app, settings), app.owned_annotations | applied, applied) is not None


def sync_app_annotations(app: AppFacts, settings: BridgeSettings | None, now: float) -> None:
    """Make the app carry exactly the subscription annotations its bridge's mode asks of ArgoBridge."""
    if settings is None or _held(settings):
        return
    desired = _desired(app, settings)
    applied = _applied.get(app.uid, frozenset())
    if not desired and (app.owned_annotations or applied):
        # Ours may have to go, and the store may not show our latest write yet: look at the live object.
        fresh = read_app_facts(app)
        plan = plan_annotations(fresh, desired, fresh.owned_annotations | applied, applied) if fresh else None
    else:
        plan = plan_annotations(app, desired, app.owned_annotations | applied, applied)
        if plan is not None and plan.repair:
            # A repair is confirmed against the live object first: the store can lag behind our own write.
            fresh = read_app_facts(app)
            plan = plan_annotations(fresh, desired, fresh.owned_annotations | applied, applied) if fresh else None
    if plan is None:
        return
    if plan.repair:
        with _lock:
            history = [moment for moment in _repairs[app.uid] if now - moment < FIGHT_MEMORY_SECONDS]
            _repairs[app.uid] = history
            if repair_delay(history, now) > 0:
                _warn_fight(app, len(history))
                return
            history.append(now)
    stored_before = APPS.version
    apply_annotations(app, plan.desired)
    _applied[app.uid] = frozenset(plan.desired)
    _applied_at[app.uid] = (now, stored_before)


def _warn_fight(app: AppFacts, repairs: int) -> None:
    if repairs < FIGHT_WARNING_AFTER or app.uid in _warned:
        return
    _warned.add(app.uid)
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": app.name, "namespace": app.namespace, "uid": app.uid},
    }
    kopf.event(
        body,
        type="Warning",
        reason="BackstageNotifications",
        message=(
            f"Another writer removed ArgoBridge's subscribe annotations {repairs} times in 30 minutes (an"
            " ApplicationSet or a GitOps sync?); ArgoBridge now re-applies them only after a growing delay."
            " Put the annotations in the Application's source, or use subscriptions mode Global"
        ),
    )


SYNC_WORKERS = 4


def sync_all(applications: Iterable[AppFacts], settings: Iterable[BridgeSettings], now: float) -> None:
    """Every Application, against the bridges as they are now; a few writes in flight at once, since
    one patch at a time leaves the apiserver mostly waiting on round trips."""
    known = list(settings)

    def in_flight(app: AppFacts, chosen: BridgeSettings | None) -> bool:
        written_at, stored_before = _applied_at.get(app.uid, (-IN_FLIGHT_SECONDS, -1))
        recent = now - written_at < IN_FLIGHT_SECONDS and APPS.stored_version(app.uid) <= stored_before
        return recent and _applied.get(app.uid) == frozenset(_desired(app, chosen))

    work = [
        (app, chosen)
        for app in applications
        if needs_sync(app, chosen := settings_for(app, known)) and not in_flight(app, chosen)
    ]
    with ThreadPoolExecutor(SYNC_WORKERS, thread_name_prefix="annotations") as pool:
        list(pool.map(lambda item: sync_app_annotations(item[0], item[1], now), work))
