"""Test A: `helm install` with default values under a real kubelet, as a user on OpenShift-like rules runs it."""

from __future__ import annotations

import datetime
import hashlib
import time

from kubernetes import client

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge_dev.controlplane import free_port
from argobridge_dev.kind.cluster import KindCluster
from tests.conftest import wait_for
from tests.kind.conftest import (
    ARGOCD_NAMESPACE,
    CHART,
    chart_values,
    create_app,
    create_bridge,
    restricted_namespace,
    set_failed,
    start_backstage,
)

UID = 1000650000


def argocd_configuration() -> dict[str, object]:
    core = client.CoreV1Api()
    cm = core.read_namespaced_config_map("argocd-notifications-cm", ARGOCD_NAMESPACE)
    secret = core.read_namespaced_secret("argocd-notifications-secret", ARGOCD_NAMESPACE)
    # Secret values as digests: a failing comparison must never print a token.
    digests = {key: hashlib.sha256(value.encode()).hexdigest()[:12] for key, value in (secret.data or {}).items()}
    return {"cm": cm.data or {}, "secret": digests}


def pods_ready(namespace: str) -> list[client.V1Pod]:
    pods = client.CoreV1Api().list_namespaced_pod(namespace).items
    ready = [p for p in pods if any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))]
    return pods if pods and len(ready) == len(pods) else []


def test_default_install_is_ready_under_restricted_and_a_failed_sync_reaches_the_owner(
    kind: KindCluster, figures: list[str]
) -> None:
    before = argocd_configuration()
    restricted_namespace("argobridge")
    started = time.monotonic()
    kind.helm("install", "argobridge", str(CHART), "-n", "argobridge", *chart_values(UID), "--wait", "--timeout", "5m")
    figures.append(f"A: helm install --wait (default values, restricted namespace) {time.monotonic() - started:.0f}s")

    pods = wait_for(lambda: pods_ready("argobridge"), timeout=120, what="every argobridge pod Ready")
    for pod in pods:
        context = pod.spec.security_context
        assert context.run_as_user == UID and context.run_as_group == 0
    ids = kind.kubectl("-n", "argobridge", "exec", f"pod/{pods[0].metadata.name}", "--", "id")
    assert f"uid={UID}" in ids and "gid=0" in ids, ids

    host, port = kind.gateway(), free_port()
    # Delete: the user asks for the token to go with the bridge (the default keeps it, as cert-manager does).
    create_bridge(host, port, token={"deletionPolicy": "Delete"})
    backstage = start_backstage(host, port)
    try:
        # What a user reads: the READY column of `kubectl get bsb`.
        row = wait_for(
            lambda: (
                (line := kind.kubectl("-n", ARGOCD_NAMESPACE, "get", "bsb", "backstage", "--no-headers").split())
                and line[1] == "True"
                and line
            ),
            timeout=120,
            what="kubectl get bsb showing the bridge Ready True",
        )
        figures.append("A: kubectl get bsb: " + " ".join(row))
        create_app("shop")
        time.sleep(1)
        set_failed("shop", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        failed = wait_for(
            lambda: [n for n in backstage.notifications("alice") if "SyncFailed" in (n["payload"].get("scope") or "")],
            timeout=120,
            interval=0.5,
            what="the failed sync in alice's Backstage notifications",
        )
        assert failed[0]["payload"]["topic"] == "argocd.sync.failed"
        assert argocd_configuration() != before, "the bridge configured Argo CD"

        client.CustomObjectsApi().delete_namespaced_custom_object(GROUP, VERSION, ARGOCD_NAMESPACE, PLURAL, "backstage")
        wait_for(
            lambda: (
                not client.CustomObjectsApi().list_namespaced_custom_object(GROUP, VERSION, ARGOCD_NAMESPACE, PLURAL)[
                    "items"
                ]
            ),
            timeout=120,
            what="the bridge gone",
        )
        kind.helm("uninstall", "argobridge", "-n", "argobridge", "--wait")
        assert argocd_configuration() == before, "Argo CD's configuration is as it was before the install"
    finally:
        backstage.stop()
