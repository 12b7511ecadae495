"""BackstageBridge handlers: each one fetches the bridge fresh and hands it to the reconcile."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import kopf

from argobridge import metrics
from argobridge.core.appcheck import AppFacts
from argobridge.core.configplan import ForeignDataError
from argobridge.core.relaystatus import RelayStatusPlan
from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge.core.status import Notice
from argobridge.kube import snapshot
from argobridge.kube.bridges import get_bridge
from argobridge.kube.errors import KubeError
from argobridge.metrics import forget_bridge
from argobridge.settings import Settings
from argobridge.steps import drift_repairs, probing, relay_status
from argobridge.steps.annotation_sync import BridgeSettings, bridge_settings, mark_deleting, settings_for, sync_all
from argobridge.steps.annotation_sync import forget_app as forget_app_annotations
from argobridge.steps.annotation_sync import forget_bridge as forget_annotation_state
from argobridge.steps.app_store import APPS
from argobridge.steps.failures import describe_failure
from argobridge.steps.observe import observe_reconcile
from argobridge.steps.reconcile import forget_catalog_answer, reconcile_bridge, remove_bridge, report_removal_failure

RESOURCE = (GROUP, VERSION, PLURAL)
SHARD_LABEL = f"{GROUP}/shard"
_SHARD = Settings.from_env().shard
# Every bridge handler sees only this operator's shard (see Settings.shard).
SHARD: dict[str, Any] = {"labels": {SHARD_LABEL: _SHARD or kopf.ABSENT}}


def in_shard(body: Any) -> bool:
    labels = (body.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(SHARD_LABEL, "") == _SHARD)


_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(key: tuple[str, str]) -> threading.Lock:
    """One lock per bridge, created once even when two worker threads ask at the same moment."""
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


# Problems already posted as Events on an Application (by uid), so a resync does not repeat them.
_posted: dict[str, set[str]] = {}


def post_notices(body: Any, notices: list[Notice]) -> None:
    for notice in notices:
        kopf.event(body, type=notice.type, reason=notice.reason, message=notice.message)


def post_app_problems(problems: Iterable[tuple[AppFacts, str]]) -> None:
    """A Warning Event on each Application for each problem not posted before."""
    current: dict[str, set[str]] = defaultdict(set)
    for app, problem in problems:
        current[app.uid].add(problem)
        if problem in _posted.get(app.uid, set()):
            continue
        body = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": app.name, "namespace": app.namespace, "uid": app.uid},
        }
        kopf.event(body, type="Warning", reason="BackstageNotifications", message=problem)
    _posted.update(current)


# Seconds before kopf retries a handler that failed (the API down, a status write refused, a bug).
RETRY_SECONDS = 15


def kopf_safe(during: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let a handler fail only with kopf.TemporaryError carrying a safe message.

    kopf copies a failed handler's exception text into its log, into Events and into the progress
    annotations on the bridge; an unforeseen exception's text may quote a secret. So every failure
    becomes a reason and a message from describe_failure, is counted in the errors metric, and, on the
    deletion path (which has the body), is posted as a Warning and written into ConfigApplied.
    """

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except (kopf.TemporaryError, kopf.PermanentError):
                raise
            except Exception as error:
                namespace = kwargs.get("namespace", args[0] if args else None)
                name = kwargs.get("name", args[1] if len(args) > 1 else None)
                reason, message = describe_failure(error, f"{during} BackstageBridge {namespace}/{name}")
                metrics.record_failure(str(namespace), str(name), reason)
                body = kwargs.get("body")
                if body is not None:
                    kopf.event(body, type="Warning", reason=reason, message=message)
                    with contextlib.suppress(Exception):  # the API may be what failed; kopf retries anyway
                        report_removal_failure(body, reason, message)
                raise kopf.TemporaryError(message, delay=RETRY_SECONDS) from None

        return run

    return decorate


