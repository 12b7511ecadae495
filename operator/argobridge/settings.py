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
    # The delivery relay (RELAY_CONTRACT.md): its ingress base URL (empty: no relay, bridges deliver
    # directly), the Secret `<ns>/<name>` holding one entry per bridge, and each replica's status URL.
    relay_url: str = ""
    relay_config_secret: str = ""
    relay_status_urls: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        return cls(
            resync_seconds=float(env.get("ARGOBRIDGE_RESYNC_SECONDS", cls.resync_seconds)),
            log_format=env.get("ARGOBRIDGE_LOG_FORMAT", cls.log_format),
            shard=env.get("ARGOBRIDGE_SHARD", cls.shard),
            metrics_port=int(env.get("ARGOBRIDGE_METRICS_PORT", cls.metrics_port)),
            relay_url=env.get("ARGOBRIDGE_RELAY_URL", "").strip().rstrip("/"),
            relay_config_secret=env.get("ARGOBRIDGE_RELAY_CONFIG_SECRET", "").strip(),
            relay_status_urls=tuple(
                url.strip().rstrip("/") for url in env.get("ARGOBRIDGE_RELAY_STATUS_URLS", "").split(",") if url.strip()
            ),
        )

    @property
    def relay_secret_ref(self) -> tuple[str, str] | None:
        """The config Secret as (namespace, name), or None when this operator has none (or a malformed one)."""
        namespace, _, name = self.relay_config_secret.partition("/")
        return (namespace, name) if namespace and name else None
