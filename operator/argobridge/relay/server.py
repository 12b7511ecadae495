"""Minimal delivery relay (issue 14): accept (committed before 202), deliver with backoff, report status.

Why a separate process: Argo CD's webhook gives up after a few quick retries; the relay acknowledges
only what it has stored durably and keeps trying Backstage for retryFor.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import os
import random
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from argobridge.backstage.client import InvalidCaBundle, tls_verify
from argobridge.core import backstage_limits
from argobridge.core.delivery import (
    RECENT_DEAD_LETTERS,
    Answer,
    Outcome,
    changed_entries,
    coalesce_key,
    decide,
    expired,
    held_after,
    status_entry,
    tls_settings,
)
from argobridge.outbox.store import Outbox
from argobridge.relay.metrics import CONTENT_TYPE, RelayMetrics, bridge_label

log = logging.getLogger("argobridge.relay")
Bridges = dict[str, dict[str, Any]]


def parse_secret_data(data: dict[str, Any] | None) -> Bridges:
    """Config Secret data (base64 values) -> bridges by '<ns>.<name>' key; bad entries are skipped."""
    bridges: Bridges = {}
    for key, value in (data or {}).items():
        try:
            bridges[key] = json.loads(base64.b64decode(value))
        except ValueError:
            log.warning("config entry %s is not JSON; skipped", key)
    return bridges


class Relay:
    """Holds the outbox, the current config and the delivery loop."""

    def __init__(self, data_dir: Path, replica: str) -> None:
        self.outbox = Outbox(data_dir)
        self.metrics = RelayMetrics(self.outbox, lambda: list(self.bridges))
        self.replica = replica
        self.bridges: Bridges = {}
        # One HTTP client per (caBundle, insecureSkipVerify): bridges sharing TLS settings share connections.
        self.clients: dict[tuple[str | None, bool], httpx.AsyncClient] = {}
        self.held: dict[str, str] = {}
        self.last_error: dict[str, str] = {}
        self.wake = asyncio.Event()
        self.stopping = False

    def _auth(self, bridge: dict[str, Any], header: str) -> bool:
        if not header.startswith("Bearer "):
            return False
        given = header[len("Bearer ") :].encode()
        tokens = [bridge.get("token") or "", *(bridge.get("acceptTokens") or [])]
        return any(t and hmac.compare_digest(given, str(t).encode()) for t in tokens)

    async def ingress(self, request: web.Request) -> web.Response:
        key = f"{request.match_info['namespace']}.{request.match_info['name']}"
        bridge = self.bridges.get(key)
        if bridge is None:
            return web.json_response({"error": "unknown bridge"}, status=404)
        if not self._auth(bridge, request.headers.get("Authorization", "")):
            return web.json_response({"error": "unauthorized"}, status=401)
        if request.content_length is not None and request.content_length > backstage_limits.BODY_LIMIT_BYTES:
            return web.json_response({"error": "body too large"}, status=413)
        try:
            raw = await request.content.read(backstage_limits.BODY_LIMIT_BYTES + 1)
        except Exception:
            return web.json_response({"error": "unreadable body"}, status=400)
        if len(raw) > backstage_limits.BODY_LIMIT_BYTES:
            return web.json_response({"error": "body too large"}, status=413)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("recipients"), dict)
            or not isinstance(body.get("payload"), dict)
        ):
            return web.json_response({"error": "expected a JSON object with recipients and payload"}, status=400)
        try:
            item_id, coalesced = await asyncio.to_thread(
                self.outbox.add, key, coalesce_key(key, body), body, time.time()
            )
        except Exception as error:
            log.error("cannot store: %s", type(error).__name__)
            return web.json_response({"error": "cannot store"}, status=503)
        self.metrics.received.labels(bridge_label(key)).inc()
        self.wake.set()
        return web.json_response({"id": item_id, "coalesced": coalesced}, status=202)

    async def status(self, _request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(self.status_document))

    async def metrics_page(self, _request: web.Request) -> web.Response:
        body = await asyncio.to_thread(self.metrics.exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    def status_document(self) -> dict[str, Any]:
        counters = self.outbox.counters()
        pending = self.outbox.pending()
        last_times = self.outbox.last_times()
        dead_letters = self.outbox.recent_dead_letters(RECENT_DEAD_LETTERS)
        now = time.time()
        out: dict[str, Any] = {}
        for key in sorted(set(counters) | set(pending) | set(self.bridges)):
            count, oldest = pending.get(key, (0, None))
            out[bridge_label(key)] = status_entry(
                counters=counters.get(key, {}),
                pending=count,
                oldest_received_at=oldest,
                last_times=last_times.get(key, {}),
                last_error=self.last_error.get(key),
                held=self.held.get(key),
                dead_letters=dead_letters.get(key, []),
                now=now,
            )
        return {"replica": self.replica, "bridges": out}

    def update_config(self, bridges: Bridges) -> None:
        """Take a new config; a bridge whose entry changed (a fixed token, say) is tried again at once."""
        changed = changed_entries(self.bridges, bridges)
        self.bridges = bridges
        now = time.time()
        for key in changed:
            if self.outbox.retry_now(key, now):
                self.wake.set()
        in_use = {tls_settings(entry) for entry in bridges.values()}
        for pair in [pair for pair in self.clients if pair not in in_use]:
            client = self.clients.pop(pair)
            asyncio.get_running_loop().create_task(client.aclose())

    def client_for(self, bridge: dict[str, Any]) -> httpx.AsyncClient:
        """The HTTP client carrying this bridge's TLS settings toward Backstage (raises InvalidCaBundle)."""
        pair = tls_settings(bridge)
        client = self.clients.get(pair)
        if client is None:
            client = self.clients[pair] = httpx.AsyncClient(verify=tls_verify(*pair))
        return client

    async def deliver_forever(self) -> None:
        try:
            while not self.stopping:
                worked = False
                for key in list(self.bridges) + [k for k in self.outbox.pending() if k not in self.bridges]:
                    worked |= await self._deliver_bridge(key)
                if not worked:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), timeout=1.0)
        finally:
            for client in self.clients.values():
                await client.aclose()

    async def _deliver_bridge(self, key: str) -> bool:
        now = time.time()
        items = await asyncio.to_thread(self.outbox.due, key, now, 50)
        bridge = self.bridges.get(key)
        for item in items:
            scope = item.body.get("payload", {}).get("scope")
            if bridge is None:
                if expired(item.received_at, now, 86400.0):
                    await self._finish(item, key, "deadLettered", scope, "bridge unknown")
                else:
                    await asyncio.to_thread(self.outbox.reschedule, item.id, now + 30.0, "bridge unknown")
                continue
            answer = await self._attempt(bridge, item.body)
            outcome, when = decide(
                answer,
                received_at=item.received_at,
                now=time.time(),
                attempts=item.attempts + 1,
                retry_for_seconds=float(bridge.get("retryForSeconds", 86400)),
                random_fraction=random.random(),
            )
            held = held_after(self.held.get(key), outcome, answer)
            if held is None:
                self.held.pop(key, None)
            else:
                self.held[key] = held
            if outcome.final:
                if answer.error is not None:
                    self.last_error[key] = answer.error
                await self._finish(item, key, outcome.value, scope, answer.error)
            else:
                self.last_error[key] = answer.error or f"Backstage answered {answer.status}"
                await asyncio.to_thread(self.outbox.reschedule, item.id, when or now, self.last_error[key])
                if outcome is Outcome.HOLD:
                    break
        return bool(items)

    async def _finish(self, item: Any, key: str, result: str, scope: str | None, reason: str | None) -> None:
        """Record a final result durably, then observe its latency (receive -> final result)."""
        now = time.time()
        await asyncio.to_thread(self.outbox.finish, item.id, key, result, now, scope, reason)
        self.metrics.latency.observe(max(now - item.received_at, 0.0))

    async def _attempt(self, bridge: dict[str, Any], body: dict[str, Any]) -> Answer:
        try:
            http = self.client_for(bridge)
        except InvalidCaBundle:
            return Answer(None, "", "the bridge's caBundle holds no usable PEM certificate")
        try:
            response = await http.post(
                str(bridge["url"]),
                json=backstage_limits.fit_notification(body),
                headers={"Authorization": f"Bearer {bridge.get('token', '')}"},
                timeout=float(bridge.get("attemptTimeoutSeconds", 10)),
            )
        except httpx.HTTPError as error:
            return Answer(None, "", type(error).__name__)
        return Answer(
            response.status_code,
            response.text[:200],
            None if response.is_success else f"Backstage answered {response.status_code}",
        )


