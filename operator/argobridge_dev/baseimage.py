"""A Debian bookworm base with Python 3.11, made from Debian packages and imported as a local image.

No image registry is reachable here, so `python:3.11-slim-bookworm` cannot be pulled. mmdebstrap builds
the same kind of root filesystem from the Debian archive (minbase variant: no docs, man pages or locales)
and podman imports it. The tag carries a hash of the inputs (suite, package list, this recipe), so a
machine builds it once; the package versions apt chose are recorded beside it, since a suite moves.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from argobridge_dev import containers

SUITE = "bookworm"
PACKAGES = ("python3.11", "python3.11-venv", "ca-certificates")
RECIPE_VERSION = "1"
_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")


def inputs_hash() -> str:
    """A short hash of everything that decides the base's content apart from the archive's state."""
    text = "\n".join([RECIPE_VERSION, SUITE, *PACKAGES, *_EXCLUDES])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def tag() -> str:
    """The local tag of the base built from the current inputs."""
    return f"localhost/argobridge/python-base:{SUITE}-{inputs_hash()}"


def versions_file() -> Path:
    """Where the package versions of the base built for the current inputs are recorded."""
    return containers.containers_root() / f"python-base-{SUITE}-{inputs_hash()}.versions"


def ensure_base(log: bool = True) -> str:
    """The base image's tag, building and importing it first when this machine lacks it."""
    containers.ensure_tools()
    ref = tag()
    if containers.image_exists(ref):
        return ref
    if log:
        print(f"building {ref} from Debian {SUITE} with mmdebstrap (once per machine)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="argobridge-base-") as work:
        tarball = Path(work) / "rootfs.tar"
        command = [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            *(f"--dpkgopt=path-exclude={pattern}" for pattern in _EXCLUDES),
            '--customize-hook=chroot "$1" dpkg-query -W -f=\'${Package}=${Version}\\n\' > "$1/versions"',
            "--customize-hook=copy-out /versions " + work,
            '--customize-hook=rm "$1/versions"',
            '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
            SUITE,
            str(tarball),
        ]
        subprocess.run(command, check=True, capture_output=True)
        containers.podman(
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            'CMD ["python3"]',
            str(tarball),
            ref,
        )
        versions_file().write_text((Path(work) / "versions").read_text())
    return ref


if __name__ == "__main__":
    print(ensure_base())
