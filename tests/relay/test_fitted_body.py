"""The real Backstage test backend accepts a fitted worst-case body (huge, every kind of character)."""

from __future__ import annotations

from argobridge.core.backstage_limits import fit_notification
from argobridge_dev.backstage import BackstageServer


def test_backstage_accepts_a_fitted_worst_case_body() -> None:
    nasty = 'é\x00中\U0001f600\ud800"\\\n\t<script>' * 20_000
    body = {
        "recipients": {"type": "entity", "entityRef": "user:default/guest"},
        "payload": {
            "title": nasty,
            "description": nasty,
            "link": "javascript:alert(1)",
            "severity": "urgent",
            "scope": nasty,
        },
    }
    with BackstageServer(token="fit-test-token").start() as backstage:
        status, _answer = backstage.send(fit_notification(body), token="fit-test-token")
        assert 200 <= status < 300
        assert any(n["payload"]["title"].endswith("\u2026") for n in backstage.notifications("guest"))
