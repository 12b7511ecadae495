"""Pure parts of the probe (fallback, backoff), send-test's explanations and doctor's config check."""

from __future__ import annotations

import pytest

from argobridge.commands.doctor import check_config, format_json, format_text, problem
from argobridge.commands.send_test import explain_answer
from argobridge.core.probe import (
    ProbeResult,
    legacy_fallback,
    probe_backoff,
    probe_condition,
    should_try_legacy_path,
)
from argobridge.core.render import render_notifications_config
from argobridge.core.spec import SpecError, parse_bridge_spec


def test_404_on_the_default_path_tries_the_root_path_but_not_when_the_path_was_given():
    assert should_try_legacy_path(ProbeResult(status=404), path_explicit=False)
    assert not should_try_legacy_path(ProbeResult(status=404), path_explicit=True)
    assert not should_try_legacy_path(ProbeResult(status=401), path_explicit=False)


def test_only_a_400_on_the_root_path_sends_argo_cd_there():
    """A 401 or 403 on the root path is any backend judging a token (one still starting, whose
    notifications router is not mounted yet, too): it is reported, but Argo CD keeps the default path."""
    default = ProbeResult(status=404)
    assert legacy_fallback(default, ProbeResult(status=400)) == (ProbeResult(status=400), True)
    for status in (401, 403):
        assert legacy_fallback(default, ProbeResult(status=status)) == (ProbeResult(status=status), False)
    for other in (ProbeResult(status=404), ProbeResult(status=500), ProbeResult(error="connect")):
        assert legacy_fallback(default, other) == (default, False)


def test_legacy_backend_is_reported_with_the_url_actually_used():
    condition = probe_condition(ProbeResult(status=400), "https://b/api/notifications", "s", "k", legacy=True)
    assert condition.status and condition.reason == "TokenAcceptedLegacyPath"
    assert "https://b/api/notifications" in condition.message and "0.5.0" in condition.message


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (ProbeResult(status=400), "TokenAccepted"),
        (ProbeResult(status=401), "TokenRejected"),
        (ProbeResult(status=403), "TokenRestricted"),
        (ProbeResult(status=404), "NotFound"),
        (ProbeResult(status=500), "HTTP500"),
        (ProbeResult(error="connect", detail="refused"), "Unreachable"),
        (ProbeResult(error="tls", detail="self-signed certificate"), "TLSError"),
        (ProbeResult(error="timeout"), "Timeout"),
    ],
)
def test_every_probe_outcome_has_its_own_reason(result, reason):
    assert probe_condition(result, "https://b/x", "s", "k").reason == reason


def test_probe_backoff_doubles_up_to_the_resync_interval():
    assert [probe_backoff(n, 5, 300) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert probe_backoff(0, 5, 300) == 300
    assert probe_backoff(10_000, 5, 300) == 300


def test_spec_parses_mirror_rotation_and_tls():
    spec = parse_bridge_spec(
        {
            "backstage": {"url": "https://b", "caBundle": {"secretName": "ca"}, "insecureSkipVerify": True},
            "token": {
                "mirror": {"name": "bs-tokens", "restartDeployment": "backstage"},
                "rotation": {"interval": "30d"},
            },
        },
        "argocd",
    )
    assert spec.mirror and spec.mirror.namespace == "argocd" and spec.mirror.key == "current"
    assert spec.mirror.previous_key == "previous" and spec.mirror.restart_deployment == "backstage"
    assert spec.rotation_interval_seconds == 30 * 86400 and spec.rotation_grace_seconds == 600
    assert spec.ca_bundle and spec.ca_bundle.key == "ca.crt" and spec.insecure_skip_verify


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ({"rotation": {"interval": "24h"}}, "needs spec.token.mirror"),
        ({"mirror": {"name": "x"}, "rotation": {"interval": "1 day"}}, "not a duration"),
        ({"mirror": {"name": "x", "key": "a", "previousKey": "a"}}, "must differ"),
        ({"mirror": {}}, "mirror.name is required"),
    ],
)
def test_bad_token_settings_name_the_fix(token, message):
    with pytest.raises(SpecError, match=message):
        parse_bridge_spec({"backstage": {"url": "https://b"}, "token": token})


