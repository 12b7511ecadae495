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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from argobridge.backstage.client import InvalidCaBundle, tls_verify
from argobridge.core import backstage_limits
from argobridge.core.delivery import (
    RECENT_DEAD_LETTERS,
    Answer,
    backstage_failing,
    changed_entries,
    coalesce_key,
    decide,
    expired,
    held_after,
    probe_delay_seconds,
    status_entry,
    tls_settings,
)
from argobridge.core.relayrecipients import fill_recipients
from argobridge.outbox.commits import GroupCommit
from argobridge.outbox.store import INCOMING, Item, Outbox
from argobridge.relay.metrics import CONTENT_TYPE, RelayMetrics, bridge_label
from argobridge.relay.noise import NoiseStage, for_backstage

log = logging.getLogger("argobridge.relay")
Bridges = dict[str, dict[str, Any]]

# POSTs in flight per bridge while its Backstage answers: one at a time caps catch-up at 1/latency,
# far below what Backstage takes (see `make bench`); a bound keeps a returning Backstage from a stampede.
DELIVERY_CONCURRENCY = 16
# While a bridge's Backstage fails, how often its waiting notifications are checked against retryFor.
EXPIRY_CHECK_SECONDS = 10.0


@dataclass
class BridgeDelivery:
    """Delivery state of one bridge, in memory only (after a restart every bridge starts as healthy)."""

    in_flight: set[int] = field(default_factory=set)  # attempted and not yet recorded: not fetched again
    posting: int = 0  # requests to Backstage under way: what the slots count
    failures: int = 0  # consecutive attempts that said Backstage is unwell; 0: deliver at full concurrency
    probe_at: float = 0.0  # while failing: when the next single probe may go
    failed_config: dict[str, Any] | None = None  # the entry that failed; a changed entry is tried at once
    expiry_checked: float = 0.0
    # Items attempted as probes while failing: their failures were Backstage's, not theirs, so once it
    # answers again they are due at once instead of after their own (by then long) backoff.
    probed: set[int] = field(default_factory=set)


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
        self.writes = GroupCommit(self.outbox)
        self.deliveries: dict[str, BridgeDelivery] = {}
        self.noise = NoiseStage(self.outbox, self.writes)
        self._tasks: set[asyncio.Task[None]] = set()

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
        body = fill_recipients(body, bridge)[0] or body  # owners from the catalog, as stored (and again at POST)
        # With noise control every post is kept apart (it counts flaps); it coalesces what it sends.
        noisy = self.noise.enabled(bridge)
        try:
            item_id, coalesced = await self.writes.add(
                key, None if noisy else coalesce_key(key, body), body, time.time(), INCOMING if noisy else "out"
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
                waiting=self.noise.held(key),
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
            orphans: list[str] = []
            orphans_read = float("-inf")
            while not self.stopping:
                self.wake.clear()  # before looking, so a wake during the round is not lost
                if time.monotonic() - orphans_read > 1.0:
                    orphans = [k for k in await asyncio.to_thread(self.outbox.bridges) if k not in self.bridges]
                    orphans_read = time.monotonic()
                worked = False
                for key, bridge in list(self.bridges.items()):
                    try:
                        worked |= await self.noise.step(key, bridge)
                    except Exception as error:  # its items stay incoming and are decided on next round
                        log.error("noise control of %s failed: %s", key, type(error).__name__)
                for key in list(self.bridges) + orphans:
                    worked |= await self._deliver_bridge(key)
                if not worked:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), timeout=1.0)
            if self._tasks:  # attempts under way when asked to stop: a short grace, then they stay pending
                _done, late = await asyncio.wait(set(self._tasks), timeout=3.0)
                for task in late:
                    task.cancel()
        finally:
            for client in self.clients.values():
                await client.aclose()

    async def _deliver_bridge(self, key: str) -> bool:
        """Start attempts for a bridge's due items, up to its free slots; whether any was started.

        A healthy bridge has DELIVERY_CONCURRENCY slots. After an answer that says Backstage is unwell
        (see core.delivery.backstage_failing) it has one, used by a single probe per probe delay, and the
        other items wait without attempts; the first good answer restores every slot. Coalescing stays
        the store's (one row per key; a newer body replaces the row while an older one is in flight, and
        Item.revision keeps the newer one pending).
        """
        bridge = self.bridges.get(key)
        if bridge is None:
            return await self._deliver_unknown_bridge(key)
        state = self.deliveries.setdefault(key, BridgeDelivery())
        now = time.time()
        if state.failures and bridge != state.failed_config:
            state.failures = 0  # a new URL, token or CA: try it now rather than after the probe delay
        if state.failures:
            if now - state.expiry_checked > EXPIRY_CHECK_SECONDS:
                state.expiry_checked = now
                retry_for = float(bridge.get("retryForSeconds", 86400))
                await self.writes.expire(key, now - retry_for, now, "retryFor passed while Backstage failed")
            if now < state.probe_at:
                return False
        free = (1 if state.failures else DELIVERY_CONCURRENCY) - state.posting
        if free <= 0:
            return False
        due = await asyncio.to_thread(self.outbox.due, key, now, free + len(state.in_flight))
        items = [item for item in due if item.id not in state.in_flight][:free]
        for item in items:
            state.in_flight.add(item.id)
            state.posting += 1
            if state.failures:
                state.probed.add(item.id)
            task = asyncio.create_task(self._deliver_one(key, bridge, item, state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return bool(items)

    async def _deliver_one(self, key: str, bridge: dict[str, Any], item: Item, state: BridgeDelivery) -> None:
        try:
            await self._deliver_item(key, bridge, item, state)
        except Exception as error:  # the item stays pending (recorded or not, it is attempted again)
            log.error("delivery of an item of %s failed: %s", key, type(error).__name__)
            self._note_answer(bridge, state, Answer(None, "", type(error).__name__))
        finally:
            state.in_flight.discard(item.id)
            self.wake.set()

    def _note_answer(self, bridge: dict[str, Any], state: BridgeDelivery, answer: Answer) -> None:
        """After an answer that says Backstage is unwell, one probe per delay; after a good one, every slot."""
        if answer.unresolved:  # nothing was asked of Backstage: its health is as it was
            return
        if backstage_failing(answer):
            state.failures += 1
            state.failed_config = bridge
            state.probe_at = time.time() + probe_delay_seconds(answer, state.failures, random.random())
        else:
            if state.probed:
                probed, state.probed = sorted(state.probed), set()
                task = asyncio.create_task(self.writes.make_due(probed, time.time()))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            state.failures = 0

    async def _deliver_item(self, key: str, bridge: dict[str, Any], item: Item, state: BridgeDelivery) -> Answer:
        """One attempt of one item and its recorded result (final, or rescheduled with backoff).

        The slot frees as soon as Backstage has answered: the next POST need not wait for this one's commit.
        """
        now = time.time()
        scope = item.body.get("payload", {}).get("scope")
        try:
            answer = await self._attempt(bridge, item.body)
        finally:
            state.posting -= 1
            self.wake.set()
        self._note_answer(bridge, state, answer)
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
            await self.writes.reschedule(item.id, when or now, self.last_error[key])
        return answer

    async def _deliver_unknown_bridge(self, key: str) -> bool:
        """Items of a bridge no longer configured: kept for retryFor's default in case it comes back."""
        now = time.time()
        items = await asyncio.to_thread(self.outbox.due, key, now, 50, True)
        for item in items:
            scope = item.body.get("payload", {}).get("scope")
            if expired(item.received_at, now, 86400.0):
                await self._finish(item, key, "deadLettered", scope, "bridge unknown")
            else:
                await self.writes.reschedule(item.id, now + 30.0, "bridge unknown")
        return bool(items)

    async def _finish(self, item: Item, key: str, result: str, scope: str | None, reason: str | None) -> None:
        """Record a final result durably, then observe its latency (receive -> final result)."""
        now = time.time()
        await self.writes.finish(item.id, key, result, now, scope, reason, item.revision)
        self.metrics.latency.observe(max(now - item.received_at, 0.0))

    async def _attempt(self, bridge: dict[str, Any], body: dict[str, Any]) -> Answer:
        filled, _source = fill_recipients(body, bridge)  # the catalog's owners (core/relayrecipients.py)
        if filled is None:
            return Answer(None, "", "no recipient: no entity-ref, and the catalog names no owner", unresolved=True)
        body = filled
        try:
            http = self.client_for(bridge)
        except InvalidCaBundle:
            return Answer(None, "", "the bridge's caBundle holds no usable PEM certificate")
        try:
            response = await http.post(
                str(bridge["url"]),
                json=backstage_limits.fit_notification(for_backstage(body)),
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


async def _readiness(stop: asyncio.Event) -> web.Response:
    """503 once a stop was asked: the Service takes the replica out before its ingress closes."""
    return web.Response(status=503, text="stopping") if stop.is_set() else await _ok()


async def _drain(stop: asyncio.Event, again: asyncio.Event, delay: float) -> None:
    """Keep accepting for `delay` seconds after SIGTERM (a second signal ends it at once).

    Why: a terminating pod leaves the Service's endpoints only after kube-proxy on every node has seen
    the change; until then Argo CD's controller may still be routed to this replica, and a refused
    connection is a notification the engine drops without retry. Readiness fails at once, the ingress
    closes after the delay, as Kubernetes' own guidance for graceful termination says.
    """
    if delay <= 0:
        return
    log.info("stopping: ingress open %.0f s more while the Service drops this replica", delay)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(again.wait(), timeout=delay)


async def serve(
    listen: str,
    status_listen: str,
    data_dir: Path,
    secret: str | None,
    config_file: str | None,
    replica: str,
    shutdown_delay: float = 0.0,
) -> None:
    relay = Relay(data_dir, replica)
    ingress = web.Application(client_max_size=backstage_limits.BODY_LIMIT_BYTES + 1)
    ingress.router.add_post("/v1/bridges/{namespace}/{name}/notifications", relay.ingress)
    status = web.Application()
    status.router.add_get("/v1/status", relay.status)
    status.router.add_get("/metrics", relay.metrics_page)
    status.router.add_get("/healthz", lambda _r: _ok())
    stop = asyncio.Event()
    again = asyncio.Event()
    status.router.add_get("/readyz", lambda _r: _readiness(stop))
    runners = [web.AppRunner(ingress, access_log=None), web.AppRunner(status, access_log=None)]
    for runner, where in zip(runners, (listen, status_listen), strict=True):
        await runner.setup()
        await web.TCPSite(runner, *_host_port(where)).start()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        (again if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    tasks = [asyncio.create_task(relay.deliver_forever()), asyncio.create_task(poll_config(relay, secret, config_file))]
    log.info("relay listening on %s, status on %s", listen, status_listen)
    await stop.wait()
    await _drain(stop, again, shutdown_delay)
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
    listen: str,
    status_listen: str,
    data_dir: str,
    secret: str | None,
    config_file: str | None,
    replica: str | None,
    shutdown_delay: float = 0.0,
) -> int:
    """Process entry: serve until SIGTERM/SIGINT, then exit 0."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per delivery (results are counted)
    asyncio.run(
        serve(
            listen, status_listen, Path(data_dir), secret, config_file, replica or socket.gethostname(), shutdown_delay
        )
    )
    return 0


def env(name: str, default: str | None) -> str | None:
    """ARGOBRIDGE_RELAY_<NAME> from the environment."""
    return os.environ.get(f"ARGOBRIDGE_RELAY_{name}", default)
