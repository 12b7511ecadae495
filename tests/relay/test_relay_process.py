"""A real relay process delivers to the real Backstage test backend; a stored item survives SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from argobridge_dev.backstage import BackstageServer
from argobridge_dev.controlplane import free_port


def _start(tmp: Path, cfg: Path, port: int, status_port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "argobridge.commands.cli", "relay", "--listen", f"127.0.0.1:{port}"]
    cmd += ["--status-listen", f"127.0.0.1:{status_port}", "--data-dir", str(tmp / "data"), "--config-file", str(cfg)]
    return subprocess.Popen(cmd, stderr=open(tmp / "stderr", "ab"), env=os.environ.copy())


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
        port, status_port = free_port(), free_port()
        relay = _start(tmp_path, cfg, port, status_port)
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
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        backstage.restart(token="relay-test-token")
        relay = _start(tmp_path, cfg, port, status_port)
        try:
            assert _status(status_port)["delivered"] == 1
            titles = [
                n["payload"]["title"]
                for n in backstage.notifications("guest")
                if n["payload"].get("scope") == "relay-test"
            ]
            assert titles == ["relay"]
        finally:
            relay.send_signal(signal.SIGTERM)
            assert relay.wait(timeout=15) == 0
    assert b"relay-test-token" not in (tmp_path / "stderr").read_bytes()
