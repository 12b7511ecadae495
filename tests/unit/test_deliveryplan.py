"""spec.delivery and the delivery plan: which way notifications go, what Argo CD is pointed at, and why."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from argobridge.core.catalogmatch import EntityRefFrom
from argobridge.core.deliveryplan import RELAY_NOT_INSTALLED, delivery_status, plan_delivery, relay_ingress_url
from argobridge.core.render import render_notifications_config, render_service
from argobridge.core.spec import DeliveryMode, SpecError, parse_bridge_spec
from argobridge.core.status import ReconcileReport, build_status, status_patch

RELAY = "http://argobridge-relay.argobridge.svc:8090"
BACKSTAGE = "https://backstage.example.com/api/notifications/notifications"


def spec(delivery: dict[str, Any] | None = None, **backstage: Any) -> Any:
    raw: dict[str, Any] = {"backstage": {"url": "https://backstage.example.com", **backstage}}
    if delivery is not None:
        raw["delivery"] = delivery
    return parse_bridge_spec(raw, "argocd")


def test_delivery_defaults_to_the_operators_choice_and_the_contracts_bounds():
    delivery = spec().delivery
    assert delivery.mode is None
    assert delivery.retry_for_seconds == 86400.0 and delivery.attempt_timeout_seconds == 10.0


def test_delivery_durations_parse():
    delivery = spec({"mode": "Relay", "retryFor": "90m", "attemptTimeout": "30s"}).delivery
    assert delivery.mode is DeliveryMode.RELAY
    assert delivery.retry_for_seconds == 5400.0 and delivery.attempt_timeout_seconds == 30.0


@pytest.mark.parametrize(
    ("field", "value", "hint"),
    [
        ("retryFor", "30s", "from 1m to 7d"),
        ("retryFor", "8d", "from 1m to 7d"),
        ("retryFor", "24 hours", "not a duration"),
        ("attemptTimeout", "61s", "from 1s to 60s"),
        ("attemptTimeout", "2m", "from 1s to 60s"),
        ("attemptTimeout", "0s", "not a duration"),
        ("mode", "Queue", "use one of: Relay, Direct"),
    ],
)
def test_delivery_out_of_bounds_names_the_field_and_the_range(field: str, value: str, hint: str):
    with pytest.raises(SpecError, match=f"spec.delivery.{field}") as error:
        spec({field: value})
    assert hint in str(error.value)


def test_bounds_are_inclusive():
    assert spec({"retryFor": "1m", "attemptTimeout": "1s"}).delivery.retry_for_seconds == 60.0
    assert spec({"retryFor": "7d", "attemptTimeout": "60s"}).delivery.attempt_timeout_seconds == 60.0


def test_no_mode_is_relay_when_the_operator_has_one_and_direct_otherwise():
    relayed = plan_delivery(spec(), "argocd", "backstage", RELAY, True)
    assert relayed.mode is DeliveryMode.RELAY and relayed.reason is None
    assert relayed.service_url == f"{RELAY}/v1/bridges/argocd/backstage/notifications"
    direct = plan_delivery(spec(), "argocd", "backstage", "", False)
    assert direct.mode is DeliveryMode.DIRECT and direct.reason is None and direct.service_url == BACKSTAGE


def test_relay_asked_without_a_relay_is_direct_and_says_relay_not_installed():
    plan = plan_delivery(spec({"mode": "Relay"}), "argocd", "backstage", "", False)
    assert plan.mode is DeliveryMode.DIRECT and plan.reason == RELAY_NOT_INSTALLED
    assert plan.service_url == BACKSTAGE
    assert "ARGOBRIDGE_RELAY_URL" in plan.message and "Direct" in plan.message


def test_a_relay_url_without_its_config_secret_is_not_a_relay():
    plan = plan_delivery(spec({"mode": "Relay"}), "argocd", "backstage", RELAY, False)
    assert plan.mode is DeliveryMode.DIRECT and plan.reason == RELAY_NOT_INSTALLED
    assert "ARGOBRIDGE_RELAY_CONFIG_SECRET" in plan.message


def test_direct_asked_stays_direct_even_with_a_relay():
    plan = plan_delivery(spec({"mode": "Direct"}), "argocd", "backstage", RELAY, True)
    assert plan.mode is DeliveryMode.DIRECT and plan.reason is None and plan.service_url == BACKSTAGE


@given(
    mode=st.sampled_from([None, "Relay", "Direct"]),
    relay_url=st.sampled_from(["", RELAY]),
    configured=st.booleans(),
)
def test_relay_only_when_available_and_not_refused_and_reason_only_when_relay_was_asked(
    mode: str | None, relay_url: str, configured: bool
):
    plan = plan_delivery(spec({"mode": mode} if mode else None), "ns", "b", relay_url, configured)
    available = bool(relay_url) and configured
    assert plan.relayed == (available and mode != "Direct")
    assert (plan.reason is not None) == (mode == "Relay" and not available)
    assert plan.service_url.startswith(RELAY) == plan.relayed


def test_ingress_url_quotes_nothing_a_kubernetes_name_can_hold_and_drops_a_trailing_slash():
    assert relay_ingress_url(RELAY + "/", "team-a", "bridge.one") == (
        f"{RELAY}/v1/bridges/team-a/bridge.one/notifications"
    )


def service(rendered: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(rendered.owned["service.webhook.backstage"])
    return loaded


def test_relay_mode_changes_only_the_service_url_and_keeps_templates_and_triggers():
    # entityRefFrom: Annotation, so the catalog plays no part (with it, owner triggers lose their guard)
    bridge = spec(insecureSkipVerify=True)
    bridge = dataclasses.replace(bridge, entity_ref_from=EntityRefFrom.ANNOTATION)
    direct = render_notifications_config(bridge, "https://argocd.example.com")
    plan = plan_delivery(bridge, "argocd", "backstage", RELAY, True)
    relayed = render_notifications_config(bridge, "https://argocd.example.com", plan)
    assert service(relayed)["url"] == f"{RELAY}/v1/bridges/argocd/backstage/notifications"
    assert service(relayed)["headers"] == service(direct)["headers"]
    assert {"name": "Authorization", "value": "Bearer $backstage-token"} in service(relayed)["headers"]
    # insecureSkipVerify concerns Backstage's certificate: the relay applies it, Argo CD does not skip.
    assert service(direct)["insecureSkipVerify"] is True and "insecureSkipVerify" not in service(relayed)
    # The templates differ only by what the relay reads and strips (`argobridge`: event, route, app), and
    # the HealthRecovered signal is watched for the relay's noise control to resolve degraded notifications.
    signal = {"template.app-health-recovered-backstage", "trigger.on-health-recovered-backstage"}
    assert set(relayed.owned) - set(direct.owned) == signal
    others = {key for key in direct.owned if not key.startswith(("service.", "template."))}
    assert others and all(direct.owned[key] == relayed.owned[key] for key in others)
    for key in [key for key in direct.owned if key.startswith("template.")]:
        (direct_body,) = [hook["body"] for hook in yaml.safe_load(direct.owned[key])["webhook"].values()]
        (relayed_body,) = [hook["body"] for hook in yaml.safe_load(relayed.owned[key])["webhook"].values()]
        meta = [line for line in relayed_body.splitlines() if "$meta :=" in line or "set $meta" in line]
        assert meta and '"event"' in meta[0]
        kept = "\n".join(line for line in relayed_body.splitlines() if line not in meta)
        assert kept.replace('"payload" $payload "argobridge" $meta', '"payload" $payload') == direct_body.rstrip("\n")
    (entry,) = relayed.subscriptions
    assert entry["triggers"] == [*direct.subscriptions[0]["triggers"], "on-health-recovered-backstage"]
    assert direct.context == relayed.context


def test_a_direct_plan_renders_exactly_what_no_plan_renders():
    bridge = spec({"mode": "Relay"}, insecureSkipVerify=True)
    fallback = plan_delivery(bridge, "argocd", "backstage", "", False)
    assert render_service(bridge, fallback) == render_service(bridge)


def test_status_delivery_mode_keeps_the_relays_counters_in_relay_mode_and_drops_them_in_direct():
    previous = {"delivery": {"mode": "Relay", "delivered": 7, "pending": 0}}
    report = ReconcileReport()
    report.delivery_mode = delivery_status(plan_delivery(spec({"mode": "Relay"}), "ns", "b", RELAY, True))
    kept = build_status(previous, report, 1, "2026-01-01T00:00:00Z")
    assert kept["delivery"] == {"mode": "Relay", "delivered": 7, "pending": 0}
    assert "delivery" not in (status_patch(previous, kept) or {})
    # Falling back to Direct: nothing counts any more, so frozen figures would mislead.
    report.delivery_mode = delivery_status(plan_delivery(spec({"mode": "Relay"}), "ns", "b", "", False))
    new = build_status(kept, report, 1, "2026-01-01T00:00:00Z")
    assert new["delivery"] == {"mode": "Direct", "reason": RELAY_NOT_INSTALLED}
    assert status_patch(kept, new) == {
        "delivery": {"mode": "Direct", "reason": RELAY_NOT_INSTALLED, "delivered": None, "pending": None}
    }
    assert status_patch(new, build_status(new, report, 1, "2026-01-01T00:00:00Z")) is None


def test_a_reconcile_that_did_not_decide_the_mode_keeps_status_delivery():
    previous = {"delivery": {"mode": "Relay", "delivered": 3}}
    assert build_status(previous, ReconcileReport(), 1, "2026-01-01T00:00:00Z")["delivery"] == previous["delivery"]


def test_a_command_outside_the_operator_reads_the_relay_plan_back_from_status_and_the_service():
    from argobridge.core.deliveryplan import observed_plan

    bridge = spec()
    applied = plan_delivery(bridge, "argocd", "backstage", RELAY, True)
    relayed = {"delivery": {"mode": "Relay"}}
    seen = observed_plan(bridge, "argocd", "backstage", relayed, applied.service_url)
    assert seen == applied
    assert observed_plan(bridge, "argocd", "backstage", {"delivery": {"mode": "Direct"}}, applied.service_url) is None
    assert observed_plan(bridge, "argocd", "other", relayed, applied.service_url) is None, "another bridge's ingress"
    assert observed_plan(bridge, "argocd", "backstage", relayed, BACKSTAGE) is None
    assert observed_plan(bridge, "argocd", "backstage", {}, None) is None


def test_doctor_finds_a_relay_mode_configuration_in_order():
    from argobridge.commands.doctor import check_config

    bridge = spec()
    plan = plan_delivery(bridge, "argocd", "backstage", RELAY, True)
    rendered = render_notifications_config(bridge, "https://argocd.example.com", plan)
    data = {**rendered.owned, "context": "argocdUrl: https://argocd.example.com\n"}
    assert all(finding.ok for finding in check_config(bridge, data, "https://argocd.example.com", plan))
    direct = [finding for finding in check_config(bridge, data, "https://argocd.example.com") if not finding.ok]
    assert [finding.check for finding in direct] == ["config"], "read as Direct, the relay's service is drift"
