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
import re
import time
from collections import Counter
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core import render
from argobridge.core.backstage_contract import create_request_problems
from argobridge.core.configplan import plan_config
from argobridge.core.events import CATALOG
from argobridge.core.exprsize import ENGINE_MAX_NODES, expr_node_count
from argobridge.core.ownership import Ownership
from argobridge.core.placeholders import PLACEHOLDERS
from argobridge.core.render import render_notifications_config, to_yaml
from argobridge.core.routeplan import plan_deliveries
from argobridge.core.spec import (
    GROUP,
    PLURAL,
    VERSION,
    BridgeSpec,
    EventName,
    Severity,
    SpecError,
    parse_bridge_spec,
)
from argobridge_dev.engine import EngineError, OfflineEngine
from tests.conftest import wait_for
from tests.contract.test_engine_contract import HOSTILE_MESSAGE, app
from tests.integration.test_bridge_reconcile import bridge_gone

CM = "argocd-notifications-cm"
BACKSTAGE = "https://backstage.example.com"
SELECTOR_FIELD = "spec.subscriptions.selector.matchLabels"
# Each example costs one to three argocd runs (0.15-0.3 s): 120 take about a minute on a busy 2-core machine.
PROPERTY_EXAMPLES = 120


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
    "route icon with a brace": ({"routes": [{**ROUTE, "icon": "a{{b"}]}, "spec.routes[0].icon"),
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
    """The ConfigMap's data, and its resourceVersion: not even a no-op write may happen."""
    config_map = core.read_namespaced_config_map(CM, namespace)
    return json.dumps([config_map.metadata.resource_version, config_map.data or {}], sort_keys=True, ensure_ascii=False)


# Each is admitted by the CRD (it cannot see across fields or count what rendering produces) and
# refused by the core with the field it names.
CORE_ONLY = {
    "route conditions over the engine's node limit": (
        {
            "routes": [
                {
                    "name": f"r{n}",
                    "match": [
                        {
                            "labels": {
                                "matchExpressions": [
                                    {"key": f"k{j}", "operator": "In", "values": [f"v{i}" for i in range(32)]}
                                    for j in range(16)
                                ]
                            }
                        }
                    ]
                    * 8,
                    "broadcast": True,
                }
                for n in range(2)
            ]
        },
        "expression nodes; Argo CD's engine refuses the whole configuration beyond 10000",
    ),
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

    # Deleting it works from the records alone, whether or not the spec still renders: its keys and its
    # marked entries go, and the finalizer never waits for a spec that can no longer be applied.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")
    wait_for(lambda: bridge_gone(custom, namespace), timeout=60, what="the bridge deleted")
    data = core.read_namespaced_config_map(CM, namespace).data or {}
    assert [key for key in data if key.endswith("-backstage") or key == "service.webhook.backstage"] == []
    assert "argobridge.io/bridge" not in json.dumps(data)


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


# -- the invariant, with the real engine ---------------------------------------------------------------------
#
# A hand-written strategy of specs the CRD admits: every field, each with the values its pattern allows,
# the hostile ones (quotes, newlines, `{{`, `}}`, `$`, `%`, emoji, other unicode, commas, `=`, very long
# text) weighted up.

HOSTILE = ['"', "'", "\\", "\n", "\r\n", "\t", "{{", "}}", "$", "$backstage-token", "%v", "%s", "<no value>", ",", "="]
HOSTILE += ["🚀", "é", "\u2028", "\u00a0", "\x00", "\x7f", "\U0010ffff", "`", "{{ .app }}", "<script>", "a" * 300]
EVENTS = [event.value for event in EventName]
SEVERITIES = [severity.value for severity in Severity]
PLACEHOLDER_NAMES = sorted(PLACEHOLDERS)


def _joined(parts: st.SearchStrategy[str], max_parts: int, max_size: int) -> st.SearchStrategy[str]:
    return st.lists(parts, max_size=max_parts).map("".join).filter(lambda text: len(text) <= max_size)


def placeholder_text(max_size: int) -> st.SearchStrategy[str]:
    """Text the CRD's placeholder rule admits: literal characters, {{, }}, and the known placeholders."""
    literal = st.one_of(
        st.text(st.characters(blacklist_characters="{}", blacklist_categories=["Cs"]), max_size=20),
        st.sampled_from([part for part in HOSTILE if "{" not in part and "}" not in part]),
    )
    part = st.one_of(literal, st.sampled_from(["{{", "}}"]), st.sampled_from(PLACEHOLDER_NAMES).map("{{{}}}".format))
    return st.one_of(_joined(part, 12, max_size), st.just("{message}" + "x" * (max_size - 9)))


def pattern_text(alphabet: str, max_size: int, min_size: int = 1) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=min_size, max_size=max_size)


