"""Route parsing and compilation: mistakes name the route and the fix; values enter only as data."""

from __future__ import annotations

import fnmatch
import re

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from argobridge.core.events import HAS_ENTITY_REF
from argobridge.core.literals import quoted
from argobridge.core.render import render_notifications_config
from argobridge.core.routeplan import glob_regex, match_condition, plan_deliveries, route_template_name
from argobridge.core.routes import LABEL_VALUE, RouteMatch
from argobridge.core.spec import EventName, Severity, SpecError, parse_bridge_spec

BASE = {"backstage": {"url": "https://backstage.example.com"}}
ONCALL = {
    "name": "prod-oncall",
    "match": [{"events": ["SyncFailed"], "destinationNamespaces": ["prod-*"]}],
    "recipients": ["Group:OnCall"],
}


def spec_with(*routes, events=None):
    raw = {**BASE, "routes": list(routes)}
    if events is not None:
        raw["events"] = events
    return parse_bridge_spec(raw)


def deliveries(spec, event: EventName):
    settings = next(item for item in spec.events if item.event == event)
    return plan_deliveries(settings, spec.routes, f"app-{event.value.lower()}-backstage")


def test_recipients_are_delivered_in_canonical_form():
    assert spec_with(ONCALL).routes[0].recipients == ("group:default/oncall",)


@pytest.mark.parametrize(
    ("route", "says"),
    [
        (
            {**ONCALL, "match": [{"events": ["SyncRunning"]}]},
            "spec.routes[0] (prod-oncall): event SyncRunning is not enabled in spec.events",
        ),
        ({**ONCALL, "drop": True}, "spec.routes[0] (prod-oncall): drop sends nothing"),
        ({**ONCALL, "broadcast": True}, "a broadcast already reaches every user"),
        ({"name": "idle", "match": [{"projects": ["x"]}]}, "spec.routes[0] (idle) has no action"),
        ({**ONCALL, "title": "{app} {mesage}"}, "spec.routes[0] (prod-oncall): title unknown placeholder {mesage}"),
        ({**ONCALL, "recipients": ["oncall"]}, "recipient 'oncall' has no kind"),
        ({**ONCALL, "match": []}, "match is an empty list"),
        ({**ONCALL, "match": [{"projects": ["Plat Form"]}]}, "'Plat Form' is not a valid project name or glob"),
        ({**ONCALL, "match": [{"labels": {"matchLabels": {"team": 'a"b'}}}]}, "value 'a\"b' of key 'team'"),
        (
            {
                **ONCALL,
                "match": [{"labels": {"matchExpressions": [{"key": "t", "operator": "Exists", "values": ["a"]}]}}],
            },
            "operator Exists takes no values",
        ),
        ({**ONCALL, "name": "Bad_Name"}, "spec.routes[0].name 'Bad_Name'"),
        ({**ONCALL, "severity": "urgent"}, "severity 'urgent'"),
        ({**ONCALL, "icon": 'kind:"x"'}, "spec.routes[0] (prod-oncall): icon 'kind:\"x\"' must be 1 to 64 letters"),
        ({**ONCALL, "icon": "i" * 65}, "spec.routes[0] (prod-oncall): icon"),
        ({**ONCALL, "icon": ""}, "spec.routes[0] (prod-oncall): icon '' must be 1 to 64"),
        ({**ONCALL, "icon": 7}, "spec.routes[0] (prod-oncall): icon 7 must be"),
        ({"name": "quiet", "drop": True, "icon": "warning"}, "spec.routes[0] (quiet): drop sends nothing"),
    ],
)
def test_mistakes_name_the_route_and_the_fix(route, says):
    with pytest.raises(SpecError, match=re.escape(says)):
        spec_with(route)


def test_duplicate_names_are_refused():
    with pytest.raises(SpecError, match="used twice"):
        spec_with(ONCALL, {**ONCALL, "recipients": ["group:default/other"]})


def test_event_title_with_a_typo_is_refused():
    with pytest.raises(SpecError, match=re.escape("spec.events[0].title unknown placeholder {ap}")):
        parse_bridge_spec({**BASE, "events": [{"event": "SyncFailed", "title": "{ap} failed"}]})


def test_first_matching_route_decides_and_drop_hides_the_default():
    spec = spec_with(
        {"name": "quiet", "match": [{"projects": ["sandbox"]}], "drop": True},
        ONCALL,
        {"name": "all-critical", "severity": "critical"},
    )
    plan = deliveries(spec, EventName.SYNC_FAILED)
    assert [d.route for d in plan] == ["prod-oncall", "all-critical"], "nothing after an unconditional route"
    oncall, everything = plan
    assert oncall.when.startswith('not ((app.spec?.project ?? "") in ["sandbox"]) and (')
    assert everything.when.count("not (") == 2
    assert oncall.recipients == ("group:default/oncall",) and not oncall.needs_owner
    assert everything.needs_owner and everything.severity is Severity.CRITICAL


def test_routes_for_other_events_leave_an_event_alone():
    spec = spec_with(ONCALL)
    plan = deliveries(spec, EventName.DEPLOYED)
    assert [(d.route, d.when) for d in plan] == [(None, "true")]


def test_min_severity_is_decided_from_the_events_configured_severity():
    spec = spec_with({"name": "loud", "match": [{"minSeverity": "high"}], "broadcast": True})
    assert [d.route for d in deliveries(spec, EventName.SYNC_FAILED)] == ["loud"]  # high
    assert [d.route for d in deliveries(spec, EventName.DEPLOYED)] == [None]  # low


