"""Start kopf with ArgoBridge's handlers, the way the container and `argobridge run` do."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

import kopf

from argobridge.settings import Settings


def configure_logging(settings: Settings, debug: bool = False) -> None:
    """JSON logs in the deployed operator (one object per line), plain text for people."""
    log_format = kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.PLAIN
    kopf.configure(log_format=log_format, verbose=False, debug=debug)
    # The API client logs request bodies at DEBUG, which would include Secret data: keep it quiet.
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def run_operator(
    namespaces: Sequence[str] = (),
    liveness_endpoint: str | None = None,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
    debug: bool = False,
) -> None:
    """Run every ArgoBridge handler until stopped (SIGINT/SIGTERM, or `stop_flag` when given)."""
    import argobridge.handlers  # noqa: F401 - registers the handlers

    configure_logging(Settings.from_env(), debug=debug)
    settings = kopf.OperatorSettings()
    # Serving named namespaces needs no cluster-scoped permission at all; kopf's observation of
    # namespaces and CRDs would need to list both cluster-wide, so it is off in that mode (an
    # Application CRD installed later is then picked up at the operator's next restart).
    settings.scanning.disabled = bool(namespaces)
    kopf.run(
        settings=settings,
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        # Read by the startup handler that watches Argo CD's ConfigMaps and Secrets by name.
        memo=kopf.Memo(namespaces=list(namespaces)),
        loop=asyncio.new_event_loop() if threading.current_thread() is not threading.main_thread() else None,
    )
