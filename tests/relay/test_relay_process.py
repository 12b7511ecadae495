"""A real relay process delivers to the real Backstage test backend; a stored item survives SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx

from argobridge_dev.backstage import BackstageServer
from argobridge_dev.controlplane import free_port
from argobridge_dev.relayproc import RelayProcess


def _status(status_port: int, deadline: float = 60.0, want: int = 1) -> dict[str, object]:
    end = time.monotonic() + deadline
    while True:
        try:
            doc = httpx.get(f"http://127.0.0.1:{status_port}/v1/status").json()
            bridge = doc["bridges"].get("ns/b", {})
            if bridge.get("delivered", 0) >= want:
                return dict(bridge)
        except (httpx.HTTPError, ValueError):
            pass
        assert time.monotonic() < end, "relay did not deliver in time"
        time.sleep(0.3)


def test_acknowledged_item_survives_sigkill_and_is_delivered_once(tmp_path: Path) -> None:
    with BackstageServer(token="relay-test-token").start() as backstage:
        backstage.stop()
        cfg = tmp_path / "cfg.json"
        url = f"{backstage.url}/api/notifications/notifications"
        entry = {
            "url": url,
            "token": "relay-test-token",
            "acceptTokens": [],
            "retryForSeconds": 3600,
            "attemptTimeoutSeconds": 5,
        }
        cfg.write_text(json.dumps({"ns.b": entry}))
        relay = RelayProcess(tmp_path / "relay", config_file=cfg).start()
        port, status_port = relay.port, relay.status_port
        body = {
            "recipients": {"type": "entity", "entityRef": "user:default/guest"},
            "payload": {"title": "relay", "scope": "relay-test"},
        }
        end = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/v1/bridges/ns/b/notifications",
                    json=body,
                    headers={"Authorization": "Bearer relay-test-token"},
                )
                if answer.status_code == 202:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < end
            time.sleep(0.3)
        relay.kill()
        backstage.restart(token="relay-test-token")
        relay.start()  # the same data directory and ports, as a restarted pod has
        try:
            assert _status(status_port)["delivered"] == 1
            titles = [
                n["payload"]["title"]
                for n in backstage.notifications("guest")
                if n["payload"].get("scope") == "relay-test"
            ]
            assert titles == ["relay"]
        finally:
            assert relay.proc is not None
            relay.proc.send_signal(signal.SIGTERM)
            assert relay.proc.wait(timeout=15) == 0
    assert "relay-test-token" not in relay.log()


def _entry(url: str) -> dict[str, object]:
    return {"url": url, "token": "relay-test-token", "acceptTokens": [], "retryForSeconds": 3600}


def _body(scope: str) -> dict[str, object]:
    return {
        "recipients": {"type": "entity", "entityRef": "user:default/guest"},
        "payload": {"title": f"title {scope}", "scope": scope},
    }


async def _post_concurrently(url: str, scopes: list[str], concurrency: int = 32) -> list[int]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as http:
        answers = await asyncio.gather(
            *(http.post(url, json=_body(s), headers={"Authorization": "Bearer relay-test-token"}) for s in scopes)
        )
    return [a.status_code for a in answers]


def test_every_202_of_a_concurrent_burst_survives_sigkill(tmp_path: Path) -> None:
    """Group commit: many notifications share one commit, and each is answered only after it."""
    cfg = tmp_path / "cfg.json"
    relay = RelayProcess(tmp_path / "relay", config_file=cfg)
    relay.write_config({"ns.b": _entry(f"http://127.0.0.1:{free_port()}/api/notifications/notifications")})
    relay.start()
    url = f"{relay.url}/v1/bridges/ns/b/notifications"
    statuses = asyncio.run(_post_concurrently(url, [f"burst-{i % 150}" for i in range(200)]))
    assert statuses == [202] * 200
    relay.kill()
    relay.start()
    try:
        assert relay.bridge_status("ns", "b")["pending"] == 150  # 200 notifications, 150 distinct scopes
    finally:
        relay.stop()


def test_a_backlog_is_delivered_once_each_when_backstage_comes_back(tmp_path: Path) -> None:
    """Concurrent delivery after an outage: every pending scope reaches Backstage, none twice."""
    with BackstageServer(token="relay-test-token") as backstage:
        cfg = tmp_path / "cfg.json"
        relay = RelayProcess(tmp_path / "relay", config_file=cfg)
        relay.write_config({"ns.b": _entry(f"http://127.0.0.1:{free_port()}/api/notifications/notifications")})
        relay.start()
        try:
            url = f"{relay.url}/v1/bridges/ns/b/notifications"
            scopes = [f"backlog-{i}" for i in range(120)]
            assert asyncio.run(_post_concurrently(url, scopes)) == [202] * 120
            time.sleep(3)  # the relay found Backstage away and probes it
            assert relay.bridge_status("ns", "b")["delivered"] == 0
            relay.write_config({"ns.b": _entry(f"{backstage.url}/api/notifications/notifications")})
            assert _status(relay.status_port, want=120)["delivered"] == 120
            seen = [n["payload"].get("scope") for n in backstage.notifications("guest")]
            assert sorted(s for s in seen if s in scopes) == sorted(scopes)
            assert relay.bridge_status("ns", "b")["pending"] == 0
        finally:
            relay.stop()


def test_sigterm_fails_readiness_at_once_and_keeps_accepting_for_the_shutdown_delay(tmp_path: Path) -> None:
    """A terminating replica stays routable until kube-proxy drops it: what it is sent then must be kept."""
    cfg = tmp_path / "cfg.json"
    entry = {
        "url": "http://127.0.0.1:9/api/notifications/notifications",  # nothing listens: all stays pending
        "token": "relay-test-token",
        "acceptTokens": [],
        "retryForSeconds": 3600,
        "attemptTimeoutSeconds": 1,
    }
    cfg.write_text(json.dumps({"ns.b": entry}))
    relay = RelayProcess(tmp_path / "relay", config_file=cfg, shutdown_delay=4.0).start()
    relay.send_until_accepted("ns", "b", "before-sigterm", "relay-test-token", "before")
    assert httpx.get(f"{relay.status_url}/readyz").status_code == 200
    assert relay.proc is not None
    signalled = time.monotonic()
    relay.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert httpx.get(f"{relay.status_url}/readyz").status_code == 503, "readiness must fail as soon as SIGTERM arrives"
    relay.send_until_accepted("ns", "b", "during-drain", "relay-test-token", "during", timeout=2.0)
    relay.proc.wait(15)
    assert 4.0 <= time.monotonic() - signalled < 10.0
    assert relay.proc.returncode == 0
    again = RelayProcess(tmp_path / "relay", config_file=cfg).start()
    try:
        assert again.bridge_status("ns", "b").get("pending") == 2, again.status()
    finally:
        again.stop()
