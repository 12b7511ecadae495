"""A real relay process delivers to the real Backstage test backend; a stored item survives SIGKILL."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx

from argobridge_dev.backstage import BackstageServer
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
