"""Operator-wide kopf settings: our own prefixes for everything kopf stores on our objects."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from argobridge import metrics
from argobridge.core.ownership import shard_finalizer
from argobridge.core.spec import GROUP
from argobridge.runtime.operator_main import kopf_session
from argobridge.settings import Settings
from argobridge.steps.app_store import APPS

PREFIX = GROUP


_PER_OBJECT_HANDLERS = ("'on_config_object_event'",)


def _quiet_per_object_success(record: logging.LogRecord) -> bool:
    """Drop "Handler ... succeeded" for the watches of Argo CD's objects: one line per Application
    event would make the log grow with the cluster, not with anything ArgoBridge did."""
    message = record.getMessage()
    return not (
        record.levelno <= logging.INFO
        and message.endswith("succeeded.")
        and any(h in message for h in _PER_OBJECT_HANDLERS)
    )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Set kopf up once: standalone, argobridge.io/ finalizer (one per shard) and annotations, Events only
    for warnings."""
    settings.peering.standalone = True
    settings.persistence.finalizer = shard_finalizer(Settings.from_env().shard)
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # Client libraries log every request at INFO/DEBUG; request bodies may carry Secret data.
    for name in ("kubernetes", "urllib3", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").addFilter(_quiet_per_object_success)
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    # kopf's own calls (patches, Events, each page of a LIST) default to 5 minutes each, retried 8
    # times: a hung apiserver would stall an object's handlers for most of an hour.
    settings.networking.connect_timeout = 3
    settings.networking.request_timeout = 30
    settings.networking.error_backoffs = [1, 2, 4, 8]
    # A timer still running when its bridge is deleted (a reconcile in a worker thread) is re-checked
    # after this many seconds before the deletion handler may finish; kopf's default of 60 s held
    # every such bridge's finalizer for a minute.
    settings.background.cancellation_polling = 1
    _serve_metrics_once(Settings.from_env().metrics_port)


@kopf.on.cleanup()
async def release_stop_flag(memo: kopf.Memo, **_: Any) -> None:
    """Let kopf's wait for our stop flag end with the operator (see runtime.operator_main).

    Async, so the future is resolved in its own event loop, not from an executor thread.
    """
    release = memo.get("release_stop_flag")
    if callable(release):
        release()


_metrics_served: set[int] = set()


def _serve_metrics_once(port: int) -> None:
    """Start the metrics endpoint once per process: tests start the operator more than once."""
    if port and port not in _metrics_served:
        try:
            metrics.serve(port)
        except OSError as error:
            # Metrics are worth a warning, not an operator that refuses to start.
            logging.getLogger(__name__).warning(
                "Metrics are not served: port %d: %s; set ARGOBRIDGE_METRICS_PORT to a free port (0: none)",
                port,
                error.strerror,
            )
            return
        _metrics_served.add(port)


@kopf.on.probe(id="applications")
def applications_known(**_: Any) -> int:
    """Shown by the health endpoint: how many Applications the operator has indexed."""
    return len(APPS)


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """In-cluster service account first, else the kubeconfig that KUBECONFIG names right now; in a
    session whose writes pass the leader Lease's write guard (async: the session needs the loop)."""
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    return kopf_session(info) if info is not None else None
