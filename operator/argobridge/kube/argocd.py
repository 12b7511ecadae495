"""Read what Argo CD itself says about the instance in a namespace."""

from __future__ import annotations

from argobridge.kube.configmaps import read_config_map

ARGOCD_CM = "argocd-cm"


def read_argocd_url(namespace: str) -> str | None:
    """The external URL Argo CD was configured with (`url` in argocd-cm), if any."""
    data = read_config_map(namespace, ARGOCD_CM).data or {}
    url = data.get("url", "").strip()
    return url or None
