"""Leader election for replicas of the operator, on a coordination.k8s.io Lease.

kopf's own peering needs a cluster-wide CRD of its own; a Lease is what Kubernetes' controllers use
and what cluster admins already know how to read (`kubectl get lease`). A replica that is not the
leader waits; a leader that cannot renew in time stops its operator, so two never write at once.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.lease import held_spec, may_hold
from argobridge.kube.client import api_client

log = logging.getLogger(__name__)


class LeaderElector:
    """Acquire a Lease, then renew it in the background until stopped or lost."""

    def __init__(self, namespace: str, name: str, identity: str, duration: int = 15) -> None:
        self.namespace, self.name, self.identity, self.duration = namespace, name, identity, duration
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._api = client.CoordinationV1Api(api_client())

    def try_acquire(self) -> bool:
        """One attempt to take or renew the Lease; False when another replica holds it or won a race."""
        now = datetime.now(UTC)
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            body = {"metadata": {"name": self.name}, "spec": held_spec(None, self.identity, self.duration, now)}
            try:
                self._api.create_namespaced_lease(self.namespace, body)
            except ApiException as create_error:
                if create_error.status == 409:
                    return False
                raise
            return True
        spec = client.ApiClient().sanitize_for_serialization(lease.spec) or {}
        if not may_hold(spec, self.identity, now):
            return False
        lease.spec = held_spec(spec, self.identity, self.duration, now)
        try:
            # resourceVersion from the read: a replica that renewed in between makes this a 409.
            self._api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until this replica leads (True) or `stop` is set (False)."""
        announced = False
        while not (stop and stop.is_set()):
            if self.try_acquire():
                log.info("Leading as %s (Lease %s/%s)", self.identity, self.namespace, self.name)
                return True
            if not announced:
                log.info("Waiting for Lease %s/%s held by another replica", self.namespace, self.name)
                announced = True
            time.sleep(max(1.0, self.duration / 5))
        return False

    def keep_renewing(self, on_lost: threading.Event) -> threading.Thread:
        """Renew every third of the duration; when renewals fail for a whole duration, set `on_lost`."""

        def renew() -> None:
            last_ok = time.monotonic()
            while not self._stop.wait(self.duration / 3):
                try:
                    if self.try_acquire():
                        last_ok = time.monotonic()
                        continue
                    log.error("Lease %s/%s was taken by another replica; stopping", self.namespace, self.name)
                except Exception as error:
                    log.warning("Could not renew Lease %s/%s: %s", self.namespace, self.name, type(error).__name__)
                    if time.monotonic() - last_ok < self.duration * 2 / 3:
                        continue
                self.lost.set()
                on_lost.set()
                return

        thread = threading.Thread(target=renew, name="lease-renewal", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Stop renewing and hand the Lease over at once, so a standby does not wait a full duration."""
        self._stop.set()
        if self.lost.is_set():
            return
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                self._api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as error:
            log.warning("Could not release Lease %s/%s: HTTP %s", self.namespace, self.name, error.status)
