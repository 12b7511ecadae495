"""Probe Backstage for a bridge: with its TLS settings, the legacy-path fallback, and backoff.

The last answer is kept in memory per bridge, not in status, so probing on schedule writes nothing
while the answer is unchanged; a failing Backstage is asked again after 5 s, 10 s, 20 s ... up to the
resync interval, so a broken endpoint is not hammered by every Application event.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace

from argobridge.backstage import client as backstage_client
from argobridge.backstage.client import Verify
from argobridge.core.conditions import Condition
from argobridge.core.probe import (
    BACKSTAGE_REACHABLE,
    LEGACY_NOTIFICATIONS_PATH,
    legacy_fallback,
    probe_backoff,
    probe_condition,
    should_try_legacy_path,
)
from argobridge.core.spec import BridgeSpec
from argobridge.kube import secrets
from argobridge.kube.errors import TRANSPORT_ERRORS, KubeError, transport_message
from argobridge.settings import Settings

BACKOFF_BASE_SECONDS = 5.0


@dataclass(frozen=True)
class _Last:
    due: float
    key: str
    condition: Condition
    failures: int
    path: str


_probes: dict[tuple[str, str], _Last] = {}


class CaBundleProblem(Exception):
    """spec.backstage.caBundle cannot be used; `reason` is the BackstageReachable reason, the message the fix."""

    reason = "CABundleInvalid"


class CaBundleInvalid(CaBundleProblem):
    """The CA bundle holds nothing Python's ssl module can load as a certificate (not PEM, or broken)."""


class CaBundleMissing(CaBundleProblem):
    """The CA bundle Secret or key named in spec.backstage.caBundle does not exist."""

    reason = "CABundleMissing"


class CaBundleUnreadable(CaBundleProblem):
    """The CA bundle Secret could not be read (RBAC, the API did not answer)."""

    reason = "CABundleUnreadable"


def verify_for(namespace: str, spec: BridgeSpec) -> Verify:
    """httpx's `verify` for this bridge: its CA bundle Secret, insecureSkipVerify, or the system CAs.

    Raises CaBundleProblem only, so a bad bundle is a condition and never stops the configuration.
    """
    pem, where = None, ""
    if spec.ca_bundle is not None:
        where = f"key {spec.ca_bundle.key} of Secret {spec.ca_bundle.secret_name}"
        try:
            pem = secrets.read_secret_key(namespace, spec.ca_bundle.secret_name, spec.ca_bundle.key)
        except KubeError as error:
            if error.status == 403:
                # The chart grants Secrets by name only: this one has to be named at install time.
                raise CaBundleUnreadable(
                    f"ArgoBridge may not read Secret {spec.ca_bundle.secret_name} (spec.backstage.caBundle): the"
                    f" chart grants Secrets by name only; install it with --set"
                    f" 'rbac.caBundleSecrets={{{spec.ca_bundle.secret_name}}}'"
                ) from None
            raise CaBundleUnreadable(
                f"spec.backstage.caBundle names {where}, which could not be read ({error}); check ArgoBridge's RBAC"
            ) from None
        except TRANSPORT_ERRORS as error:
            raise CaBundleUnreadable(
                f"spec.backstage.caBundle names {where}, which could not be read ({transport_message(error)})"
            ) from None
        if pem is None:
            raise CaBundleMissing(
                f"spec.backstage.caBundle names {where}, which does not exist; create it with Backstage's CA"
                " certificate (PEM)"
            )
    try:
        return backstage_client.tls_verify(pem, spec.insecure_skip_verify)
    except backstage_client.InvalidCaBundle as error:
        raise CaBundleInvalid(
            f"spec.backstage.caBundle names {where}, which holds no certificate that can be loaded ({error});"
            " put Backstage's CA certificate there in PEM form (-----BEGIN CERTIFICATE----- ...)"
        ) from None


def forget(namespace: str, name: str) -> None:
    """Drop everything remembered of a deleted bridge's probes."""
    _probes.pop((namespace, name), None)
    _acceptance.pop((namespace, name), None)


