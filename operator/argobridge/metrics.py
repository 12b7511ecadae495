"""The operator's Prometheus metrics: one registry, fed by the reconcile wiring, served over HTTP.

Names follow Prometheus conventions (`_total`, `_seconds`); labels are the bridge's namespace and
name, never anything derived from a token or a user's free text, so cardinality stays bounded by the
number of bridges.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from argobridge.core.metricsview import ReconcileView

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
_BRIDGE = ("namespace", "bridge")

RECONCILES = Counter(
    "argobridge_reconcile_total",
    "Reconciles of a BackstageBridge, by outcome.",
    [*_BRIDGE, "result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "argobridge_reconcile_duration_seconds",
    "Time one reconcile took, Kubernetes and Backstage calls included.",
    _BRIDGE,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
ERRORS = Counter(
    "argobridge_reconcile_errors_total",
    "Reconciles leaving a condition False or Unknown, and failed handlers, by reason (InvalidSpec, ...).",
    [*_BRIDGE, "reason"],
    registry=REGISTRY,
)
PROBE = Gauge(
    "argobridge_backstage_probe",
    "1 for the outcome of the last Backstage probe (reason of BackstageReachable), 0 for the others seen.",
    [*_BRIDGE, "reason"],
    registry=REGISTRY,
)
BACKSTAGE_UP = Gauge(
    "argobridge_backstage_reachable",
    "1 when the last probe found Backstage reachable and the token accepted, else 0.",
    _BRIDGE,
    registry=REGISTRY,
)
APPLICATIONS = Gauge(
    "argobridge_applications",
    "Applications a bridge serves, by state (watched, subscribed, invalidEntityRef, misconfigured).",
    [*_BRIDGE, "state"],
    registry=REGISTRY,
)
TOKEN_AGE = Gauge(
    "argobridge_token_age_seconds",
    "Seconds since the token in Argo CD's Secret was last written.",
    _BRIDGE,
    registry=REGISTRY,
)
DELIVERY_PENDING = Gauge(
    "argobridge_delivery_pending",
    "Notifications the relay holds for a bridge, not yet delivered (Relay mode; from the relay's status).",
    _BRIDGE,
    registry=REGISTRY,
)

_token_written: dict[tuple[str, str], datetime] = {}
# Every series created per bridge, so a deleted bridge's series can all be removed.
_series: dict[tuple[str, str], set[tuple[MetricWrapperBase, tuple[str, ...]]]] = {}


def _child(metric: MetricWrapperBase, namespace: str, bridge: str, *extra: str) -> Any:
    labels = (namespace, bridge, *extra)
    _series.setdefault((namespace, bridge), set()).add((metric, labels))
    return metric.labels(*labels)


def record_reconcile(namespace: str, bridge: str, view: ReconcileView, seconds: float) -> None:
    """Publish one reconcile's outcome."""
    _child(RECONCILES, namespace, bridge, view.result).inc()
    _child(RECONCILE_SECONDS, namespace, bridge).observe(seconds)
    for reason in view.error_reasons:
        _child(ERRORS, namespace, bridge, reason).inc()
    if view.probe_reason is not None:
        for metric, labels in _series.get((namespace, bridge), set()).copy():
            if metric is PROBE:
                PROBE.labels(*labels).set(0)
        _child(PROBE, namespace, bridge, view.probe_reason).set(1)
        _child(BACKSTAGE_UP, namespace, bridge).set(1 if view.probe_ok else 0)
    for state, count in view.applications.items():
        _child(APPLICATIONS, namespace, bridge, state).set(count)


def record_failure(namespace: str, bridge: str, reason: str) -> None:
    """Count a handler failure that no reconcile report carried (status write, deletion, API down)."""
    _child(ERRORS, namespace, bridge, reason).inc()


def record_token_written(namespace: str, bridge: str, written: datetime | None) -> None:
    """Remember when the token was written; its age is computed at scrape time, so it keeps growing."""
    if written is None:
        _token_written.pop((namespace, bridge), None)
        return
    _token_written[(namespace, bridge)] = written
    _child(TOKEN_AGE, namespace, bridge).set_function(
        lambda: (datetime.now(UTC) - _token_written.get((namespace, bridge), datetime.now(UTC))).total_seconds()
    )


def record_delivery_pending(namespace: str, bridge: str, pending: int | None) -> None:
    """Mirror status.delivery.pending (None: the relay did not answer; keep the last figure)."""
    if pending is not None:
        _child(DELIVERY_PENDING, namespace, bridge).set(pending)


def forget_bridge(namespace: str, bridge: str) -> None:
    """Drop a deleted bridge's series, so dashboards do not show a ghost."""
    _token_written.pop((namespace, bridge), None)
    for metric, labels in _series.pop((namespace, bridge), set()):
        metric.remove(*labels)


def serve(port: int) -> None:
    """Serve /metrics on `port` (0: do not serve)."""
    if port:
        start_http_server(port, registry=REGISTRY)
        log.info("Serving Prometheus metrics on port %d", port)
