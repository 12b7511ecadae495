"""Label keys and values by Kubernetes' rules: the selector the engine parses, and the CRD that says the same."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from argobridge.core.labels import CEL_KEY_RULE, VALUE_PATTERN, label_key_problem, label_value_problem
from argobridge.core.render import render_notifications_config, render_selector
from argobridge.core.spec import SpecError, parse_bridge_spec

CRD = Path(__file__).resolve().parents[2] / "manifests" / "crds" / "backstagebridges.argobridge.io.yaml"


def spec_with(labels: dict[str, Any]) -> dict[str, Any]:
    return {"backstage": {"url": "https://b.example.com"}, "subscriptions": {"selector": {"matchLabels": labels}}}


@pytest.mark.parametrize(
    ("labels", "says"),
    [
        ({"team": "a b"}, "value 'a b' of key 'team' holds a character"),
        ({"team": "a/b"}, "value 'a/b' of key 'team'"),
        ({"team": "a,tier=prod"}, "value 'a,tier=prod' of key 'team'"),
        ({"team": "a" * 64}, "is 64 characters long, more than 63"),
        ({"team": 3}, "is not a string"),
        ({"": "a"}, "key '' is empty"),
        ({"a/b/c": "x"}, "key 'a/b/c' has a prefix 'a/b'"),
        ({"/team": "x"}, "has an empty prefix"),
        ({"example.com/": "x"}, "has an empty name after /"),
        ({"t" * 64: "x"}, "has a name of 64 characters"),
        ({"a" * 254 + "/t": "x"}, "at most 253 characters"),
        ({"team\n": "x"}, "key 'team\\n'"),
        ({"team": "x\n"}, "value 'x\\n'"),
        ({f"l{i}": "x" for i in range(17)}, "has 17 labels; keep at most 16"),
    ],
)
def test_selector_the_engine_would_refuse_or_misread_is_a_spec_error_naming_field_and_value(labels, says):
    with pytest.raises(SpecError, match=re.escape("spec.subscriptions.selector.matchLabels")) as raised:
        parse_bridge_spec(spec_with(labels))
    assert says in str(raised.value)


def test_valid_selector_renders_as_one_labels_parse_string():
    spec = parse_bridge_spec(spec_with({"team": "payments", "example.com/tier": "", "a.b-c_d": "X.y-z_0"}))
    (entry,) = render_notifications_config(spec, None).subscriptions
    assert entry["selector"] == "a.b-c_d=X.y-z_0,example.com/tier=,team=payments"


def test_render_refuses_a_bad_selector_even_from_a_hand_built_spec():
    with pytest.raises(SpecError, match=re.escape("spec.subscriptions.selector.matchLabels")):
        render_selector((("team", "a,tier=prod"),))


@given(st.text(max_size=80))
def test_a_value_is_accepted_exactly_when_it_cannot_change_the_selector(value):
    # labels.Parse splits on , and reads = != ( ) ! and spaces as syntax; none of them survives the rule.
    if label_value_problem(value) is None:
        assert re.fullmatch(r"[A-Za-z0-9._-]{0,63}", value)
        assert render_selector((("team", value),)) == f"team={value}"
    else:
        with pytest.raises(SpecError):
            render_selector((("team", value),))


@given(
    st.from_regex(r"([a-z0-9]{1,5}\.){0,3}[a-z0-9]{1,5}/[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?", fullmatch=True)
)
def test_prefixed_keys_by_the_rules_are_accepted(key):
    assert label_key_problem(key) is None


def test_crd_checks_label_keys_and_values_with_the_cores_rules():
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]["properties"]
    selector = spec["subscriptions"]["properties"]["selector"]["properties"]["matchLabels"]
    route_labels = spec["routes"]["items"]["properties"]["match"]["items"]["properties"]["labels"]["properties"]
    for match_labels in (selector, route_labels["matchLabels"]):
        assert match_labels["additionalProperties"]["pattern"] == VALUE_PATTERN
        assert match_labels["additionalProperties"]["maxLength"] == 63
        assert match_labels["maxProperties"] == 16
        assert [item["rule"] for item in match_labels["x-kubernetes-validations"]] == [CEL_KEY_RULE]
