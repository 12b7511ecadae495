"""Build the operator image here with podman, on the local Debian base, cached by a hash of its inputs.

Users with a registry build the Containerfile as it stands (its BASE_IMAGE defaults to the upstream
Python slim image). This machine reaches no registry, so the base comes from `baseimage.ensure_base()`
and is passed as a build argument. The image is rebuilt only when the Containerfile, pyproject.toml,
README (packaged as the long description), the operator's sources or the base change: the hash of those
is kept as a label on the image and compared before building.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from argobridge_dev import baseimage, containers

REPO = Path(__file__).resolve().parents[2]
NAME = "localhost/argobridge/operator"
_HASH_LABEL = "io.argobridge.inputs"
# The machine's CA bundle, which may hold the CA of a TLS-inspecting proxy in front of the package index.
_HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class BuiltImage:
    """An operator image in the local store: its tag, size in bytes and whether this call built it."""

    ref: str
    size_bytes: int
    built: bool
    seconds: float


def version() -> str:
    """The package version from pyproject.toml, used as the image tag."""
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("no version in pyproject.toml")


def _inputs() -> list[Path]:
    files = [REPO / "Containerfile", REPO / "pyproject.toml", REPO / "README.md"]
    sources = (REPO / "operator" / "argobridge").rglob("*")
    files += sorted(p for p in sources if p.is_file() and "__pycache__" not in p.parts)
    return files


def inputs_hash(base_ref: str) -> str:
    """A hash of what the image is made from: the base tag and every file the build copies."""
    digest = hashlib.sha256(base_ref.encode())
    for path in _inputs():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _label(ref: str) -> str | None:
    if not containers.image_exists(ref):
        return None
    out = containers.podman("image", "inspect", "--format", "{{json .Labels}}", ref).stdout
    labels = json.loads(out or "null") or {}
    value = labels.get(_HASH_LABEL)
    return value if isinstance(value, str) else None


def size_bytes(ref: str) -> int:
    """The image's uncompressed size as podman reports it."""
    return int(containers.podman("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())


def ensure_image(log: bool = True) -> BuiltImage:
    """The operator image's tag and size, building it first when its inputs changed since the last build."""
    started = time.monotonic()
    base = baseimage.ensure_base(log=log)
    ref = f"{NAME}:{version()}"
    wanted = inputs_hash(base)
    if _label(ref) == wanted:
        return BuiltImage(ref, size_bytes(ref), built=False, seconds=time.monotonic() - started)
    if log:
        print(f"building {ref} on {base}", file=sys.stderr)
    # Mounted over the base's bundle for the RUN steps only: pip trusts what this machine trusts, and
    # the image carries Debian's own bundle, never this machine's.
    trust = ["--volume", f"{_HOST_CA_BUNDLE}:{_HOST_CA_BUNDLE}:ro"] if _HOST_CA_BUNDLE.is_file() else []
    containers.podman(
        "build",
        "--pull=never",
        "--network=host",
        *trust,
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--label",
        f"{_HASH_LABEL}={wanted}",
        "-f",
        str(REPO / "Containerfile"),
        "-t",
        ref,
        str(REPO),
        capture=not log,
    )
    return BuiltImage(ref, size_bytes(ref), built=True, seconds=time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    """`python -m argobridge_dev.image`: build (or find) the image and print its tag and size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    image = ensure_image()
    state = "built" if image.built else "up to date"
    print(f"{image.ref} {state}: {image.size_bytes / 1e6:.0f} MB, {image.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
