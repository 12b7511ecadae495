"""The Relay-mode configuration loads in the real Argo CD engine and sends the same bodies as Direct mode.

One parse error silences every notification of the instance (argocd-facts.md): the relay's service URL
(with a port, the bridge's namespace and name in its path) must load exactly like Backstage's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from argobridge.core.deliveryplan import plan_delivery
from argobridge.core.events import CATALOG
from argobridge.core.render import render_notifications_config
from argobridge.core.spec import EventName, parse_bridge_spec
from argobridge.relay.noise import for_backstage
from argobridge_dev.engine import OfflineEngine
from tests.contract.test_engine_contract import ARGOCD_URL, CORPUS

RELAY = "http://argobridge-relay.argobridge.svc:8090"
SPEC = {
    "backstage": {"url": "https://backstage.example.com", "insecureSkipVerify": True},
    "events": [{"event": e.value} for e in EventName],
    "delivery": {"mode": "Relay", "retryFor": "3d", "attemptTimeout": "20s"},
}


def config(relayed: bool) -> dict[str, str]:
    spec = parse_bridge_spec(SPEC, "team-a")
    plan = plan_delivery(spec, "team-a", "bridge-1", RELAY if relayed else "", relayed)
    rendered = render_notifications_config(spec, ARGOCD_URL, plan)
    data = dict(rendered.owned)
    data["context"] = "".join(f"{key}: {value}\n" for key, value in rendered.context.items())
    return data


@pytest.fixture(scope="module")
def relayed() -> OfflineEngine:
    return OfflineEngine(config(True), {"backstage-token": "contract-test-token"})


@pytest.fixture(scope="module")
def direct() -> OfflineEngine:
    return OfflineEngine(config(False), {"backstage-token": "contract-test-token"})


def test_relay_mode_configuration_loads_every_trigger(relayed: OfflineEngine):
    assert set(relayed.load()) == {definition.trigger for definition in CATALOG.values()}


def test_relay_service_points_at_the_bridges_ingress():
    assert f"url: {RELAY}/v1/bridges/team-a/bridge-1/notifications" in config(True)["service.webhook.backstage"]


@pytest.mark.parametrize("case", ["failed-hostile-message", "degraded"])
def test_relay_mode_sends_the_same_post_as_direct_mode(relayed: OfflineEngine, direct: OfflineEngine, case: str):
    application: dict[str, Any] = CORPUS[case]
    template = CATALOG[EventName.SYNC_FAILED if case.startswith("failed") else EventName.HEALTH_DEGRADED].template
    sent = relayed.notify(template, application)["webhook"]["backstage"]
    posted = direct.notify(template, application)["webhook"]["backstage"]
    assert sent["method"] == "POST"
    relayed_body, direct_body = json.loads(sent["body"]), json.loads(posted["body"])
    # The relay's own part (what noise control and catalog recipients read), and nothing else differs:
    # what the relay forwards to Backstage is exactly what Direct mode posts.
    event = "SyncFailed" if case.startswith("failed") else "HealthDegraded"
    metadata = application["metadata"]
    assert relayed_body["argobridge"] == {
        "event": event,
        "app": {"namespace": metadata["namespace"], "name": metadata["name"]},
    }
    assert for_backstage(relayed_body) == direct_body
    assert {k: v for k, v in sent.items() if k != "body"} == {k: v for k, v in posted.items() if k != "body"}
