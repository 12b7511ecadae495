"""Placeholder text: what users write, what the engine is given, and that the two cannot be confused."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from argobridge.core.placeholders import (
    PLACEHOLDER_PATTERN,
    PLACEHOLDERS,
    Placeholder,
    PlaceholderError,
    fill_placeholders,
    go_text_expression,
    parse_placeholders,
)

CRD = Path(__file__).parents[2] / "manifests" / "crds" / "backstagebridges.argobridge.io.yaml"
VALUES = {name: f"<{name} value>" for name in PLACEHOLDERS}
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\$\w+')


def evaluate(expression: str, values: dict[str, str]) -> str:
    """What Go's printf with only %v verbs makes of the expression (literals unquoted, variables filled)."""
    if expression == '""':
        return ""
    head, _, rest = expression.partition(" ")
    assert head == "printf"
    tokens = _TOKEN.findall(rest)
    assert " ".join(tokens) == rest, "nothing but quoted literals and variables"
    verbs, arguments = tokens[0], tokens[1:]
    assert verbs == '"' + "%v" * len(arguments) + '"', "the format is ours, never the user's text"
    variables = {variable: values[name] for name, variable in PLACEHOLDERS.items()}
    return "".join(
        variables[token] if token.startswith("$") else codecs.decode(token[1:-1], "unicode_escape")
        for token in arguments
    )


def test_placeholders_and_literal_braces():
    assert parse_placeholders("{app} failed: {{ok}} {message}") == (
        Placeholder("app"),
        " failed: {ok} ",
        Placeholder("message"),
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{application} failed", "unknown placeholder {application}"),
        ("{ app }", "unknown placeholder { app }"),
        ("open { never closed", "unclosed {"),
        ("a } stray", "stray }"),
        ("{{app}", "stray }"),
    ],
)
def test_mistakes_name_the_fix(text, says):
    with pytest.raises(PlaceholderError, match=re.escape(says)):
        parse_placeholders(text)


def test_hostile_text_stays_text():
    hostile = "He said \"{{ .secrets }}\" \\ %s %!v\n\t🚀 ✓ `x` 'y' {{{{"
    text = hostile.replace("{", "{{").replace("}", "}}") + " in {app}"
    expression = go_text_expression(text)
    assert expression.isascii() and "{" not in expression and "}" not in expression and "\n" not in expression
    assert evaluate(expression, VALUES) == hostile + " in <app value>"


@given(st.text(), st.lists(st.sampled_from(sorted(PLACEHOLDERS)), max_size=4))
def test_any_text_with_any_placeholders_compiles_to_data(text, names):
    escaped = text.replace("{", "{{").replace("}", "}}")
    source = escaped + "".join(f"{{{name}}}" for name in names)
    expression = go_text_expression(source)
    assert expression.isascii() and "{" not in expression and "}" not in expression
    assert evaluate(expression, VALUES) == fill_placeholders(source, VALUES)
    assert evaluate(expression, VALUES) == text + "".join(VALUES[name] for name in names)


@given(
    st.lists(st.sampled_from(["{", "}", "a", "p", "app", "{app}", "{health}", "{x}", " "]), max_size=12).map("".join)
)
def test_the_crds_rule_and_the_compiler_agree(text):
    try:
        parse_placeholders(text)
        accepted = True
    except PlaceholderError:
        accepted = False
    assert bool(re.fullmatch(PLACEHOLDER_PATTERN, text)) == accepted


def test_the_crd_carries_the_same_rule_for_every_text_field():
    text = CRD.read_text()
    rules = re.findall(r"self\.matches\('(\^\(\[\^\{\}\].*?)'\)", text)
    assert len(rules) == 4 and set(rules) == {PLACEHOLDER_PATTERN}  # events[] and routes[]: title, description
    yaml.safe_load(text)


def test_empty_text_is_an_empty_string():
    assert go_text_expression("") == '""'
