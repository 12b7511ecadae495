"""Entity refs as Backstage reads them: canonical where the intent is clear, reported otherwise."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from argobridge.core.entityref import parse_entity_ref, parse_entity_refs
from argobridge.core.events import DELIVERABLE_REF_PATTERN


@pytest.mark.parametrize(
    ("raw", "canonical", "corrected"),
    [
        ("component:default/shop", "component:default/shop", False),
        ("Component:Default/Shop", "component:default/shop", True),
        ("component:shop", "component:default/shop", True),
        ("group:platform/team-a", "group:platform/team-a", False),
        (" user:default/jane.doe ", "user:default/jane.doe", True),
        ("API:default/orders_v2", "api:default/orders_v2", True),
    ],
)
def test_deliverable_refs_get_their_canonical_form(raw, canonical, corrected):
    ref = parse_entity_ref(raw)
    assert (ref.canonical, ref.problem, ref.corrected) == (canonical, None, corrected)


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("shop", "has no kind"),
        ("component:default/sh op", "name"),
        ("component:/shop", "namespace"),
        ("component:default/", "name"),
        ("1component:default/shop", "kind"),
        ("component:default/shop/extra", "name"),
        ("component:default/" + "x" * 64, "name"),
        ("component:default/-shop", "name"),
    ],
)
def test_undeliverable_refs_say_what_is_wrong(raw, hint):
    ref = parse_entity_ref(raw)
    assert ref.canonical is None and hint in (ref.problem or "")


def test_several_refs_are_split_on_commas():
    refs = parse_entity_refs("component:default/shop, Group:team-a ,, nope")
    assert [ref.canonical for ref in refs] == ["component:default/shop", "group:default/team-a", None]


@given(st.text(alphabet="abcXYZ09-_.:/, ", max_size=40))
def test_trigger_guard_agrees_with_the_parser(annotation):
    """The engine's guard fires exactly when at least one ref is deliverable (64+ char parts aside)."""
    deliverable = any(ref.canonical for ref in parse_entity_refs(annotation))
    assert bool(re.search(DELIVERABLE_REF_PATTERN, annotation)) == deliverable
