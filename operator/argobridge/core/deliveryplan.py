"""Which way a bridge's notifications travel (Relay or Direct), why, and where Argo CD posts them.

Pure: the spec and what the operator was installed with go in, a plan comes out. Relay when asked for
and available; without `spec.delivery.mode`, Relay whenever the operator has a relay (the chart
installs one by default), so a bridge written before the relay existed gains it on upgrade. Relay asked
for on an operator without one falls back to Direct, and the plan says so: a bridge never stops
delivering because a relay is missing, and never pretends to be relayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from argobridge.core.spec import BridgeSpec, DeliveryMode

RELAY_NOT_INSTALLED = "RelayNotInstalled"


@dataclass(frozen=True)
class DeliveryPlan:
    """The effective mode, the reason when it is not the one asked for, and Argo CD's webhook URL."""

    mode: DeliveryMode
    service_url: str  # what `service.webhook.<name>` of Argo CD points to
    reason: str | None = None  # set only when Relay was asked for and cannot be had
    message: str = ""

    @property
    def relayed(self) -> bool:
        return self.mode is DeliveryMode.RELAY


def relay_ingress_url(relay_url: str, namespace: str, name: str) -> str:
    """The relay's ingress for one bridge (RELAY_CONTRACT.md), from the relay's base URL."""
    return f"{relay_url.rstrip('/')}/v1/bridges/{quote(namespace, safe='')}/{quote(name, safe='')}/notifications"


def plan_delivery(spec: BridgeSpec, namespace: str, name: str, relay_url: str, relay_configured: bool) -> DeliveryPlan:
    """Decide the mode: `relay_url` is the operator's ARGOBRIDGE_RELAY_URL ('' for none), and
    `relay_configured` whether it also knows the relay's config Secret (without it no entry can be written)."""
    available = bool(relay_url) and relay_configured
    asked = spec.delivery.mode
    if asked is DeliveryMode.DIRECT or (asked is None and not available):
        why = "spec.delivery.mode is Direct" if asked else "this operator has no delivery relay"
        return DeliveryPlan(DeliveryMode.DIRECT, spec.webhook_url, message=f"Argo CD posts to Backstage itself: {why}")
    if not available:
        missing = "ARGOBRIDGE_RELAY_URL" if not relay_url else "ARGOBRIDGE_RELAY_CONFIG_SECRET"
        return DeliveryPlan(
            DeliveryMode.DIRECT,
            spec.webhook_url,
            reason=RELAY_NOT_INSTALLED,
            message=(
                f"spec.delivery.mode is Relay, but this operator has no delivery relay ({missing} is not set):"
                " Argo CD posts to Backstage directly; install the chart with the relay enabled, or set"
                " spec.delivery.mode to Direct"
            ),
        )
    return DeliveryPlan(
        DeliveryMode.RELAY,
        relay_ingress_url(relay_url, namespace, name),
        message="Argo CD posts to the delivery relay, which stores each notification and retries Backstage",
    )


def delivery_status(plan: DeliveryPlan) -> dict[str, str | None]:
    """The keys of `status.delivery` this plan owns: `mode`, and `reason` (None removes it in a merge patch).

    The relay's counters live in the same object and are written by the status step; keeping these two
    keys here lets both be merged without either overwriting the other.
    """
    return {"mode": plan.mode.value, "reason": plan.reason}


def observed_plan(
    spec: BridgeSpec, namespace: str, name: str, status: Mapping[str, Any], service_url: str | None
) -> DeliveryPlan | None:
    """The plan the operator applied, seen from outside it (doctor, preview): Relay when the bridge's
    status says so and Argo CD's service points at this bridge's relay ingress; None means Direct.

    A command run from a laptop does not know the operator's ARGOBRIDGE_RELAY_URL: the relay's base URL
    is read back from the service the operator wrote.
    """
    delivery = status.get("delivery")
    if not isinstance(delivery, Mapping) or delivery.get("mode") != DeliveryMode.RELAY.value or not service_url:
        return None
    suffix = relay_ingress_url("", namespace, name)
    if not service_url.endswith(suffix) or len(service_url) == len(suffix):
        return None
    return plan_delivery(spec, namespace, name, service_url[: -len(suffix)], True)
