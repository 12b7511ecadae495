"""No value a user can write into a BackstageBridge silences the notifications of the whole Argo CD instance.

One parse error anywhere in `argocd-notifications-cm` (a selector `labels.Parse` refuses, a `when` that
does not compile, a template that does not parse) makes the engine refuse every notification, the users'
Slack and email included. The invariant, checked here against the real parts:
- a spec the CRD admits either renders into a configuration the real `argocd` engine parses whole (every
  trigger compiles, every template parses and renders for a sample Application), or the core refuses it
  with `SpecError` (`InvalidSpec` on the bridge);
- what the CRD can refuse it refuses at apply time (422 naming the field), and a spec only the core can
  refuse leaves the running configuration byte-identical.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.spec import GROUP, PLURAL, VERSION
from tests.conftest import wait_for

CM = "argocd-notifications-cm"
BACKSTAGE = "https://backstage.example.com"
SELECTOR_FIELD = "spec.subscriptions.selector.matchLabels"


def bridge_body(namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BackstageBridge",
        "metadata": {"name": "backstage", "namespace": namespace},
        "spec": {"backstage": {"url": BACKSTAGE}, **spec},
    }


def selector(labels: dict[str, Any]) -> dict[str, Any]:
    return {"subscriptions": {"mode": "Global", "selector": {"matchLabels": labels}}}


def refusal(custom: client.CustomObjectsApi, namespace: str, spec: dict[str, Any]) -> str:
    """The apiserver's 422 body for a bridge with this spec (the test fails if it is admitted)."""
    with pytest.raises(ApiException) as raised:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, bridge_body(namespace, spec))
    assert raised.value.status == 422, raised.value.body
    return str(raised.value.body)


# -- what the CRD refuses at apply time ------------------------------------------------------------------

BAD_SELECTORS = {
    "space in value": {"team": "a b"},
    "slash in value": {"team": "a/b"},
    "comma widens the selector": {"team": "a,tier=prod"},
    "equals sign": {"team": "a=b"},
    "value of 64 characters": {"team": "a" * 64},
    "value ending in a dash": {"team": "a-"},
    "unicode value": {"team": "équipe"},
    "empty key": {"": "a"},
    "space in key": {"my team": "a"},
    "two slashes in key": {"a/b/c": "x"},
    "uppercase prefix": {"Example.com/team": "a"},
    "empty name after prefix": {"example.com/": "a"},
    "name of 64 characters": {"t" * 64: "a"},
    "prefix of 254 characters": {("a" * 60 + ".") * 4 + "a" * 10 + "/team": "a"},
    "seventeen labels": {f"l{i}": "x" for i in range(17)},
}


@pytest.mark.parametrize("labels", BAD_SELECTORS.values(), ids=BAD_SELECTORS.keys())
def test_selector_the_engine_would_refuse_is_refused_at_apply_time_naming_the_field(custom, crds, namespace, labels):
    assert SELECTOR_FIELD in refusal(custom, namespace, selector(labels))


GOOD_SELECTORS = {
    "plain": {"team": "a"},
    "prefixed key": {"example.com/team": "payments"},
    "empty value": {"team": ""},
    "longest name and value": {"t" * 63: "v" * 63},
    "longest prefix": {("a" * 62 + ".") * 4 + "a" + "/team": "x"},  # 253 characters before the slash
    "sixteen labels": {f"l{i}": "x" for i in range(16)},
}


@pytest.mark.parametrize("labels", GOOD_SELECTORS.values(), ids=GOOD_SELECTORS.keys())
def test_selector_by_kubernetes_rules_is_admitted(custom, crds, namespace, labels):
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, bridge_body(namespace, selector(labels))
    )
    assert created["spec"]["subscriptions"]["selector"]["matchLabels"] == labels


ROUTE = {"name": "oncall", "recipients": ["group:default/oncall"]}
BAD_FIELDS = {
    "route label key with two slashes": (
        {"routes": [{**ROUTE, "match": [{"labels": {"matchLabels": {"a/b/c": "x"}}}]}]},
        "spec.routes[0].match[0].labels.matchLabels",
    ),
    "route expression key with a long prefix": (
        {
            "routes": [
                {
                    **ROUTE,
                    "match": [{"labels": {"matchExpressions": [{"key": "a" * 254 + "/t", "operator": "Exists"}]}}],
                }
            ]
        },
        "spec.routes[0].match[0].labels.matchExpressions[0].key",
    ),
    "topic with a space": ({"events": [{"event": "Deployed", "topic": "a b"}]}, "spec.events[0].topic"),
    "icon with a quote": ({"events": [{"event": "Deployed", "icon": 'a"b'}]}, "spec.events[0].icon"),
    "title with a template": ({"events": [{"event": "Deployed", "title": "{{.app}} {app.x}"}]}, "spec.events[0].title"),
    "service name with a dot": ({"argocd": {"serviceName": "back.stage"}}, "spec.argocd.serviceName"),
    "token key with a dot": ({"token": {"key": "backstage.token"}}, "spec.token.key"),
    "event window of zero": ({"eventWindowMinutes": 0}, "spec.eventWindowMinutes"),
    "application namespace with a slash": ({"argocd": {"applicationNamespaces": ["a/b"]}}, "applicationNamespaces"),
    "insecureSkipVerify as a string": (
        {"backstage": {"url": BACKSTAGE, "insecureSkipVerify": "false"}},
        "spec.backstage",
    ),
    "route glob with a quote": ({"routes": [{**ROUTE, "match": [{"names": ['a"']}]}]}, "spec.routes[0].match[0].names"),
}


