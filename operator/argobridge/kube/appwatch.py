"""List and watch Argo CD's Applications as metadata only, in pages, on a thread of its own.

Why not kopf: kopf lists a resource in one unpaginated request and keeps every full object (status,
resource tree, history: tens of KB for a real Application) in flight per object, with a worker and a
memory per Application; at 10,000 Applications that was most of the operator's RSS and of its start
time, and every annotation ArgoBridge wrote came back as a full object for kopf to process. Decisions
here read only names, uids, labels, annotations and managedFields, which PartialObjectMetadata carries.

One thread per scope (all namespaces, or each served namespace) lists in pages of `PAGE_SIZE`, watches
from the list's resourceVersion, resumes from the last version seen, relists on 410 Gone and backs off
on errors. A relist reports which uids exist, so Applications deleted while no watch ran are forgotten.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from argobridge.kube.client import custom_objects
from argobridge.kube.namewatch import (
    CONNECT_TIMEOUT,
    LIST_METADATA,
    LIST_TIMEOUT,
    MAX_BACKOFF,
    READ_TIMEOUT,
    WATCH_METADATA,
    WATCH_SECONDS,
)

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
# Small enough that a page of metadata is a few MB at most, large enough that 10,000 apps are 20 requests.
PAGE_SIZE = 500

Metadata = Mapping[str, Any]


class AppSink(Protocol):
    """Where the watch reports (from its thread): a list begins, an app as it is now, an app gone, and a
    list's end with the uids it found per namespace (a cluster-wide list covers every namespace)."""

    def list_begins(self, scope: str | None) -> None: ...

    def put(self, metadata: Metadata) -> None: ...

    def remove(self, uid: str) -> None: ...

    def list_ends(self, scope: str | None, present: Mapping[str, set[str]]) -> None: ...


class ApplicationWatch:
    """List and watch the Applications of one namespace (or, with None, of all)."""

    def __init__(self, namespace: str | None, sink: AppSink, stop: threading.Event, api: Any = None) -> None:
        self.namespace, self.sink, self.stop = namespace, sink, stop
        self._api = api  # a CustomObjectsApi; None: the operator's shared client
        self.version: str | None = None  # where a watch resumes; None: list first
        self._response: Any = None
        self._lock = threading.Lock()
        self._failing = False  # warn once per run of failures (a missing CRD would warn every 30 s)

    def _request(self, **kwargs: Any) -> Any:
        api = self._api or custom_objects()
        if self.namespace is None:
            return api.list_cluster_custom_object(GROUP, VERSION, PLURAL, _preload_content=False, **kwargs)
        return api.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, _preload_content=False, **kwargs
        )

    def _relist(self) -> str:
        """List every page; report each app and the uids found; return the list's resourceVersion."""
        present: dict[str, set[str]] = {}
        self.sink.list_begins(self.namespace)
        token: str | None = None
        version = ""
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE_SIZE}
            if token:
                kwargs["_continue"] = token
            raw = self._request(
                _request_timeout=(CONNECT_TIMEOUT, LIST_TIMEOUT), _headers={"Accept": LIST_METADATA}, **kwargs
            )
            body = json.loads(raw.data)
            for item in body.get("items") or []:
                metadata = item.get("metadata") or {}
                present.setdefault(str(metadata.get("namespace")), set()).add(str(metadata.get("uid")))
                self.sink.put(metadata)
            listing = body.get("metadata") or {}
            version = str(listing.get("resourceVersion") or version)
            token = listing.get("continue")
            if not token:
                break
        self.sink.list_ends(self.namespace, present)
        return version

    def _watch(self) -> None:
        """Follow events from `self.version`, keeping it current; None in it when a relist is needed."""
        response = self._request(
            watch=True,
            resource_version=self.version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            _headers={"Accept": WATCH_METADATA},
        )
        with self._lock:
            self._response = response
        try:
            for line in iter_resp_lines(response):
                if self.stop.is_set():
                    return
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                metadata = obj.get("metadata") or {}
                if kind == "ERROR":  # 410 Gone: the version is too old to resume from
                    log.info("Watch of Applications ended (%s); listing again", obj.get("code"))
                    self.version = None
                    return
                self.version = str(metadata.get("resourceVersion") or self.version)
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    self.sink.remove(str(metadata.get("uid")))
                else:
                    self.sink.put(metadata)
        finally:
            with self._lock:
                self._response = None
            response.release_conn()

    def run(self) -> None:
        """Until `stop`: list, then watch and resume; relist on 410 or an error, with backoff."""
        backoff = 1.0
        while not self.stop.is_set():
            try:
                if self.version is None:
                    self.version = self._relist()
                self._watch()
                backoff = 1.0
                self._recovered()
            except ApiException as error:
                self.version = None
                if error.status == 410:
                    continue
                self._pause(backoff, f"HTTP {error.status} {error.reason}")
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception as error:  # connection reset, timeout, a stop that closed the stream
                if self.stop.is_set():
                    return
                self._pause(backoff, type(error).__name__)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("Watching Applications %s works again", self._where())

    def _where(self) -> str:
        return f"in namespace {self.namespace}" if self.namespace else "in all namespaces"

    def _pause(self, seconds: float, why: str) -> None:
        if not self._failing:
            self._failing = True
            log.warning(
                "Watching Applications %s failed (%s); retrying with backoff up to %.0fs (is Argo CD's"
                " Application CRD installed, and may the operator list and watch Applications there?)",
                self._where(),
                why,
                MAX_BACKOFF,
            )
        self.stop.wait(seconds)

    def close(self) -> None:
        """Break off a watch in progress (called from another thread when stopping)."""
        with self._lock:
            response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # already closed
                log.debug("watch stream already closed")


class ApplicationWatches:
    """One watch per scope, started and stopped together."""

    def __init__(self, scopes: Iterable[str | None], sink: AppSink) -> None:
        self.stop = threading.Event()
        self.watches = [ApplicationWatch(scope, sink, self.stop) for scope in scopes]
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for watch in self.watches:
            thread = threading.Thread(target=watch.run, name=f"appwatch-{watch.namespace or 'all'}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self, timeout: float = 1.0) -> None:
        """Stop every watch; the threads are daemons and write nothing, so waiting is bounded."""
        self.stop.set()
        for watch in self.watches:
            watch.close()
        for thread in self.threads:
            thread.join(timeout=timeout / max(1, len(self.threads)))
