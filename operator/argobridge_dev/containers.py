"""Podman on this kind of machine: installed from Debian when missing, configured by files the project owns.

Debian's podman runs as root here only with the runc runtime (crun fails on a cgroup v1 hybrid kernel),
`cgroup_manager = "cgroupfs"` and `default_ulimits = []`. Rather than editing /etc, the project writes its
own containers.conf and storage.conf under the cache and points CONTAINERS_CONF / CONTAINERS_STORAGE_CONF
at them, so images and layers live under `~/.cache/argobridge/containers` and nothing else on the
machine changes.

API (small on purpose; the kind helper reuses it):
- `ensure_tools()`: podman, buildah, runc and mmdebstrap present (apt-get as root when missing).
- `config_dir()`: the directory holding the project's containers.conf and storage.conf (written if absent).
- `environment()`: os.environ plus CONTAINERS_CONF / CONTAINERS_STORAGE_CONF.
- `podman(*args, check=True, capture=True, timeout=None)`: run podman with that environment.
- `image_exists(ref)`: whether the local store holds an image tag.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from argobridge_dev.gobuild import cache_root

# Debian package that provides each command the container machinery needs.
TOOLS: dict[str, str] = {"podman": "podman", "buildah": "buildah", "runc": "runc", "mmdebstrap": "mmdebstrap"}


class ContainerToolsMissing(RuntimeError):
    """Podman and its companions are absent and cannot be installed (not root, or apt failed)."""


def containers_root() -> Path:
    """Where the project's container configuration, images and layers live."""
    return cache_root() / "containers"


def _containers_conf() -> str:
    return (
        "[containers]\n"
        "default_ulimits = []\n"
        "\n"
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        'runtime = "runc"\n'
    )


def _storage_conf(root: Path) -> str:
    return f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "storage"}"\nrunroot = "{root / "run"}"\n'


def config_dir() -> Path:
    """The directory with the project's containers.conf and storage.conf, (re)written when they differ."""
    root = containers_root()
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (("containers.conf", _containers_conf()), ("storage.conf", _storage_conf(root))):
        path = root / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return root


def environment() -> dict[str, str]:
    """os.environ plus the variables that make podman and buildah use the project's configuration."""
    root = config_dir()
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(root / "containers.conf")
    env["CONTAINERS_STORAGE_CONF"] = str(root / "storage.conf")
    return env


def missing_tools() -> list[str]:
    """The commands in TOOLS not found on PATH (runc lives in /usr/sbin, which a user's PATH may lack)."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return [command for command in TOOLS if shutil.which(command, path=path) is None]


def ensure_tools() -> None:
    """Install the missing container tools from Debian; raise ContainerToolsMissing when that cannot work."""
    missing = missing_tools()
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ContainerToolsMissing(f"{', '.join(missing)} not installed and cannot be (needs root and apt-get)")
    packages = sorted({TOOLS[command] for command in missing})
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages, "uidmap", "fuse-overlayfs"],
            check=True,
            env=env,
            capture_output=True,
        )
    except subprocess.CalledProcessError as error:
        tail = (error.stderr or b"").decode(errors="replace")[-2000:]
        raise ContainerToolsMissing(f"apt-get install {' '.join(packages)} failed: {tail}") from error
    still = missing_tools()
    if still:
        raise ContainerToolsMissing(f"{', '.join(still)} still missing after apt-get install")


def podman(
    *args: str, check: bool = True, capture: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS` with the project's configuration; output captured as text unless capture=False."""
    return subprocess.run(
        ["podman", *args],
        check=check,
        env=environment(),
        text=True,
        capture_output=capture,
        timeout=timeout,
    )


def image_exists(ref: str) -> bool:
    """Whether the project's image store holds `ref` (a tag such as localhost/argobridge/operator:0.1.0)."""
    return podman("image", "exists", ref, check=False).returncode == 0
