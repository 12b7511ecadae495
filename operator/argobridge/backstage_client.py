"""Talk to Backstage's notifications API with httpx; the token is sent, never logged or returned."""

from __future__ import annotations

import httpx

from argobridge.core.appcheck import CatalogAnswer
from argobridge.core.probe import ProbeResult


def probe_create_endpoint(url: str, token: str, timeout: float = 5.0) -> ProbeResult:
    """POST an empty body with the token: 400 means reachable and accepted, and nothing is created."""
    try:
        response = httpx.post(url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    except httpx.TimeoutException:
        return ProbeResult(error="timeout")
    except httpx.ConnectError as error:
        kind = "tls" if "SSL" in str(error) or "certificate" in str(error).lower() else "connect"
        return ProbeResult(error=kind, detail=str(error)[:200])
    except httpx.HTTPError as error:
        return ProbeResult(error="connect", detail=type(error).__name__)
    return ProbeResult(status=response.status_code)


def check_entities(base_url: str, token: str, refs: list[str], timeout: float = 10.0) -> CatalogAnswer:
    """Ask the catalog which refs exist, in one request (`POST /api/catalog/entities/by-refs`)."""
    url = base_url.rstrip("/") + "/api/catalog/entities/by-refs"
    try:
        response = httpx.post(
            url,
            json={"entityRefs": refs, "fields": ["kind", "metadata.namespace", "metadata.name"]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        return CatalogAnswer(unavailable=f"the catalog did not answer ({type(error).__name__})")
    if response.status_code in (401, 403):
        return CatalogAnswer(
            unavailable=f"the token may not read the catalog ({response.status_code}); allow plugin catalog"
            " (permission catalog.entity.read) in its accessRestrictions to have refs checked"
        )
    if response.status_code != 200:
        return CatalogAnswer(unavailable=f"the catalog answered {response.status_code}")
    items = response.json().get("items") or []
    existing = {ref for ref, item in zip(refs, items, strict=False) if item}
    return CatalogAnswer(existing=frozenset(existing))