@kopf_safe("Reconciling")
def reconcile_named(namespace: str, name: str, applications: Iterable[AppFacts] = ()) -> bool:
    """Reconcile one bridge by name, one reconcile at a time per bridge, from its current body; False
    when there was nothing to reconcile (gone, going, or another shard's)."""
    apps = list(applications)
    with _lock_for((namespace, name)):
        body = get_bridge(namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp") or not in_shard(body):
            if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                _locks.pop((namespace, name), None)  # a late event for a deleted bridge leaves no lock behind
            return False
        started = time.monotonic()
        with snapshot.read_once():  # one GET per Secret for the whole reconcile and its metrics
            report = reconcile_bridge(body, apps)
            observe_reconcile(body, report, time.monotonic() - started)
        post_notices(body, report.notices)
        post_app_problems(report.app_problems)
        settings = bridge_settings(body)
        if settings is not None:
            in_scope_apps = [app for app in apps if settings_for(app, [settings]) is settings]
            try:
                sync_all(in_scope_apps, [settings], time.monotonic())
            except KubeError as error:
                if error.status != 403:
                    raise
                _warn_annotations_forbidden(body, (namespace, name), str(error))
            else:
                _forbidden_warned.discard((namespace, name))
    return True


_forbidden_warned: set[tuple[str, str]] = set()


def _warn_annotations_forbidden(body: Any, key: tuple[str, str], error: str) -> None:
    """RBAC refuses the Annotations mode's writes: say which setting grants them, once until it works."""
    if key in _forbidden_warned:
        return
    _forbidden_warned.add(key)
    message = (
        f"subscriptions.mode Annotations needs permission to patch Applications, which this install lacks"
        f" ({error}). Install the chart with --set rbac.applicationAnnotations=true, or use mode Global"
    )
    kopf.event(body, type="Warning", reason="AnnotationsForbidden", message=message)


@kopf.index(*RESOURCE, **SHARD)
def bridge_settings_by_namespace(body: kopf.Body, namespace: str, **_: Any) -> dict[str, BridgeSettings] | None:
    """The subscription settings of each bridge, for the Application handlers (Annotations mode)."""
    if body.get("metadata", {}).get("deletionTimestamp"):
        return None  # going away: Applications must not get annotations for it any more
    settings = bridge_settings(body)
    return {namespace: settings} if settings else None


@kopf.index(*RESOURCE, **SHARD)
def bridges_by_namespace(namespace: str, name: str, **_: Any) -> dict[str, str]:
    """Which bridges live in which namespace, for handlers of Argo CD's objects."""
    return {namespace: name}


@kopf.on.create(*RESOURCE, **SHARD)
@kopf.on.update(*RESOURCE, **SHARD)
@kopf.on.resume(*RESOURCE, **SHARD)
def on_bridge_changed(namespace: str, name: str, **_: Any) -> None:
    reconcile_named(namespace, name, APPS.all())


@kopf.timer(*RESOURCE, interval=Settings.from_env().resync_seconds, initial_delay=5, **SHARD)
def on_resync(namespace: str, name: str, **_: Any) -> None:
    """Periodic safety net: drift is caught at once by the ConfigMap and Secret watches."""
    reconcile_named(namespace, name, APPS.all())


_counted: dict[tuple[str, str], int] = {}


@kopf.timer(*RESOURCE, interval=2, initial_delay=2, **SHARD)
async def on_applications_changed(namespace: str, name: str, status: kopf.Status, **_: Any) -> None:
    """Recount and recheck Applications within seconds of a change, and only after one; and follow a
    token rotation closely while Argo CD still sends the old token (the resync is minutes apart)."""
    version = APPS.version
    rotating = (status.get("token") or {}).get("phase") == "Published"
    if _counted.get((namespace, name)) == version and not rotating:
        return
    if await asyncio.to_thread(reconcile_named, namespace, name, APPS.all()):
        _counted[(namespace, name)] = version


@kopf.timer(*RESOURCE, interval=Settings.from_env().relay_status_seconds, initial_delay=3, **SHARD)
def on_relay_status(body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Copy the relay's figures into status.delivery; no API call at all while they are unchanged."""
    urls = Settings.from_env().relay_status_urls
    # Only bridges the reconcile put in Relay mode: in Direct mode the relay knows nothing of them.
    delivery = (body.get("status") or {}).get("delivery") or {}
    if not urls or delivery.get("mode") != "Relay":
        return
    plan = relay_status.plan_for(body, urls)
    if plan.patch is not None or plan.notice is not None:
        plan = refresh_relay_status(namespace, name, urls) or plan
    metrics.record_delivery_pending(namespace, name, plan.pending)


@kopf_safe("Reading the relay's status for")
def refresh_relay_status(namespace: str, name: str, urls: tuple[str, ...]) -> RelayStatusPlan | None:
    """Re-plan from the bridge's current body, under its reconcile lock (conditions are written whole,
    so a reconcile and this must not interleave), write the patch and post the Event."""
    with _lock_for((namespace, name)):
        body = get_bridge(namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp") or not in_shard(body):
            return None
        plan = relay_status.plan_for(body, urls)
        relay_status.write(body, plan)
    if plan.notice is not None:
        post_notices(body, [plan.notice])
    return plan


# A transient error (5xx, timeout) during deletion is retried this many times before the bridge is let
# go anyway; an error a user caused (RBAC, an unreadable shared key) lets it go at once.
DELETE_RETRIES = 5
DELETE_RETRY_DELAY = 10.0


def _let_go(error: Exception, retry: int) -> bool:
    """Whether deletion should finish despite `error`, rather than hold the finalizer and try again."""
    if isinstance(error, KubeError) and error.status not in (400, 401, 403, 404, 422):
        return retry >= DELETE_RETRIES
    return True


@kopf.on.delete(*RESOURCE, **SHARD)
@kopf_safe("Removing ArgoBridge's configuration of")
def on_bridge_deleted(body: kopf.Body, namespace: str, name: str, uid: str, retry: int, **_: Any) -> None:
    """Remove what this bridge wrote; what cannot be removed is named in a Warning, never a stuck finalizer."""
    mark_deleting(uid)
    left: list[str] = []
    with _lock_for((namespace, name)):
        try:
            post_notices(body, remove_bridge(body))
        except (KubeError, ForeignDataError) as error:
            if not _let_go(error, retry):
                raise kopf.TemporaryError(f"removing the configuration: {error}", delay=DELETE_RETRY_DELAY) from None
            left.append(f"its keys in Argo CD's notifications configuration ({error})")
        settings = bridge_settings(body)
        if settings is not None:
            in_scope_apps = [app for app in APPS.all() if settings_for(app, [settings])]
            try:
                # The bridge is marked deleting: every annotation of its goes.
                sync_all(in_scope_apps, [settings], time.monotonic())
            except KubeError as error:
                if not _let_go(error, retry):
                    raise kopf.TemporaryError(f"removing annotations: {error}", delay=DELETE_RETRY_DELAY) from None
                left.append(f"its subscribe annotations on Applications ({error})")
    if left:
        message = (
            f"BackstageBridge {namespace}/{name} is deleted, but ArgoBridge could not remove {'; nor '.join(left)}."
            " Remove those by hand (ArgoBridge's keys are the ones with the -backstage suffix and its"
            " subscribe annotations end in .backstage), or fix the cause and recreate the bridge, then delete it"
        )
        kopf.event(body, type="Warning", reason="RemovalIncomplete", message=message)
    _forget_bridge(namespace, name, uid)


def _forget_bridge(namespace: str, name: str, uid: str) -> None:
    """Drop everything kept in memory for a bridge that is gone."""
    _locks.pop((namespace, name), None)
    _counted.pop((namespace, name), None)
    _forbidden_warned.discard((namespace, name))
    forget_annotation_state(uid)
    probing.forget(namespace, name)
    drift_repairs.forget(namespace, name)
    forget_catalog_answer(namespace, name)
    forget_bridge(namespace, name)


def forget_app(uid: str) -> None:
    """An Application is gone: drop the problems posted for it and its annotation bookkeeping."""
    _posted.pop(uid, None)
    forget_app_annotations(uid)
