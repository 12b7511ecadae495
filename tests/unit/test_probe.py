"""Reading Backstage's answer to the probe: every outcome names its cause and the fix."""

from __future__ import annotations

import pytest

from argobridge.core.probe import ProbeResult, probe_condition, probe_due

URL = "https://backstage.example.com/api/notifications/notifications"


@pytest.mark.parametrize(
    ("result", "status", "reason", "hint"),
    [
        (ProbeResult(status=400), True, "TokenAccepted", "accepts the token"),
        (ProbeResult(status=401), False, "TokenRejected", "backend.auth.externalAccess"),
        (ProbeResult(status=403), False, "TokenRestricted", "allow plugin notifications"),
        (ProbeResult(status=404), False, "NotFound", "notificationsPath: /api/notifications"),
        (ProbeResult(status=502), False, "HTTP502", "502"),
        (ProbeResult(error="connect", detail="Name or service not known"), False, "Unreachable", "spec.backstage.url"),
        (ProbeResult(error="tls", detail="certificate verify failed"), False, "TLSError", "certificate verify failed"),
        (ProbeResult(error="timeout"), False, "Timeout", "did not answer"),
    ],
)
def test_probe_outcomes(result, status, reason, hint):
    condition = probe_condition(result, URL, "argocd-notifications-secret", "backstage-token")
    assert (condition.status, condition.reason) == (status, reason)
    assert hint in condition.message


def test_probe_is_due_on_schedule_or_when_url_or_token_change():
    assert probe_due(None, None, "k", 0, 60)
    assert not probe_due(100, "k", "k", 130, 60)
    assert probe_due(100, "k", "k", 160, 60)
    assert probe_due(100, "k", "other", 101, 60)
