"""The operator's image for the kind tests: the `Containerfile` built by `argobridge_dev.image`, saved for kind.

The same build `make image` runs (the local Debian base, since no registry serves python:3.11-slim), so
the kind tests run the image users build, not a stand-in. kind takes an archive; it is saved again only
when the image's input hash changed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from argobridge_dev import containers, image
from argobridge_dev.kind import node


def build_with_docker() -> tuple[str, Path]:
    """On a machine with Docker and a registry: the Containerfile as it stands (upstream Python base)."""
    ref = f"{image.NAME}:{image.version()}"
    archive = node.archive_for(ref)
    archive.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["docker", "build", "-q", "-f", str(image.REPO / "Containerfile"), "-t", ref, str(image.REPO)], check=True
    )
    subprocess.run(["docker", "save", "-o", str(archive), ref], check=True)
    return ref, archive


def build(provider: str = "podman") -> tuple[str, Path]:
    """The operator image's tag and an archive of it for `kind load image-archive`."""
    if provider == "docker":
        return build_with_docker()
    built = image.ensure_image(log=False)
    archive = node.archive_for(built.ref)
    stamp = archive.with_name(archive.name + ".inputs")
    inputs = containers.podman("image", "inspect", "--format", "{{.Id}}", built.ref).stdout.strip()
    if archive.exists() and stamp.exists() and stamp.read_text() == inputs:
        return built.ref, archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    tmp.unlink(missing_ok=True)
    containers.podman("save", "--format", "docker-archive", "-o", str(tmp), built.ref)
    tmp.rename(archive)
    stamp.write_text(inputs)
    return built.ref, archive


if __name__ == "__main__":
    ref, path = build()
    print(ref, path, file=sys.stdout)
