"""Two operator replicas and one Lease on a real apiserver: one leads, the other takes over."""

from __future__ import annotations

import threading
import time

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.runtime.leader import LeaderElector
from tests.conftest import FIGURES, wait_for


def test_standby_takes_over_when_the_leader_releases(namespace: str) -> None:
    first = LeaderElector(namespace, "argobridge", "replica-1", duration=6)
    second = LeaderElector(namespace, "argobridge", "replica-2", duration=6)
    assert first.acquire()
    assert not second.try_acquire()
    lost = threading.Event()
    first.keep_renewing(on_lost=lost)
    time.sleep(7)  # longer than the duration: renewals must have kept it
    assert not second.try_acquire() and not lost.is_set()
    first.release()
    started = time.monotonic()
    assert second.acquire()
    FIGURES.append(f"leader election: standby led {time.monotonic() - started:.2f}s after the leader released")
    lease = client.CoordinationV1Api().read_namespaced_lease("argobridge", namespace)
    assert lease.spec.holder_identity == "replica-2" and lease.spec.lease_transitions == 1


def test_a_leader_that_stops_renewing_is_replaced_after_the_duration(namespace: str) -> None:
    crashed = LeaderElector(namespace, "argobridge", "replica-1", duration=5)
    standby = LeaderElector(namespace, "argobridge", "replica-2", duration=5)
    assert crashed.acquire()  # and then never renews, like a killed pod
    started = time.monotonic()
    wait_for(standby.try_acquire, timeout=15, interval=0.5, what="the standby to take the expired Lease")
    assert time.monotonic() - started >= 4


def test_a_leader_whose_lease_is_taken_stops(namespace: str) -> None:
    leader = LeaderElector(namespace, "argobridge", "replica-1", duration=6)
    assert leader.acquire()
    lost = threading.Event()
    leader.keep_renewing(on_lost=lost)
    api = client.CoordinationV1Api()

    def intrude() -> bool:
        lease = api.read_namespaced_lease("argobridge", namespace)
        lease.spec.holder_identity = "intruder"
        try:
            api.replace_namespaced_lease("argobridge", namespace, lease)
        except ApiException as error:
            if error.status == 409:  # the leader renewed in between: read again
                return False
            raise
        return True

    wait_for(intrude, timeout=10, interval=0.1, what="the intruder's write to the Lease")
    assert lost.wait(10), "the leader kept running after losing its Lease"
    assert not leader.leads()
