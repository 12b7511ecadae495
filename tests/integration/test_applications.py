"""Applications as ArgoBridge sees them: counted, diagnosed, warned about, and never written to."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.conftest import wait_for
from tests.integration.test_bridge_reconcile import bridge, create_bridge, get_bridge

SUB = "notifications.argoproj.io/subscribe."


def create_app(
    namespace: str, name: str, annotations: dict[str, str], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations, "labels": labels or {}},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example.com/x.git", "path": ".", "targetRevision": "HEAD"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "x"},
        },
    }
    return client.CustomObjectsApi().create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "applications", body
    )


def get_app(namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi().get_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "applications", name
    )


@pytest.mark.usefixtures("operator", "argocd_crds")
def test_applications_are_counted_diagnosed_and_left_untouched(core, custom, namespace):
    apps = {
        "good": {"backstage.io/entity-ref": "component:default/shop"},
        "mixed-case": {"backstage.io/entity-ref": "Component:Shop"},
        "no-kind": {"backstage.io/entity-ref": "shop"},
        "catalog-trigger": {"backstage.io/entity-ref": "component:default/shop", SUB + "on-sync-failed.backstage": ""},
        "no-ref": {SUB + "on-sync-failed-backstage.backstage": ""},
        "unrelated": {},
    }
    created = {name: create_app(namespace, name, annotations) for name, annotations in apps.items()}
    create_bridge(custom, bridge(namespace))

    def counted() -> dict[str, int] | None:
        status = get_bridge(custom, namespace).get("status") or {}
        counts = status.get("applications")
        return counts if counts and counts.get("watched") == len(apps) else None

    counts = wait_for(counted, what="status.applications")
    assert counts == {"watched": 6, "subscribed": 3, "invalidEntityRef": 1, "misconfigured": 2}

    def warnings_for(app: str) -> list[str]:
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={app},type=Warning").items
        return [event.message for event in events]

    assert any(
        "subscribe on-sync-failed-backstage instead" in m for m in wait_for(lambda: warnings_for("catalog-trigger"))
    )
    assert any("has no kind" in m for m in wait_for(lambda: warnings_for("no-kind")))
    assert any("no backstage.io/entity-ref" in m for m in wait_for(lambda: warnings_for("no-ref")))
    assert warnings_for("good") == [] and warnings_for("unrelated") == []

    for name, body in created.items():
        now = get_app(namespace, name)
        assert now["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"], f"{name} was written to"
        assert "finalizers" not in now["metadata"]
        assert not [key for key in now["metadata"].get("annotations", {}) if "kopf" in key or "argobridge" in key]


@pytest.mark.usefixtures("operator", "argocd_crds")
def test_apps_in_other_namespaces_count_only_when_listed(core, custom, namespace):
    other = f"{namespace}-apps"
    core.create_namespace({"metadata": {"name": other}})
    create_app(other, "elsewhere", {"backstage.io/entity-ref": "component:default/shop"})
    create_app(namespace, "here", {"backstage.io/entity-ref": "component:default/shop"})
    create_bridge(custom, bridge(namespace))
    wait_for(
        lambda: ((get_bridge(custom, namespace).get("status") or {}).get("applications") or {}).get("watched") == 1,
        what="only the Argo CD namespace counted",
    )
    custom.patch_namespaced_custom_object(
        "argobridge.io",
        "v1alpha1",
        namespace,
        "backstagebridges",
        "backstage",
        {"spec": {"argocd": {"applicationNamespaces": [f"{namespace}-*"]}}},
    )
    wait_for(
        lambda: ((get_bridge(custom, namespace).get("status") or {}).get("applications") or {}).get("subscribed") == 2,
        what="the listed namespace counted too",
    )


WANTED = {
    SUB + f"{trigger}.backstage": ""
    for trigger in (
        "on-sync-failed-backstage",
        "on-health-degraded-backstage",
        "on-deployed-backstage",
        "on-sync-succeeded-backstage",
    )
}


def annotations_of(namespace: str, name: str) -> dict[str, str]:
    return dict(get_app(namespace, name)["metadata"].get("annotations") or {})


@pytest.mark.usefixtures("operator", "argocd_crds")
def test_annotations_mode_adds_repairs_with_backoff_and_removes_only_its_own(core, custom, namespace):
    create_app(namespace, "shop", {"backstage.io/entity-ref": "component:default/shop", "team": "a"})
    create_app(namespace, "no-ref", {"keep": "me"})
    create_bridge(custom, bridge(namespace, subscriptions={"mode": "Annotations"}))

    wait_for(lambda: WANTED.items() <= annotations_of(namespace, "shop").items(), what="subscribe annotations added")
    assert annotations_of(namespace, "shop")["team"] == "a"
    assert annotations_of(namespace, "no-ref") == {"keep": "me"}

    # An ApplicationSet-like writer resets the annotations: put back once at once, then with backoff.
    def reset() -> None:
        patch = [
            {
                "op": "replace",
                "path": "/metadata/annotations",
                "value": {"backstage.io/entity-ref": "component:default/shop", "team": "a"},
            }
        ]
        custom.patch_namespaced_custom_object(
            "argoproj.io",
            "v1alpha1",
            namespace,
            "applications",
            "shop",
            patch,
            field_manager="applicationset-controller",
            _content_type="application/json-patch+json",
        )

    reset()
    wait_for(lambda: WANTED.items() <= annotations_of(namespace, "shop").items(), what="annotations repaired")
    reset()
    import time

    time.sleep(5)
    assert not (WANTED.items() <= annotations_of(namespace, "shop").items()), "the second repair waits (backoff)"

    # The ref goes away: ArgoBridge takes exactly its annotations back out.
    create_app(namespace, "later", {"backstage.io/entity-ref": "component:default/shop"})
    wait_for(lambda: WANTED.items() <= annotations_of(namespace, "later").items(), what="annotations on a new app")
    patch = [{"op": "remove", "path": "/metadata/annotations/backstage.io~1entity-ref"}]
    custom.patch_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        namespace,
        "applications",
        "later",
        patch,
        _content_type="application/json-patch+json",
    )
    wait_for(lambda: annotations_of(namespace, "later") == {}, what="annotations removed with the ref")

    # Deleting the bridge removes ours from every app and leaves the rest.
    create_app(namespace, "last", {"backstage.io/entity-ref": "component:default/shop", "keep": "me"})
    wait_for(lambda: WANTED.items() <= annotations_of(namespace, "last").items(), what="annotations on the last app")
    custom.delete_namespaced_custom_object("argobridge.io", "v1alpha1", namespace, "backstagebridges", "backstage")
    wait_for(
        lambda: (
            annotations_of(namespace, "last") == {"backstage.io/entity-ref": "component:default/shop", "keep": "me"}
        ),
        what="only our annotations removed on deletion",
    )
