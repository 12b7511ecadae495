"""What a reconcile publishes as metrics, and how old a token is, from data alone."""

from __future__ import annotations

from datetime import UTC, datetime

from argobridge.core.conditions import CONFIG_APPLIED, TOKEN_READY, Condition
from argobridge.core.metricsview import key_written_at, view_of


def test_ready_reconcile_has_no_error_reasons_but_keeps_the_probe_outcome() -> None:
    view = view_of(
        [
            Condition(CONFIG_APPLIED, True, "Applied", ""),
            Condition(TOKEN_READY, True, "Generated", ""),
            Condition("BackstageReachable", False, "TokenRejected", ""),
        ],
        {"watched": 3},
    )
    assert view.result == "ready"
    assert view.error_reasons == ("TokenRejected",)
    assert (view.probe_reason, view.probe_ok) == ("TokenRejected", False)
    assert view.applications == {"watched": 3}


def test_invalid_spec_is_not_ready_with_its_reason_once() -> None:
    view = view_of(
        [Condition(CONFIG_APPLIED, False, "InvalidSpec", "x"), Condition(TOKEN_READY, False, "InvalidSpec", "x")], None
    )
    assert (view.result, view.error_reasons, view.probe_reason) == ("not_ready", ("InvalidSpec",), None)


def test_token_age_comes_from_the_newest_writer_of_the_key() -> None:
    fields = [
        {"manager": "kubectl", "time": "2026-01-01T00:00:00Z", "fieldsV1": {"f:data": {"f:other": {}}}},
        {"manager": "argobridge", "time": "2026-02-01T00:00:00Z", "fieldsV1": {"f:data": {"f:backstage-token": {}}}},
        {"manager": "helm", "time": "2026-03-01T10:00:00Z", "fieldsV1": {"f:data": {"f:backstage-token": {}}}},
    ]
    assert key_written_at(fields, "backstage-token") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert key_written_at(fields, "missing") is None
    assert key_written_at(None, "backstage-token") is None
