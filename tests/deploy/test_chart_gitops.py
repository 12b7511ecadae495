"""The OpenShift GitOps flavor under the chart's RBAC: every call it makes is allowed, and it cannot create
the NotificationsConfiguration or touch the ArgoCD resource. The Argo CD operator's objects are created here
by the admin exactly as that operator creates them (its CRDs from its module); the operator itself is
exercised in tests/integration/test_openshift_gitops.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge_dev.argocd_operator import operator_crd_documents, route_crd_document
from tests.conftest import wait_for
from tests.deploy.conftest import GITOPS_NAMESPACE, ChartInstall

NC = "default-notifications-configuration"


def install_crds(admin: client.ApiClient) -> None:
    api = client.ApiextensionsV1Api(admin)
    for document in [*operator_crd_documents(), route_crd_document()]:
        api.create_custom_resource_definition(document)
    for document in [*operator_crd_documents(), route_crd_document()]:
        name = document["metadata"]["name"]
        wait_for(
            lambda name=name: any(
                c.type == "Established" and c.status == "True"
                for c in api.read_custom_resource_definition(name).status.conditions or []
            ),
            what=f"{name} established",
        )


@pytest.fixture(scope="module")
def gitops_ready(chart_install: ChartInstall) -> dict[str, Any]:
    admin = chart_install.admin
    custom = client.CustomObjectsApi(admin)
    # Other modules make refused calls with the same token on purpose: look only at what follows.
    audit_offset = len(chart_install.plane.audit_log.read_text().splitlines())
    install_crds(admin)
    argocd = {
        "apiVersion": "argoproj.io/v1beta1",
        "kind": "ArgoCD",
        "metadata": {"name": "gitops", "namespace": GITOPS_NAMESPACE},
        "spec": {"notifications": {"enabled": True}, "server": {"host": "cd.apps.example.com"}},
    }
    custom.create_namespaced_custom_object("argoproj.io", "v1beta1", GITOPS_NAMESPACE, "argocds", argocd)
    nc = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "NotificationsConfiguration",
        "metadata": {"name": NC, "namespace": GITOPS_NAMESPACE},
        "spec": {"templates": {"template.app-created": "message: created\n"}},
    }
    custom.create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", GITOPS_NAMESPACE, "notificationsconfigurations", nc
    )
    bridge = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BackstageBridge",
        "metadata": {"name": "backstage"},
        "spec": {"backstage": {"url": "https://backstage.example.com"}},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, GITOPS_NAMESPACE, PLURAL, bridge)

    def ready() -> dict[str, Any] | None:
        status = (
            custom.get_namespaced_custom_object(GROUP, VERSION, GITOPS_NAMESPACE, PLURAL, "backstage").get("status")
            or {}
        )
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        return status if conditions.get("Ready", {}).get("status") == "True" else None

    status = wait_for(ready, timeout=60, what="gitops bridge Ready under the chart's RBAC")
    return {"status": status, "audit_offset": audit_offset}


def test_gitops_flavor_works_under_the_charts_rbac_with_no_call_refused(
    chart_install: ChartInstall, gitops_ready: dict[str, Any]
) -> None:
    assert gitops_ready["status"]["flavor"] == "OpenShiftGitOps"
    assert gitops_ready["status"]["argocdUrl"] == "https://cd.apps.example.com"
    custom = client.CustomObjectsApi(chart_install.admin)
    spec = custom.get_namespaced_custom_object(
        "argoproj.io", "v1alpha1", GITOPS_NAMESPACE, "notificationsconfigurations", NC
    )["spec"]
    assert "service.webhook.backstage" in spec["services"]
    assert spec["templates"]["template.app-created"] == "message: created\n"
    refused, gitops_calls = [], set()
    for line in chart_install.plane.audit_log.read_text().splitlines()[gitops_ready["audit_offset"] :]:
        event = json.loads(line)
        if event["user"]["username"] != chart_install.service_account_user:
            continue
        ref = event.get("objectRef") or {}
        resource = ref.get("resource")
        # Other modules leave the operator retrying refused writes in their namespace; judge only this one's.
        if event["responseStatus"]["code"] == 403 and (
            ref.get("namespace") in (None, GITOPS_NAMESPACE) or resource in {"argocds", "notificationsconfigurations"}
        ):
            refused.append(event["requestURI"])
        if resource in {"argocds", "notificationsconfigurations", "routes"}:
            gitops_calls.add(f"{event['verb']} {resource}")
    assert refused == []
    assert {"list argocds", "patch notificationsconfigurations", "get routes"} <= gitops_calls


@pytest.mark.parametrize(
    ("action", "call"),
    [
        (
            "edit the ArgoCD resource",
            lambda c: client.CustomObjectsApi(c).patch_namespaced_custom_object(
                "argoproj.io", "v1beta1", GITOPS_NAMESPACE, "argocds", "gitops", {"spec": {"notifications": {}}}
            ),
        ),
        (
            "create a NotificationsConfiguration",
            lambda c: client.CustomObjectsApi(c).create_namespaced_custom_object(
                "argoproj.io",
                "v1alpha1",
                GITOPS_NAMESPACE,
                "notificationsconfigurations",
                {"apiVersion": "argoproj.io/v1alpha1", "kind": "NotificationsConfiguration", "metadata": {"name": "x"}},
            ),
        ),
    ],
    ids=["argocd-patch", "nc-create"],
)
def test_gitops_calls_outside_the_charts_rbac_are_refused(
    chart_install: ChartInstall, gitops_ready: dict[str, Any], action: str, call: Any
) -> None:
    with pytest.raises(ApiException) as refused:
        call(chart_install.operator)
    assert refused.value.status == 403, f"{action}: expected 403, got {refused.value.status}"
