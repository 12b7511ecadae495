"""No event is lost to what its Application carries: every body Argo CD's engine builds, Backstage accepts.

In Direct mode nothing fits the body after the engine: the webhook template itself must keep it under
Backstage's limits (express.json's 100 kB, varchar(255) short fields, no NUL for Postgres), whatever the
Application holds. The real `argocd` binary renders every template of the configuration for hostile
Applications (300 KB messages of ASCII, control characters, 4-byte emoji and escape-like text, 5,000
entity refs, names at Kubernetes' maximum and beyond); each body must be valid JSON within every limit,
with cut text marked and a prefix of what it cut. A few of them are posted to the real Backstage test
backend, which must accept them and show them to their recipients.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from argobridge.core.backstage_contract import create_request_problems, js_length
from argobridge.core.backstage_limits import (
    BODY_LIMIT_BYTES,
    DIRECT_DESCRIPTION_JSON_BYTES,
    DIRECT_LINK_JSON_BYTES,
    DIRECT_RECIPIENTS_JSON_BYTES,
    SEVERITIES,
    SHORT_FIELD_CHARS,
    TRUNCATION_MARKER,
    direct_body_worst_case_bytes,
)
from argobridge.core.events import CATALOG, EventDefinition, MessageSource
from argobridge.core.placeholders import fill_placeholders
from argobridge.core.render import event_texts, render_notifications_config
from argobridge.core.routeplan import plan_deliveries
from argobridge.core.routes import Route
from argobridge.core.spec import MAX_ICON, MAX_TOPIC, EventName, SpecError, parse_bridge_spec
from argobridge_dev.backstage import BackstageServer
from argobridge_dev.engine import OfflineEngine
from tests.contract.test_engine_contract import ARGOCD_URL, app

TOKEN = "body-limits-test-token"
SIZE = 300_000
C0 = "".join(chr(code) for code in range(32))  # each one 6 bytes of JSON (\u0001), NUL included
# Every text of every event reads every placeholder, the message twice: the worst a bridge can write.
HOSTILE_TITLE = "{message}{app}"
# `{time}` is left out: it is always a time the engine formatted (20 ASCII characters), never the app's text.
HOSTILE_DESCRIPTION = (
    "{message}\n{revision} {project} {health} {phase} {app} {namespace}\n{initiatedBy} {repo} {destination}\n{message}"
)
ONCALL = ("group:default/oncall", "user:default/bob")


def hostile_spec(backstage_url: str = "https://backstage.example.com") -> dict[str, Any]:
    return {
        "backstage": {"url": backstage_url},
        "events": [
            {
                "event": name.value,
                "severity": "critical",
                "topic": "t" * MAX_TOPIC,
                "icon": "i" * MAX_ICON,
                "title": HOSTILE_TITLE,
                "description": HOSTILE_DESCRIPTION,
            }
            for name in EventName
        ],
        "routes": [{"name": "oncall", "match": [{"events": ["SyncFailed"]}], "recipients": list(ONCALL)}],
    }


def engine_data(spec: dict[str, Any], argocd_url: str | None = ARGOCD_URL) -> dict[str, str]:
    rendered = render_notifications_config(parse_bridge_spec(spec), argocd_url)
    data = dict(rendered.owned)
    if rendered.context:
        data["context"] = "".join(f"{key}: {value}\n" for key, value in rendered.context.items())
    return data


SIDE_TEXT_CHARS = 20_000
"""Revision, project, health and phase carry this much of the text: four of them overflow any description."""


def carrying(
    text: str,
    source: MessageSource = MessageSource.OPERATION,
    *,
    name: str = "shop",
    namespace: str = "argocd",
    refs: str = "user:default/alice",
    project: str | None = None,
) -> dict[str, Any]:
    """An Application whose message for `source` is `text` and whose other free texts start like it.

    One message source per Application: each template reads one, and the engine parses megabytes of
    YAML slowly, so an Application does not carry 300 KB where no template looks.
    """
    side = text[:SIDE_TEXT_CHARS]
    application = app(name=name, namespace=namespace, phase=side, health=side, message="", ref=refs)
    application["spec"]["project"] = project if project is not None else side
    application["status"]["operationState"]["syncResult"]["revision"] = side
    application["status"]["operationState"]["operation"] = {"initiatedBy": {"username": side}}
    application["spec"]["source"] = {"repoURL": side}
    application["spec"]["destination"]["name"] = side
    if source is MessageSource.OPERATION:
        application["status"]["operationState"]["message"] = text
    elif source is MessageSource.HEALTH:
        application["status"]["health"]["message"] = text
    elif source is MessageSource.CONDITIONS:
        application["status"]["conditions"] = [{"type": "ComparisonError", "message": text}]
    return application


MANY_REFS = ",".join(
    ["c:" + "x" * 30_000, "user:default/alice", "Shop", *(f"component:default/svc-{i:04}" for i in range(5_000))]
)
HOSTILE: dict[str, tuple[str, dict[str, str]]] = {
    "ascii-300k": ("x" * SIZE, {}),
    "control-300k": (C0 * (SIZE // len(C0)), {}),
    "emoji-300k": ("\U0001f600" * (SIZE // 4), {}),
    "escapes-300k": (('\\u0000\\ud800\\x00%!s(MISSING){{ .app }}"\\\\\u2028' * 10_000)[:SIZE], {}),
    "refs-5000": ("m", {"refs": MANY_REFS}),
    "longest-names": ("m", {"name": "a" * 253, "namespace": "n" * 63, "project": "p" * 253}),
    "split-unicode-names": ("é" * 1000, {"name": "x" + "é" * 200, "namespace": "ü" * 63, "project": "é" * 1000}),
}


@functools.cache
def hostile_app(case: str, source: MessageSource = MessageSource.OPERATION) -> dict[str, Any]:
    """The case's Application (shared: copy it before changing it)."""
    text, options = HOSTILE[case]
    return carrying(text, source, **options)


