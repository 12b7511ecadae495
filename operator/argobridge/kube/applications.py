"""Write ArgoBridge's subscription annotations onto Applications (Annotations mode only)."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from argobridge.core.appcheck import AppFacts, annotations_owned_by
from argobridge.core.configplan import FIELD_MANAGER
from argobridge.kube.apply import server_side_apply
from argobridge.kube.client import custom_objects
from argobridge.kube.errors import KubeError


def apply_annotations(app: AppFacts, annotations: dict[str, str]) -> None:
    """Server-side apply exactly these annotations as ArgoBridge's; ours left out are removed."""
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": app.name, "namespace": app.namespace, "annotations": annotations},
    }
    target = ("argoproj.io", "v1alpha1", app.namespace, "applications", app.name)
    try:
        patch = custom_objects().patch_namespaced_custom_object
        server_side_apply(patch, *target, body=body, action=f"annotating Application {app.namespace}/{app.name}")
    except KubeError as error:
        if error.status != 404:  # deleted meanwhile: nothing to annotate
            raise


def read_app_facts(app: AppFacts) -> AppFacts | None:
    """The Application as it is now (the index may lag behind our own last write), or None if gone."""
    try:
        body = custom_objects().get_namespaced_custom_object(
            "argoproj.io", "v1alpha1", app.namespace, "applications", app.name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise KubeError(f"reading Application {app.namespace}/{app.name}", error) from None
    metadata = body.get("metadata") or {}
    return AppFacts(
        app.namespace,
        app.name,
        str(metadata.get("uid")),
        {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()},
        dict(metadata.get("labels") or {}),
        annotations_owned_by(metadata.get("managedFields"), FIELD_MANAGER),
    )


_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
LIST_PAGE = 500


def list_application_uids(namespace: str) -> set[str]:
    """The uids of the Applications in `namespace` now: metadata only, 500 a page, so it stays cheap."""
    uids: set[str] = set()
    token: str | None = None
    while True:
        try:
            raw = custom_objects().list_namespaced_custom_object(
                "argoproj.io",
                "v1alpha1",
                namespace,
                "applications",
                limit=LIST_PAGE,
                _continue=token,
                _preload_content=False,
                _headers={"Accept": _METADATA_ONLY},
            )
        except ApiException as error:
            raise KubeError(f"listing Applications in {namespace}", error) from None
        page = json.loads(raw.data)
        uids.update(str((item.get("metadata") or {}).get("uid")) for item in page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue") or None
        if not token:
            return uids
