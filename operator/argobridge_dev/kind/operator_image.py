"""The operator's image for the kind tests, built here without a registry.

Stand-in until issue 15's `argobridge_dev.image` lands on this branch: the `Containerfile` starts
FROM python:3.11-slim-bookworm, which no registry here serves. This builds the same layout (the
project's wheels installed with Python 3.11 from Debian bookworm, user 1001 in group 0, entrypoint
`argobridge run`) on a bookworm rootfs made with mmdebstrap.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from argobridge_dev.kind import node, rootfs

TAG = "localhost/argobridge/operator:kind"
REPO = Path(__file__).resolve().parents[3]


def build(repo: Path = REPO) -> Path:
    """Archive of the operator image built from this checkout (rebuilt every run: the code changes)."""
    python = rootfs.build_rootfs_tar(
        node.kind_dir() / "rootfs-python-bookworm.tar", packages=("python3", "python3-venv", "ca-certificates")
    )
    base = "localhost/argobridge/debian-python:bookworm"
    if subprocess.run(["podman", "image", "exists", base], env=node.podman_env()).returncode:
        node.podman("import", str(python), base)
    with tempfile.TemporaryDirectory() as ctx_name:
        ctx = Path(ctx_name)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(ctx / "wheels"), str(repo)],
            check=True,
        )
        (ctx / "Containerfile").write_text(
            f"FROM {base}\nENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp\n"
            "ENV PATH=/opt/argobridge/bin:/usr/bin:/bin\n"
            "COPY wheels /wheels\n"
            "RUN python3 -m venv /opt/argobridge"
            " && /opt/argobridge/bin/pip install -q --no-index /wheels/*.whl"
            " && rm -rf /wheels && chgrp -R 0 /opt/argobridge && chmod -R g=u /opt/argobridge\n"
            'USER 1001:0\nEXPOSE 8080 8081\nENTRYPOINT ["argobridge"]\nCMD ["run"]\n'
        )
        node.archive_for(TAG).unlink(missing_ok=True)
        return node.build_archive(TAG, ctx)


if __name__ == "__main__":
    shutil.which("podman") or sys.exit("podman is needed")
    print(build())