def fields(application: dict[str, Any], source: MessageSource) -> dict[str, str]:
    """The placeholders' values, read the way the template reads them."""
    status = application.get("status", {})
    operation = status.get("operationState", {})
    messages = {
        MessageSource.OPERATION: operation.get("message", ""),
        MessageSource.HEALTH: status.get("health", {}).get("message", ""),
        MessageSource.CONDITIONS: next((c["message"] for c in status.get("conditions", []) if c.get("message")), ""),
        MessageSource.NONE: "",
    }
    revision = operation.get("syncResult", {}).get("revision") or status.get("sync", {}).get("revision") or ""
    return {
        "app": application["metadata"]["name"],
        "namespace": application["metadata"]["namespace"],
        "project": application["spec"].get("project", "default"),
        "revision": revision,
        "health": status.get("health", {}).get("status", ""),
        "phase": operation.get("phase", ""),
        "message": messages[source],
        "initiatedBy": operation.get("operation", {}).get("initiatedBy", {}).get("username", ""),
        "repo": application["spec"].get("source", {}).get("repoURL", ""),
        "destination": "/".join(
            part
            for part in (
                application["spec"]["destination"].get("name") or application["spec"]["destination"].get("server"),
                application["spec"]["destination"].get("namespace"),
            )
            if part
        ),
    }


def assert_cut_or_whole(sent: str, whole: str) -> bool:
    """`sent` is `whole`, or a prefix of it marked as cut; says whether it was cut."""
    if sent == whole:
        return False
    assert sent.endswith(TRUNCATION_MARKER), (sent[-40:], whole[-40:])
    assert whole.startswith(sent[: -len(TRUNCATION_MARKER)]), "cut text must be a prefix of the text"
    return True


def template_texts(spec: dict[str, Any]) -> dict[str, tuple[EventDefinition, Route | None, str, str]]:
    """Each template's event, route and texts (in placeholder syntax), as the renderer chose them."""
    parsed = parse_bridge_spec(spec)
    routes = {route.name: route for route in parsed.routes}
    texts = {}
    for event in parsed.events:
        definition = CATALOG[event.event]
        for delivery in plan_deliveries(event, parsed.routes, definition.template):
            route = routes[delivery.route] if delivery.route else None
            texts[delivery.template] = (definition, route, *event_texts(definition, event, route))
    return texts


CUTS: dict[str, int] = {"bodies": 0, "titles": 0, "descriptions": 0, "largest": 0, "refs kept": 0}


