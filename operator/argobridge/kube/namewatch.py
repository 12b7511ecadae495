"""Watch a few ConfigMaps and Secrets by name only: list+watch with the field selector `metadata.name`.

A watch of every Secret of the cluster (what kopf does for a resource, with a filter on our side)
would stream each Helm release Secret into the operator, with one unpaginated LIST at start: memory
that grows with the cluster, and a right to read every Secret. A request that carries
`fieldSelector=metadata.name=<name>` is authorised by the apiserver against `resourceNames`, so the
chart grants exactly these names and nothing else.

One thread per (kind, name, namespace-or-cluster) lists, then watches from the list's resourceVersion,
resumes from the last resourceVersion seen, relists on 410 Gone, and backs off on errors. A change
reports the object's namespace to `on_change`. Only metadata is asked for (PartialObjectMetadata), so a
Secret's data never reaches the operator through a watch.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from argobridge.kube.client import core_v1

log = logging.getLogger(__name__)

# The apiserver ends a watch after this many seconds; the client gives up on a silent connection later.
WATCH_SECONDS = 270
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = WATCH_SECONDS + 30.0
LIST_TIMEOUT = 60.0
MAX_BACKOFF = 30.0
# Metadata only: a Secret's data never crosses the wire to the operator for a watch that needs none of it.
LIST_METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
WATCH_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


@dataclass(frozen=True)
class WatchedName:
    """One object name of one kind (`secrets` or `configmaps`), in one namespace or (None) in all."""

    plural: str
    name: str
    namespace: str | None = None


def _list_call(target: WatchedName, api: Any) -> Callable[..., Any]:
    singular = {"secrets": "secret", "configmaps": "config_map"}[target.plural]
    if target.namespace is None:
        return getattr(api, f"list_{singular}_for_all_namespaces")  # type: ignore[no-any-return]
    method = getattr(api, f"list_namespaced_{singular}")
    return lambda **kwargs: method(target.namespace, **kwargs)


class NameWatch:
    """List and watch one name; call `on_change(namespace)` when that object changes in a namespace."""

    def __init__(
        self, target: WatchedName, on_change: Callable[[str], None], stop: threading.Event, api: Any = None
    ) -> None:
        self.target, self.on_change, self.stop = target, on_change, stop
        self._api = api  # a CoreV1Api; None: the operator's shared client
        self._listed = False  # the first list only records what exists: kopf's resume reconciles at start
        self._versions: dict[str, str] = {}  # namespace -> the object's resourceVersion
        self.version: str | None = None  # where a watch resumes; None: list first
        self._response: Any = None
        self._lock = threading.Lock()

    def _request(self, **kwargs: Any) -> Any:
        return _list_call(self.target, self._api or core_v1())(
            field_selector=f"metadata.name={self.target.name}", _preload_content=False, **kwargs
        )

    def _relist(self, notify: bool) -> str:
        """List by name; report namespaces whose object changed since the last list; the list's version."""
        raw = self._request(_request_timeout=(CONNECT_TIMEOUT, LIST_TIMEOUT), _headers={"Accept": LIST_METADATA})
        body = json.loads(raw.data)
        versions = {
            str(item["metadata"]["namespace"]): str(item["metadata"].get("resourceVersion"))
            for item in body.get("items") or []
        }
        changed = {ns for ns in versions.keys() | self._versions.keys() if versions.get(ns) != self._versions.get(ns)}
        self._versions = versions
        self._listed = True
        if notify:
            for namespace in sorted(changed):
                self.on_change(namespace)
        return str(body["metadata"]["resourceVersion"])

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
                    self._list_again(obj.get("code"))
                    return
                self.version = str(metadata.get("resourceVersion") or self.version)
                if kind == "BOOKMARK":
                    continue
                namespace = str(metadata.get("namespace"))
                if kind == "DELETED":
                    self._versions.pop(namespace, None)
                else:
                    self._versions[namespace] = self.version
                self.on_change(namespace)
        finally:
            with self._lock:
                self._response = None
            response.release_conn()

    def run(self) -> None:
        """Until `stop`: list once, then watch and resume; relist on 410 or an error, with backoff."""
        backoff = 1.0
        while not self.stop.is_set():
            try:
                if self.version is None:
                    self.version = self._relist(notify=self._listed)
                self._watch()
                backoff = 1.0
            except ApiException as error:
                if error.status == 410:
                    self._list_again(410)
                    continue
                self.version = None
                self._pause(backoff, f"HTTP {error.status} {error.reason}")
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception as error:  # connection reset, timeout, a stop that closed the stream
                if self.stop.is_set():
                    return
                self._pause(backoff, type(error).__name__)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _list_again(self, code: object) -> None:
        log.info("Watch of %s %s ended (%s); listing again", self.target.plural, self.target.name, code)
        self.version = None

    def _pause(self, seconds: float, why: str) -> None:
        # The reason only: an exception's text may echo a response, and a response here may be a Secret.
        where = f"in namespace {self.target.namespace}" if self.target.namespace else "in all namespaces"
        log.warning(
            "Watching %s %s %s failed (%s); retrying in %.0fs (check the operator's RBAC for that name)",
            self.target.plural,
            self.target.name,
            where,
            why,
            seconds,
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


class NameWatches:
    """Every name watch of the operator, started and stopped together."""

    def __init__(self, targets: Iterable[WatchedName], on_change: Callable[[str], None]) -> None:
        self.stop = threading.Event()
        self.watches = [NameWatch(target, on_change, self.stop) for target in targets]
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for watch in self.watches:
            target = watch.target
            name = f"namewatch-{target.plural}-{target.name}-{target.namespace or 'all'}"
            thread = threading.Thread(target=watch.run, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self, timeout: float = 1.0) -> None:
        """Stop every watch, waiting at most `timeout` in all (not per thread) for their threads.

        The threads are daemons and write nothing: one still blocked in a read when the operator
        exits costs nothing, while waiting for each in turn kept Ctrl-C from stopping the operator
        for seconds.
        """
        self.stop.set()
        for watch in self.watches:
            watch.close()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
