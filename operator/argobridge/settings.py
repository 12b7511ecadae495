"""Operator settings from the environment (prefix ARGOBRIDGE_), read once at startup."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Knobs an operator deployment may turn; everything has a production default."""

    resync_seconds: float = 300.0
    log_format: str = "json"
    # Serve only bridges labelled argobridge.io/shard=<shard> (empty: only bridges without that label),
    # so several operators can share a cluster, e.g. one per test or one per team.
    shard: str = ""
    metrics_port: int = 8080
    # Each relay replica's status base URL (ARGOBRIDGE_RELAY_STATUS_URLS, comma list); empty: no relay.
    relay_status_urls: tuple[str, ...] = ()
    # How often the operator reads the relay's status into each Relay-mode bridge's status.delivery.
    relay_status_seconds: float = 15.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        return cls(
            resync_seconds=float(env.get("ARGOBRIDGE_RESYNC_SECONDS", cls.resync_seconds)),
            log_format=env.get("ARGOBRIDGE_LOG_FORMAT", cls.log_format),
            shard=env.get("ARGOBRIDGE_SHARD", cls.shard),
            metrics_port=int(env.get("ARGOBRIDGE_METRICS_PORT", cls.metrics_port)),
            relay_status_urls=tuple(
                url.strip() for url in env.get("ARGOBRIDGE_RELAY_STATUS_URLS", "").split(",") if url.strip()
            ),
            relay_status_seconds=float(env.get("ARGOBRIDGE_RELAY_STATUS_SECONDS", cls.relay_status_seconds)),
        )
