"""An install of the chart on its own control plane, and the operator running under the chart's RBAC.

A control plane of its own, because the suite's in-process operator serves every namespace of the
shared one and would do the work this module must prove the chart's ServiceAccount can do alone.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from argobridge_dev.argocd_install import install_argocd_objects
from argobridge_dev.chart import CHART, helm
from argobridge_dev.controlplane import ControlPlane, free_port
from argobridge_dev.engine import argocd_crd_documents
from argobridge_dev.relayproc import RelayProcess
from tests.conftest import FIGURES, wait_for

RELEASE = "argobridge"
RELEASE_NAMESPACE = "argobridge-system"
ARGOCD_NAMESPACE = "argocd-a"
GITOPS_NAMESPACE = "gitops-a"  # an OpenShift GitOps namespace (ArgoCD resource, NotificationsConfiguration)
OTHER_NAMESPACE = "other-team"
UNRELATED_SECRET = "database-credentials"
POD_NAME = "argobridge-7d9f8c6b5-x2k4p"
RELAY = f"{RELEASE}-relay"
RELAY_CONFIG_SECRET = f"{RELAY}-config"


@dataclass
class ChartInstall:
    plane: ControlPlane
    admin: client.ApiClient
    operator: client.ApiClient  # authenticated as the chart's ServiceAccount
    operator_kubeconfig: Path
    service_account_user: str
    metrics_port: int
    health_port: int
    log: Path
    operator_env: dict[str, str]  # the operator container's environment as the chart rendered it
    relay: RelayProcess  # a real relay authenticated as the chart's relay ServiceAccount
    relay_user: str


def enforce_restricted(core: client.CoreV1Api, name: str) -> None:
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    core.create_namespace({"metadata": {"name": name, "labels": labels}})


def kubeconfig_with_token(plane: ControlPlane, token: str, path: Path) -> Path:
    ca = (plane.workdir / "certs" / "apiserver.crt").read_bytes()
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": plane.server, "certificate-authority-data": base64.b64encode(ca).decode()},
            }
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


def install_argocd_crds(admin: client.ApiClient) -> None:
    api = client.ApiextensionsV1Api(admin)
    for document in argocd_crd_documents():
        api.create_custom_resource_definition(document)

    def established() -> bool:
        crds = api.list_custom_resource_definition().items
        return all(
            any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])) for crd in crds
        )

    wait_for(established, what="Argo CD CRDs established")


def container_command(deployment: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The operator container's args and environment as the kubelet would give them to the process."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            env[item["name"]] = {"metadata.name": POD_NAME, "metadata.namespace": RELEASE_NAMESPACE}[path]
    return list(container["args"]), env


@pytest.fixture(scope="session")
def chart_install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartInstall]:
    workdir = tmp_path_factory.mktemp("chart")
    plane = ControlPlane(audit_reads=True).start()
    try:
        admin = config.new_client_from_config(config_file=str(plane.kubeconfig))
        core = client.CoreV1Api(admin)
        enforce_restricted(core, RELEASE_NAMESPACE)
        for name in (ARGOCD_NAMESPACE, GITOPS_NAMESPACE, OTHER_NAMESPACE):
            core.create_namespace({"metadata": {"name": name}})
        for name in (ARGOCD_NAMESPACE, GITOPS_NAMESPACE):
            install_argocd_objects(core, name)  # as Argo CD's install does; ArgoBridge never creates them
        # A Secret beside Argo CD's that the operator has no business with (it must not be able to read it).
        core.create_namespaced_secret(
            ARGOCD_NAMESPACE, {"metadata": {"name": UNRELATED_SECRET}, "stringData": {"password": "hunter2-db"}}
        )
        install_argocd_crds(admin)
        metrics_port, health_port = free_port(), free_port()
        started = time.monotonic()
        helm(
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            RELEASE_NAMESPACE,
            "--set",
            f"watchNamespaces={{{ARGOCD_NAMESPACE},{GITOPS_NAMESPACE}}}",
            "--set",
            "leaderElection.enabled=true",
            "--set",
            f"metrics.port={metrics_port}",
            "--set",
            f"health.port={health_port}",
            "--set",
            "operator.logFormat=plain",
            kubeconfig=plane.kubeconfig,
        )
        FIGURES.append(f"helm install of the chart into the local control plane: {time.monotonic() - started:.1f}s")
        deployment = client.AppsV1Api(admin).read_namespaced_deployment(RELEASE, RELEASE_NAMESPACE)
        args, env = container_command(admin.sanitize_for_serialization(deployment))
        minted = core.create_namespaced_service_account_token(
            RELEASE, RELEASE_NAMESPACE, {"spec": {"expirationSeconds": 3600}}
        )
        operator_kubeconfig = kubeconfig_with_token(plane, minted.status.token, workdir / "operator.kubeconfig")
        # The chart's relay as a process here (no kubelet): its own ServiceAccount's token, the chart's
        # config Secret. The operator reaches it on loopback instead of the in-cluster DNS names.
        relay_token = core.create_namespaced_service_account_token(
            RELAY, RELEASE_NAMESPACE, {"spec": {"expirationSeconds": 3600}}
        )
        relay_kubeconfig = kubeconfig_with_token(plane, relay_token.status.token, workdir / "relay.kubeconfig")
        relay = RelayProcess(
            workdir / "relay",
            config_secret=f"{RELEASE_NAMESPACE}/{RELAY_CONFIG_SECRET}",
            kubeconfig=relay_kubeconfig,
            replica=f"{RELAY}-0",
        ).start()
        log = workdir / "operator.log"
        process_env = {**os.environ, **env, "KUBECONFIG": str(operator_kubeconfig), "ARGOBRIDGE_RESYNC_SECONDS": "3"}
        process_env |= {"ARGOBRIDGE_RELAY_URL": relay.url, "ARGOBRIDGE_RELAY_STATUS_URLS": relay.status_url}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "argobridge.commands.cli", *args],
                env=process_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:

            def healthy() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"operator exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=2) as response:
                        return response.status == 200
                except OSError:
                    return False

            wait_for(healthy, timeout=60, what="the operator's liveness endpoint")
            yield ChartInstall(
                plane=plane,
                admin=admin,
                operator=config.new_client_from_config(config_file=str(operator_kubeconfig)),
                operator_kubeconfig=operator_kubeconfig,
                service_account_user=f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}",
                metrics_port=metrics_port,
                health_port=health_port,
                log=log,
                operator_env=env,
                relay=relay,
                relay_user=f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELAY}",
            )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            relay.stop()
    finally:
        plane.stop()