async def poll_config(relay: Relay, secret: str | None, config_file: str | None) -> None:
    """Keep relay.bridges current: the config Secret through the API (GET every 2 s), or a JSON file."""
    core = None
    if secret:
        from argobridge.kube.client import core_v1

        core = core_v1()
    while not relay.stopping:
        try:
            if core is not None and secret:
                namespace, name = secret.split("/", 1)
                obj = await asyncio.to_thread(core.read_namespaced_secret, name, namespace)
                relay.update_config(parse_secret_data(obj.data))
            elif config_file:
                relay.update_config(json.loads(Path(config_file).read_text()))
        except Exception as error:
            log.warning("cannot read relay config: %s", type(error).__name__)
        await asyncio.sleep(2.0)


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "0.0.0.0", int(port)


async def serve(
    listen: str, status_listen: str, data_dir: Path, secret: str | None, config_file: str | None, replica: str
) -> None:
    relay = Relay(data_dir, replica)
    ingress = web.Application(client_max_size=backstage_limits.BODY_LIMIT_BYTES + 1)
    ingress.router.add_post("/v1/bridges/{namespace}/{name}/notifications", relay.ingress)
    status = web.Application()
    status.router.add_get("/v1/status", relay.status)
    status.router.add_get("/metrics", relay.metrics_page)
    status.router.add_get("/healthz", lambda _r: _ok())
    status.router.add_get("/readyz", lambda _r: _ok())
    runners = [web.AppRunner(ingress, access_log=None), web.AppRunner(status, access_log=None)]
    for runner, where in zip(runners, (listen, status_listen), strict=True):
        await runner.setup()
        await web.TCPSite(runner, *_host_port(where)).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(relay.deliver_forever()), asyncio.create_task(poll_config(relay, secret, config_file))]
    log.info("relay listening on %s, status on %s", listen, status_listen)
    await stop.wait()
    relay.stopping = True
    await runners[0].cleanup()
    relay.wake.set()
    _done, pending = await asyncio.wait(tasks, timeout=5.0)
    for task in pending:
        task.cancel()
    await runners[1].cleanup()
    relay.outbox.close()


async def _ok() -> web.Response:
    return web.Response(text="ok")


def run(
    listen: str, status_listen: str, data_dir: str, secret: str | None, config_file: str | None, replica: str | None
) -> int:
    """Process entry: serve until SIGTERM/SIGINT, then exit 0."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(listen, status_listen, Path(data_dir), secret, config_file, replica or socket.gethostname()))
    return 0


def env(name: str, default: str | None) -> str | None:
    """ARGOBRIDGE_RELAY_<NAME> from the environment."""
    return os.environ.get(f"ARGOBRIDGE_RELAY_{name}", default)
