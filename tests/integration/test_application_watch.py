"""The Application watch against the real kube-apiserver: metadata only, in pages, and a relist that
forgets what was deleted while no watch ran."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
from kubernetes import client

from argobridge.kube import appwatch
from argobridge.kube.appwatch import ApplicationWatch
from tests.conftest import wait_for
from tests.integration.test_applications import create_app


class Recorder:
    """The sink, recording what a user of the store would see: apps by uid, and each list's findings."""

    def __init__(self) -> None:
        self.apps: dict[str, Mapping[str, Any]] = {}
        self.lists: list[dict[str, set[str]]] = []
        self.begun = 0

    def list_begins(self, scope: str | None) -> None:
        self.begun += 1

    def put(self, metadata: Mapping[str, Any]) -> None:
        self.apps[str(metadata["uid"])] = metadata

    def remove(self, uid: str) -> None:
        self.apps.pop(uid, None)

    def list_ends(self, scope: str | None, present: Mapping[str, set[str]]) -> None:
        self.lists.append({ns: set(uids) for ns, uids in present.items()})


def _run(watch: ApplicationWatch) -> threading.Thread:
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    return thread


@pytest.mark.usefixtures("argocd_crds")
def test_the_watch_lists_in_pages_carries_metadata_only_and_follows_changes(namespace, monkeypatch):
    monkeypatch.setattr(appwatch, "PAGE_SIZE", 3)
    created = [
        create_app(namespace, f"app-{i}", {"backstage.io/entity-ref": f"component:default/c{i}"}) for i in range(7)
    ]
    sink, stop = Recorder(), threading.Event()
    watch = ApplicationWatch(namespace, sink, stop, api=client.CustomObjectsApi())
    thread = _run(watch)
    try:
        wait_for(lambda: sink.lists, what="the first list")
        assert sink.lists[0] == {namespace: {app["metadata"]["uid"] for app in created}}  # 7 apps over 3 pages
        first = next(iter(sink.apps.values()))
        assert set(first) >= {"name", "namespace", "uid", "annotations", "managedFields"}
        assert "spec" not in first and "status" not in first  # metadata only ever crossed the wire

        later = create_app(namespace, "later", {}, labels={"team": "a"})
        wait_for(lambda: later["metadata"]["uid"] in sink.apps, what="a created app seen by the watch")
        client.CustomObjectsApi().delete_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "applications", "app-0"
        )
        wait_for(lambda: created[0]["metadata"]["uid"] not in sink.apps, what="a deleted app gone")
    finally:
        stop.set()
        watch.close()
        thread.join(timeout=5)


@pytest.mark.usefixtures("argocd_crds")
def test_an_app_deleted_while_no_watch_ran_is_forgotten_by_the_operators_store(namespace):
    """The store's sink: after a relist, an app missing from it is dropped (a watch resumed after 410
    never reports it as DELETED)."""
    from argobridge.handlers.applications import StoreSink
    from argobridge.steps.app_store import APPS

    kept = create_app(namespace, "kept", {})
    gone = create_app(namespace, "gone", {})
    sink, stop = StoreSink(), threading.Event()
    watch = ApplicationWatch(namespace, sink, stop, api=client.CustomObjectsApi())
    watch.version = None
    watch._relist()
    uids = {app.uid for app in APPS.all() if app.namespace == namespace}
    assert {kept["metadata"]["uid"], gone["metadata"]["uid"]} <= uids
    client.CustomObjectsApi().delete_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "applications", "gone"
    )
    wait_for(
        lambda: (
            not any(
                item["metadata"]["name"] == "gone"
                for item in client.CustomObjectsApi().list_namespaced_custom_object(
                    "argoproj.io", "v1alpha1", namespace, "applications"
                )["items"]
            )
        ),
        what="the app deleted",
    )
    watch._relist()  # what a relist after 410 Gone does
    uids = {app.uid for app in APPS.all() if app.namespace == namespace}
    assert kept["metadata"]["uid"] in uids and gone["metadata"]["uid"] not in uids
    stop.set()