URL_CHARS = st.characters(blacklist_characters="\t\n\f\r /?#", blacklist_categories=["Cs"])
# `[^\s/?#]`, `[^\s?#]`: Go's \s is [\t\n\f\r ] only, so the CRD admits quotes, `%`, `$`, unicode, NUL.
urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}{path}",
    st.sampled_from(["http", "https"]),
    st.one_of(
        st.just("backstage.example.com"),
        # Hosts of the CRD's own shape (labels, an IPv6 literal, a port), and now and then hostile text,
        # which the schema and the core refuse.
        st.builds(
            "{}{}".format,
            st.lists(
                st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_]{0,12}[A-Za-z0-9])?", fullmatch=True), min_size=1, max_size=4
            ).map(".".join),
            st.one_of(st.just(""), st.integers(1, 65535).map(":{}".format)),
        ),
        st.sampled_from(["[::1]", "[::1]:7007", "[2001:db8::7]:443"]),
        st.text(URL_CHARS, min_size=1, max_size=30),
    ),
    st.one_of(
        st.just(""),
        st.text(st.characters(blacklist_characters="\t\n\f\r ?#", blacklist_categories=["Cs"]), max_size=30).map(
            "/{}".format
        ),
    ),
)
NAME = "abcdefghijklmnopqrstuvwxyz0123456789"
dns_labels = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
label_names = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?", fullmatch=True)
label_keys = st.one_of(
    label_names,
    st.builds("{}/{}".format, st.lists(dns_labels, min_size=1, max_size=3).map(".".join), label_names),
    st.just("t" * 63),
)
label_values = st.one_of(st.just(""), label_names, st.just("v" * 63))
match_labels = st.dictionaries(label_keys, label_values, max_size=4)
globs = st.lists(pattern_text(NAME + "*?.-", 20), max_size=4)
cluster_globs = st.lists(pattern_text(NAME + "ABCXYZ*?._:/-", 30), max_size=3)
words = pattern_text("abcXYZ019._:/-", 40)
entity_refs = st.from_regex(
    r"[A-Za-z][A-Za-z0-9]{0,5}:([A-Za-z0-9]{1,5}([-_.][A-Za-z0-9]{1,5})?/)?[A-Za-z0-9]{1,8}", fullmatch=True
)


@st.composite
def label_selectors(draw: st.DrawFn) -> dict[str, Any]:
    selector: dict[str, Any] = {}
    if draw(st.booleans()):
        selector["matchLabels"] = draw(match_labels)
    if draw(st.booleans()):
        expressions = []
        for _ in range(draw(st.integers(0, 3))):
            operator = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
            item: dict[str, Any] = {"key": draw(label_keys), "operator": operator}
            if operator in ("In", "NotIn"):
                item["values"] = draw(st.lists(label_values, min_size=1, max_size=3))
            expressions.append(item)
        selector["matchExpressions"] = expressions
    return selector


@st.composite
def route_matches(draw: st.DrawFn) -> dict[str, Any]:
    match: dict[str, Any] = {}
    optional = {
        "events": st.lists(st.sampled_from(EVENTS), min_size=1, max_size=3, unique=True),
        "minSeverity": st.sampled_from(SEVERITIES),
        "projects": globs,
        "applicationNamespaces": globs,
        "names": globs,
        "destinationNamespaces": globs,
        "destinationClusters": cluster_globs,
        "labels": label_selectors(),
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 3)) == 0:
            match[key] = draw(strategy)
    return match


@st.composite
def routes(draw: st.DrawFn, index: int) -> dict[str, Any]:
    route: dict[str, Any] = {"name": f"r{index}-" + draw(pattern_text(NAME, 8))}
    if draw(st.booleans()):
        route["match"] = draw(st.lists(route_matches(), min_size=1, max_size=3))
    action = draw(st.sampled_from(["drop", "recipients", "broadcast", "change"]))
    if action == "drop":
        route["drop"] = True
        return route
    if action == "recipients":
        route["recipients"] = draw(st.lists(entity_refs, min_size=1, max_size=3))
    if action == "broadcast":
        route["broadcast"] = True
    changes = {
        "severity": st.sampled_from(SEVERITIES),
        "topic": words,
        "icon": pattern_text("abcXYZ019._:/-", 64),
        "title": placeholder_text(1024),
        "description": placeholder_text(4096),
    }
    required = draw(st.sampled_from(list(changes))) if action == "change" else None
    for key, strategy in changes.items():
        if key == required or draw(st.booleans()):
            route[key] = draw(strategy)
    return route


