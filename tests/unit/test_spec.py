"""Parsing a BackstageBridge spec: defaults stay in memory, mistakes name the field and the fix."""

from __future__ import annotations

import pytest

from argobridge.core.spec import EventName, Severity, SpecError, SubscriptionMode, parse_bridge_spec


def test_minimal_spec_gets_the_manual_guides_defaults():
    spec = parse_bridge_spec({"backstage": {"url": "https://backstage.example.com/"}})
    assert spec.webhook_url == "https://backstage.example.com/api/notifications/notifications"
    assert spec.secret_name == "argocd-notifications-secret"
    assert spec.token_key == "backstage-token"
    assert spec.service_name == "backstage"
    assert spec.subscription_mode is SubscriptionMode.GLOBAL
    assert [(e.event, e.severity, e.topic) for e in spec.events] == [
        (EventName.SYNC_FAILED, Severity.HIGH, "argocd.sync.failed"),
        (EventName.HEALTH_DEGRADED, Severity.HIGH, "argocd.health.degraded"),
        (EventName.DEPLOYED, Severity.LOW, "argocd.deployed"),
        (EventName.SYNC_SUCCEEDED, Severity.LOW, "argocd.sync.succeeded"),
    ]


def test_parsing_never_changes_the_input():
    raw = {"backstage": {"url": "https://b.example.com"}}
    parse_bridge_spec(raw)
    assert raw == {"backstage": {"url": "https://b.example.com"}}


def test_backstage_under_a_path_keeps_the_path():
    spec = parse_bridge_spec(
        {"backstage": {"url": "https://example.com/backstage/", "notificationsPath": "/api/notifications"}}
    )
    assert spec.webhook_url == "https://example.com/backstage/api/notifications"


def test_event_without_severity_takes_that_events_default():
    spec = parse_bridge_spec({"backstage": {"url": "https://b"}, "events": [{"event": "Deployed"}]})
    assert spec.events[0].severity is Severity.LOW and spec.events[0].topic == "argocd.deployed"


def test_empty_event_list_means_no_events():
    assert parse_bridge_spec({"backstage": {"url": "https://b"}, "events": []}).events == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "spec.backstage.url is required"),
        ({"backstage": {"url": "backstage.example.com"}}, "spec.backstage.url"),
        ({"backstage": {"url": "https://b?x=1"}}, "spec.backstage.url"),
        ({"backstage": {"url": "https://b"}, "argocd": {"url": "argocd"}}, "spec.argocd.url"),
        ({"backstage": {"url": "https://b", "notificationsPath": "api"}}, "notificationsPath"),
        ({"backstage": {"url": "https://b"}, "token": {"key": "a.b"}}, "spec.token.key"),
        (
            {"backstage": {"url": "https://b"}, "argocd": {"serviceName": "Back.Stage"}},
            "spec.argocd.serviceName",
        ),
        ({"backstage": {"url": "https://b"}, "events": [{"event": "Nope"}]}, "spec.events[0].event"),
        (
            {"backstage": {"url": "https://b"}, "events": [{"severity": "low"}]},
            "spec.events[0].event is required",
        ),
        (
            {"backstage": {"url": "https://b"}, "events": [{"event": "Deployed", "severity": "meh"}]},
            "critical, high",
        ),
        (
            {"backstage": {"url": "https://b"}, "events": [{"event": "Deployed"}, {"event": "Deployed"}]},
            "listed twice",
        ),
        (
            {"backstage": {"url": "https://b"}, "subscriptions": {"mode": "All"}},
            "Global, Annotations, Manual",
        ),
        ({"backstage": "https://b"}, "spec.backstage must be an object"),
    ],
)
def test_invalid_spec_names_the_field(raw, message):
    with pytest.raises(SpecError) as raised:
        parse_bridge_spec(raw)
    assert message in str(raised.value)


def test_token_secret_other_than_argocds_is_refused():
    with pytest.raises(SpecError, match=r"spec\.token\.secretName must be argocd-notifications-secret"):
        parse_bridge_spec({"backstage": {"url": "https://b"}, "token": {"secretName": "slack-credentials"}})


def test_token_secret_named_as_argocds_is_still_accepted():
    spec = parse_bridge_spec(
        {"backstage": {"url": "https://b"}, "token": {"secretName": "argocd-notifications-secret", "key": "bs"}}
    )
    assert (spec.secret_name, spec.token_key) == ("argocd-notifications-secret", "bs")


@pytest.mark.parametrize(
    ("backstage", "field"),
    [
        ({"url": "https://x.example/$slack-token"}, "spec.backstage.url"),
        ({"url": "https://$slack-token.example"}, "spec.backstage.url"),
        ({"url": "https://b", "notificationsPath": "/api/$slack-token"}, "spec.backstage.notificationsPath"),
    ],
)
def test_dollar_in_a_webhook_service_value_is_refused(backstage, field):
    with pytest.raises(SpecError, match=rf"{field} must not contain \$") as error:
        parse_bridge_spec({"backstage": backstage})
    assert "slack-token" not in str(error.value).split("must not")[1]


def test_a_token_key_another_service_reads_is_found_and_ours_is_not():
    from argobridge.core.token import services_using_key

    config = {
        "service.slack": "token: $slack-token\n",
        "service.webhook.github": "headers:\n- name: Authorization\n  value: token $slack-token-2\n",
        "service.webhook.backstage": "headers:\n- {name: Authorization, value: Bearer $slack-token}\n",
        "template.x": "message: $slack-token",
    }
    assert services_using_key("slack-token", config, "service.webhook.backstage") == ["service.slack"]
    assert services_using_key("backstage-token", config, "service.webhook.backstage") == []
