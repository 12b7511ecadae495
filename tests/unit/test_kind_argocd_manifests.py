"""The kind cluster's Argo CD is Argo CD's own install.yaml, cut to the notifications controller."""

from __future__ import annotations

from argobridge_dev import versions
from argobridge_dev.gobuild import ensure_built
from argobridge_dev.kind import argocd


def test_selection_is_the_notifications_controller_with_the_image_built_here() -> None:
    ensure_built(versions.ARGO_CD)  # the module source, and so manifests/, comes with the build
    docs = argocd.notifications_manifests()
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deployments] == ["argocd-notifications-controller"]
    container = deployments[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == argocd.IMAGE, "the manifests name the image this machine builds and tags"
    assert container["imagePullPolicy"] == "IfNotPresent", "no registry: the loaded image must be used"
    names = {d["metadata"]["name"] for d in docs}
    assert {"argocd-notifications-cm", "argocd-notifications-secret", "argocd-cm"} <= names
    assert not any(d["kind"] == "StatefulSet" for d in docs), "the application controller is left out"
