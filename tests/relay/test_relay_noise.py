"""Noise control in a real relay process, read back from the real Backstage test backend as a user reads it.

The bodies are shaped as the rendered templates post them in Relay mode (scope argocd/<ns>/<app>/<event>
and the relay-only `argobridge` part); the operator-level proof with Argo CD's controller is in
tests/e2e/test_noise_control.py. Windows here are seconds long, through the relay's entry (the spec's
bounds are the operator's): what is proven is the relay's behaviour, not the defaults.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from argobridge_dev.backstage import BackstageServer
from argobridge_dev.relayproc import RelayProcess, config_entry

TOKEN = "noise-relay-token"
ALICE = "user:default/alice"


def noise(**extra: Any) -> dict[str, Any]:
    return {
        "minIntervalSeconds": 0.0,
        "resolveRecovered": True,
        "signalOnly": ["HealthRecovered"],
        "rateLimit": None,
        "routes": {},
        **extra,
    }


@pytest.fixture(scope="module")
def backstage() -> Iterator[BackstageServer]:
    with BackstageServer(token=TOKEN).start() as server:
        yield server


def relay_for(tmp: Path, backstage: BackstageServer, bridges: dict[str, dict[str, Any]]) -> RelayProcess:
    url = f"{backstage.url}/api/notifications/notifications"
    relay = RelayProcess(tmp / "relay", config_file=tmp / "config.json")
    relay.write_config({key: config_entry(url, TOKEN, noise=value) for key, value in bridges.items()})
    return relay.start()


def post(relay: RelayProcess, bridge: str, app: str, event: str, route: str | None = None, text: str = "") -> None:
    namespace, name = bridge.split(".")
    meta: dict[str, Any] = {"event": event, "app": {"namespace": "argocd", "name": app}}
    if route:
        meta["route"] = route
    body = {
        "recipients": {"type": "entity", "entityRef": ALICE},
        "payload": {
            "title": f"{app}: {event}",
            "description": text or f"{app} {event}",
            "severity": "high",
            "topic": "argocd",
            "scope": f"argocd/argocd/{app}/{event}",
            "link": f"https://argocd.example.com/applications/argocd/{app}",
        },
        "argobridge": meta,
    }
    deadline = time.monotonic() + 20
    while True:
        answer = httpx.post(
            f"{relay.url}/v1/bridges/{namespace}/{name}/notifications",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        if answer.status_code == 202:
            return
        assert time.monotonic() < deadline, f"relay refused: {answer.status_code} {answer.text}"
        time.sleep(0.3)


def alices(backstage: BackstageServer, prefix: str) -> list[dict[str, Any]]:
    """Alice's notifications whose scope starts with `prefix` (each test has its own apps)."""
    return [n for n in backstage.notifications("alice") if str(n["payload"].get("scope", "")).startswith(prefix)]


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_ten_flaps_are_one_notification_with_the_count_and_a_kill_loses_none(
    tmp_path: Path, backstage: BackstageServer
) -> None:
    relay = relay_for(tmp_path, backstage, {"ns.flap": noise(minIntervalSeconds=12.0)})
    try:
        for number in range(10):
            post(relay, "ns.flap", "flappy", "HealthDegraded", text=f"crash {number}")
        scope = "argocd/argocd/flappy/HealthDegraded"
        first = wait_for("the first degraded notification", lambda: alices(backstage, scope))
        assert len(first) == 1 and "crash 0" in first[0]["payload"]["description"]
        # The nine others are held in the relay's state, on disk: a SIGKILL and a restart keep them.
        wait_for("nine waiting", lambda: relay.bridge_status("ns", "flap").get("waiting") == 9, timeout=8)
        relay.kill()
        relay.start()
        wait_for("nine waiting after the restart", lambda: relay.bridge_status("ns", "flap").get("waiting") == 9, 8)
        updated = wait_for(
            "the window's update",
            lambda: [n for n in alices(backstage, scope) if "10 times" in n["payload"]["title"]],
            timeout=30,
        )
        assert len(alices(backstage, scope)) == 1, "flaps must update the one notification, not add others"
        assert "crash 9" in updated[0]["payload"]["description"]
        # Healthy again: the same notification says so (HealthRecovered itself is only a signal).
        post(relay, "ns.flap", "flappy", "HealthRecovered")
        resolved = wait_for(
            "the resolution",
            lambda: [n for n in alices(backstage, scope) if "healthy again" in n["payload"]["title"]],
        )
        assert resolved[0]["payload"]["severity"] == "low"
        assert "Resolved" in resolved[0]["payload"]["description"]
        assert alices(backstage, "argocd/argocd/flappy/HealthRecovered") == []
        assert len(alices(backstage, "argocd/argocd/flappy/")) == 1
        # Three posts to Backstage for eleven events: the first, the window's update, the resolution.
        assert relay.bridge_status("ns", "flap")["delivered"] == 3
        assert relay.bridge_status("ns", "flap")["waiting"] == 0
    finally:
        relay.stop()


def test_a_digest_route_sends_one_notification_listing_every_event(tmp_path: Path, backstage: BackstageServer) -> None:
    relay = relay_for(tmp_path, backstage, {"ns.digest": noise(routes={"digest": {"digest": {"everySeconds": 15.0}}})})
    try:
        apps = ["digest-a", "digest-b", "digest-c"]
        for app in apps:
            post(relay, "ns.digest", app, "SyncFailed", route="digest")
        post(relay, "ns.digest", "digest-a", "SyncFailed", route="digest")
        digests = wait_for(
            "the digest",
            lambda: [n for n in backstage.notifications("alice") if n["payload"].get("topic") == "argobridge.digest"],
            timeout=40,
        )
        assert len(digests) == 1
        text = digests[0]["payload"]["description"]
        for app in apps:
            assert app in text and f"https://argocd.example.com/applications/argocd/{app}" in text
        assert "sync failed twice" in text  # digest-a failed twice: one line with the count
        assert "4 events in 3 applications" in digests[0]["payload"]["title"]
        for app in apps:
            assert alices(backstage, f"argocd/argocd/{app}/") == [], "a digest route sends no single notifications"
    finally:
        relay.stop()


def test_past_the_rate_limit_the_rest_arrive_as_one_summary(tmp_path: Path, backstage: BackstageServer) -> None:
    relay = relay_for(tmp_path, backstage, {"ns.rate": noise(rateLimit={"count": 2, "perSeconds": 10.0})})
    try:
        apps = [f"rated-{number}" for number in range(5)]
        for app in apps:
            post(relay, "ns.rate", app, "SyncFailed")
        wait_for("two notifications", lambda: len(alices(backstage, "argocd/argocd/rated-")) == 2)
        summary = wait_for(
            "the summary",
            lambda: [n for n in backstage.notifications("alice") if n["payload"].get("topic") == "argobridge.summary"],
            timeout=40,
        )
        assert len(summary) == 1 and "3 Argo CD notifications held back" in summary[0]["payload"]["title"]
        held = [app for app in apps if app in summary[0]["payload"]["description"]]
        sent = [app for app in apps if alices(backstage, f"argocd/argocd/{app}/")]
        assert sorted(held + sent) == apps and len(sent) == 2, "every event once: sent or in the summary"
    finally:
        relay.stop()
