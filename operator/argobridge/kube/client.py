"""One Kubernetes API client for the process: in-cluster when running in a Pod, else the kubeconfig.

Every call through it has a deadline (a hung apiserver connection fails a reconcile in seconds instead of
holding the bridge's lock forever), and every write passes the process's `WRITE_GUARD`, which a replica
under leader election closes whenever it cannot prove it still holds the Lease.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
import time
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import parse_qs, urlsplit

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from argobridge.core.lease import may_write

# Connecting to the apiserver takes milliseconds; 3 s is a dead or unreachable server. The read deadline
# bounds one request's wait for an answer (the largest LIST the operator makes answers in well under it).
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 20.0
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def lease_clock() -> float:
    """Seconds on a clock that keeps counting while the process is stopped (SIGSTOP) or the machine
    sleeps: a leader must see all the time that passed, not only the time it ran."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


class LeaseNotHeld(ApiException):
    """A write refused before it left the process: this replica cannot prove it still leads."""

    def __init__(self, method: str) -> None:
        super().__init__(
            status=503,
            reason=f"{method} refused: this replica has not renewed its leader Lease in time and stops; "
            "a standby takes over",
        )


class WriteGuard:
    """Open unless leader election closes it; then writes pass only while the last renewal is recent.

    The leader elector calls `require_lease` before it leads, `confirmed` after each successful renewal
    (with the clock reading taken before the renewal started) and `revoke` when it stops leading.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guarding = False
        self._confirmed_at: float | None = None
        self._renew_deadline = 0.0

    def require_lease(self, renew_deadline: float) -> None:
        with self._lock:
            self._guarding, self._confirmed_at, self._renew_deadline = True, None, renew_deadline

    def confirmed(self, at: float) -> None:
        with self._lock:
            if self._confirmed_at is None or at > self._confirmed_at:
                self._confirmed_at = at

    def revoke(self) -> None:
        with self._lock:
            self._confirmed_at = None

    def allows_writes(self) -> bool:
        with self._lock:
            return not self._guarding or may_write(self._confirmed_at, lease_clock(), self._renew_deadline)

    def check(self, method: str) -> None:
        """Raise `LeaseNotHeld` for a write this replica may not make now; reads always pass."""
        if method.upper() in WRITE_METHODS and not self.allows_writes():
            raise LeaseNotHeld(method.upper())


# The one guard of the process: our client and kopf's HTTP session both check it.
WRITE_GUARD = WriteGuard()


def user_agent() -> str:
    """`argobridge/<version> (<pod>)`: the apiserver's audit log then tells replicas apart."""
    try:
        release = version("argobridge")
    except PackageNotFoundError:
        release = "unknown"
    return f"argobridge/{release} ({os.environ.get('POD_ID') or socket.gethostname()})"


def default_timeout(url: str) -> tuple[float, float | None]:
    """(connect, read) for a call that named none. A watch may stay silent until its server-side
    `timeoutSeconds`, so its read deadline is that plus the usual; a watch without one gets none."""
    query = parse_qs(urlsplit(url).query)
    if query.get("watch", [""])[0].lower() in ("true", "1"):
        seconds = query.get("timeoutSeconds", [""])[0]
        return (CONNECT_TIMEOUT, float(seconds) + READ_TIMEOUT if seconds.isdigit() else None)
    return (CONNECT_TIMEOUT, READ_TIMEOUT)


class GuardedApiClient(client.ApiClient):
    """The kubernetes client's ApiClient with a default deadline on every call and writes behind a guard."""

    def __init__(
        self,
        configuration: client.Configuration | None = None,
        guard: WriteGuard | None = WRITE_GUARD,
        timeout: float | tuple[float, float] | None = None,
    ) -> None:
        super().__init__(configuration)
        self.guard = guard
        self.timeout = timeout
        self.user_agent = user_agent()

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        # Checked here, the last step before the request is sent, so a replica resumed after being
        # stopped refuses even a write whose handler started while it still led.
        if self.guard is not None:
            self.guard.check(method)
        if _request_timeout is None:
            _request_timeout = self.timeout if self.timeout is not None else default_timeout(url)
        return super().call_api(method, url, header_params, body, post_params, _request_timeout)


def with_deadlines(configuration: client.Configuration) -> client.Configuration:
    """The configuration with retries that keep a deadline a deadline: urllib3 retries a timed-out GET
    three times by default, which would multiply it by four; one retry of a failed connect is kept
    (a Service VIP blip), none of a request already sent."""
    configuration.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0)
    return configuration


def _configuration() -> client.Configuration:
    try:
        config.load_incluster_config()
    except ConfigException:
        # KUBECONFIG is read now, not at import time (the client's default is frozen at import).
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
    return with_deadlines(client.Configuration.get_default_copy())


@cache
def api_client() -> GuardedApiClient:
    """The shared API client; credentials are loaded once, the way kubectl would find them."""
    return GuardedApiClient(_configuration())


def lease_api_client(timeout: float) -> GuardedApiClient:
    """A client for the leader elector's own Lease calls: outside the write guard (it is what opens it),
    with the elector's short deadline and no retry, so a renewal attempt never outlasts its period."""
    configuration = copy.deepcopy(api_client().configuration)
    configuration.retries = False
    return GuardedApiClient(configuration, guard=None, timeout=timeout)


def core_v1() -> client.CoreV1Api:
    return client.CoreV1Api(api_client())


def custom_objects() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client())
