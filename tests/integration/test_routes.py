"""Routes against a real kube-apiserver: the schema refuses what it can, the operator refuses the rest
without touching the configuration that is running."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from argobridge.core.render import render_notifications_config
from argobridge.core.spec import GROUP, PLURAL, VERSION, parse_bridge_spec
from tests.conftest import wait_for
from tests.integration.test_bridge_reconcile import (
    BACKSTAGE,
    bridge,
    cm_data,
    condition,
    create_bridge,
    get_bridge,
    wait_ready,
)

ONCALL = {
    "name": "prod-oncall",
    "match": [{"events": ["SyncFailed"], "destinationNamespaces": ["prod-*"]}],
    "recipients": ["group:default/oncall"],
    "title": "PROD {app}: {message}",
}


def route_spec(*routes: dict) -> dict:
    return {"backstage": {"url": BACKSTAGE}, "routes": list(routes)}


@pytest.mark.parametrize(
    ("route", "says"),
    [
        ({**ONCALL, "name": "Prod_OnCall"}, "spec.routes[0].name"),
        ({**ONCALL, "title": "PROD {application}"}, "title may use only the placeholders"),
        ({**ONCALL, "description": "a stray } brace"}, "description may use only the placeholders"),
        ({**ONCALL, "drop": True}, "drop sends nothing"),
        ({**ONCALL, "broadcast": True}, "a broadcast already reaches every user"),
        ({"name": "nothing", "match": [{"projects": ["x"]}]}, "a route needs an action"),
        ({**ONCALL, "recipients": ["oncall"]}, "spec.routes[0].recipients[0]"),
        ({**ONCALL, "match": [{"events": ["Exploded"]}]}, "spec.routes[0].match[0].events[0]"),
        ({**ONCALL, "match": [{"projects": ["plat form"]}]}, "spec.routes[0].match[0].projects[0]"),
        (
            {**ONCALL, "match": [{"labels": {"matchLabels": {"team": 'a"b'}}}]},
            "spec.routes[0].match[0].labels.matchLabels.team",
        ),
        ({**ONCALL, "match": [{"labels": {"matchLabels": {"bad key!": "a"}}}]}, "label keys look like"),
        (
            {**ONCALL, "match": [{"labels": {"matchExpressions": [{"key": "team", "operator": "In"}]}}]},
            "In and NotIn need values",
        ),
    ],
)
def test_invalid_route_is_rejected_at_apply_time(custom, crds, namespace, route, says):
    body = bridge(namespace)
    body["spec"] = route_spec(route)
    with pytest.raises(ApiException) as raised:
        create_bridge(custom, body)
    assert raised.value.status == 422
    assert says in raised.value.body, raised.value.body


def test_duplicate_route_names_are_rejected(custom, crds, namespace):
    body = bridge(namespace)
    body["spec"] = route_spec(ONCALL, {**ONCALL, "recipients": ["group:default/other"]})
    with pytest.raises(ApiException) as raised:
        create_bridge(custom, body)
    assert raised.value.status == 422 and "Duplicate value" in raised.value.body


def test_every_route_shape_is_accepted(custom, crds, namespace):
    body = bridge(namespace)
    body["spec"] = route_spec(
        {"name": "quiet", "match": [{"projects": ["sandbox", "tmp-*"]}], "drop": True},
        {"name": "everyone", "match": [{"projects": ["platform"], "minSeverity": "critical"}], "broadcast": True},
        ONCALL,
        {
            "name": "labelled",
            "match": [
                {
                    "labels": {
                        "matchLabels": {"example.com/team": "a.b_c-D9"},
                        "matchExpressions": [{"key": "legacy", "operator": "DoesNotExist"}],
                    },
                    "names": ["pay?-*"],
                },
                {"destinationClusters": ["https://eu-*.example.com:6443"], "applicationNamespaces": ["apps-*"]},
            ],
            "severity": "normal",
            "topic": "team.labelled",
            "description": "{{literal}} {app} {project} {namespace} {revision} {message} {health} {phase}",
        },
    )
    create_bridge(custom, body)


@pytest.mark.usefixtures("operator")
def test_route_that_cannot_compile_is_refused_and_the_running_configuration_stays(core, custom, namespace):
    create_bridge(custom, bridge(namespace, routes=[ONCALL]))
    wait_ready(custom, namespace)
    running = cm_data(core, namespace)
    assert "template.app-sync-failed-prod-oncall-backstage" in running
    assert "group:default/oncall" in running["template.app-sync-failed-prod-oncall-backstage"]

    # Valid for the schema, but SyncRunning is not enabled: the route could never apply to it.
    broken = {**ONCALL, "name": "running-oncall", "match": [{"events": ["SyncRunning"]}]}
    patch = {"spec": {"routes": [ONCALL, broken]}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage", patch)

    def refused():
        body = get_bridge(custom, namespace)
        ok = body["status"].get("observedGeneration") == body["metadata"]["generation"]
        return body if ok and condition(body, "ConfigApplied").get("reason") == "InvalidSpec" else None

    body = wait_for(refused, what="InvalidSpec")
    message = condition(body, "ConfigApplied")["message"]
    assert "spec.routes[1] (running-oncall)" in message and "add {event: SyncRunning} to spec.events" in message
    assert condition(body, "Ready")["status"] == "False"
    assert cm_data(core, namespace) == running, "the running configuration is left exactly as it was"
    # kopf posts Events from a queue of its own: the Event can follow the status by a moment.
    wait_for(
        lambda: any(
            "running-oncall" in event.message
            for event in core.list_namespaced_event(
                namespace, field_selector="involvedObject.name=backstage,type=Warning"
            ).items
        ),
        what="a Warning Event naming the refused route",
    )

    fixed = {"spec": {"events": [{"event": "SyncFailed"}, {"event": "SyncRunning"}], "routes": [ONCALL, broken]}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage", fixed)
    wait_ready(custom, namespace)
    data = cm_data(core, namespace)
    assert "template.app-sync-running-running-oncall-backstage" in data
    conditions = yaml.safe_load(data["trigger.on-sync-failed-backstage"])
    assert [item["send"] for item in conditions] == [
        ["app-sync-failed-prod-oncall-backstage"],
        ["app-sync-failed-backstage"],
    ]


def test_the_routes_sample_is_accepted_and_renders(custom, crds, namespace):
    sample = yaml.safe_load((Path(__file__).parents[2] / "manifests/samples/backstagebridge-routes.yaml").read_text())
    sample["metadata"]["namespace"] = namespace
    create_bridge(custom, sample)
    rendered = render_notifications_config(parse_bridge_spec(sample["spec"]), None)
    assert "template.app-health-degraded-platform-critical-backstage" in rendered.owned
    assert "template.app-sync-succeeded-backstage" not in rendered.owned, "successes are dropped"
