"""Leader election for replicas of the operator, on a coordination.k8s.io Lease.

kopf's own peering needs a cluster-wide CRD of its own; a Lease is what Kubernetes' controllers use
and what cluster admins already know how to read (`kubectl get lease`).

Two writers must never overlap, even when a leader is frozen (SIGSTOP, a stalled node, a suspended VM)
for longer than the Lease and then resumes. So a leader does not trust its own belief that it leads:
every write (ours and kopf's) passes a guard that refuses it once the last successful renewal started
more than `renew_deadline` ago, which is `duration / 3` before any standby can take over, and a leader
past that deadline does not try to renew: it stops, and the process exits non-zero so Kubernetes
restarts it as a standby. A standby serves the health endpoint while it waits, so liveness does not
kill it and a RollingUpdate can complete.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.lease import LeaseTiming, held_spec, lease_record, may_hold, may_write
from argobridge.kube.client import WriteGuard, lease_api_client, lease_clock

log = logging.getLogger(__name__)


class LeaderElector:
    """Acquire a Lease, then renew it in the background until stopped or lost.

    `guard` is the write guard this elector opens while it leads; the process's `WRITE_GUARD` in
    `argobridge run`, a private one otherwise (tests run electors beside an operator in one process).
    """

    def __init__(
        self, namespace: str, name: str, identity: str, duration: int = 15, guard: WriteGuard | None = None
    ) -> None:
        self.namespace, self.name, self.identity, self.duration = namespace, name, identity, duration
        self.timing = LeaseTiming.for_duration(duration)
        self.guard = guard if guard is not None else WriteGuard()
        self.guard.require_lease(self.timing.renew_deadline)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._api = client.CoordinationV1Api(lease_api_client(self.timing.call_timeout))
        self._confirmed_at: float | None = None
        self._observed: tuple[str, str, int] | None = None
        self._observed_at = 0.0

    def leads(self) -> bool:
        """Whether this replica may still write: its last renewal started within the renew deadline."""
        return not self.lost.is_set() and may_write(self._confirmed_at, lease_clock(), self.timing.renew_deadline)

    def _confirm(self, started: float) -> bool:
        self._confirmed_at = started
        self.guard.confirmed(started)
        return True

    def try_acquire(self) -> bool:
        """One attempt to take or renew the Lease; False when another replica holds it or won a race."""
        # Read before anything is sent: the standby cannot have seen this renewal earlier than this.
        started = lease_clock()
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            body = {
                "metadata": {"name": self.name},
                "spec": held_spec(None, self.identity, self.duration, datetime.now(UTC)),
            }
            try:
                self._api.create_namespaced_lease(self.namespace, body)
            except ApiException as create_error:
                if create_error.status == 409:
                    return False
                raise
            return self._confirm(started)
        spec = self._api.api_client.sanitize_for_serialization(lease.spec) or {}
        record = lease_record(spec)
        if record != self._observed:
            self._observed, self._observed_at = record, lease_clock()
        if not may_hold(spec, self.identity, lease_clock() - self._observed_at):
            return False
        lease.spec = held_spec(spec, self.identity, self.duration, datetime.now(UTC))
        try:
            # resourceVersion from the read: a replica that renewed in between makes this a 409.
            self._api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return self._confirm(started)

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until this replica leads (True) or `stop` is set (False)."""
        announced = False
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                if self.try_acquire():
                    log.info("Leading as %s (Lease %s/%s)", self.identity, self.namespace, self.name)
                    return True
            except Exception as error:  # an apiserver that is down or slow: keep waiting
                log.warning("Could not read Lease %s/%s: %s", self.namespace, self.name, type(error).__name__)
            if not announced:
                log.info("Waiting for Lease %s/%s held by another replica", self.namespace, self.name)
                announced = True
            stop.wait(self.timing.retry_period)
        return False

    def keep_renewing(self, on_lost: threading.Event) -> threading.Thread:
        """Renew every retry period; at the renew deadline without a renewal, or when another replica
        holds the Lease, close the write guard and set `on_lost`."""

        def renew() -> None:
            next_at = (self._confirmed_at or lease_clock()) + self.timing.retry_period
            while not self._stop.wait(max(0.0, next_at - lease_clock())):
                started = lease_clock()
                if not self.leads():
                    ago = started - (self._confirmed_at or started)
                    log.error(
                        "Lease %s/%s not renewed for %.1fs (renew deadline %.1fs); stopping",
                        self.namespace,
                        self.name,
                        ago,
                        self.timing.renew_deadline,
                    )
                    break
                try:
                    if not self.try_acquire():
                        holder = self._observed[0] if self._observed else ""
                        if holder not in ("", self.identity):
                            log.error("Lease %s/%s was taken by %s; stopping", self.namespace, self.name, holder)
                            break
                        # A 409 on a Lease we held a moment ago: the next attempt reads it again.
                        log.warning("Lease %s/%s changed while renewing; retrying", self.namespace, self.name)
                except Exception as error:
                    log.warning("Could not renew Lease %s/%s: %s", self.namespace, self.name, type(error).__name__)
                next_at = started + self.timing.retry_period
            else:
                return  # stopped by release()
            self.guard.revoke()
            self.lost.set()
            on_lost.set()

        thread = threading.Thread(target=renew, name="lease-renewal", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Stop renewing and hand the Lease over at once, so a standby does not wait a full duration."""
        self._stop.set()
        still_leads = self.leads() and not self.lost.is_set()
        self.guard.revoke()
        if not still_leads:
            return
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                self._api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as error:
            log.warning("Could not release Lease %s/%s: HTTP %s", self.namespace, self.name, error.status)
        except Exception as error:
            log.warning("Could not release Lease %s/%s: %s", self.namespace, self.name, type(error).__name__)


def exit_if_stuck(lost: threading.Event, grace: float) -> threading.Thread:
    """Once `lost` is set, give the operator `grace` seconds to stop, then end the process (exit 1):
    a replica that no longer leads must not linger with a healthy liveness endpoint."""

    def watch() -> None:
        lost.wait()
        time.sleep(grace)
        log.error("The operator did not stop %.0fs after losing the Lease; exiting", grace)
        os._exit(1)

    thread = threading.Thread(target=watch, name="lease-lost-watchdog", daemon=True)
    thread.start()
    return thread


class StandbyHealth:
    """Answers the health endpoint (kopf's `--liveness` URL) while this replica waits for the Lease.

    kopf serves it only once it runs, which is only once this replica leads; without this, liveness
    would kill every standby and a RollingUpdate would wait forever for a new pod to become Ready.
    """

    def __init__(self, endpoint: str | None, lease: str) -> None:
        self.endpoint, self.lease = endpoint, lease
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> StandbyHealth:
        if not self.endpoint:
            return self
        url = urlsplit(self.endpoint)
        path, body = url.path or "/", json.dumps({"standby": True, "lease": self.lease}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path.split("?")[0] == path
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body if found else b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a probe every few seconds is not worth a log line

        self._server = ThreadingHTTPServer((url.hostname or "0.0.0.0", url.port or 80), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="standby-health", daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        # Freed before kopf binds the same port for its own endpoint.
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
