"""Proof 5 (ingress half): wrong token 401, unknown bridge 404, oversized 413, and nothing is stored."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx

from argobridge_dev.relayproc import RelayProcess


def test_refused_requests_store_nothing_and_never_log_the_token(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.json"
    entry = {"url": "http://127.0.0.1:9/x", "token": "good-token", "acceptTokens": [], "retryForSeconds": 60}
    cfg.write_text(json.dumps({"ns.b": entry}))
    relay = RelayProcess(tmp_path / "relay", config_file=cfg).start()
    port, status_port = relay.port, relay.status_port
    base = f"http://127.0.0.1:{port}/v1/bridges"
    body = {"recipients": {"type": "broadcast"}, "payload": {"title": "t"}}
    try:
        end = time.monotonic() + 30
        while True:
            try:
                if (
                    httpx.post(
                        f"{base}/ns/b/notifications", json=body, headers={"Authorization": "Bearer bad-token"}
                    ).status_code
                    == 401
                ):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < end
            time.sleep(0.3)
        assert (
            httpx.post(
                f"{base}/ns/zz/notifications", json=body, headers={"Authorization": "Bearer good-token"}
            ).status_code
            == 404
        )
        huge = {"recipients": {"type": "broadcast"}, "payload": {"title": "x" * 200_000}}
        assert (
            httpx.post(
                f"{base}/ns/b/notifications", json=huge, headers={"Authorization": "Bearer good-token"}
            ).status_code
            == 413
        )
        doc = httpx.get(f"http://127.0.0.1:{status_port}/v1/status").json()
        assert doc["bridges"]["ns/b"]["pending"] == 0
    finally:
        assert relay.proc is not None
        relay.proc.send_signal(signal.SIGTERM)
        assert relay.proc.wait(timeout=15) == 0
    logs = relay.log()
    assert "good-token" not in logs and "bad-token" not in logs