def assert_backstage_accepts(text: str, application: dict[str, Any], template: str, spec: dict[str, Any]) -> dict:
    """Every limit of Backstage's create endpoint holds, and what was cut is marked."""
    size = len(text.encode())
    assert size <= BODY_LIMIT_BYTES, f"{template}: {size} bytes"
    body = json.loads(text)
    assert create_request_problems(body) == [], (template, body)
    payload = body["payload"]
    for field in ("title", "scope", "topic", "icon"):
        if field in payload:
            assert js_length(payload[field]) <= SHORT_FIELD_CHARS, field
    assert payload["severity"] in SEVERITIES
    assert len(json.dumps(payload["description"], ensure_ascii=False).encode()) <= DIRECT_DESCRIPTION_JSON_BYTES
    for field in ("title", "description"):
        assert "\x00" not in payload[field], f"{field}: Postgres refuses NUL"
        assert "\ufffd" not in payload[field], f"{field}: a character cut in two"
    if "link" in payload:
        assert payload["link"].startswith(ARGOCD_URL + "/applications/")
        assert len(json.dumps(payload["link"]).encode()) <= DIRECT_LINK_JSON_BYTES

    definition, route, title, description = template_texts(spec)[template]
    values = fields(application, definition.message)
    CUTS["titles"] += assert_cut_or_whole(payload["title"], fill_placeholders(title, values).replace("\x00", ""))
    CUTS["descriptions"] += assert_cut_or_whole(
        payload["description"], fill_placeholders(description, values).replace("\x00", "")
    )
    scope = f"argocd/{values['namespace']}/{values['app']}/{definition.name.value}"
    if len(scope.encode()) > SHORT_FIELD_CHARS:
        assert payload["scope"].endswith("~" + hashlib.sha256(scope.encode()).hexdigest()), "cut scopes stay distinct"
    else:
        assert payload["scope"] == scope

    refs = body["recipients"]["entityRef"]
    refs = [refs] if isinstance(refs, str) else refs
    assert len(json.dumps(refs, separators=(",", ":")).encode()) <= DIRECT_RECIPIENTS_JSON_BYTES + 2
    if route:
        assert set(ONCALL) <= set(refs), "a route's recipients are never crowded out by the annotation"
    assert "user:default/alice" in refs
    CUTS["bodies"] += 1
    CUTS["largest"] = max(CUTS["largest"], size)
    CUTS["refs kept"] = max(CUTS["refs kept"], len(refs))
    return body


# -- the budget, without the engine ---------------------------------------------------------------------


def test_the_worst_case_of_every_field_together_fits_backstages_body_limit():
    assert direct_body_worst_case_bytes(MAX_TOPIC, MAX_ICON) <= BODY_LIMIT_BYTES


def test_route_recipients_beyond_their_share_of_the_body_are_refused_with_the_fix():
    spec = hostile_spec()
    spec["routes"][0]["recipients"] = [f"user:default/{'u' * 60}{i:03}" for i in range(400)]
    with pytest.raises(SpecError, match=r"spec\.routes: route oncall names 400 recipients.*name groups"):
        render_notifications_config(parse_bridge_spec(spec), None)


# -- every template, hostile Applications, the real engine ----------------------------------------------


@pytest.fixture(scope="module")
def hostile_engine() -> OfflineEngine:
    return OfflineEngine(engine_data(hostile_spec()), {"backstage-token": TOKEN})


@pytest.fixture(scope="module")
def default_engine() -> OfflineEngine:
    spec = {"backstage": {"url": "https://backstage.example.com"}, "events": [{"event": e.value} for e in EventName]}
    return OfflineEngine(engine_data(spec), {"backstage-token": TOKEN})


HOSTILE_TEMPLATES = sorted(key.removeprefix("template.") for key in engine_data(hostile_spec()) if "template." in key)


def test_the_hostile_configuration_has_a_template_for_every_event_one_of_them_a_routes():
    assert {template_texts(hostile_spec())[name][0].name for name in HOSTILE_TEMPLATES} == set(EventName)
    assert "app-sync-failed-oncall-backstage" in HOSTILE_TEMPLATES


@pytest.mark.parametrize("case", list(HOSTILE))
def test_every_template_gives_a_body_backstage_accepts_for_a_hostile_application(hostile_engine, case):
    for template in HOSTILE_TEMPLATES:
        application = hostile_app(case, template_texts(hostile_spec())[template][0].message)
        text = hostile_engine.webhook_body(template, application)
        assert_backstage_accepts(text, application, template, hostile_spec())


@pytest.mark.parametrize("case", ["ascii-300k", "control-300k", "emoji-300k", "escapes-300k"])
def test_the_default_texts_cut_a_huge_message_too(default_engine, case):
    spec = {"backstage": {"url": "https://backstage.example.com"}, "events": [{"event": e.value} for e in EventName]}
    for name in (EventName.SYNC_FAILED, EventName.HEALTH_DEGRADED, EventName.SYNC_STATUS_UNKNOWN):
        application = hostile_app(case, CATALOG[name].message)
        text = default_engine.webhook_body(CATALOG[name].template, application)
        body = assert_backstage_accepts(text, application, CATALOG[name].template, spec)
        assert body["payload"]["description"].endswith(TRUNCATION_MARKER)


