"""Proofs 1 and 2 of issue 14: Backstage goes away, the real Argo CD controller keeps sending, nothing is lost
in Relay mode. The Direct half runs the same script at the same time and its count is printed, not asserted
(what Argo CD loses on its own is the engine's behaviour, shown here as a figure)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from argobridge_dev.controlplane import ControlPlane
from tests.conftest import wait_for
from tests.delivery.conftest import (
    Pair,
    RelayWiring,
    Side,
    compare,
    expected_per_user,
    now,
    side_by_side,
    tally,
)

APPS = 50
OUTAGE_SECONDS = 180.0
SYNC_AND_DEGRADE = ("SyncSucceeded", "Deployed", "HealthDegraded")
SYNC = ("SyncSucceeded", "Deployed")
# Argo CD's engine sends a trigger without oncePer (HealthDegraded) again at its next processing of the
# app, at the latest its 60 s resync: the Direct count is read only after that had its chance.
ENGINE_RESYNC_SECONDS = 60.0


@pytest.fixture(scope="module")
def pair(
    control_plane: ControlPlane, relay_wiring: RelayWiring, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    with side_by_side(control_plane, relay_wiring, tmp_path_factory) as ready:
        # One app per side through the whole path (both users, both modes) before anything is broken.
        for side in ready.sides:
            side.create_app("warmup")
        time.sleep(1)
        for side in ready.sides:
            side.set_status("warmup", "Succeeded", "Healthy", "synced", started=now(), revision="warm")
        for side in ready.sides:
            side.wait_received("alice", "warmup", "SyncSucceeded", timeout=90)
        for side in ready.sides:
            side.set_status("warmup", "Succeeded", "Degraded", "degraded", started=now(), revision="warm")
        for side in ready.sides:
            side.wait_received("carol", "warmup", "HealthDegraded", timeout=90)
        yield ready


def relay_complete(pair: Pair, apps: list[str], want: Any) -> bool:
    """Every wanted app x event x user is in Backstage for the Relay side and nothing is pending."""
    _, missing, _ = compare(tally(pair.backstage, pair.relay.namespace, apps), want)  # type: ignore[arg-type]
    return missing == 0 and pair.wiring.pending(pair.relay.namespace) == 0


def describe(name: str, got: Any, want: Any) -> str:
    once, missing, extra = compare(got, want)
    return f"{name} {once}/{len(want)} exactly once, {missing} lost, {extra} extra"


@pytest.mark.timeout(1200)
def test_backstage_down_three_minutes_relay_has_every_event_once_per_user(pair: Pair, figures: list[str]) -> None:
    backstage = pair.backstage
    assert backstage is not None
    apps = [f"app-{index:02d}" for index in range(APPS)]
    for app in apps:
        for side in pair.sides:
            side.create_app(app)
    time.sleep(2)
    want = expected_per_user(apps, SYNC_AND_DEGRADE)
    startup = backstage.startup_seconds

    stopped = time.monotonic()
    backstage.stop()
    synced = now()
    for app in apps:
        for side in pair.sides:
            side.set_status(app, "Succeeded", "Healthy", "synced", started=synced, revision=f"rev-{app}")
    # The sync is over (Argo CD has handed the Relay side's notifications on) before the apps degrade.
    wait_for(
        lambda: pair.wiring.pending(pair.relay.namespace) >= len(apps) * len(SYNC),
        timeout=90,
        interval=1,
        what="the relay holding every sync notification",
    )
    time.sleep(max(0.0, stopped + 60 - time.monotonic()))
    for app in apps:
        for side in pair.sides:
            side.set_status(app, "Succeeded", "Degraded", "degraded", started=synced, revision=f"rev-{app}")
    held = wait_for(
        lambda: (n := pair.wiring.pending(pair.relay.namespace)) >= len(apps) * len(SYNC_AND_DEGRADE) and n,
        timeout=90,
        interval=1,
        what="the relay holding every notification",
    )

    # Back after three minutes: start early by the first start's duration so that it is serving again
    # when they are up (a restart takes 30-50 s here, so the figure says how long it really was away).
    time.sleep(max(0.0, stopped + OUTAGE_SECONDS - startup - time.monotonic()))
    backstage.start()
    back = time.monotonic()
    outage = back - stopped

    wait_for(
        lambda: relay_complete(pair, apps, want), timeout=600, interval=5, what="every Relay notification delivered"
    )
    caught_up = time.monotonic() - back
    time.sleep(max(3.0, back + ENGINE_RESYNC_SECONDS + 15 - time.monotonic()))
    relay_got = tally(backstage, pair.relay.namespace, apps)
    direct_got = tally(backstage, pair.direct.namespace, apps)
    figures.append(
        f"proof 1: Backstage down {outage:.0f}s while {APPS} apps each synced and degraded"
        f" ({len(want)} app x event x user wanted per mode): "
        + describe("Relay", relay_got, want)
        + f" (relay held {held}, all delivered {caught_up:.0f}s after Backstage was back); "
        + describe("Direct", direct_got, want)
    )
    assert dict(relay_got) == dict(want), describe("Relay", relay_got, want)


class Stream(threading.Thread):
    """A steady stream: every `interval`, one new app per side is created and then synced successfully."""

    def __init__(self, sides: tuple[Side, ...], interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.sides, self.interval = sides, interval
        self.stopping = threading.Event()
        self.sent: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            index = 0
            while not self.stopping.is_set():
                name = f"stream-{index:03d}"
                for side in self.sides:
                    side.create_app(name)
                self.stopping.wait(0.3)
                started = now()
                for side in self.sides:
                    side.set_status(name, "Succeeded", "Healthy", "synced", started=started, revision=f"s{index}")
                self.sent.append(name)
                index += 1
                self.stopping.wait(self.interval)
        except BaseException as error:  # reported by the test
            self.error = error


@pytest.mark.timeout(900)
def test_backstage_restarted_under_a_steady_stream_relay_loses_nothing(pair: Pair, figures: list[str]) -> None:
    backstage = pair.backstage
    assert backstage is not None
    stream = Stream(pair.sides)
    stream.start()
    try:
        time.sleep(10)
        began = time.monotonic()
        backstage.restart(token=backstage.token, previous_token=backstage.previous_token)  # stop, then start
        restart = time.monotonic() - began
        time.sleep(10)
    finally:
        stream.stopping.set()
        stream.join(timeout=30)
    assert stream.error is None, stream.error
    apps = list(stream.sent)
    want = expected_per_user(apps, SYNC)
    wait_for(
        lambda: relay_complete(pair, apps, want), timeout=400, interval=3, what="every Relay notification delivered"
    )
    time.sleep(5)
    relay_got = tally(backstage, pair.relay.namespace, apps)
    direct_got = tally(backstage, pair.direct.namespace, apps)
    figures.append(
        f"proof 2: Backstage restarted (stop, then start: {restart:.0f}s) under a stream of {len(apps)} synced apps"
        f" per mode ({len(want)} app x event x user wanted): "
        + describe("Relay", relay_got, want)
        + "; "
        + describe("Direct", direct_got, want)
    )
    assert dict(relay_got) == dict(want), describe("Relay", relay_got, want)
