"""A bridge's entry in the relay's config Secret (RELAY_CONTRACT.md), as pure data.

The entry tells the relay where to deliver (exactly `spec.webhook_url`), which token to send, which
tokens Argo CD may present, and the bridge's retry bounds. During a token rotation Argo CD may still
send the old value (its Secret is re-read a moment after ArgoBridge switched it) or, just after the
switch, the new one before the relay has re-read its entry: both values the mirror holds are accepted,
so a rotation never gets a notification refused with 401 at the relay (Argo CD does not retry a 401).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from argobridge.core.catalogmatch import DEFAULT_ENTITY_REF_FROM, EntityRefFrom
from argobridge.core.noisecodec import policy_document
from argobridge.core.spec import BridgeSpec


def entry_key(namespace: str, name: str) -> str:
    """The data key of a bridge's entry: `<namespace>.<name>` (namespaces have no dots)."""
    return f"{namespace}.{name}"


def split_entry_key(key: str) -> tuple[str, str]:
    """The bridge (namespace, name) of a data key, split at the first dot."""
    namespace, _, name = key.partition(".")
    return namespace, name


@dataclass(frozen=True)
class RelayEntry:
    """What the relay needs for one bridge; tokens are kept out of repr so no log line can show them."""

    url: str
    token: str = field(repr=False)
    accept_tokens: tuple[str, ...] = field(default=(), repr=False)
    retry_for_seconds: float = 86400.0
    attempt_timeout_seconds: float = 10.0
    ca_bundle: str | None = None
    insecure_skip_verify: bool = False
    noise: dict[str, Any] | None = None  # noise control's settings (core/noisecodec.py); None: none
    entity_ref_from: EntityRefFrom = DEFAULT_ENTITY_REF_FROM
    # "<namespace>/<app>" -> sorted refs, only for the apps whose recipients come from the catalog
    catalog_recipients: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def document(self) -> dict[str, Any]:
        """The JSON object of the contract, keys in the contract's order.

        `entityRefFrom` and `catalogRecipients` appear only when the catalog resolves some app: an entry
        without them means the same to the relay (every body keeps its own recipients), and is the entry
        of a bridge that does not use the catalog, byte for byte.
        """
        document: dict[str, Any] = {
            "url": self.url,
            "token": self.token,
            "acceptTokens": list(self.accept_tokens),
            "retryForSeconds": float(self.retry_for_seconds),
            "attemptTimeoutSeconds": float(self.attempt_timeout_seconds),
            "caBundle": self.ca_bundle,
            "insecureSkipVerify": self.insecure_skip_verify,
            **({} if self.noise is None else {"noise": self.noise}),
        }
        if self.catalog_recipients:
            document["entityRefFrom"] = self.entity_ref_from.value
            document["catalogRecipients"] = {app: list(refs) for app, refs in sorted(self.catalog_recipients.items())}
        return document

    def encoded(self) -> str:
        """The Secret value: compact JSON, the same text for the same entry (so unchanged means no write)."""
        return json.dumps(self.document(), separators=(",", ":"), ensure_ascii=False)


def accept_tokens(token: str, mirror_values: Iterable[str | None]) -> tuple[str, ...]:
    """Tokens besides `token` the relay accepts: the mirror's current and previous values that differ
    from it, in order, without repeats (empty outside a rotation, when all three are the same)."""
    accepted: list[str] = []
    for value in mirror_values:
        if value and value != token and value not in accepted:
            accepted.append(value)
    return tuple(accepted)


def relay_entry(
    spec: BridgeSpec,
    token: str,
    mirror_values: Iterable[str | None] = (),
    ca_bundle: str | None = None,
    catalog_recipients: Mapping[str, tuple[str, ...]] | None = None,
) -> RelayEntry:
    """The entry for this bridge, sending `token` (the one Argo CD holds) and accepting the mirror's others;
    `catalog_recipients` are the apps resolved by the catalog (see core/relayrecipients.py)."""
    return RelayEntry(
        url=spec.webhook_url,
        token=token,
        accept_tokens=accept_tokens(token, mirror_values),
        retry_for_seconds=spec.delivery.retry_for_seconds,
        attempt_timeout_seconds=spec.delivery.attempt_timeout_seconds,
        ca_bundle=ca_bundle,
        insecure_skip_verify=spec.insecure_skip_verify,
        noise=policy_document(spec),
        entity_ref_from=spec.entity_ref_from,
        catalog_recipients=MappingProxyType(dict(catalog_recipients or {})),
    )


def stored_catalog_recipients(current: str | None) -> dict[str, tuple[str, ...]]:
    """The `catalogRecipients` of a stored entry (empty when none or unreadable): what a write that does not
    resolve recipients itself (the token switch of a rotation) keeps."""
    try:
        document = json.loads(current) if current else {}
    except ValueError:
        return {}
    table = document.get("catalogRecipients") if isinstance(document, dict) else None
    if not isinstance(table, dict):
        return {}
    return {str(app): tuple(str(ref) for ref in refs) for app, refs in table.items() if isinstance(refs, list) and refs}


def entry_needs_write(current: str | None, wanted: RelayEntry) -> bool:
    """Whether the stored value differs from the wanted entry (compared as JSON, so formatting is not drift)."""
    if current is None:
        return True
    try:
        return bool(json.loads(current) != wanted.document())
    except ValueError:
        return True
