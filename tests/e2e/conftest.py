"""End-to-end rig: control plane + ArgoBridge + the real notifications controller + real Backstage.

One Argo CD namespace for the module: the bridge points at a Backstage whose port is chosen first,
the operator generates the token, and Backstage is started with exactly that token, read from the
Secret ArgoBridge manages, the way a platform engineer would wire them.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge_dev import argocd_apps
from argobridge_dev.argocd_apps import create_default_project
from argobridge_dev.argocd_install import install_argocd_objects
from argobridge_dev.backstage import BackstageServer
from argobridge_dev.controlplane import ControlPlane, free_port
from argobridge_dev.engine import NotificationsController
from tests.conftest import FIGURES, ExternalCluster, wait_for


class Rig:
    """Everything a live test touches, with helpers that read like the steps a person takes."""

    def __init__(self, namespace: str, backstage: BackstageServer, controller: NotificationsController) -> None:
        self.namespace = namespace
        self.backstage = backstage
        self.controller = controller
        self.apps = client.CustomObjectsApi()
        self.core = client.CoreV1Api()

    def create_app(
        self,
        name: str,
        ref: str | None = "component:default/shop",
        subscribe: bool = True,
        project: str = "default",
        destination_namespace: str = "shop",
    ) -> None:
        annotations = {}
        if ref is not None:
            annotations["backstage.io/entity-ref"] = ref
        if subscribe:
            for trigger in ("on-sync-succeeded", "on-sync-failed", "on-health-degraded", "on-deployed"):
                annotations[f"notifications.argoproj.io/subscribe.{trigger}-backstage.backstage"] = ""
        body = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations},
            "spec": {
                "project": project,
                "source": {"repoURL": "https://git.example.com/shop.git", "path": "deploy", "targetRevision": "HEAD"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": destination_namespace},
            },
        }
        self.apps.create_namespaced_custom_object("argoproj.io", "v1alpha1", self.namespace, "applications", body)

    def create_project(self, name: str) -> None:
        """An AppProject, as Argo CD would hold it for the apps that name it."""
        body = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AppProject",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]},
        }
        self.apps.create_namespaced_custom_object("argoproj.io", "v1alpha1", self.namespace, "appprojects", body)

    def patch_bridge(self, spec: dict[str, Any]) -> None:
        """A change to the bridge's spec, as `kubectl apply` of an edited file would make it (merge patch)."""
        self.apps.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, "backstage", {"spec": spec})

    def set_status(
        self, name: str, phase: str | None, health: str, message: str = "", started: str = "", revision: str = "a1b2c3d"
    ) -> None:
        """Write status the way Argo CD's application controller does (see argobridge_dev.argocd_apps)."""
        argocd_apps.set_status(self.apps, self.namespace, name, phase, health, message, started, revision)

    def touch(self, name: str) -> None:
        """An unrelated change to the app, which makes the controller process it again."""
        patch = {"metadata": {"labels": {"touched": uuid.uuid4().hex[:8]}}}
        self.apps.patch_namespaced_custom_object("argoproj.io", "v1alpha1", self.namespace, "applications", name, patch)

    def received(self, user: str, app: str, event: str | None = None) -> list[dict[str, Any]]:
        prefix = f"argocd/{self.namespace}/{app}/"
        return [
            item
            for item in self.backstage.notifications(user)
            if (item["payload"].get("scope") or "").startswith(prefix + (event or ""))
        ]

    def wait_received(self, user: str, app: str, event: str, timeout: float = 60) -> dict[str, Any]:
        return wait_for(
            lambda: (found := self.received(user, app, event)) and found[0],
            timeout=timeout,
            interval=0.5,
            what=f"{event} of {app} for {user}",
        )

    def bridge(self) -> dict[str, Any]:
        return self.apps.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, "backstage")

    def token(self) -> str:
        secret = self.core.read_namespaced_secret("argocd-notifications-secret", self.namespace)
        return base64.b64decode(secret.data["backstage-token"]).decode()


@contextmanager
def running_rig(
    control_plane: ControlPlane | ExternalCluster,
    tmp_path_factory: pytest.TempPathFactory,
    argocd: dict[str, Any] | None = None,
    prepare: Callable[[str], None] | None = None,
    argocd_objects: bool = True,
    bridge_labels: dict[str, str] | None = None,
) -> Iterator[Rig]:
    """A fresh Argo CD namespace (`prepare` runs in it first), a bridge, Backstage with its token, a controller.

    `argocd_objects`: create Argo CD's ConfigMap and Secret as its install does (ArgoBridge never creates
    them); False where the Argo CD operator is the install and creates (and owns) them itself.
    `bridge_labels`: labels on the bridge, e.g. `argobridge.io/shard` so that only another operator serves it.
    """
    core, custom = client.CoreV1Api(), client.CustomObjectsApi()
    namespace = f"argocd-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    if argocd_objects:
        install_argocd_objects(core, namespace)
    create_default_project(custom, namespace)
    if prepare:
        prepare(namespace)
    port = free_port()
    backstage_host = os.environ.get("ARGOBRIDGE_TEST_BACKSTAGE_HOST", "127.0.0.1")
    spec: dict[str, Any] = {"backstage": {"url": f"http://{backstage_host}:{port}"}}
    if argocd:
        spec["argocd"] = argocd
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "BackstageBridge",
            "metadata": {"name": "backstage", "namespace": namespace, "labels": bridge_labels or {}},
            "spec": spec,
        },
    )

    def token() -> str | None:
        try:
            secret = core.read_namespaced_secret("argocd-notifications-secret", namespace)
        except client.exceptions.ApiException:
            return None
        value = (secret.data or {}).get("backstage-token")
        return base64.b64decode(value).decode() if value else None

    backstage = BackstageServer(token=wait_for(token, what="token generated by ArgoBridge"), port=port).start()
    FIGURES.append(f"Backstage backend ready (catalog ingested) in {backstage.startup_seconds:.1f}s")
    controller = NotificationsController(
        control_plane.kubeconfig, namespace, tmp_path_factory.mktemp("controller") / "controller.log"
    ).start()
    try:
        yield Rig(namespace, backstage, controller)
    finally:
        controller.stop()
        backstage.stop()
        if backstage.database:
            shutil.rmtree(backstage.database, ignore_errors=True)


@pytest.fixture(scope="module")
def rig(
    control_plane: ControlPlane | ExternalCluster,
    operator: Any,
    argocd_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rig]:
    with running_rig(control_plane, tmp_path_factory, argocd={"url": "https://argocd.example.com"}) as ready:
        yield ready
