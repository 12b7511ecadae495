"""Argo CD's objects as Argo CD's own controllers would hold them, where a rig or the demo stands in for them.

No application controller runs here: the default AppProject its install creates, and the status it
writes after a sync, are written by these helpers instead, in the shape the notifications controller
reads. Shared by the end-to-end rig (tests/e2e/conftest.py) and `argobridge demo`.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

GROUP, VERSION = "argoproj.io", "v1alpha1"


def create_default_project(custom: client.CustomObjectsApi, namespace: str) -> None:
    """The `default` AppProject Argo CD's controllers expect, allowing every source and destination."""
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "appprojects",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AppProject",
            "metadata": {"name": "default", "namespace": namespace},
            "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]},
        },
    )


def application(name: str, namespace: str, annotations: dict[str, str], project: str = "default") -> dict[str, Any]:
    """An Application as a user writes it: a Git source, an in-cluster destination, the given annotations."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "project": project,
            "source": {"repoURL": "https://git.example.com/shop.git", "path": "deploy", "targetRevision": "HEAD"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
        },
    }


def set_status(
    custom: client.CustomObjectsApi,
    namespace: str,
    name: str,
    phase: str | None,
    health: str,
    message: str = "",
    started: str = "",
    revision: str = "a1b2c3d",
) -> None:
    """Write status the way Argo CD's application controller does (Application has no status subresource)."""
    # reconciledAt after finishedAt: the notifications controller skips an app whose sync status is
    # older than its last operation ("Processing skipped: sync status out of date").
    status: dict[str, Any] = {
        "sync": {"status": "Synced", "revision": revision},
        "health": {"status": health, "lastTransitionTime": started or None},
        "reconciledAt": started or None,
    }
    if phase is not None:
        status["operationState"] = {
            "phase": phase,
            "message": message,
            "startedAt": started,
            "finishedAt": started,
            "operation": {"sync": {"revision": revision}},
            "syncResult": {"revision": revision},
        }
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "applications", name, {"status": status})


CONTROLLER_DEPLOYMENT = "argocd-notifications-controller"


def stand_in_controller_deployment(apps: client.AppsV1Api, namespace: str) -> None:
    """The Deployment Argo CD's install runs the notifications controller in, marked available.

    Where the controller runs as a local process (the demo), this object stands for it, so that
    `argobridge doctor` finds it as it would in a cluster; no kubelet or controller manager runs here
    to create pods for it or to overwrite its status.
    """
    labels = {"app.kubernetes.io/name": CONTROLLER_DEPLOYMENT, "app.kubernetes.io/part-of": "argocd"}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": CONTROLLER_DEPLOYMENT, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": CONTROLLER_DEPLOYMENT}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "argocd-notifications-controller", "image": "local-process"}]},
            },
        },
    }
    apps.create_namespaced_deployment(namespace, body)  # type: ignore[arg-type]  # a dict, as the client accepts
    status = {"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1}}
    apps.patch_namespaced_deployment_status(CONTROLLER_DEPLOYMENT, namespace, status)