@st.composite
def admitted_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec the CRD's schema admits (types, enums, patterns, lengths, CEL rules), hostile where it may be."""
    backstage: dict[str, Any] = {"url": draw(urls)}
    if draw(st.booleans()):
        backstage["notificationsPath"] = "/" + draw(
            st.text(st.characters(blacklist_characters="\t\n\f\r ?#", blacklist_categories=["Cs"]), max_size=30)
        )
    if draw(st.booleans()):
        backstage["insecureSkipVerify"] = draw(st.booleans())
    argocd: dict[str, Any] = {}
    if draw(st.booleans()):
        argocd["url"] = draw(urls.filter(lambda url: url != backstage["url"]))
    if draw(st.booleans()):
        argocd["serviceName"] = draw(st.one_of(dns_labels, st.just("b" * 63)))
    if draw(st.booleans()):
        argocd["applicationNamespaces"] = draw(st.lists(pattern_text(NAME + "*?.-", 20), max_size=3))
    spec: dict[str, Any] = {"backstage": backstage, "argocd": argocd}
    if draw(st.booleans()):
        spec["token"] = {"key": draw(pattern_text("abcXYZ019_-", 30))}
    if draw(st.integers(0, 3)):
        names = draw(st.lists(st.sampled_from(EVENTS), min_size=0, max_size=9, unique=True))
        events = []
        for name in names:
            event: dict[str, Any] = {"event": name}
            for key, strategy in {
                "severity": st.sampled_from(SEVERITIES),
                "topic": words,
                "icon": pattern_text("abcXYZ019._:/-", 64),
                "title": placeholder_text(1024),
                "description": placeholder_text(4096),
            }.items():
                if draw(st.booleans()):
                    event[key] = draw(strategy)
            events.append(event)
        spec["events"] = events
    if draw(st.booleans()):
        spec["eventWindowMinutes"] = draw(st.integers(1, 10080))
    subscriptions: dict[str, Any] = {}
    if draw(st.booleans()):
        subscriptions["mode"] = draw(st.sampled_from(["Global", "Annotations", "Manual"]))
    if draw(st.booleans()):
        subscriptions["selector"] = {"matchLabels": draw(match_labels)}
    spec["subscriptions"] = subscriptions
    if draw(st.integers(0, 2)):
        spec["routes"] = [draw(routes(index)) for index in range(draw(st.integers(0, 4)))]
    return spec


SAMPLE_ARGOCD_URL = "https://argocd.example.com"


def sample_application(labels: dict[str, str]) -> dict[str, Any]:
    """A failed sync with a hostile message, labelled so selectors and label routes have something to match."""
    application = app(phase="Failed", health="Degraded", message=HOSTILE_MESSAGE)
    application["metadata"]["labels"] = labels
    return application


ENGINE_RUNS: dict[str, float] = {"specs": 0, "refused": 0, "calls": 0, "seconds": 0.0, "unprintable": 0}
# The engine's warnings are not load errors. (`$name` in a URL draws "config referenced ..., but key
# does not exist in secret": refusing `$` there is the token-privilege work, tested on its own.)
WARNINGS = re.compile(r'^\{.*"level":"warning"')
REFUSED_FIELDS: Counter[str] = Counter()
UNPRINTABLE_OFFLINE = "failed to notify 'console:stdout': yaml: control characters are not allowed"


