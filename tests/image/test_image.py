"""The operator image, built here with podman and run the way OpenShift runs it, delivers a notification.

OpenShift's restricted-v2 gives the container an arbitrary UID in group 0, a read-only root filesystem
(the chart mounts an emptyDir at /tmp), no capabilities and no privilege escalation. The container uses
the host network to reach the suite's local control plane and Backstage. It serves only bridges labelled
with its own shard, so the suite's in-process operator, which serves unlabelled bridges, never
competes with it. If podman cannot be installed this test fails: on this kind of machine it must run.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge_dev import containers
from argobridge_dev.controlplane import free_port
from argobridge_dev.image import BuiltImage, ensure_image
from tests.conftest import wait_for
from tests.e2e.conftest import Rig, running_rig

SHARD_LABEL = f"{GROUP}/shard"
KUBECONFIG_IN_CONTAINER = "/var/run/argobridge/kubeconfig"


@pytest.fixture(scope="module")
def operator_image() -> BuiltImage:
    try:
        return ensure_image(log=False)
    except containers.ContainerToolsMissing as error:
        pytest.fail(f"THE IMAGE TEST CANNOT RUN: podman and its tools are missing and cannot be installed: {error}")


class OperatorContainer:
    """`argobridge run` in the image under OpenShift's restricted constraints, for one namespace and shard."""

    def __init__(self, image: str, kubeconfig: Path, shard: str) -> None:
        self.image = image
        self.kubeconfig = kubeconfig
        self.shard = shard
        self.uid = random.randint(1_000_000_000, 1_999_999_999)
        self.name = ""

    def start(self, namespace: str) -> None:
        self.name = f"argobridge-test-{uuid.uuid4().hex[:8]}"
        containers.podman(
            "run",
            "--detach",
            "--name",
            self.name,
            "--user",
            f"{self.uid}:0",
            "--read-only",
            "--read-only-tmpfs=false",
            "--tmpfs",
            "/tmp:rw,mode=1777,size=64m",
            "--cap-drop=ALL",
            "--security-opt",
            "no-new-privileges",
            "--network",
            "host",
            "--volume",
            f"{self.kubeconfig}:{KUBECONFIG_IN_CONTAINER}:ro",
            "--env",
            f"KUBECONFIG={KUBECONFIG_IN_CONTAINER}",
            "--env",
            f"ARGOBRIDGE_SHARD={self.shard}",
            "--env",
            f"ARGOBRIDGE_METRICS_PORT={free_port()}",
            "--env",
            "ARGOBRIDGE_RESYNC_SECONDS=3",
            "--env",
            "ARGOBRIDGE_LOG_FORMAT=plain",
            self.image,
            "run",
            "--namespace",
            namespace,
            "--liveness",
            f"http://127.0.0.1:{free_port()}/healthz",
        )

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return containers.podman("exec", self.name, *command, check=False)

    def logs(self) -> str:
        result = containers.podman("logs", self.name, check=False)
        return (result.stdout + result.stderr)[-4000:]

    def running(self) -> bool:
        result = containers.podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return result.stdout.strip() == "true"

    def remove(self) -> None:
        if self.name:
            containers.podman("rm", "--force", "--time", "5", self.name, check=False)
            self.name = ""


@pytest.fixture
def kubeconfig_for_container(control_plane: Any, tmp_path: Path) -> Path:
    """The control plane's kubeconfig, readable by group 0 only (the arbitrary UID is not its owner)."""
    copy = tmp_path / "kubeconfig"
    shutil.copyfile(control_plane.kubeconfig, copy)
    copy.chmod(0o640)
    return copy


@pytest.fixture
def container(operator_image: BuiltImage, kubeconfig_for_container: Path) -> Iterator[OperatorContainer]:
    running = OperatorContainer(operator_image.ref, kubeconfig_for_container, shard=f"image-{uuid.uuid4().hex[:6]}")
    try:
        yield running
    finally:
        running.remove()


def ready(rig: Rig) -> dict[str, Any] | None:
    body = rig.bridge()
    conditions = {c["type"]: c for c in body.get("status", {}).get("conditions", [])}
    return body if conditions.get("Ready", {}).get("status") == "True" else None


def test_image_runs_restricted_reconciles_to_ready_and_delivers(
    control_plane: Any,
    crds: list[str],
    argocd_crds: list[str],
    operator_image: BuiltImage,
    container: OperatorContainer,
    tmp_path_factory: pytest.TempPathFactory,
    figures: list[str],
) -> None:
    state = "built" if operator_image.built else "cached"
    figures.append(
        f"operator image {operator_image.ref}: {operator_image.size_bytes / 1e6:.0f} MB "
        f"({state}, {operator_image.seconds:.0f}s)"
    )
    started: dict[str, float] = {}

    def start_operator(namespace: str) -> None:
        started["at"] = time.monotonic()
        container.start(namespace)

    with running_rig(
        control_plane,
        tmp_path_factory,
        argocd={"url": "https://argocd.example.com"},
        prepare=start_operator,
        bridge_labels={SHARD_LABEL: container.shard},
    ) as rig:
        try:
            wait_for(lambda: ready(rig), timeout=180, interval=0.5, what="bridge Ready, served by the container")
            figures.append(
                f"container start to Ready, Backstage starting meanwhile: {time.monotonic() - started['at']:.1f}s"
            )
            assert container.exec("id", "-u").stdout.strip() == str(container.uid)
            assert container.exec("touch", "/opt/argobridge/written").returncode != 0, "root fs read-only"
            assert container.exec("sh", "-c", "echo x > /tmp/written").returncode == 0, "/tmp is writable"

            rig.create_app("shop-image")
            time.sleep(1)
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            rig.set_status("shop-image", "Failed", "Degraded", "image test: sync failed", started=now)
            failed = rig.wait_received("alice", "shop-image", "SyncFailed", timeout=90)
            assert failed["payload"]["title"].startswith("shop-image")
            assert failed["payload"]["link"] == f"https://argocd.example.com/applications/{rig.namespace}/shop-image"
            assert rig.received("bob", "shop-image") == []

            # Start to Ready on its own: a fresh container, with Backstage already up and the status cleared.
            container.remove()
            custom = client.CustomObjectsApi()
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, rig.namespace, PLURAL, "backstage", {"status": {"conditions": None}}
            )
            assert ready(rig) is None
            restarted = time.monotonic()
            container.start(rig.namespace)
            wait_for(lambda: ready(rig), timeout=120, interval=0.2, what="bridge Ready again after a restart")
            figures.append(f"operator container start to bridge Ready: {time.monotonic() - restarted:.1f}s")
        except BaseException:
            print(f"operator container logs:\n{container.logs() if container.name else '(removed)'}")
            raise