def probe_bridge(namespace: str, name: str, spec: BridgeSpec, token: str) -> tuple[Condition, BridgeSpec]:
    """BackstageReachable, and the spec with the path that works (the root path on a legacy backend)."""
    try:
        verify = verify_for(namespace, spec)
    except CaBundleProblem as error:
        return Condition(BACKSTAGE_REACHABLE, False, error.reason, str(error)), spec
    fingerprint = f"{spec.webhook_url}\n{spec.notifications_path_explicit}\n{spec.insecure_skip_verify}\n{token}"
    if spec.ca_bundle is not None:
        fingerprint += f"\n{verify is not True}\n{spec.ca_bundle}"
    key = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    last = _probes.get((namespace, name))
    now = time.monotonic()
    if last and last.key == key and now < last.due:
        return last.condition, replace(spec, notifications_path=last.path)
    result = backstage_client.probe_create_endpoint(spec.webhook_url, token, verify=verify)
    effective, reported, legacy = spec, spec, False  # the path Argo CD gets; the URL the condition names
    if should_try_legacy_path(result, spec.notifications_path_explicit):
        fallback = replace(spec, notifications_path=LEGACY_NOTIFICATIONS_PATH)
        root = backstage_client.probe_create_endpoint(fallback.webhook_url, token, verify=verify)
        result, legacy = legacy_fallback(result, root)
        if legacy:
            # A backend mounts the router's two paths at once; one starting up can answer 404 on the
            # first request and 400 on the second. Only a 404 again makes it an old backend.
            again = backstage_client.probe_create_endpoint(spec.webhook_url, token, verify=verify)
            if not should_try_legacy_path(again, spec.notifications_path_explicit):
                result, legacy = again, False
        effective = fallback if legacy else spec
        reported = fallback if result is root else spec
    condition = probe_condition(result, reported.webhook_url, spec.secret_name, spec.token_key, legacy=legacy)
    resync = Settings.from_env().resync_seconds
    failures = 0 if condition.status else (last.failures + 1 if last and last.key == key else 1)
    delay = resync if condition.status else probe_backoff(failures, min(BACKOFF_BASE_SECONDS, resync), resync)
    _probes[(namespace, name)] = _Last(now + delay, key, condition, failures, effective.notifications_path)
    return condition, effective


# Refusals of a rotation's new token, per bridge: (digest of URL and token, failures, monotonic due time).
# A rotation waits for Backstage (phase Published) with a reconcile every 2 s; without this, each one
# would probe Backstage, forever if nobody restarts it.
_acceptance: dict[tuple[str, str], tuple[str, int, float]] = {}


def accepts(namespace: str, spec: BridgeSpec, token: str, name: str = "") -> bool:
    """Whether Backstage accepts `token` (a probe, used to confirm a rotation); after a refusal the
    same token is asked about again after 5 s, 10 s, 20 s ... up to the resync interval."""
    key = hashlib.sha256(f"{spec.webhook_url}\n{token}".encode()).hexdigest()[:16]
    last = _acceptance.get((namespace, name))
    now = time.monotonic()
    if last and last[0] == key and now < last[2]:
        return False
    try:
        verify = verify_for(namespace, spec)
    except CaBundleProblem:
        accepted = False
    else:
        accepted = backstage_client.probe_create_endpoint(spec.webhook_url, token, verify=verify).status == 400
    if accepted:
        _acceptance.pop((namespace, name), None)
        return True
    failures = last[1] + 1 if last and last[0] == key else 1
    resync = Settings.from_env().resync_seconds
    _acceptance[(namespace, name)] = (key, failures, now + probe_backoff(failures, BACKOFF_BASE_SECONDS, resync))
    return False


def forget_acceptance(namespace: str, name: str) -> None:
    """Drop the pacing of acceptance probes, e.g. when Backstage was just restarted to read a new token."""
    _acceptance.pop((namespace, name), None)
