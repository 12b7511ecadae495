"""Start kopf with ArgoBridge's handlers, the way the container and `argobridge run` do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

import aiohttp
import kopf

from argobridge.kube.client import WRITE_GUARD, WriteGuard, user_agent
from argobridge.settings import Settings


def configure_logging(settings: Settings, debug: bool = False) -> None:
    """JSON logs in the deployed operator (one object per line), plain text for people."""
    log_format = kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.PLAIN
    kopf.configure(log_format=log_format, verbose=False, debug=debug)
    if not debug:
        for handler in logging.getLogger().handlers:
            handler.addFilter(quiet_kopf_routine)
    # The API client logs request bodies at DEBUG, which would include Secret data: keep it quiet.
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


# kopf reports every handler and timer run at INFO ("Timer 'on_applications_changed' succeeded.",
# "Resuming is processed: 1 succeeded; 0 failed."): every few seconds while nothing happens, which
# buries the lines a user cares about. Our handlers log one line per change themselves.
_ROUTINE_SUFFIXES = (" succeeded.",)
_ROUTINE_MARKERS = (" is processed: ",)


def is_routine_kopf_line(logger_name: str, level: int, message: str) -> bool:
    """Whether a log line is kopf's report of a routine handler run, which says nothing to a user."""
    if not logger_name.startswith("kopf") or level != logging.INFO:
        return False
    return message.endswith(_ROUTINE_SUFFIXES) or any(marker in message for marker in _ROUTINE_MARKERS)


def quiet_kopf_routine(record: logging.LogRecord) -> bool:
    """logging filter: drop kopf's routine success lines (they stay visible with --debug)."""
    return not is_routine_kopf_line(record.name, record.levelno, record.getMessage())


def kopf_session(info: kopf.ConnectionInfo, guard: WriteGuard = WRITE_GUARD) -> kopf.AiohttpSession:
    """kopf's HTTP session for these credentials, with every write behind the Lease's write guard.

    kopf writes on its own (finalizers, progress and last-handled annotations, Events, patches of
    handler results); a leader resumed after its Lease expired must not make kopf write either, and
    kopf has no hook of its own for that. The guard runs as an aiohttp middleware, the last step
    before a request is sent. Needs a running event loop (the login handler is async).
    """

    async def refuse_unless_leading(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        guard.check(request.method)
        return await handler(request)

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers={**info.as_http_headers(), "User-Agent": user_agent()},
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        middlewares=(refuse_unless_leading,),
    )
    return kopf.AiohttpSession(
        server=info.server,
        priority=info.priority,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        aiohttp_session=session,
    )


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

    async def operate() -> None:
        stop_future = _loop_flag(stop_flag)
        await kopf.operator(
            settings=settings,
            standalone=True,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            liveness_endpoint=liveness_endpoint,
            stop_flag=stop_future,
            ready_flag=ready_flag,
            # Read by the startup handler that watches Argo CD's ConfigMaps and Secrets by name.
            # `release_stop_flag`: read by the cleanup handler, see release_stop_flag.
            memo=kopf.Memo(namespaces=list(namespaces), release_stop_flag=lambda: release_stop_flag(stop_future)),
        )

    # A loop of its own in any thread (tests and the demo run the operator in one), as kopf.run would.
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(operate())


def release_stop_flag(future: Any) -> None:
    """Resolve our stop future when kopf stops for another reason (SIGINT, SIGTERM).

    kopf waits for the stop flag in a task of its own; stopped by a signal, that task never ends, and
    kopf gives such "hung" tasks 5 s before it cancels them: every Ctrl-C of `make run` took 5 s more.
    """
    if isinstance(future, asyncio.Future) and not future.done():
        future.set_result(None)


def _loop_flag(stop_flag: threading.Event | None) -> Any:
    """`stop_flag` as an asyncio future of the running loop, set from a daemon thread of our own.

    Given a threading.Event, kopf waits for it in the loop's executor, and the loop cannot close while
    that thread waits: a SIGTERM stopped kopf but the process never exited (and never released the
    Lease) until the kubelet killed it.
    """
    if stop_flag is None:
        return None
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    def relay() -> None:
        stop_flag.wait()
        with contextlib.suppress(RuntimeError):  # the loop is closed already: nothing left to stop
            loop.call_soon_threadsafe(resolve)

    threading.Thread(target=relay, name="stop-flag-relay", daemon=True).start()
    return future
