"""Proof 4 of issue 14: a Backstage that accepts connections and never answers does not silence the other
notifications of the same Argo CD in Relay mode.

Each Argo CD also has the user's own Slack service (a stand-in receiver) subscribed to the same apps. The
engine's webhook client has no timeout and its controller one worker: in Direct mode the first post to the
hung Backstage blocks every later notification of that instance, Slack's included. In Relay mode Argo CD
posts to the relay, which stores and answers at once, and Slack keeps receiving. Both halves run at the same
time over the same window; Direct's count is printed as a figure.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from argobridge_dev.controlplane import ControlPlane
from tests.conftest import wait_for
from tests.delivery.conftest import Pair, RelayWiring, now, side_by_side
from tests.delivery.standins import HungBackstage, SlackStandIn

APPS = 20
WINDOW_SECONDS = 60.0


@pytest.fixture(scope="module")
def hung() -> Iterator[HungBackstage]:
    server = HungBackstage().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandIn]:
    server = SlackStandIn().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pair(
    control_plane: ControlPlane,
    relay_wiring: RelayWiring,
    hung: HungBackstage,
    slack: SlackStandIn,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    with side_by_side(control_plane, relay_wiring, tmp_path_factory, backstage_url=hung.url, slack_url=slack.url) as p:
        yield p


@pytest.mark.timeout(600)
def test_hung_backstage_does_not_stall_slack_in_relay_mode(
    pair: Pair, hung: HungBackstage, slack: SlackStandIn, figures: list[str]
) -> None:
    apps = [f"hung-{index:02d}" for index in range(APPS)]
    for app in apps:
        for side in pair.sides:
            side.create_app(app, slack=True)
    time.sleep(2)
    began = time.monotonic()
    for index, app in enumerate(apps):
        started = now()
        for side in pair.sides:
            side.set_status(app, "Succeeded", "Healthy", "synced", started=started, revision=f"r{index}")
        time.sleep(0.5)
    # Relay mode: every sync reaches Slack within the window (waiting ends early once all are there).
    wait_for(
        lambda: set(slack.apps(pair.relay.namespace)) >= set(apps),
        timeout=WINDOW_SECONDS,
        interval=1,
        what="Slack receiving every sync of the Relay side",
    )
    time.sleep(max(0.0, began + WINDOW_SECONDS - time.monotonic()))
    relay_slack, direct_slack = slack.apps(pair.relay.namespace), slack.apps(pair.direct.namespace)
    figures.append(
        f"proof 4: Backstage accepting connections and never answering ({hung.accepted} connections held),"
        f" {APPS} synced apps, Slack messages within {WINDOW_SECONDS:.0f}s:"
        f" Relay {sum(relay_slack.values())}/{APPS}, Direct {sum(direct_slack.values())}/{APPS}"
        f" (relay holding {pair.wiring.pending(pair.relay.namespace)} for Backstage)"
    )
    assert relay_slack == Counter(dict.fromkeys(apps, 1)), "Slack gets each sync exactly once in Relay mode"
