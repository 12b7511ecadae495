"""Talk to Backstage's notifications API with httpx; the token is sent, never logged or returned."""

from __future__ import annotations

import functools
import json
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from argobridge.core.appcheck import CatalogAnswer
from argobridge.core.catalogmatch import CATALOG_ANNOTATIONS
from argobridge.core.probe import ProbeResult

Verify = ssl.SSLContext | bool


# What else than httpx.HTTPError a request can raise before anything is sent: a URL the idna codec or
# httpx refuses, a header value that is not ASCII (UnicodeEncodeError, whose text quotes the character).
# Their text may hold part of the token, so only the type's name is ever reported.
UNSENDABLE = (httpx.InvalidURL, UnicodeError, ValueError)


class InvalidCaBundle(ValueError):
    """The CA bundle holds no certificate Python's ssl module can load (not PEM, or a broken one)."""


@functools.lru_cache(maxsize=1)
def _system_context() -> ssl.SSLContext:
    """httpx's own default (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), built once per process.

    `verify=True` makes httpx build it anew for every request, which loads the whole CA store: measured
    with py-spy on an idle operator with 100 bridges, that was 64% of its CPU (most of 0.35 of a core),
    for requests that mostly go to plain http:// URLs.
    """
    return httpx.create_ssl_context()


@functools.lru_cache(maxsize=64)
def _bundle_context(ca_pem: str) -> ssl.SSLContext:
    """A bridge's CA bundle as a context, once per distinct bundle (a changed bundle is a new key)."""
    try:
        return ssl.create_default_context(cadata=ca_pem)
    except (ssl.SSLError, ValueError) as error:
        raise InvalidCaBundle(type(error).__name__) from None


def tls_verify(ca_pem: str | None, insecure: bool) -> Verify:
    """What httpx checks Backstage's certificate against: a given CA bundle, the system's, or nothing."""
    if insecure:
        return False
    if ca_pem:
        return _bundle_context(ca_pem)
    return _system_context()


def _context(verify: Verify) -> Verify:
    """`True` as the shared system context, so no request builds one."""
    return _system_context() if verify is True else verify


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
            url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=timeout, verify=_context(verify)
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
    except UNSENDABLE as error:
        return ProbeResult(error="invalid", detail=type(error).__name__)
    return ProbeResult(status=response.status_code)


def check_entities(
    base_url: str, token: str, refs: list[str], timeout: float = 10.0, verify: Verify = True
) -> CatalogAnswer:
    """Ask the catalog which refs exist, in one request (`POST /api/catalog/entities/by-refs`)."""
    url = base_url.rstrip("/") + "/api/catalog/entities/by-refs"
    body = {"entityRefs": refs, "fields": ["kind", "metadata.namespace", "metadata.name"]}
    answer = _catalog_call("POST", url, token, timeout, verify, "to have refs checked", json=body)
    if isinstance(answer, str):
        return CatalogAnswer(unavailable=answer)
    return catalog_answer(refs, answer.content)


def _catalog_call(
    method: str, url: str, token: str, timeout: float, verify: Verify, purpose: str, **request: Any
) -> httpx.Response | str:
    """One catalog request: its 200 response, or why there is none, in words for status (`purpose` says
    what the catalog's read permission would give, for the 401/403 message)."""
    try:
        headers = {"Authorization": f"Bearer {token}"}
        response = httpx.request(method, url, headers=headers, timeout=timeout, verify=_context(verify), **request)
    except httpx.HTTPError as error:
        return f"the catalog did not answer ({type(error).__name__})"
    except UNSENDABLE as error:
        return f"no request to the catalog could be made ({type(error).__name__})"
    if response.status_code in (401, 403):
        return (
            f"the token may not read the catalog ({response.status_code}); allow plugin catalog"
            f" (permission catalog.entity.read) in its accessRestrictions {purpose}"
        )
    if response.status_code != 200:
        return f"the catalog answered {response.status_code} to {url.rsplit('/api/catalog/', 1)[-1]}"
    return response


def catalog_answer(refs: list[str], content: bytes) -> CatalogAnswer:
    """Read a 200 from `by-refs`: `items` lists one entity or null per ref, in order. Anything else (an
    HTML login page of a proxy, another service at that URL) leaves the refs unchecked, not "missing"."""
    try:
        answer = json.loads(content)
    except ValueError:
        return CatalogAnswer(
            unavailable="the catalog answered 200 with something that is not JSON; check that spec.backstage.url"
            " is Backstage itself and not a login page or proxy in front of it"
        )
    items = answer.get("items") if isinstance(answer, dict) else None
    if not isinstance(items, list) or len(items) != len(refs):
        return CatalogAnswer(
            unavailable="the catalog answered 200 with JSON that is not an answer of /api/catalog/entities/by-refs;"
            " check that spec.backstage.url is Backstage itself"
        )
    existing = {ref for ref, item in zip(refs, items, strict=True) if item}
    return CatalogAnswer(existing=frozenset(existing))


# The catalog's Application owners are read page by page; the bound keeps one refresh to a known cost
# (CATALOG_PAGES x CATALOG_PAGE_SIZE entities). A catalog with more owners than that is read in part and
# says so (CatalogOwners.truncated), rather than stall a reconcile.
CATALOG_PAGE_SIZE = 500
CATALOG_PAGES = 20
OWNER_FIELDS = "kind,metadata.namespace,metadata.name,metadata.annotations"


@dataclass(frozen=True)
class CatalogOwners:
    """The catalog's entities that own Applications (the `items` of every page read), or why none."""

    items: tuple[Any, ...] = ()
    unavailable: str | None = None
    truncated: bool = False


def read_catalog_owners(
    base_url: str,
    token: str,
    timeout: float = 10.0,
    verify: Verify = True,
    pages: int = CATALOG_PAGES,
    page_size: int = CATALOG_PAGE_SIZE,
) -> CatalogOwners:
    """`GET /api/catalog/entities/by-query` for entities with `argocd/app-name` or `argocd/app-selector`
    (two `filter` parameters, which Backstage ORs), only the fields the index reads, following `nextCursor`."""
    url = base_url.rstrip("/") + "/api/catalog/entities/by-query"
    params: list[tuple[str, str | int]] = [
        *(("filter", f"metadata.annotations.{key}") for key in CATALOG_ANNOTATIONS),
        ("fields", OWNER_FIELDS),
        ("limit", page_size),
    ]
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(pages):
        # A cursor carries the filters; the fields and the page size are asked for again with it.
        query = [("cursor", cursor), ("fields", OWNER_FIELDS), ("limit", page_size)] if cursor else params
        purpose = "to have recipients resolved from it"
        response = _catalog_call("GET", url, token, timeout, verify, purpose, params=query)
        if isinstance(response, str):
            return CatalogOwners(unavailable=response)
        page = _owners_page(response.content)
        if page is None:
            return CatalogOwners(
                unavailable="the catalog answered 200 with something that is not an answer of"
                " /api/catalog/entities/by-query; check that spec.backstage.url is Backstage itself"
            )
        items += page[0]
        cursor = page[1]
        if not cursor:
            return CatalogOwners(items=tuple(items))
    return CatalogOwners(items=tuple(items), truncated=True)


def _owners_page(content: bytes) -> tuple[list[Any], str | None] | None:
    """A by-query page's items and next cursor; None when it is not such a page."""
    try:
        answer = json.loads(content)
    except ValueError:
        return None
    items = answer.get("items") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        return None
    info = answer.get("pageInfo")
    cursor = info.get("nextCursor") if isinstance(info, dict) else None
    return items, cursor if isinstance(cursor, str) and cursor else None
