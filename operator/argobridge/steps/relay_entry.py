"""Keep a bridge's entry in the relay's config Secret in line with its delivery plan.

Runs before Argo CD's configuration is written, so Argo CD never points at a relay that does not know
the bridge yet (the relay would answer 404, and Argo CD does not retry a 4xx). When the entry cannot be
had (no config Secret, the API refuses) the bridge falls back to Direct and says why, rather than send
into a relay that would refuse everything. Writes only when the value differs; removes the key when the
bridge leaves Relay mode or is deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from argobridge.core.deliveryplan import DeliveryPlan, delivery_status
from argobridge.core.ownership import field_manager
from argobridge.core.relayconfig import entry_key, entry_needs_write, relay_entry, stored_catalog_recipients
from argobridge.core.relaystatus import direct_condition
from argobridge.core.spec import BridgeSpec, DeliveryMode
from argobridge.core.status import Notice, ReconcileReport
from argobridge.kube import mirror, relayconfig, secrets
from argobridge.kube.errors import TRANSPORT_ERRORS, KubeError, transport_message
from argobridge.settings import Settings

log = logging.getLogger(__name__)

RELAY_CONFIG_MISSING = "RelayConfigMissing"
RELAY_CONFIG_ERROR = "RelayConfigError"
# The relay re-reads its config Secret every 2 s (relay/server.py); a new token must be in the entry
# that long before Argo CD may send it, or the relay refuses it with 401.
RELAY_POLL_SECONDS = 2.0


def _mirror_values(spec: BridgeSpec) -> tuple[str | None, ...]:
    """The tokens Backstage is told about (current, previous), which Argo CD may hold during a rotation."""
    if spec.mirror is None:
        return ()
    where = spec.mirror
    content = mirror.read_mirror(where.namespace, where.name, where.key, where.previous_key)
    return (content.current, content.previous)


def _ca_bundle(namespace: str, spec: BridgeSpec) -> str | None:
    """The PEM the relay trusts for Backstage; unreadable counts as none (BackstageReachable says why)."""
    if spec.ca_bundle is None:
        return None
    try:
        return secrets.read_secret_key(namespace, spec.ca_bundle.secret_name, spec.ca_bundle.key)
    except (KubeError, *TRANSPORT_ERRORS):
        return None


def _fallback_written(spec: BridgeSpec, reason: str, message: str) -> tuple[DeliveryPlan, bool]:
    """Direct instead of Relay, with the reason; nothing was written."""
    return DeliveryPlan(DeliveryMode.DIRECT, spec.webhook_url, reason=reason, message=message), False


def sync_entry(
    namespace: str,
    name: str,
    spec: BridgeSpec,
    plan: DeliveryPlan,
    token: str,
    report: ReconcileReport,
    status: Mapping[str, Any],
    extra_accept: tuple[str, ...] = (),
    catalog: Mapping[str, tuple[str, ...]] | None = None,
) -> DeliveryPlan:
    """Write (Relay) or remove (otherwise) this bridge's entry; the plan to render Argo CD's config with.

    `catalog` is the catalog-resolved apps' recipients (None: keep those the entry holds).

    Sets report.delivery_mode; raises nothing the API can cause (the plan falls back to Direct instead).
    """
    settings = Settings.from_env()
    ref = settings.relay_secret_ref
    final = plan
    if ref is not None:
        final, _ = _sync(namespace, name, spec, plan, token, ref, extra_accept, catalog)
    report.delivery_mode = delivery_status(final)
    if not final.relayed:
        # In Relay mode the relay-status timer owns Delivering; in Direct mode nothing measures it.
        report.conditions.append(direct_condition())
    previous = (status.get("delivery") or {}) if isinstance(status.get("delivery"), Mapping) else {}
    if final.reason and final.reason != previous.get("reason"):
        report.notices.append(Notice("Warning", final.reason, final.message))
    return final


def _sync(
    namespace: str,
    name: str,
    spec: BridgeSpec,
    plan: DeliveryPlan,
    token: str,
    ref: tuple[str, str],
    extra_accept: tuple[str, ...],
    catalog: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[DeliveryPlan, bool]:
    """The plan to render with, and whether the entry was written."""
    secret_ns, secret_name = ref
    where = f"Secret {secret_ns}/{secret_name}"
    key = entry_key(namespace, name)
    manager = field_manager(namespace, name)
    try:
        observed = relayconfig.read_entry(secret_ns, secret_name, key)
        if not plan.relayed:
            if observed.uid is not None and observed.value is not None:
                relayconfig.remove_entry(secret_ns, secret_name, observed.uid, key, manager)
                log.info("removed the relay entry of %s/%s from %s (delivery is Direct)", namespace, name, where)
            return plan, False
        if observed.uid is None:
            return _fallback_written(
                spec,
                RELAY_CONFIG_MISSING,
                f"spec.delivery asks for the relay, but its config {where} does not exist (the chart creates"
                " it): Argo CD posts to Backstage directly until it does",
            )
        if catalog is None:  # not resolved by this write (a token switch): keep the entry's recipients
            catalog = stored_catalog_recipients(observed.value)
        wanted = relay_entry(spec, token, (*_mirror_values(spec), *extra_accept), _ca_bundle(namespace, spec), catalog)
        if entry_needs_write(observed.value, wanted):
            relayconfig.write_entry(secret_ns, secret_name, observed.uid, key, wanted.encoded(), manager)
            log.info("wrote the relay entry of %s/%s to %s", namespace, name, where)
            return plan, True
        return plan, False
    except (KubeError, *TRANSPORT_ERRORS) as error:
        failure = str(error) if isinstance(error, KubeError) else transport_message(error)
        if not plan.relayed:
            log.warning("could not remove the relay entry of %s/%s: %s", namespace, name, failure)
            return plan, False
        return _fallback_written(
            spec,
            RELAY_CONFIG_ERROR,
            f"Could not write this bridge's entry to the relay's config {where} ({failure}): Argo CD posts to"
            " Backstage directly meanwhile; ArgoBridge needs get and patch on that Secret",
        )


def prepare_switch(namespace: str, name: str, spec: BridgeSpec, plan: DeliveryPlan, token: str, new_token: str) -> None:
    """Before Argo CD is switched to `new_token`: make the relay accept it, and give the relay time to
    read its config again, so nothing Argo CD sends with the new token is refused."""
    ref = Settings.from_env().relay_secret_ref
    if ref is None or not plan.relayed:
        return
    _, written = _sync(namespace, name, spec, plan, token, ref, (new_token,))
    if written:
        time.sleep(RELAY_POLL_SECONDS * 1.5)


def remove_entry(namespace: str, name: str) -> list[Notice]:
    """Deletion: take the bridge's key out of the config Secret (if this operator has a relay)."""
    ref = Settings.from_env().relay_secret_ref
    if ref is None:
        return []
    secret_ns, secret_name = ref
    key = entry_key(namespace, name)
    try:
        observed = relayconfig.read_entry(secret_ns, secret_name, key)
        if observed.uid is None or observed.value is None:
            return []
        relayconfig.remove_entry(secret_ns, secret_name, observed.uid, key, field_manager(namespace, name))
    except KubeError as error:
        if error.status not in (403, 404):
            raise  # transient: kopf retries the deletion
        message = f"Could not take key {key} out of the relay's config Secret {secret_ns}/{secret_name}: {error}"
        return [Notice("Warning", "RelayEntryNotRemoved", message)]
    return [Notice("Normal", "RelayEntryRemoved", f"Removed key {key} from Secret {secret_ns}/{secret_name}")]
