"""A kind cluster with the chart's operator and Argo CD's notifications controller, as users run them.

`KindCluster.create()` makes the cluster from the cached node image (podman provider: no Docker daemon
here), loads the images built on this machine, and leaves the chart to the tests, which install it
with `helm` and the values a user would set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from argobridge_dev import containers, gobuild, versions
from argobridge_dev.kind import argocd, node

CLUSTER_CONFIG = """kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  # kindnetd is not built here; the node image carries a bridge CNI config (one node).
  disableDefaultCNI: true
nodes:
  - role: control-plane
    image: {image}
"""
# With Docker and a registry (a user's machine): kind's stock node image and its own CNI and storage.
STOCK_CLUSTER_CONFIG = """kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
"""


def provider() -> str:
    """kind's provider: ARGOBRIDGE_KIND_PROVIDER, else podman where installed (no daemon, no registry
    needed: everything is built here), else Docker with kind's stock node image (a user's machine)."""
    chosen = os.environ.get("ARGOBRIDGE_KIND_PROVIDER")
    if chosen in ("podman", "docker"):
        return chosen
    if chosen:
        raise RuntimeError(f"ARGOBRIDGE_KIND_PROVIDER={chosen!r}: use podman or docker")
    if shutil.which("podman"):
        return "podman"
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0:
        return "docker"
    # A docker client without a daemon (this kind of machine) is no provider: podman is installed instead.
    return "podman"


def _log(message: str) -> None:
    print(f"[argobridge kind] {message}", file=sys.stderr, flush=True)


@dataclass
class KindCluster:
    """One kind cluster, named, with its own kubeconfig file."""

    name: str
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="argobridge-kind-")))
    timings: dict[str, float] = field(default_factory=dict)
    provider: str = field(default_factory=provider)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def env(self) -> dict[str, str]:
        if self.provider == "docker":
            return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        return {**node.podman_env(), "KIND_EXPERIMENTAL_PROVIDER": "podman", "KUBECONFIG": str(self.kubeconfig)}

    def kind(self, *args: str) -> None:
        subprocess.run([str(gobuild.ensure_built(versions.KIND)), *args], env=self.env(), check=True)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [str(gobuild.ensure_built(versions.KUBECTL)), *args],
            env=self.env(),
            check=True,
            capture_output=True,
            text=True,
            input=input,
        )
        return result.stdout

    def helm(self, *args: str) -> str:
        result = subprocess.run(
            [str(gobuild.ensure_built(versions.HELM)), "--kubeconfig", str(self.kubeconfig), *args],
            env=self.env(),
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise RuntimeError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def create(self) -> None:
        """Create the cluster (node image built once per machine) and wait for the node to be Ready."""
        started = time.monotonic()
        config = self.workdir / "kind.yaml"
        if self.provider == "docker":
            config.write_text(STOCK_CLUSTER_CONFIG)
        else:
            config.write_text(CLUSTER_CONFIG.format(image=node.ensure_node_image()))
        self.timings["node image"] = time.monotonic() - started
        subprocess.run(
            [str(gobuild.ensure_built(versions.KIND)), "delete", "cluster", "--name", self.name],
            env=self.env(),
            capture_output=True,
        )
        began = time.monotonic()
        self.kind("create", "cluster", "--name", self.name, "--config", str(config), "--wait", "180s")
        self.timings["create"] = time.monotonic() - began

    def load(self, archive: Path) -> None:
        """Put an image archive into the node's containerd, as `kind load` does for users."""
        self.kind("load", "image-archive", str(archive), "--name", self.name)

    def delete(self) -> None:
        subprocess.run(
            [str(gobuild.ensure_built(versions.KIND)), "delete", "cluster", "--name", self.name],
            env=self.env(),
            capture_output=True,
        )

    def gateway(self) -> str:
        """The kind network's gateway: the host address pods use to reach the Backstage test backend."""
        out = subprocess.run(
            [self.provider, "network", "inspect", "kind"], env=self.env(), check=True, capture_output=True, text=True
        ).stdout
        network = json.loads(out)[0]
        # podman: subnets[].gateway; Docker: IPAM.Config[].Gateway.
        subnets = network.get("subnets") or [
            {"gateway": c.get("Gateway", "")} for c in (network.get("IPAM") or {}).get("Config") or []
        ]
        for subnet in subnets:
            if "." in subnet.get("gateway", ""):
                return str(subnet["gateway"])
        raise RuntimeError("the kind network has no IPv4 gateway")

    def install_argocd_notifications(self, namespace: str = "argocd") -> None:
        """Argo CD's notifications controller from Argo CD's install manifests, its image built here."""
        if self.provider == "podman":
            # No registry here: Argo CD's image is built from the same `argocd` binary, tagged as the manifests
            # name it. With Docker the node pulls Argo CD's published image.
            self.load(argocd.image_archive(gobuild.ensure_built(versions.ARGO_CD)))
        self.kubectl("create", "namespace", namespace)
        docs = yaml.safe_dump_all(argocd.notifications_manifests())
        self.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=docs)
        self.kubectl(
            "-n", namespace, "rollout", "status", "deployment/argocd-notifications-controller", "--timeout=180s"
        )


def prepare() -> str:
    """Everything a cluster needs that takes minutes cold, built before any test starts (`make kind-tools`)."""
    chosen = provider()
    if chosen == "podman":
        containers.ensure_tools()  # Debian's podman, runc and mmdebstrap, as root with apt-get when missing
    for tool in (versions.KIND, versions.KUBECTL, versions.HELM):
        gobuild.ensure_built(tool)
    if chosen == "docker":
        return "docker: kind's stock node image"
    node.ensure_host_modules_dir()
    return node.ensure_node_image()


def main(argv: list[str] | None = None) -> int:
    """`python -m argobridge_dev.kind.cluster [--prepare]`: build what kind needs; without --prepare, also
    create a cluster to poke at and print its kubeconfig."""
    args = sys.argv[1:] if argv is None else argv
    if "--prepare" in args:
        started = time.monotonic()
        print(f"{prepare()} ready in {time.monotonic() - started:.0f}s")
        return 0
    cluster = KindCluster(name=os.environ.get("KIND_CLUSTER", "argobridge-dev"))
    cluster.create()
    print(cluster.kubeconfig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
