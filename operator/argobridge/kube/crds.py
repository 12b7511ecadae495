"""Apply the CRDs shipped in `manifests/crds/` (used by `make run` and the tests, not by the operator)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from argobridge.kube.apply import server_side_apply
from argobridge.kube.client import api_client

MANIFESTS = Path(__file__).resolve().parents[3] / "manifests"


def crd_documents(directory: Path = MANIFESTS / "crds") -> list[dict[str, Any]]:
    """Every CRD document in a directory, in file order."""
    documents: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def apply_crds(documents: list[dict[str, Any]], timeout: float = 30.0) -> list[str]:
    """Server-side apply CRDs and wait until the apiserver serves them (Established)."""
    api = client.ApiextensionsV1Api(api_client())
    names = []
    for document in documents:
        name = document["metadata"]["name"]
        action = f"applying CustomResourceDefinition {name}"
        server_side_apply(api.patch_custom_resource_definition, name, body=document, action=action)
        names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = api.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (crd.status.conditions or [])}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CustomResourceDefinition {name} not established after {timeout:.0f}s")
            time.sleep(0.2)
    return names


def install_crds() -> list[str]:
    """Apply ArgoBridge's own CRDs."""
    return apply_crds(crd_documents())