def test_send_test_explains_who_received_it_and_an_empty_answer():
    where = ("argocd-notifications-secret", "backstage-token")
    got = explain_answer(
        200, [{"user": "user:default/alice"}, {"user": "user:default/bob"}], "group:default/a", "u", where
    )
    assert got.ok and got.lines == ["Delivered to 2 recipient(s): user:default/alice, user:default/bob"]
    empty = explain_answer(200, [], "component:default/nope", "u", where)
    assert not empty.ok and "no recipient resolved" in empty.lines[0] and "component:default/nope" in empty.lines[1]
    rejected = explain_answer(401, {"error": {}}, "component:default/x", "u", where)
    assert not rejected.ok and "401" in rejected.lines[0]


def test_doctor_finds_missing_edited_unparsable_keys_and_missing_url():
    spec = parse_bridge_spec({"backstage": {"url": "https://b"}})
    good = dict(render_notifications_config(spec, "https://argocd").owned)
    good["context"] = "argocdUrl: https://argocd\n"
    assert all(finding.ok for finding in check_config(spec, good, "https://argocd"))
    broken = dict(good)
    service = next(key for key in broken if key.startswith("service."))
    del broken[service]
    trigger = next(key for key in broken if key.startswith("trigger."))
    broken[trigger] = "edited: [by hand"
    broken["context"] = "{}"
    failed = [finding for finding in check_config(spec, broken, None) if not finding.ok]
    assert sorted(finding.check for finding in failed) == ["config", "config", "config-parse", "context"]
    text = format_text(failed)
    assert "is not supported" in text and "differ from what ArgoBridge renders" in text and trigger in text
    assert '"ok": false' in format_json("argocd", [problem("x", "y", "z")])


def test_send_test_via_relay_explains_each_relay_answer():
    from argobridge.commands.send_test import explain_relay_answer

    url = "http://relay:8090/v1/bridges/argocd/backstage/notifications"
    stored = explain_relay_answer(202, {"id": 1}, url)
    assert stored.ok and "stored" in stored.lines[0] and "status.delivery" in stored.lines[1]
    for status, words in ((401, "token"), (404, "no entry"), (413, "100 kB"), (503, "cannot store")):
        outcome = explain_relay_answer(status, {"error": "x"}, url)
        assert not outcome.ok and str(status) in outcome.lines[0] and words in outcome.lines[0]


def test_the_url_argo_cd_posts_to_is_read_from_its_service_text():
    from argobridge.core.render import service_url_of

    assert service_url_of("url: http://relay:8090/v1/bridges/a/b/notifications\nheaders: []\n") == (
        "http://relay:8090/v1/bridges/a/b/notifications"
    )
    assert service_url_of("") is None and service_url_of("[not: a map") is None and service_url_of("- x") is None


def test_doctor_reports_how_notifications_travel_and_what_was_lost():
    from argobridge.commands.doctor import check_delivery

    (direct,) = check_delivery({"delivery": {"mode": "Direct"}})
    assert direct.ok and "Direct" in direct.message
    (fallback,) = check_delivery({"delivery": {"mode": "Direct", "reason": "RelayNotInstalled"}})
    assert not fallback.ok and "relay.enabled" in fallback.fix
    relayed = check_delivery({"delivery": {"mode": "Relay", "delivered": 5, "pending": 2, "deadLettered": 1}})
    assert relayed[0].ok and "delivered 5, pending 2" in relayed[0].message
    assert [f.check for f in relayed if not f.ok] == ["delivery/dead-letters"]
    assert not check_delivery({})[0].ok