def test_plain_text_keeps_almost_the_whole_share_and_escapes_cost_only_what_they_take(hostile_engine):
    """The cut is sized by JSON bytes, not by a worst-case character count: ASCII keeps ~64 KiB."""
    kept = {}
    for case in ("ascii-300k", "control-300k", "emoji-300k"):
        text = hostile_engine.webhook_body("app-sync-failed-oncall-backstage", hostile_app(case))
        description = json.loads(text)["payload"]["description"]
        kept[case] = len(json.dumps(description, ensure_ascii=False).encode())
    assert kept["ascii-300k"] > DIRECT_DESCRIPTION_JSON_BYTES - 16
    assert kept["emoji-300k"] > DIRECT_DESCRIPTION_JSON_BYTES - 16
    assert kept["control-300k"] > DIRECT_DESCRIPTION_JSON_BYTES // 2


# -- the real Backstage backend -------------------------------------------------------------------------

ACCEPTED = ("ascii-300k", "control-300k", "emoji-300k", "escapes-300k", "refs-5000", "split-unicode-names")


@pytest.fixture(scope="module")
def backstage() -> Iterator[BackstageServer]:
    with BackstageServer(token=TOKEN) as server:
        yield server


def test_backstage_accepts_the_cut_bodies_and_each_recipient_reads_them_as_sent(hostile_engine, backstage):
    sent = {}
    for case in ACCEPTED:
        application = copy.deepcopy(hostile_app(case))
        if case != "split-unicode-names":
            application["metadata"]["name"] = case  # a scope per case: Backstage keeps one notification per scope
        text = hostile_engine.webhook_body("app-sync-failed-oncall-backstage", application)
        status, answer = backstage.send(text)  # the engine's bytes, exactly
        assert 200 <= status < 300, (case, status, str(answer)[:300])
        sent[case] = json.loads(text)["payload"]
    # The annotation's owner (behind a 30 KB ref and before 5,000 more), the route's group member and user.
    for user in ("alice", "carol", "bob"):
        seen = {item["payload"]["scope"]: item["payload"] for item in backstage.notifications(user)}
        for case, payload in sent.items():
            assert payload["scope"] in seen, f"{user} did not receive {case}"
            received = seen[payload["scope"]]
            assert (received["title"], received["description"]) == (payload["title"], payload["description"]), case
            assert received["description"].endswith(TRUNCATION_MARKER) == case.endswith("-300k"), case


# -- any message: a property over generated ones --------------------------------------------------------

# Characters by the JSON each takes: 1 byte, 2 (\" \\ \n), 6 (\u0001, U+2028), 2-4 bytes of UTF-8. DEL and C1
# controls are left out: JSON does not escape them (they cost 1-2 bytes, never a risk to the size), and the
# offline command's console cannot print a body holding them (the webhook sends them as they are).
ALPHABET = st.sampled_from([*C0, "x", " ", '"', "\\", "é", "中", "\U0001f600", "\u2028", "{", "}", "%", "…"])
MESSAGES = st.lists(
    st.tuples(st.text(alphabet=ALPHABET, min_size=1, max_size=6), st.integers(min_value=1, max_value=40_000)),
    min_size=1,
    max_size=3,
).map(lambda pieces: "".join(chunk * count for chunk, count in pieces)[:150_000])
PROPERTY_EXAMPLES = 30  # one argocd run each (0.3-1 s on a busy 2-core machine)
PROPERTY: dict[str, float] = {"examples": 0, "seconds": 0.0, "cut": 0}


@settings(
    max_examples=PROPERTY_EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: every step is an engine run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(message=MESSAGES, owners=st.integers(min_value=1, max_value=3_000))
def test_any_message_and_any_number_of_owners_give_a_body_backstage_accepts(hostile_engine, message, owners):
    refs = ",".join(["user:default/alice", *(f"component:default/c{i}" for i in range(owners - 1))])
    application = app(phase="Failed", message=message, ref=refs)
    started = time.monotonic()
    text = hostile_engine.webhook_body("app-sync-failed-oncall-backstage", application)
    PROPERTY["seconds"] += time.monotonic() - started
    PROPERTY["examples"] += 1
    body = assert_backstage_accepts(text, application, "app-sync-failed-oncall-backstage", hostile_spec())
    PROPERTY["cut"] += body["payload"]["description"].endswith(TRUNCATION_MARKER)


def test_figures(figures):
    if CUTS["bodies"]:
        figures.append(
            f"body limits: {CUTS['bodies']} hostile bodies from the real engine, largest {CUTS['largest']} bytes"
            f" (limit {BODY_LIMIT_BYTES}); {CUTS['titles']} titles and {CUTS['descriptions']} descriptions cut"
            f" and marked; at most {CUTS['refs kept']} refs kept"
        )
    if PROPERTY["examples"]:
        figures.append(
            f"body limits: {int(PROPERTY['examples'])} generated messages ({int(PROPERTY['cut'])} cut), one argocd run"
            f" each, {PROPERTY['seconds']:.1f}s"
        )
