"""The Debian rootfs under the kind node image, made offline-from-registries with mmdebstrap.

kind's own base image is built from a Debian image plus binaries it downloads; here Debian's packages
provide systemd, containerd 1.6 (which accepts kind's config v2), runc and the CNI plugins, and kind's
`images/base/files` (from the kind module source) are laid on top, as its Dockerfile does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

# What kind's base Dockerfile installs, with Debian's containerd, runc and CNI plugins instead of its
# downloaded builds.
NODE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "conntrack",
    "iptables",
    "nftables",
    "iproute2",
    "ethtool",
    "util-linux",
    "mount",
    "kmod",
    "libseccomp2",
    "pigz",
    "e2fsprogs",
    "bash",
    "ca-certificates",
    "curl",
    "jq",
    "procps",
    "socat",
)

SUITE = "bookworm"


def build_rootfs_tar(target: Path, packages: tuple[str, ...] = NODE_PACKAGES, variant: str = "minbase") -> Path:
    """A tarball of a bookworm rootfs with `packages`, built once into `target`."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # mmdebstrap picks the output format from the name: keep the .tar suffix on the partial file.
    tmp = target.with_name(target.stem + ".partial.tar")
    subprocess.run(
        [
            "mmdebstrap",
            f"--variant={variant}",
            "--include=" + ",".join(packages),
            "--aptopt=APT::Install-Recommends false",
            SUITE,
            str(tmp),
        ],
        check=True,
    )
    tmp.rename(target)
    return target
