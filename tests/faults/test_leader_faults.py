"""Leader election and Kubernetes deadlines under faults: two real operator processes on one Lease,
a leader frozen (SIGSTOP) past its Lease and resumed, and an apiserver connection that never answers.

The two replicas run on a control plane of their own with an audit log of every write, so the proof
is what the apiserver received, not what the processes believe: each replica has its own identity
(POD_ID), which is in the User-Agent of every request it makes, its own client and kopf's alike.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge.kube import client as kube_client
from argobridge.kube.client import GuardedApiClient, LeaseNotHeld, WriteGuard
from argobridge_dev.chart import render_chart
from argobridge_dev.controlplane import ControlPlane, free_port
from argobridge_dev.engine import argocd_crd_documents
from argobridge_dev.operatorproc import OperatorProcess
from tests.conftest import FIGURES, wait_for

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "argocd"
LEASE = "argobridge-faults"
LEASE_SECONDS = 10
SHARD = f"leader-{uuid.uuid4().hex[:6]}"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass
class Plane:
    plane: ControlPlane
    admin: client.ApiClient


@pytest.fixture(scope="module")
def audited_plane() -> Iterator[Plane]:
    """A control plane whose audit log records every write with its User-Agent, with the CRDs installed."""
    plane = ControlPlane(audit=True).start()
    try:
        admin = config.new_client_from_config(config_file=str(plane.kubeconfig))
        extensions = client.ApiextensionsV1Api(admin)
        ours = yaml.safe_load((REPO / "manifests/crds/backstagebridges.argobridge.io.yaml").read_text())
        for document in [ours, *argocd_crd_documents()]:
            extensions.create_custom_resource_definition(document)

        def established() -> bool:
            return all(
                any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))
                for crd in extensions.list_custom_resource_definition().items
            )

        wait_for(established, what="CRDs established")
        core = client.CoreV1Api(admin)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        # The Argo CD objects a bridge configures (the stand-in Argo CD of this test).
        core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "argocd-notifications-cm"}})
        core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "argocd-notifications-secret"}})
        yield Plane(plane, admin)
    finally:
        plane.stop()


def sharded_replica(identity: str, kubeconfig: Path, log: Path) -> OperatorProcess:
    """One `argobridge run --leader-election` replica serving this file's shard, on its own Lease."""
    env = {
        "POD_NAMESPACE": NAMESPACE,
        "ARGOBRIDGE_LEASE_NAME": LEASE,
        "ARGOBRIDGE_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    return OperatorProcess(
        kubeconfig, SHARD, log, env=env, namespaces=[NAMESPACE], leader_election=True, identity=identity
    )


def lease_holder(admin: client.ApiClient, name: str = LEASE) -> str | None:
    try:
        lease = client.CoordinationV1Api(admin).read_namespaced_lease(name, NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return lease.spec.holder_identity


def audit_writes(plane: ControlPlane, identity: str) -> list[dict[str, Any]]:
    """Every write the apiserver received from one replica (its identity is in its User-Agent)."""
    events = [json.loads(line) for line in plane.audit_log.read_text().splitlines() if line.strip()]
    return [
        event
        for event in events
        if event.get("verb") in WRITE_VERBS and f"({identity})" in (event.get("userAgent") or "")
    ]


def describe(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    return f"{event['requestReceivedTimestamp']} {event['verb']} {ref.get('resource')}/{ref.get('name')}"


class SpecEditor:
    """A platform engineer editing the bridge twice a second: every edit is a new generation the leader
    must write (status.observedGeneration, the context in argocd-notifications-cm)."""

    def __init__(self, admin: client.ApiClient, name: str) -> None:
        self.api, self.name, self.edits = client.CustomObjectsApi(admin), name, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.edits += 1
            url = f"https://argocd-{self.edits % 2}.example.com"
            self.api.patch_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, self.name, {"spec": {"argocd": {"url": url}}}
            )

    def __enter__(self) -> SpecEditor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_a_leader_frozen_past_its_lease_writes_nothing_after_the_standby_takes_over_and_exits_non_zero(
    audited_plane: Plane, tmp_path: Path
) -> None:
    plane, admin = audited_plane.plane, audited_plane.admin
    custom = client.CustomObjectsApi(admin)
    name = "backstage"
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "BackstageBridge",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {f"{GROUP}/shard": SHARD}},
            "spec": {"backstage": {"url": "http://127.0.0.1:9"}},
        },
    )
    first = sharded_replica("replica-a", plane.kubeconfig, tmp_path / "replica-a.log").start()
    second = sharded_replica("replica-b", plane.kubeconfig, tmp_path / "replica-b.log")
    try:
        wait_for(lambda: first.alive() and lease_holder(admin) == "replica-a", timeout=60, what="replica-a leads")
        second.start()
        # The standby is healthy while it waits: liveness keeps it, a RollingUpdate sees it Ready.
        status, body = wait_for(lambda: second.alive() and second.health(), timeout=60, what="the standby's /healthz")
        assert status == 200 and json.loads(body)["standby"] is True
        time.sleep(LEASE_SECONDS * 1.5)  # longer than the Lease: the leader's renewals must have kept it
        assert second.alive() and second.health() is not None and lease_holder(admin) == "replica-a"

        with SpecEditor(admin, name) as editor:
            wait_for(lambda: audit_writes(plane, "replica-a"), timeout=60, what="a write by replica-a")
            os.kill(first.pid, signal.SIGSTOP)
            stopped = time.monotonic()
            wait_for(lambda: lease_holder(admin) == "replica-b", timeout=60, interval=0.2, what="replica-b leads")
            took_over = time.monotonic() - stopped
            wait_for(
                lambda: any(e["objectRef"].get("resource") != "leases" for e in audit_writes(plane, "replica-b")),
                timeout=60,
                what="replica-b writing the bridge's objects",
            )
            os.kill(first.pid, signal.SIGCONT)
            resumed = time.monotonic()
            assert first.process is not None
            code = first.process.wait(timeout=90)
            exited = time.monotonic() - resumed
            edits = editor.edits
        assert code != 0, "the resumed leader must exit non-zero so that Kubernetes restarts it as a standby"
        assert second.alive() and lease_holder(admin) == "replica-b"
        assert second.health() is not None
    finally:
        first.stop()
        second.stop()

    old, new = audit_writes(plane, "replica-a"), audit_writes(plane, "replica-b")
    takeover = min(e["requestReceivedTimestamp"] for e in new)
    after = [describe(e) for e in old if e["requestReceivedTimestamp"] >= takeover]
    assert not after, f"replica-a wrote after replica-b took the Lease at {takeover}: {after}"
    seconds_a = {e["requestReceivedTimestamp"][:19] for e in old}
    seconds_b = {e["requestReceivedTimestamp"][:19] for e in new}
    assert not seconds_a & seconds_b, f"both replicas wrote in the same second: {sorted(seconds_a & seconds_b)}"
    last_old = max(e["requestReceivedTimestamp"] for e in old)
    refused = first.log().count("refused: this replica has not renewed")
    FIGURES.append(
        f"leader election: SIGSTOP leader replaced {took_over:.1f}s later (Lease {LEASE_SECONDS}s); "
        f"old leader {len(old)} writes, last {last_old}, new leader first {takeover}; "
        f"{refused} writes refused by the resumed leader, exit code {code} {exited:.1f}s after SIGCONT; "
        f"{edits} spec edits"
    )


