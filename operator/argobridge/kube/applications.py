"""Write ArgoBridge's subscription annotations onto Applications (Annotations mode only)."""

from __future__ import annotations

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
