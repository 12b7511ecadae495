"""The relay's Prometheus metrics, on its own registry (never the process-global one), served on the status port.

Why queue depth, oldest pending and the delivered totals are read from the outbox at scrape time: the
outbox is the truth (it survives restarts), so the figures can never drift from what /v1/status says.
`bridge` is "<namespace>/<name>": bounded by the number of bridges, never derived from a body or token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from argobridge.outbox.store import Outbox

CONTENT_TYPE = CONTENT_TYPE_LATEST


def bridge_label(key: str) -> str:
    """Config key '<ns>.<name>' -> metric label '<ns>/<name>' (namespaces have no dots)."""
    return key.replace(".", "/", 1)


class _OutboxCollector(Collector):
    """Delivered totals, queue depth and oldest pending, computed from the outbox at each scrape."""

    def __init__(self, outbox: Outbox, known: Callable[[], Iterable[str]]) -> None:
        self.outbox = outbox
        self.known = known

    def describe(self) -> list[CounterMetricFamily | GaugeMetricFamily]:
        """Nothing to describe ahead: registering must not read the outbox."""
        return []

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        delivered = CounterMetricFamily(
            "argobridge_relay_delivered",
            "Notifications that reached a final result, by result (delivered, noRecipients, rejected, deadLettered).",
            labels=["bridge", "result"],
        )
        for key, results in sorted(self.outbox.counters().items()):
            for result, count in sorted(results.items()):
                delivered.add_metric([bridge_label(key), result], count)
        depth = GaugeMetricFamily(
            "argobridge_relay_queue_depth", "Notifications stored, not yet final.", labels=["bridge"]
        )
        oldest = GaugeMetricFamily(
            "argobridge_relay_oldest_pending_seconds",
            "Age of the oldest stored notification (0 when none is stored).",
            labels=["bridge"],
        )
        now = time.time()
        pending = self.outbox.pending()
        for key in sorted(set(pending) | set(self.known())):
            count, received_at = pending.get(key, (0, now))
            depth.add_metric([bridge_label(key)], count)
            oldest.add_metric([bridge_label(key)], max(now - received_at, 0.0))
        yield delivered
        yield depth
        yield oldest


class RelayMetrics:
    """What the relay counts as it goes (received, latency) plus the outbox's own figures."""

    def __init__(self, outbox: Outbox, known: Callable[[], Iterable[str]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.received = Counter(
            "argobridge_relay_received",
            "Notifications accepted (202) at the ingress, coalesced ones included.",
            ["bridge"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "argobridge_relay_delivery_latency_seconds",
            "Time from receiving a notification to its final result.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
            registry=self.registry,
        )
        self.registry.register(_OutboxCollector(outbox, known))

    def exposition(self) -> bytes:
        """The Prometheus text format of everything (reads the outbox: call off the event loop)."""
        return generate_latest(self.registry)