def test_match_alternatives_are_ored_and_fields_anded():
    condition = match_condition(RouteMatch(projects=("a",), names=("x-*",)))
    assert condition == '((app.spec?.project ?? "") in ["a"] and (app.metadata?.name ?? "") matches "^(?:x\\\\-.*)$")'
    spec = spec_with({**ONCALL, "match": [{"projects": ["a"]}, {"projects": ["b"]}]})
    assert " or " in deliveries(spec, EventName.SYNC_FAILED)[0].when


def test_trigger_conditions_carry_recency_and_only_owner_deliveries_need_the_ref():
    spec = spec_with(ONCALL, {"name": "loud", "severity": "critical"}, events=[{"event": "SyncFailed"}])
    trigger = yaml.safe_load(render_notifications_config(spec, None).owned["trigger.on-sync-failed-backstage"])
    assert [item["send"] for item in trigger] == [
        ["app-sync-failed-prod-oncall-backstage"],
        ["app-sync-failed-loud-backstage"],
    ]
    assert not trigger[0]["when"].startswith(HAS_ENTITY_REF) and trigger[1]["when"].startswith(HAS_ENTITY_REF)
    assert all("time.Now().Sub" in item["when"] and item["oncePer"] for item in trigger)


def test_route_template_names_keep_the_backstage_suffix():
    assert route_template_name("app-sync-failed-backstage", "oncall") == "app-sync-failed-oncall-backstage"


@given(st.text(alphabet="abz09.-*?", min_size=1, max_size=12), st.text(alphabet="abz09.-xy", max_size=14))
def test_glob_regex_means_what_fnmatch_means(glob, value):
    assert bool(re.fullmatch(glob_regex(glob), value)) == fnmatch.fnmatchcase(value, glob)


@given(st.text(max_size=70))
def test_hostile_label_values_are_refused_or_enter_as_quoted_data(value):
    route = {**ONCALL, "match": [{"labels": {"matchLabels": {"example.com/team": value}}}]}
    if not LABEL_VALUE.fullmatch(value):
        with pytest.raises(SpecError, match=re.escape("of key 'example.com/team'")):
            spec_with(route)
        return
    when = deliveries(spec_with(route), EventName.SYNC_FAILED)[0].when
    assert when == f'(app.metadata?.labels?.["example.com/team"] in [{quoted(value)}])'


@given(st.text(min_size=1, max_size=20))
def test_hostile_globs_are_refused_unless_plain(value):
    assume(not re.fullmatch(r"[a-z0-9*?.-]+", value))
    with pytest.raises(SpecError, match="not a valid"):
        spec_with({**ONCALL, "match": [{"names": [value]}]})


@settings(deadline=None)  # renders a whole configuration per example; slow when the machine is busy
@given(st.text(max_size=200))
def test_any_route_text_renders_into_ascii_config_without_braces_of_its_own(text):
    escaped = text.replace("{", "{{").replace("}", "}}")
    spec = spec_with({**ONCALL, "title": escaped + " {app}", "description": escaped}, events=[{"event": "SyncFailed"}])
    template = render_notifications_config(spec, None).owned["template.app-sync-failed-prod-oncall-backstage"]
    body = yaml.safe_load(template)["webhook"]["backstage"]["body"]
    title_line = next(line for line in body.splitlines() if line.startswith("{{- $title := printf"))
    assert title_line.endswith(" $name -}}") and title_line.count("{{") == 1 and title_line.count("}}") == 1


def test_a_configuration_too_big_for_the_configmap_is_refused_with_the_fix():
    routes = [
        {
            "name": f"r{i}",
            "match": [{"projects": [f"p{i}", f"q{i}-*"], "destinationNamespaces": [f"n{i}-*"]}],
            "recipients": [f"group:default/g{i}"],
        }
        for i in range(16)
    ]
    spec = spec_with(*routes, events=[{"event": event.value} for event in EventName])
    with pytest.raises(SpecError, match=r"KiB of argocd-notifications-cm, more than the 512 KiB .* match\.events"):
        render_notifications_config(spec, None)
    fewer = spec_with(*routes[:8], events=[{"event": event.value} for event in EventName])
    assert sum(len(value) for value in render_notifications_config(fewer, None).owned.values()) < 512 * 1024


def test_an_icon_alone_is_an_action_and_wins_over_the_events():
    spec = spec_with(
        {"name": "prod-icon", "match": [{"destinationNamespaces": ["prod"]}], "icon": "kind:component"},
        events=[{"event": "SyncFailed", "icon": "warning"}],
    )
    route, default = deliveries(spec, EventName.SYNC_FAILED)
    assert (route.route, route.icon) == ("prod-icon", "kind:component")
    assert (default.route, default.icon) == (None, "warning")


def test_a_route_without_an_icon_keeps_the_events_or_none():
    with_event_icon = spec_with(ONCALL, events=[{"event": "SyncFailed", "icon": "warning"}])
    assert [item.icon for item in deliveries(with_event_icon, EventName.SYNC_FAILED)] == ["warning", "warning"]
    assert [item.icon for item in deliveries(spec_with(ONCALL), EventName.SYNC_FAILED)] == [None, None]


def test_the_routes_icon_reaches_its_template_as_a_literal():
    spec = spec_with({**ONCALL, "icon": "kind:component"})
    owned = render_notifications_config(spec, None).owned
    assert 'set $payload "icon" "kind:component"' in owned["template.app-sync-failed-prod-oncall-backstage"]
    assert '"icon"' not in owned["template.app-sync-failed-backstage"]
