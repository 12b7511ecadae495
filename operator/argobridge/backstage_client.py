"""Talk to Backstage's notifications API with httpx; the token is sent, never logged or returned."""

from __future__ import annotations

import ssl

import httpx

from argobridge.core.appcheck import CatalogAnswer
from argobridge.core.probe import ProbeResult

Verify = ssl.SSLContext | bool


def tls_verify(ca_pem: str | None, insecure: bool) -> Verify:
    """What httpx checks Backstage's certificate against: a given CA bundle, the system's, or nothing."""
    if insecure:
        return False
    if ca_pem:
        return ssl.create_default_context(cadata=ca_pem)
    return True


def _tls_failure(error: BaseException) -> str | None:
    """The TLS reason when a connection failed in the handshake (e.g. CERTIFICATE_VERIFY_FAILED)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return str(getattr(seen, "verify_message", "") or getattr(seen, "reason", "") or type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    text = str(error)
    return text[:200] if "SSL" in text or "certificate" in text.lower() else None


def probe_create_endpoint(url: str, token: str, timeout: float = 5.0, verify: Verify = True) -> ProbeResult:
    """POST an empty body with the token: 400 means reachable and accepted, and nothing is created."""
    try:
        response = httpx.post(
            url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=timeout, verify=verify
        )
    except httpx.TimeoutException:
        return ProbeResult(error="timeout")
    except httpx.ConnectError as error:
        reason = _tls_failure(error)
        if reason:
            return ProbeResult(error="tls", detail=reason)
        return ProbeResult(error="connect", detail=str(error)[:200])
    except httpx.HTTPError as error:
        return ProbeResult(error="connect", detail=type(error).__name__)
    return ProbeResult(status=response.status_code)


def check_entities(
    base_url: str, token: str, refs: list[str], timeout: float = 10.0, verify: Verify = True
) -> CatalogAnswer:
    """Ask the catalog which refs exist, in one request (`POST /api/catalog/entities/by-refs`)."""
    url = base_url.rstrip("/") + "/api/catalog/entities/by-refs"
    try:
        response = httpx.post(
            url,
            json={"entityRefs": refs, "fields": ["kind", "metadata.namespace", "metadata.name"]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=verify,
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
