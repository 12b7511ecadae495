"""Noise control end to end: the real notifications controller, the real relay and the real Backstage.

The rig is test_relay_wire's (an operator with a relay serving one shard); its bridge is patched here to
a short flap window. What a user notices: one notification per problem that says how often it happened
and that it is over, instead of one per transition and a stale "degraded" for an app that is fine.
Digests and rate limits are proven against the real relay and Backstage in tests/relay/test_relay_noise.py
(their shortest periods in a spec are minutes long).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from kubernetes import client

from argobridge.core.spec import GROUP, PLURAL, VERSION
from tests.conftest import wait_for
from tests.e2e.test_relay_wire import RelayWorld, world  # noqa: F401  (the module's rig)

WINDOW_SECONDS = 20


def stamp(offset: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_with(world: RelayWorld, delivery: dict[str, object]) -> None:  # noqa: F811
    """Patch spec.delivery and wait until the relay's entry carries it (the operator wrote it)."""
    rig = world.rig
    client.CustomObjectsApi().patch_namespaced_custom_object(
        GROUP, VERSION, rig.namespace, PLURAL, "backstage", {"spec": {"delivery": delivery}}
    )
    wait_for(
        lambda: (entry := world.entry()) and entry.get("noise", {}).get("minIntervalSeconds") == float(WINDOW_SECONDS),
        timeout=60,
        what="the relay entry with the bridge's noise settings",
    )
    cm = rig.core.read_namespaced_config_map("argocd-notifications-cm", rig.namespace)
    assert "trigger.on-health-recovered-backstage" in (cm.data or {}), "Relay mode watches the recovery signal"


def test_degraded_then_healthy_leaves_one_notification_that_says_it_recovered(world: RelayWorld):  # noqa: F811
    rig = world.rig
    ready_with(world, {"minInterval": f"{WINDOW_SECONDS}s"})
    rig.create_app("shop-heals")
    time.sleep(1)
    rig.set_status("shop-heals", None, "Degraded", started=stamp())
    degraded = rig.wait_received("alice", "shop-heals", "HealthDegraded", timeout=120)
    assert degraded["payload"]["title"] == "shop-heals: health degraded"
    rig.set_status("shop-heals", None, "Healthy", started=stamp(1))
    healed = wait_for(
        lambda: (
            (found := rig.received("alice", "shop-heals")) and "healthy again" in found[0]["payload"]["title"] and found
        ),
        timeout=120,
        what="the degraded notification resolved in place",
    )
    assert len(healed) == 1, "recovery updates the notification; it adds no 'healthy' one"
    assert healed[0]["payload"]["severity"] == "low" and "Resolved" in healed[0]["payload"]["description"]
    assert rig.received("bob", "shop-heals") == []


def test_twenty_flaps_leave_one_notification_with_the_count(world: RelayWorld):  # noqa: F811
    rig = world.rig
    ready_with(world, {"minInterval": f"{WINDOW_SECONDS}s"})
    rig.create_app("shop-flaps")
    time.sleep(1)
    before = world.relay.bridge_status(rig.namespace, "backstage").get("delivered", 0)
    start = time.monotonic()
    for flap in range(20):
        rig.set_status("shop-flaps", None, "Degraded", started=stamp(2 * flap))
        time.sleep(1.0)
        rig.set_status("shop-flaps", None, "Healthy", started=stamp(2 * flap + 1))
        time.sleep(1.0)
    flapping = time.monotonic() - start
    final = wait_for(
        lambda: (
            (found := rig.received("alice", "shop-flaps"))
            and re.search(r"\((\d+) times in", found[0]["payload"]["title"])
            and "healthy again" in found[0]["payload"]["title"]
            and found
        ),
        timeout=WINDOW_SECONDS * 3 + 60,
        what="the flap window's update with the count, recovered",
    )
    assert len(final) == 1, "every flap updates the same notification"
    count = int(re.search(r"\((\d+) times in", final[0]["payload"]["title"]).group(1))  # type: ignore[union-attr]
    # The engine may fold two quick transitions into one processing; it saw most of the twenty.
    assert 10 <= count <= 20, final[0]["payload"]
    posts = world.relay.bridge_status(rig.namespace, "backstage").get("delivered", 0) - before
    # Forty transitions in about 40 s: the first, its resolution, one update per 20 s window, not forty.
    assert posts <= 2 + flapping / WINDOW_SECONDS + 2, f"{posts} posts to Backstage for 40 transitions"


def test_a_deploy_is_one_notification_that_says_deployed(world: RelayWorld):  # noqa: F811
    """The manual procedure's four triggers give two per deploy (sync succeeded, deployed): here one."""
    rig = world.rig
    ready_with(world, {"minInterval": f"{WINDOW_SECONDS}s"})
    rig.create_app("shop-deploys")
    time.sleep(1)
    rig.set_status("shop-deploys", "Succeeded", "Healthy", "successfully synced", started=stamp())
    deployed = wait_for(
        lambda: (
            (found := rig.received("alice", "shop-deploys"))
            and found[0]["payload"]["title"] == "shop-deploys: deployed"
            and found
        ),
        timeout=120,
        what="one notification saying deployed",
    )
    time.sleep(5)  # both halves were posted by the engine: nothing else arrives
    assert len(rig.received("alice", "shop-deploys")) == 1, rig.received("alice", "shop-deploys")
    assert deployed[0]["payload"]["topic"] == "argocd.deployed"