@pytest.mark.parametrize(("spec", "field"), BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_other_rendered_values_the_engine_would_choke_on_are_refused_at_apply_time(
    custom, crds, namespace, spec, field
):
    assert field in refusal(custom, namespace, spec)


# -- what only the core can refuse, against the running operator -------------------------------------------


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((item for item in (body.get("status") or {}).get("conditions") or [] if item["type"] == kind), {})


def settled(custom: client.CustomObjectsApi, namespace: str, status: str, reason: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")
        applied = condition(body, "ConfigApplied")
        current = (body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"]
        return body if current and applied.get("status") == status and applied.get("reason") == reason else None

    return wait_for(reached, timeout=60, what=f"ConfigApplied {status}/{reason}")


def config_map_bytes(core: client.CoreV1Api, namespace: str) -> str:
    data = core.read_namespaced_config_map(CM, namespace).data or {}
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


# Each is admitted by the CRD (it cannot see across fields or count what rendering produces) and
# refused by the core with the field it names.
CORE_ONLY = {
    "route on an event that is not enabled": (
        {"events": [{"event": "SyncFailed"}], "routes": [{**ROUTE, "match": [{"events": ["Deployed"]}]}]},
        "event Deployed is not enabled in spec.events",
    ),
    "configuration over the size ArgoBridge allows itself": (
        {
            "events": [{"event": name} for name in ("SyncFailed", "SyncSucceeded", "Deployed", "HealthDegraded")]
            + [{"event": name} for name in ("SyncRunning", "SyncStatusUnknown", "HealthMissing", "Created", "Deleted")],
            "routes": [
                {"name": f"r{i}", "match": [{"projects": [f"p{i}"]}], "description": "d" * 4000} for i in range(16)
            ],
        },
        "more than the 512 KiB ArgoBridge allows itself",
    ),
}


@pytest.mark.usefixtures("operator")
@pytest.mark.parametrize(("bad", "says"), CORE_ONLY.values(), ids=CORE_ONLY.keys())
def test_spec_refused_by_the_core_leaves_the_running_configuration_byte_identical(core, custom, namespace, bad, says):
    good = {"events": [{"event": "SyncFailed"}, {"event": "Deployed"}], **selector({"team": "payments"})}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, bridge_body(namespace, good))
    settled(custom, namespace, "True", "Applied")
    before = config_map_bytes(core, namespace)
    assert "selector: team=payments" in before

    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "backstage", {"spec": {**bad, "subscriptions": None}}
    )
    body = settled(custom, namespace, "False", "InvalidSpec")

    assert says in condition(body, "ConfigApplied")["message"]
    assert condition(body, "Ready")["status"] == "False"
    assert config_map_bytes(core, namespace) == before


@pytest.fixture
def crd_of_the_previous_release(crds: list[str]) -> Any:
    """The CRD as released before selectors were checked: a bridge stored then keeps its bad selector.

    The apiserver never revalidates stored objects when a CRD is upgraded, so the core must refuse what
    the new schema would. The CRD is restored afterwards (same field manager, so the apply puts it back).
    """
    from argobridge.kube.crds import apply_crds, crd_documents

    (document,) = copy.deepcopy(crd_documents())
    schema = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    subscriptions = schema["properties"]["spec"]["properties"]["subscriptions"]
    subscriptions["properties"]["selector"]["properties"]["matchLabels"] = {
        "type": "object",
        "additionalProperties": {"type": "string"},
    }
    apply_crds([document])
    try:
        yield
    finally:
        apply_crds(crd_documents())


def patch_spec(custom: client.CustomObjectsApi, namespace: str, patch: dict[str, Any]) -> bool:
    """Patch the bridge's spec; False while the apiserver still validates with the schema before the change."""
    try:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage", {"spec": patch})
    except ApiException as error:
        if error.status == 422:
            return False
        raise
    return True


@pytest.mark.usefixtures("operator", "crd_of_the_previous_release")
@pytest.mark.parametrize(
    ("labels", "says"),
    [
        ({"team": "a b"}, "value 'a b' of key 'team'"),
        ({"team": "a,tier=prod"}, "value 'a,tier=prod' of key 'team'"),
        ({"": "a"}, "key '' is empty"),
        ({"a/b/c": "x"}, "key 'a/b/c' has a prefix 'a/b'"),
    ],
    ids=["space", "comma-widens", "empty-key", "two-slashes"],
)
def test_bad_selector_stored_before_the_crd_checked_it_is_invalid_spec_and_config_stays_byte_identical(
    core, custom, namespace, labels, says
):
    good = {"events": [{"event": "SyncFailed"}], **selector({"team": "payments"})}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, bridge_body(namespace, good))
    settled(custom, namespace, "True", "Applied")
    before = config_map_bytes(core, namespace)

    # The schema of the previous release admits it (each object's old value is replaced: a merge patch).
    bad = {"subscriptions": {"mode": "Global", "selector": {"matchLabels": {"team": None, **labels}}}}
    wait_for(lambda: patch_spec(custom, namespace, bad), what="the relaxed CRD to admit the selector")
    body = settled(custom, namespace, "False", "InvalidSpec")

    message = condition(body, "ConfigApplied")["message"]
    assert SELECTOR_FIELD in message and says in message, message
    assert condition(body, "Ready")["status"] == "False"
    assert config_map_bytes(core, namespace) == before
