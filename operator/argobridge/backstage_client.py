"""Talk to Backstage's notifications API with httpx; the token is sent, never logged or returned."""

from __future__ import annotations

import httpx

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
