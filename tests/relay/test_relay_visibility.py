"""What a real relay process shows about its deliveries: /v1/status and /metrics, a held queue on a
refused token (and its release once the token is fixed), dead letters, and TLS toward Backstage with
the bridge's CA bundle. The Backstage on the other side is the real test backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from argobridge_dev.backstage import BackstageServer
from argobridge_dev.controlplane import free_port
from argobridge_dev.relayproc import RelayProcess, config_entry
from tests.conftest import wait_for
from tests.e2e.tls_terminator import TlsTerminator

TOKEN = "relay-visibility-token-0123456789"
WRONG = "relay-visibility-wrong-token-9876543210"


@pytest.fixture(scope="module")
def backstage() -> Iterator[BackstageServer]:
    with BackstageServer(token=TOKEN) as server:
        yield server


def entry(url: str, token: str = TOKEN, **extra: Any) -> dict[str, Any]:
    return config_entry(url, token, **extra)


def create_url(base: str) -> str:
    return f"{base}/api/notifications/notifications"


def relay_with(tmp_path: Path, bridges: dict[str, dict[str, Any]]) -> RelayProcess:
    relay = RelayProcess(tmp_path / "relay", config_file=tmp_path / "relay-config.json")
    relay.write_config(bridges)
    return relay


def send(relay: RelayProcess, bridge: str, scope: str, token: str = TOKEN) -> None:
    """POST one notification as Argo CD's webhook would (retrying until the relay has read its config)."""
    namespace, name = bridge.split(".", 1)
    relay.send_until_accepted(namespace, name, scope, token, f"relay visibility {scope}")


