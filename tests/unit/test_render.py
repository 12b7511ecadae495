"""Rendering the Argo CD notifications configuration: exact keys, parseable values, safe constants."""

from __future__ import annotations

import codecs
import re

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from argobridge.core.events import CATALOG, ENTITY_REF_ANNOTATION
from argobridge.core.render import go_string, render_notifications_config
from argobridge.core.spec import parse_bridge_spec

BASE = {"backstage": {"url": "https://backstage.example.com"}}


def rendered(extra=None, argocd_url="https://argocd.example.com"):
    return render_notifications_config(parse_bridge_spec({**BASE, **(extra or {})}), argocd_url)


def test_default_bridge_renders_the_service_and_four_templates_and_triggers():
    keys = set(rendered().owned)
    assert keys == {
        "service.webhook.backstage",
        "template.app-sync-succeeded-backstage",
        "template.app-sync-failed-backstage",
        "template.app-health-degraded-backstage",
        "template.app-deployed-backstage",
        "trigger.on-sync-succeeded-backstage",
        "trigger.on-sync-failed-backstage",
        "trigger.on-health-degraded-backstage",
        "trigger.on-deployed-backstage",
    }
    assert all(key.endswith("-backstage") for key in keys if not key.startswith("service."))


def test_service_posts_json_with_the_token_from_argocds_secret():
    service = yaml.safe_load(rendered({"token": {"key": "bs_token"}}).owned["service.webhook.backstage"])
    assert service == {
        "url": "https://backstage.example.com/api/notifications/notifications",
        "headers": [
            {"name": "Content-Type", "value": "application/json"},
            {"name": "Authorization", "value": "Bearer $bs_token"},
        ],
    }


def test_every_value_is_a_yaml_document_of_the_expected_shape():
    for key, value in rendered().owned.items():
        document = yaml.safe_load(value)
        if key.startswith("template."):
            assert set(document) == {"webhook"}
            assert document["webhook"]["backstage"]["method"] == "POST"
            assert "toRawJson" in document["webhook"]["backstage"]["body"]
        if key.startswith("trigger."):
            assert isinstance(document, list) and len(document) == 1
            assert document[0]["send"] == [key.replace("trigger.on-", "app-")]


def test_webhook_block_is_keyed_by_the_configured_service_name():
    result = rendered({"argocd": {"serviceName": "backstage-prod"}})
    assert "service.webhook.backstage-prod" in result.owned
    template = yaml.safe_load(result.owned["template.app-deployed-backstage"])
    assert list(template["webhook"]) == ["backstage-prod"], "without it the engine sends a GET with plain text"


def test_every_trigger_is_guarded_by_the_entity_ref_annotation():
    for key, value in rendered().owned.items():
        if key.startswith("trigger."):
            when = yaml.safe_load(value)[0]["when"]
            assert when.startswith(
                f"app.metadata.annotations != nil and app.metadata.annotations['{ENTITY_REF_ANNOTATION}'] != nil"
            )


def test_sync_conditions_guard_apps_that_never_synced():
    for definition in CATALOG.values():
        if "operationState.phase" in definition.condition:
            assert "app.status?.operationState != nil and" in definition.condition


def test_values_are_never_pasted_between_quotes():
    for key, value in rendered().owned.items():
        if key.startswith("template."):
            body = yaml.safe_load(value)["webhook"]["backstage"]["body"]
            assert not re.search(r'"\{\{', body), "a value pasted into a JSON string breaks on quotes"
            assert body.rstrip().endswith("| toRawJson -}}")


def test_without_argocd_url_there_is_no_context_entry():
    assert rendered(argocd_url=None).context == {}
    assert rendered().context == {"argocdUrl": "https://argocd.example.com"}


def test_link_is_only_built_when_the_context_has_a_url():
    body = yaml.safe_load(rendered().owned["template.app-sync-failed-backstage"])["webhook"]["backstage"]["body"]
    assert "{{- with .context.argocdUrl -}}" in body
    assert '"link"' in body.split("{{- with .context.argocdUrl -}}")[1]


def test_severity_and_topic_from_the_spec_reach_the_template():
    result = rendered({"events": [{"event": "SyncFailed", "severity": "critical", "topic": "team.a/failures"}]})
    body = result.owned["template.app-sync-failed-backstage"]
    assert '"severity" "critical"' in body and '"topic" "team.a/failures"' in body
    assert set(result.owned) == {
        "service.webhook.backstage",
        "template.app-sync-failed-backstage",
        "trigger.on-sync-failed-backstage",
    }


def test_scope_names_the_app_and_event_so_repeats_refresh_one_notification():
    body = rendered().owned["template.app-deployed-backstage"]
    assert 'printf "argocd/%s/%s/%s" $namespace $name "Deployed"' in body
    assert "(trunc 190 $scope) (sha256sum $scope)" in body, "long scopes stay within Backstage's 255"


def go_unquote(literal: str) -> str:
    """Go's reading of a double-quoted literal made of the escapes `quoted` emits (all Python's too)."""
    assert literal.startswith('"') and literal.endswith('"')
    return codecs.decode(literal[1:-1], "unicode_escape")


@pytest.mark.parametrize(
    "hostile",
    ['say "hi"', "back\\slash", "new\nline", "ünïcødé ✓", "{{ .app }}", "x" * 300, "\u2028", "🚀 beyond the BMP"],
)
def test_go_string_literal_survives_hostile_text(hostile):
    literal = go_string(hostile)
    assert go_unquote(literal) == hostile
    assert "\n" not in literal and "{" not in literal and "}" not in literal
    assert literal.isascii()


@given(st.text())
def test_go_string_is_always_a_single_line_ascii_literal(text):
    literal = go_string(text)
    assert literal.isascii() and "\n" not in literal and go_unquote(literal) == text


def test_rendering_is_deterministic():
    assert rendered() == rendered()


def test_global_mode_subscribes_every_enabled_trigger_to_our_service():
    result = rendered({"events": [{"event": "SyncFailed"}, {"event": "Deployed"}]})
    assert result.subscriptions == (
        {"recipients": ["backstage"], "triggers": ["on-sync-failed-backstage", "on-deployed-backstage"]},
    )


def test_global_selector_becomes_the_engines_label_selector():
    result = rendered({"subscriptions": {"selector": {"matchLabels": {"team": "a", "env": "prod"}}}})
    assert result.subscriptions[0]["selector"] == "env=prod,team=a"


@pytest.mark.parametrize("mode", ["Annotations", "Manual"])
def test_other_modes_write_no_global_subscription(mode):
    assert rendered({"subscriptions": {"mode": mode}}).subscriptions == ()


def test_triggers_only_fire_for_recent_events():
    result = rendered({"eventWindowMinutes": 30})
    for key, value in result.owned.items():
        if key.startswith("trigger."):
            assert ").Minutes() < 30" in yaml.safe_load(value)[0]["when"]