def engine_accepts(spec: BridgeSpec, data: dict[str, str]) -> None:
    """Load the configuration into the real engine: every service, trigger and template is built when it
    loads (one error anywhere fails the load), then run one trigger and render two templates."""
    started = time.monotonic()
    engine = OfflineEngine(data, {spec.token_key: "property-test-token"}, tolerated_stderr=WARNINGS)
    labels = dict(spec.subscription_selector)
    for event in spec.events[:1]:
        definition = CATALOG[event.event]
        results = engine.trigger(definition.trigger, sample_application(labels))
        deliveries = plan_deliveries(event, spec.routes, definition.template)
        assert len(results) == len(deliveries)
        sampled = {deliveries[0].template: None, deliveries[-1].template: None} if deliveries else {}
        for delivery in sampled:  # the first route's and the owners' default (a drop-all route leaves none)
            try:
                text = engine.webhook_body(delivery, sample_application(labels), spec.service_name)
            except EngineError as error:
                # The template rendered; the offline command's console then cannot print a body holding
                # DEL or C1 controls as YAML (the webhook sends such JSON as it is). Only that is let by.
                if str(error).splitlines() != [UNPRINTABLE_OFFLINE]:
                    raise
                ENGINE_RUNS["unprintable"] += 1
                continue
            body = json.loads(text)
            assert create_request_problems(body) == [], body
        ENGINE_RUNS["calls"] += 1 + min(2, len(deliveries))
    if not spec.events:
        engine.load()  # nothing to run: still load the whole configuration
        ENGINE_RUNS["calls"] += 1
    ENGINE_RUNS["seconds"] += time.monotonic() - started


