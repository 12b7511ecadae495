"""The Helm chart, rendered by the real (pinned) helm binary, and the plain manifests made from it.

`manifests/install/argobridge.yaml` is the chart's default rendering, written by this module and
checked by a test, so GitOps users who apply plain YAML get exactly what Helm users get.
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from argobridge_dev.gobuild import ensure_built
from argobridge_dev.versions import HELM

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "argobridge"
MANIFESTS = REPO / "manifests"
INSTALL_MANIFEST = MANIFESTS / "install" / "argobridge.yaml"
CRD_FILE = "backstagebridges.argobridge.io.yaml"
RELEASE = "argobridge"
NAMESPACE = "argobridge"
KUBE_VERSION = "1.34.4"

HEADER = (
    "# Generated from charts/argobridge with its default values by `make manifests`; do not edit.\n"
    "# Apply with `kubectl apply -k manifests/` (namespace, CRD and operator), or use the chart.\n"
)


def helm(*args: str, kubeconfig: Path | None = None) -> str:
    """Run the pinned helm binary and return its standard output; fail with its error text."""
    command = [str(ensure_built(HELM)), *args]
    if kubeconfig is not None:
        command += ["--kubeconfig", str(kubeconfig)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed:\n{result.stderr or result.stdout}")
    return result.stdout


def render_chart(*options: str, namespace: str = NAMESPACE, release: str = RELEASE) -> str:
    """`helm template` of the chart, CRDs excluded (they ship from manifests/crds and charts/.../crds)."""
    return helm("template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION, *options)


def default_manifest() -> str:
    """The text of manifests/install/argobridge.yaml as it must be."""
    return HEADER + render_chart()


def crds_in_sync() -> bool:
    """The chart's CRD and the plain manifests' CRD are the same file, byte for byte."""
    return filecmp.cmp(CHART / "crds" / CRD_FILE, MANIFESTS / "crds" / CRD_FILE, shallow=False)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m argobridge_dev.chart --write`: regenerate the plain manifests from the chart."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write manifests/install/argobridge.yaml")
    args = parser.parse_args(argv)
    text = default_manifest()
    if args.write:
        INSTALL_MANIFEST.parent.mkdir(parents=True, exist_ok=True)
        INSTALL_MANIFEST.write_text(text)
        (CHART / "crds" / CRD_FILE).write_bytes((MANIFESTS / "crds" / CRD_FILE).read_bytes())
        print(f"wrote {INSTALL_MANIFEST.relative_to(REPO)} and copied the CRD into the chart")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
