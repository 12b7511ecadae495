"""OpenShift GitOps flavor end to end: ArgoBridge writes the NotificationsConfiguration, the real Argo CD
operator builds argocd-notifications-cm from it, the real notifications controller reads that ConfigMap
and delivers to the real Backstage. alice is in team-a, which owns component:default/shop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from argobridge_dev.controlplane import ControlPlane
from tests.conftest import wait_for
from tests.e2e.conftest import Rig, running_rig

HOST = "argocd.apps.example.com"
CM = "argocd-notifications-cm"
SERVICE = "service.webhook.backstage"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def configmap(rig: Rig) -> dict[str, str]:
    return dict(rig.core.read_namespaced_config_map(CM, rig.namespace).data or {})


@pytest.fixture(scope="module")
def gitops_rig(
    control_plane: ControlPlane,
    operator: Any,
    argocd_operator: Any,
    argocd_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rig]:
    custom = client.CustomObjectsApi()

    def managed_by_the_operator(namespace: str) -> None:
        body = {
            "apiVersion": "argoproj.io/v1beta1",
            "kind": "ArgoCD",
            "metadata": {"name": "gitops", "namespace": namespace},
            "spec": {"notifications": {"enabled": True}, "server": {"host": HOST, "route": {"enabled": True}}},
        }
        custom.create_namespaced_custom_object("argoproj.io", "v1beta1", namespace, "argocds", body)

    # No spec.argocd at all: flavor Auto, and the URL for links comes from the operator's Route.
    with running_rig(control_plane, tmp_path_factory, prepare=managed_by_the_operator, argocd_objects=False) as rig:
        wait_for(lambda: SERVICE in configmap(rig), what="the operator copying our service into the ConfigMap")
        yield rig


def test_deploy_is_delivered_from_the_configmap_the_operator_built(gitops_rig: Rig):
    rig = gitops_rig
    assert rig.bridge()["status"]["flavor"] == "OpenShiftGitOps"
    rig.create_app("shop-gitops")
    time.sleep(1)
    rig.set_status("shop-gitops", "Succeeded", "Healthy", "successfully synced", started=now())
    deployed = rig.wait_received("alice", "shop-gitops", "Deployed")
    assert deployed["payload"]["link"] == f"https://{HOST}/applications/{rig.namespace}/shop-gitops"
    assert rig.received("bob", "shop-gitops") == []


def test_after_a_hand_edit_is_reverted_by_the_operator_notifications_keep_working(gitops_rig: Rig):
    rig = gitops_rig
    service = configmap(rig)[SERVICE]
    rig.core.patch_namespaced_config_map(CM, rig.namespace, {"data": {SERVICE: None}})  # the classic hand edit
    wait_for(lambda: configmap(rig).get(SERVICE) == service, what="the operator restoring the service key")
    rig.create_app("shop-after-edit")
    time.sleep(1)
    rig.set_status("shop-after-edit", "Failed", "Degraded", "boom", started=now())
    failed = rig.wait_received("alice", "shop-after-edit", "SyncFailed")
    assert failed["payload"]["topic"] == "argocd.sync.failed"