@settings(
    max_examples=PROPERTY_EXAMPLES,
    deadline=None,
    derandomize=True,
    # No shrinking: each step costs engine runs, and an unshrunk counterexample is still a spec to read.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(admitted_specs())
def test_every_spec_the_crd_admits_parses_whole_in_the_real_engine_or_is_refused(spec):
    ENGINE_RUNS["specs"] += 1
    try:
        parsed = parse_bridge_spec(spec, "argocd")
        rendered = render_notifications_config(parsed, parsed.argocd_url or SAMPLE_ARGOCD_URL)
    except SpecError as error:
        ENGINE_RUNS["refused"] += 1
        assert str(error).startswith("spec."), error  # names the field
        REFUSED_FIELDS[re.sub(r"\[\d+\]", "[]", str(error).split()[0].rstrip(":"))] += 1
        return
    # Exactly what the operator writes into an empty argocd-notifications-cm.
    data = plan_config(None, Ownership.of("argocd", "backstage"), rendered).data
    engine_accepts(parsed, data)


def test_property_figures(figures):
    runs = ENGINE_RUNS
    if runs["specs"]:
        figures.append(
            f"engine safety: {int(runs['specs'])} generated specs, {int(runs['refused'])} refused by the core,"
            f" {int(runs['calls'])} argocd calls in {runs['seconds']:.1f}s ({int(runs['unprintable'])} bodies with"
            " control characters rendered but not printable by the offline console)"
        )
        figures.append(f"engine safety: refused by field: {dict(REFUSED_FIELDS.most_common())}")


# -- the engine's own limits, found by the property test and checked here one by one ------------------------


def engine_error(data: dict[str, str]) -> str | None:
    """The engine's refusal of a whole configuration, or None when it loads."""
    try:
        OfflineEngine(data, {"backstage-token": "t" * 32}).load()
    except EngineError as error:
        return str(error)
    return None


def padded(when: str, nodes: int) -> dict[str, str]:
    """A configuration whose one trigger is `when` padded with string literals to exactly `nodes` nodes."""
    padding = nodes - expr_node_count(when) - 4  # `and`, "x", `in` and the array are four nodes
    strings = ", ".join(['"a"'] * padding)
    condition = f'({when}) and "x" in [{strings}]'
    assert expr_node_count(condition) == nodes
    return {"trigger.t": to_yaml([{"when": condition, "send": ["m"]}]), "template.m": "message: m\n"}


def test_the_cores_node_count_is_the_engines_for_every_condition_it_renders():
    spec = parse_bridge_spec(
        {
            "backstage": {"url": BACKSTAGE},
            "events": [{"event": name} for name in EVENTS],
            "routes": [
                {
                    "name": "every-shape",
                    "match": [
                        {
                            "projects": ["a", "b*"],
                            "applicationNamespaces": ["n?"],
                            "names": ["x"],
                            "destinationNamespaces": ["prod", "prod-*"],
                            "destinationClusters": ["https://k.example:6443", "in-*"],
                            "labels": {
                                "matchLabels": {"example.com/team": "a"},
                                "matchExpressions": [
                                    {"key": "tier", "operator": "NotIn", "values": ["x"]},
                                    {"key": "legacy", "operator": "DoesNotExist"},
                                    {"key": "stage", "operator": "Exists"},
                                ],
                            },
                        },
                        {"names": ["other"]},
                    ],
                    "broadcast": True,
                },
                {"name": "last", "match": [{"projects": ["z"]}], "drop": True},
            ],
        }
    )
    rendered = render_notifications_config(spec, None)
    conditions = {
        item["when"]
        for key, value in rendered.owned.items()
        if key.startswith("trigger.")
        for item in yaml.safe_load(value)
    }
    assert len(conditions) == 2 * len(EVENTS)  # the broadcast route and the owners; a drop sends nothing
    for when in sorted(conditions):
        # Exactly at the limit the engine loads it; one node more and it refuses the whole configuration.
        assert engine_error(padded(when, ENGINE_MAX_NODES)) is None, when
        assert "exceeds maximum allowed nodes" in (engine_error(padded(when, ENGINE_MAX_NODES + 1)) or ""), when


LABELLED = {
    "labels": {
        "matchExpressions": [
            {"key": f"k{j}", "operator": "In", "values": [f"v{i}" for i in range(32)]} for j in range(16)
        ]
    }
}
OVER_THE_NODE_LIMIT = {
    "events": [{"event": "SyncFailed"}],
    "routes": [{"name": f"r{number}", "match": [LABELLED] * 8, "broadcast": True} for number in range(2)],
}


def test_routes_over_the_engines_node_limit_are_refused_by_the_core_which_the_engine_would_refuse_whole(monkeypatch):
    spec = parse_bridge_spec({"backstage": {"url": BACKSTAGE}, **OVER_THE_NODE_LIMIT})
    with pytest.raises(SpecError, match=r"\(route r1\) would have 11319 expression nodes") as refused:
        render_notifications_config(spec, None)
    assert "spec.routes" in str(refused.value)

    # What the engine would have been given without the check: under the 512 KiB size check, so nothing
    # else would have stopped it.
    monkeypatch.setattr(render, "MAX_CONDITION_NODES", 10**9)
    data = plan_config(None, Ownership.of("argocd", "backstage"), render_notifications_config(spec, None)).data
    assert sum(len(value) for value in data.values()) < render.MAX_OWNED_BYTES
    assert "exceeds maximum allowed nodes" in (engine_error(data) or "")


@pytest.mark.parametrize("name", ["y", "n", "1e3", "0o17", "1e-3"])
def test_service_names_that_go_yaml_reads_as_booleans_or_numbers_load_in_the_engine(name):
    spec = parse_bridge_spec({"backstage": {"url": BACKSTAGE}, "argocd": {"serviceName": name}})
    data = plan_config(None, Ownership.of("argocd", "backstage"), render_notifications_config(spec, None)).data
    assert engine_error(data) is None
    engine = OfflineEngine(data, {"backstage-token": "t" * 32})
    application = app(phase="Failed", health="Degraded")
    assert engine.trigger(CATALOG[EventName.SYNC_FAILED].trigger, application) == [True]
    assert json.loads(engine.webhook_body(CATALOG[EventName.SYNC_FAILED].template, application, name))


def subscription_config(selector_text: str) -> dict[str, str]:
    entry = {"recipients": ["backstage"], "triggers": ["on-sync-failed-backstage"], "selector": selector_text}
    return {"subscriptions": to_yaml([entry])}


@pytest.mark.parametrize(
    "labels",
    [v for k, v in BAD_SELECTORS.items() if k != "seventeen labels"],
    ids=[k for k in BAD_SELECTORS if k != "seventeen labels"],
)
def test_each_selector_the_rules_refuse_would_break_or_change_the_engines_selector(labels):
    joined = ",".join(f"{key}={value}" for key, value in labels.items())  # what render wrote before
    error = engine_error(subscription_config(joined))
    # `team=a,tier=prod` loads, but as two requirements: a wider selector than the one label asked for.
    assert error is not None or joined.count(",") + joined.count("=") > len(labels) * 2 - 1, joined
    with pytest.raises(SpecError, match=re.escape(SELECTOR_FIELD)):
        parse_bridge_spec({"backstage": {"url": BACKSTAGE}, **selector(labels)})


@pytest.mark.parametrize("labels", GOOD_SELECTORS.values(), ids=GOOD_SELECTORS.keys())
def test_each_selector_the_rules_admit_loads_in_the_engine(labels):
    spec = parse_bridge_spec({"backstage": {"url": BACKSTAGE}, **selector(labels)})
    data = plan_config(None, Ownership.of("argocd", "backstage"), render_notifications_config(spec, None)).data
    assert engine_error(data) is None