def test_a_rolling_update_of_the_chart_completes_because_the_new_pod_is_ready_as_a_standby(
    audited_plane: Plane, tmp_path: Path
) -> None:
    admin = audited_plane.admin

    def rendered(health_port: int) -> dict[str, Any]:
        text = render_chart(
            *("--set", "leaderElection.enabled=true", "--set", "replicaCount=2"),
            *("--set", f"watchNamespaces={{{NAMESPACE}}}", "--set", f"health.port={health_port}"),
            *("--set", "metrics.enabled=false", "--set", "operator.logFormat=plain"),
            *("--set", f"leaderElection.leaseDurationSeconds={LEASE_SECONDS}"),
            namespace=NAMESPACE,
        )
        return next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment")

    # Two revisions of the Deployment, as an upgrade makes them (a port of their own each: one machine).
    old_revision, new_revision = rendered(free_port()), rendered(free_port())
    assert new_revision["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    container = new_revision["spec"]["template"]["spec"]["containers"][0]
    lease = next(e["value"] for e in container["env"] if e["name"] == "ARGOBRIDGE_LEASE_NAME")
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert {probe["port"] for probe in probes.values()} == {"health"}
    old = OperatorProcess.from_chart(
        old_revision, "argobridge-7d9f8c6b5-old01", NAMESPACE, audited_plane.plane.kubeconfig, tmp_path / "old.log"
    )
    new = OperatorProcess.from_chart(
        new_revision, "argobridge-5c4b7f9d8-new01", NAMESPACE, audited_plane.plane.kubeconfig, tmp_path / "new.log"
    )
    try:
        old.start()
        wait_for(
            lambda: old.alive() and lease_holder(admin, lease) == old.identity, timeout=60, what="the old pod leads"
        )
        new.start()
        # What the kubelet asks the new pod: alive and Ready while the old pod still holds the Lease.
        for kind, probe in probes.items():
            answer = wait_for(lambda p=probe: new.alive() and new.health(p["path"]), timeout=60, what=f"new pod {kind}")
            assert answer[0] == 200, (kind, answer)
        assert lease_holder(admin, lease) == old.identity
        # Ready, so with maxUnavailable 0 the Deployment controller may now stop an old pod (SIGTERM).
        assert old.process is not None
        old.process.terminate()
        stopped = time.monotonic()
        assert old.process.wait(timeout=60) == 0, old.log()[-3000:]
        wait_for(lambda: lease_holder(admin, lease) == new.identity, timeout=30, what="the new pod leads")
        handed_over = time.monotonic() - stopped
        for kind, probe in probes.items():
            answer = wait_for(lambda p=probe: new.alive() and new.health(p["path"]), timeout=60, what=f"leader {kind}")
            assert answer[0] == 200, (kind, answer)
    finally:
        old.stop()
        new.stop()
    FIGURES.append(f"chart rollout: the new pod led {handed_over:.1f}s after the old pod got SIGTERM")


def test_a_replica_that_does_not_lead_refuses_writes_before_they_are_sent(audited_plane: Plane) -> None:
    guard = WriteGuard()
    guard.require_lease(renew_deadline=10)  # as `argobridge run --leader-election` does before it leads
    api = client.CoreV1Api(GuardedApiClient(audited_plane.admin.configuration, guard=guard))
    name = f"never-written-{uuid.uuid4().hex[:6]}"
    with pytest.raises(LeaseNotHeld, match="has not renewed its leader Lease"):
        api.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": name}})
    assert [c.metadata.name for c in api.list_namespaced_config_map(NAMESPACE).items if c.metadata.name == name] == []
    guard.confirmed(kube_client.lease_clock())
    api.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": name}})
    api.delete_namespaced_config_map(name, NAMESPACE)


class FakeHungApiserver:
    """A TCP listener that accepts connections, reads what is sent and never answers: what a client sees
    of an apiserver behind a stalled load balancer or a half-open connection (a real one cannot be made
    to hang)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        for connection in [*self.connections, self._listener]:
            connection.close()


def test_kopfs_own_writes_pass_the_same_guard_and_are_refused_before_a_connection_is_made() -> None:
    import asyncio

    import aiohttp
    import kopf

    from argobridge.runtime.operator_main import kopf_session

    server = FakeHungApiserver()
    guard = WriteGuard()
    guard.require_lease(renew_deadline=10)
    base = f"http://127.0.0.1:{server.port}/api/v1/namespaces/argocd/configmaps/x"

    async def attempts() -> tuple[BaseException | None, int, BaseException | None]:
        session = kopf_session(kopf.ConnectionInfo(server=f"http://127.0.0.1:{server.port}"), guard).aiohttp_session
        refused: BaseException | None = None
        read_error: BaseException | None = None
        async with session:
            try:
                await session.patch(base, json={"metadata": {"finalizers": ["argobridge.io/finalizer"]}})
            except LeaseNotHeld as error:
                refused = error
            connections_after_patch = len(server.connections)
            try:
                await session.get(base, timeout=aiohttp.ClientTimeout(total=1))
            except TimeoutError as error:
                read_error = error
        return refused, connections_after_patch, read_error

    try:
        refused, connections_after_patch, read_error = asyncio.run(attempts())
    finally:
        server.close()
    assert isinstance(refused, LeaseNotHeld), "kopf's PATCH (a finalizer) was not refused"
    assert connections_after_patch == 0, "the refused write opened a connection"
    # Reads are not guarded: the GET went out and timed out on the hung server.
    assert isinstance(read_error, TimeoutError)


def calls_in_threads(calls: dict[str, Any], limit: float) -> dict[str, tuple[BaseException | None, float]]:
    """Run each call at once in a thread of its own; the error each ended with and how long it took.
    A call still running after `limit` seconds is a hang, which is the bug this file exists to catch."""
    outcome: dict[str, tuple[BaseException | None, float]] = {}
    started = time.monotonic()

    def run(name: str, call: Any) -> None:
        error: BaseException | None = None
        try:
            call()
        except BaseException as raised:
            error = raised
        outcome[name] = (error, time.monotonic() - started)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, limit - (time.monotonic() - started)))
    hung = sorted(set(calls) - set(outcome))
    assert not hung, f"still waiting on the hung apiserver after {limit:.0f}s: {hung}"
    return outcome


def test_a_hung_apiserver_connection_fails_the_call_instead_of_holding_it_forever() -> None:
    server = FakeHungApiserver()
    try:
        configuration = kube_client.with_deadlines(client.Configuration(host=f"http://127.0.0.1:{server.port}"))
        api = client.CoreV1Api(GuardedApiClient(configuration, guard=None))
        # The leader's own Lease calls have the elector's much shorter deadline.
        lease_api = client.CoordinationV1Api(GuardedApiClient(configuration, guard=None, timeout=1.0))
        outcome = calls_in_threads(
            {
                "GET": lambda: api.read_namespaced_config_map("x", "argocd"),
                "PATCH": lambda: api.patch_namespaced_config_map("x", "argocd", {"data": {"k": "v"}}),
                "Lease GET": lambda: lease_api.read_namespaced_lease("l", "argocd"),
            },
            limit=3 * (kube_client.CONNECT_TIMEOUT + kube_client.READ_TIMEOUT),
        )
    finally:
        server.close()
    for error, _ in outcome.values():
        assert isinstance(error, urllib3.exceptions.ReadTimeoutError | urllib3.exceptions.MaxRetryError), error
        assert "timed out" in str(error).lower()
    FIGURES.append(
        "hung apiserver: "
        + ", ".join(f"{name} failed after {seconds:.1f}s" for name, (_, seconds) in outcome.items())
        + f" (read deadline {kube_client.READ_TIMEOUT:.0f}s; the Lease client's 1s)"
    )