def metrics(relay: RelayProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{relay.status_url}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scoped(backstage: BackstageServer, scope: str) -> list[dict[str, Any]]:
    return [n for n in backstage.notifications("guest") if n["payload"].get("scope") == scope]


def test_a_delivery_shows_its_time_in_status_and_its_counts_in_metrics(
    tmp_path: Path, backstage: BackstageServer
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    with relay_with(tmp_path, {"ns.vis": entry(create_url(backstage.url))}) as relay:
        scope = f"vis-{time.time_ns()}"
        send(relay, "ns.vis", scope)
        status = wait_for(
            lambda: (s := relay.bridge_status("ns", "vis")).get("delivered") == 1 and s, what="one delivery"
        )
        delivered_at = datetime.strptime(status["lastDeliveryTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert before <= delivered_at <= datetime.now(UTC) + timedelta(seconds=1)
        assert status["pending"] == 0 and status["oldestPendingSeconds"] is None and status["held"] is None
        assert len(scoped(backstage, scope)) == 1
        seen = metrics(relay)
        assert seen[("argobridge_relay_received_total", (("bridge", "ns/vis"),))] == 1
        assert seen[("argobridge_relay_delivered_total", (("bridge", "ns/vis"), ("result", "delivered")))] == 1
        assert seen[("argobridge_relay_queue_depth", (("bridge", "ns/vis"),))] == 0
        assert seen[("argobridge_relay_delivery_latency_seconds_count", ())] == 1
    assert TOKEN not in relay.log()


def test_a_refused_token_holds_the_queue_and_the_fixed_token_delivers_each_once(
    tmp_path: Path, backstage: BackstageServer
) -> None:
    url = create_url(backstage.url)
    with relay_with(tmp_path, {"ns.held": entry(url, token=WRONG)}) as relay:
        scopes = [f"held-{i}-{time.time_ns()}" for i in range(3)]
        for scope in scopes:
            send(relay, "ns.held", scope, token=WRONG)
        status = wait_for(lambda: (s := relay.bridge_status("ns", "held")).get("held") and s, what="queue held")
        assert "401" in status["held"]
        time.sleep(3)  # a held queue stays held: nothing dropped, nothing dead-lettered
        status = relay.bridge_status("ns", "held")
        assert (status["pending"], status["delivered"], status["deadLettered"]) == (3, 0, 0)
        assert status["held"] and status["oldestPendingSeconds"] > 0
        assert metrics(relay)[("argobridge_relay_queue_depth", (("bridge", "ns/held"),))] == 3
        assert all(scoped(backstage, scope) == [] for scope in scopes)

        relay.write_config({"ns.held": entry(url, token=TOKEN)})
        # Well under the 30 s hold interval: a changed config entry is tried again at once.
        status = wait_for(
            lambda: (s := relay.bridge_status("ns", "held")).get("delivered") == 3 and s,
            timeout=15,
            what="the held queue delivered",
        )
        assert (status["pending"], status["deadLettered"], status["held"]) == (0, 0, None)
        time.sleep(2)
        assert relay.bridge_status("ns", "held")["delivered"] == 3
        assert [len(scoped(backstage, scope)) for scope in scopes] == [1, 1, 1]
        seen = metrics(relay)
        assert seen[("argobridge_relay_delivered_total", (("bridge", "ns/held"), ("result", "delivered")))] == 3
    log = relay.log()
    assert TOKEN not in log and WRONG not in log


def test_a_notification_given_up_is_listed_in_recent_dead_letters(tmp_path: Path) -> None:
    # Nothing listens on this port: what the relay sees of a Backstage that is stopped.
    stopped = f"http://127.0.0.1:{free_port()}"
    bridge = entry(create_url(stopped), retryForSeconds=1.0, attemptTimeoutSeconds=1.0)
    with relay_with(tmp_path, {"ns.dead": bridge}) as relay:
        scope = f"dead-{time.time_ns()}"
        send(relay, "ns.dead", scope)
        status = wait_for(
            lambda: (s := relay.bridge_status("ns", "dead")).get("deadLettered") == 1 and s,
            timeout=30,
            what="a dead letter",
        )
        assert status["pending"] == 0 and status["delivered"] == 0
        (letter,) = status["recentDeadLetters"]
        assert letter["scope"] == scope
        assert letter["reason"] and TOKEN not in letter["reason"]
        datetime.strptime(letter["time"], "%Y-%m-%dT%H:%M:%SZ")
        assert status["lastDeliveryTime"] is None
        seen = metrics(relay)
        assert seen[("argobridge_relay_delivered_total", (("bridge", "ns/dead"), ("result", "deadLettered")))] == 1


def test_tls_toward_backstage_uses_the_bridges_ca_bundle(tmp_path: Path, backstage: BackstageServer) -> None:
    tls = TlsTerminator(backstage.port, tmp_path).start()
    try:
        url = create_url(tls.url)
        pem = tls.cert.read_text()
        bridges = {"ns.trusted": entry(url, caBundle=pem), "ns.untrusted": entry(url)}
        with relay_with(tmp_path, bridges) as relay:
            trusted, untrusted = f"tls-ca-{time.time_ns()}", f"tls-none-{time.time_ns()}"
            send(relay, "ns.trusted", trusted)
            send(relay, "ns.untrusted", untrusted)
            wait_for(lambda: relay.bridge_status("ns", "trusted").get("delivered") == 1, what="delivered over TLS")
            # Without the bundle the self-signed certificate is refused: kept and retried, never sent.
            status = wait_for(
                lambda: (s := relay.bridge_status("ns", "untrusted")).get("lastError") and s, what="a TLS failure"
            )
            assert (status["delivered"], status["pending"]) == (0, 1)
            assert len(scoped(backstage, trusted)) == 1 and scoped(backstage, untrusted) == []

            relay.write_config({**bridges, "ns.untrusted": entry(url, insecureSkipVerify=True)})
            wait_for(
                lambda: relay.bridge_status("ns", "untrusted").get("delivered") == 1,
                timeout=20,
                what="delivered once verification is skipped",
            )
            assert len(scoped(backstage, untrusted)) == 1
    finally:
        tls.stop()
