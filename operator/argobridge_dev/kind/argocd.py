"""Argo CD's notifications controller in the kind cluster, from Argo CD's own install manifests.

The documents are Argo CD's `manifests/install.yaml` of the pinned version (read from the module
source Go downloaded to build `argocd`): the CRDs, the notifications controller's objects and the
ConfigMaps/Secret it reads. The rest of Argo CD (server, repo-server, redis, dex) is left out, since
only the notifications controller delivers. The one change is the pull policy: the manifests say
`Always`, which needs a registry; the image is built here and tagged as the manifests name it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from argobridge_dev import gobuild, versions
from argobridge_dev.kind import node

IMAGE = f"quay.io/argoproj/argocd:{versions.ARGO_CD_VERSION}"
SHARED_OBJECTS = {
    "argocd-cm",
    "argocd-cmd-params-cm",
    "argocd-rbac-cm",
    "argocd-secret",
    "argocd-tls-certs-cm",
    "argocd-ssh-known-hosts-cm",
    "argocd-gpg-keys-cm",
}


def wanted(doc: dict[str, Any]) -> bool:
    """Whether a document of install.yaml belongs to what the notifications controller needs."""
    name = str(doc.get("metadata", {}).get("name", ""))
    return (
        doc.get("kind") == "CustomResourceDefinition"
        or name.startswith("argocd-notifications")
        or name in SHARED_OBJECTS
    )


def notifications_manifests() -> list[dict[str, Any]]:
    """The selected documents of Argo CD's install.yaml, pull policy set for a locally built image."""
    docs = [
        d
        for d in yaml.safe_load_all(
            (
                gobuild.module_dir(versions.ARGO_CD.module, versions.ARGO_CD.version) / "manifests" / "install.yaml"
            ).read_text()
        )
        if d
    ]
    selected = [d for d in docs if wanted(d)]
    for doc in selected:
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                container["imagePullPolicy"] = "IfNotPresent"
    return selected


def image_archive(argocd_binary: Path) -> Path:
    """Argo CD's image as its Dockerfile lays it out: `argocd` and its multi-call names in /usr/local/bin,
    on the Debian rootfs (CA certificates, /tmp), running as Argo CD's user 999."""
    base = node.base_debian_image()
    with tempfile.TemporaryDirectory() as ctx_name:
        ctx = Path(ctx_name)
        shutil.copy(argocd_binary, ctx / "argocd")
        links = " && ".join(
            f"ln -s /usr/local/bin/argocd /usr/local/bin/argocd-{name}"
            for name in (
                "server",
                "repo-server",
                "application-controller",
                "notifications",
                "applicationset-controller",
                "cmp-server",
                "dex",
                "k8s-auth",
                "commit-server",
            )
        )
        (ctx / "Containerfile").write_text(
            f"FROM {base}\nCOPY argocd /usr/local/bin/argocd\nRUN chmod 755 /usr/local/bin/argocd && {links}"
            " && useradd -u 999 -d /home/argocd -m argocd\nWORKDIR /home/argocd\nUSER 999\n"
        )
        return node.build_archive(IMAGE, ctx)
