"""Judge a probe of Backstage's create endpoint, made with the real token and an invalid body.

An authenticated request with an empty body makes Backstage answer 400 without creating anything, so
the probe tells "reachable and token accepted" from every failure without notifying anyone.
"""

from __future__ import annotations

from dataclasses import dataclass

from argobridge.core.appcheck import CatalogAnswer
from argobridge.core.conditions import Condition

BACKSTAGE_REACHABLE = "BackstageReachable"


@dataclass(frozen=True)
class ProbeResult:
    """What came back: an HTTP status, or the kind of transport error (connect, tls, timeout)."""

    status: int | None = None
    error: str | None = None
    detail: str = ""


LEGACY_NOTIFICATIONS_PATH = "/api/notifications"


def should_try_legacy_path(result: ProbeResult, path_explicit: bool) -> bool:
    """A 404 on the default path may be a backend older than 0.5.0, which serves the root path instead."""
    return result.status == 404 and not path_explicit


def legacy_fallback(default: ProbeResult, root: ProbeResult) -> tuple[ProbeResult, bool]:
    """What to report after the default path answered 404 and the root path answered `root`, and whether
    Argo CD is sent to the root path.

    Only a 400 proves the root path is a notifications router: it took the token and judged the body.
    A 401 or 403 proves only that something in the backend judged the token (every plugin route does,
    also on a backend still starting whose notifications router is not mounted yet): the refusal is
    what the user must fix, so it is reported, but Argo CD keeps the default path. Switching on it would
    point a healthy install at a path that stops working the moment the backend is up.
    """
    if root.status == 400:
        return root, True
    if root.status in (401, 403):
        return root, False
    return default, False


def probe_backoff(failures: int, base: float, cap: float) -> float:
    """Seconds until the next probe after `failures` failed ones in a row: doubling, from base, up to cap."""
    if failures <= 0:
        return cap
    return float(min(cap, base * 2 ** min(failures - 1, 20)))


def probe_condition(result: ProbeResult, url: str, secret: str, key: str, legacy: bool = False) -> Condition:
    """The BackstageReachable condition for a probe result, with the fix in the message."""
    where = f"key {key} of Secret {secret}"
    if legacy and result.status == 400:
        return Condition(
            BACKSTAGE_REACHABLE,
            True,
            "TokenAcceptedLegacyPath",
            f"{url} accepts the token in {where}; the backend is older than notifications-backend 0.5.0 (404 on"
            " /api/notifications/notifications), so Argo CD sends to the root path",
        )
    if result.error == "tls":
        return Condition(
            BACKSTAGE_REACHABLE,
            False,
            "TLSError",
            f"TLS handshake with {url} failed: {result.detail}; trust Backstage's CA with spec.backstage.caBundle"
            " (and argocd-tls-certs-cm for Argo CD)",
        )
    if result.error == "timeout":
        return Condition(BACKSTAGE_REACHABLE, False, "Timeout", f"{url} did not answer in time")
    if result.error == "invalid":
        return Condition(
            BACKSTAGE_REACHABLE,
            False,
            "InvalidRequest",
            f"no request to {url} could be made ({result.detail}); check that spec.backstage.url is a valid URL"
            f" and that the token in {where} holds printable ASCII only",
        )
    if result.error:
        return Condition(
            BACKSTAGE_REACHABLE,
            False,
            "Unreachable",
            f"cannot connect to {url} ({result.detail}); check spec.backstage.url and that Argo CD can reach it",
        )
    status = result.status or 0
    if status == 400:
        return Condition(BACKSTAGE_REACHABLE, True, "TokenAccepted", f"{url} accepts the token in {where}")
    if status == 401:
        return Condition(
            BACKSTAGE_REACHABLE,
            False,
            "TokenRejected",
            f"{url} answered 401: Backstage does not know the token in {where}; add it to"
            " backend.auth.externalAccess (type static) in Backstage's app-config and restart Backstage",
        )
    if status == 403:
        return Condition(
            BACKSTAGE_REACHABLE,
            False,
            "TokenRestricted",
            f"{url} answered 403: the token in {where} is restricted to other plugins; allow plugin notifications",
        )
    if status == 404:
        return Condition(
            BACKSTAGE_REACHABLE,
            False,
            "NotFound",
            f"{url} answered 404: the notifications backend is missing or older than 0.5.0"
            " (then set spec.backstage.notificationsPath: /api/notifications)",
        )
    return Condition(BACKSTAGE_REACHABLE, False, f"HTTP{status}", f"{url} answered {status} to an authenticated probe")


def probe_due(last_at: float | None, last_key: str | None, key: str, now: float, interval: float) -> bool:
    """Probe again when the URL or token changed, or the last probe is older than `interval` seconds."""
    return last_at is None or last_key != key or now - last_at >= interval


ENTITIES_RESOLVED = "EntitiesResolved"


def entities_condition(refs: list[str], answer: CatalogAnswer) -> Condition:
    """Whether every ref notifications go to names an entity in Backstage's catalog."""
    if answer.unavailable:
        # Unknown, not False: nothing is known to be missing, the check could not be made.
        return Condition(ENTITIES_RESOLVED, None, "CatalogUnavailable", f"Refs not checked: {answer.unavailable}")
    missing = [ref for ref in refs if ref not in answer.existing]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        return Condition(
            ENTITIES_RESOLVED,
            False,
            "MissingEntities",
            f"{len(missing)} of {len(refs)} entity refs name no entity in Backstage's catalog: {shown};"
            " notifications to them reach nobody (see the Applications' Warning Events)",
        )
    return Condition(ENTITIES_RESOLVED, True, "AllFound", f"All {len(refs)} entity refs exist in Backstage's catalog")
