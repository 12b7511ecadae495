"""The Backstage catalog's Application owners per bridge, read at most once per resync interval.

Why cached: every reconcile (an Application event, a resync) needs the owners, but the catalog changes
on Backstage's own schedule; one bounded read per interval (or when Backstage's URL or token changes)
keeps the cost independent of the number of events. The last good index is kept through a failed read,
so a catalog that blinks does not take the owners' recipients away; the failure is still reported.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

from argobridge.backstage import client as backstage_client
from argobridge.core.catalogmatch import CatalogFinding, CatalogIndex, index_catalog
from argobridge.core.probe import probe_due
from argobridge.core.spec import BridgeSpec
from argobridge.settings import Settings
from argobridge.steps import probing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogRead:
    """The owners as last read (None: never read successfully), and what the last read said."""

    index: CatalogIndex | None
    unavailable: str | None = None
    truncated: bool = False
    new_findings: tuple[CatalogFinding, ...] = field(default=())  # findings not reported by an earlier read


# (namespace, name) -> (monotonic time of the read, key of URL and token, the read)
_reads: dict[tuple[str, str], tuple[float, str, CatalogRead]] = {}


def forget(namespace: str, name: str) -> None:
    """Drop a deleted bridge's owners."""
    _reads.pop((namespace, name), None)


def latest_index(namespace: str, name: str) -> CatalogIndex | None:
    """The bridge's owners as last read, for the annotation sync (never reads the catalog itself)."""
    last = _reads.get((namespace, name))
    return last[2].index if last else None


def read_owners(namespace: str, name: str, spec: BridgeSpec, token: str) -> CatalogRead:
    """The bridge's catalog owners, from the cache when read within the resync interval."""
    key = hashlib.sha256(f"{spec.backstage_url}\n{token}".encode()).hexdigest()[:16]
    last = _reads.get((namespace, name))
    now = time.monotonic()
    if last and not probe_due(last[0], last[1], key, now, Settings.from_env().resync_seconds):
        return CatalogRead(last[2].index, last[2].unavailable, last[2].truncated)
    try:
        verify = probing.verify_for(namespace, spec)
    except probing.CaBundleProblem as error:
        owners = backstage_client.CatalogOwners(unavailable=str(error))
    else:
        owners = backstage_client.read_catalog_owners(spec.backstage_url, token, verify=verify)
    kept = last[2].index if last and last[1] == key else None
    if owners.unavailable:
        log.warning("catalog owners of %s/%s not read: %s", namespace, name, owners.unavailable)
        read = CatalogRead(kept, owners.unavailable)
    else:
        index = index_catalog(list(owners.items))
        earlier = set(kept.findings) if kept else set()
        read = CatalogRead(index, None, owners.truncated, tuple(f for f in index.findings if f not in earlier))
        log.info("read %d Application owners of %s/%s from the catalog", index.entities, namespace, name)
    _reads[(namespace, name)] = (now, key, read)
    return read
