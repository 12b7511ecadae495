"""Recipients from the catalog's Argo CD annotations, and the choice between annotation and catalog."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argobridge.core.catalogmatch import (
    DEFAULT_ENTITY_REF_FROM,
    EntityRefFrom,
    RecipientSource,
    Resolution,
    SelectorError,
    count_resolutions,
    index_catalog,
    parse_label_selector,
    recipients_for,
    resolve,
)


def argocd(**annotations: str) -> dict[str, str]:
    return {f"argocd/{key.replace('_', '-')}": value for key, value in annotations.items()}


def catalog_entity(kind: str, name: str, namespace: str | None = None, **annotations: str) -> dict[str, object]:
    metadata: dict[str, object] = {"name": name, "annotations": argocd(**annotations)}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"kind": kind, "metadata": metadata}


def test_app_name_annotation_makes_the_entity_a_recipient_with_a_canonical_ref() -> None:
    index = index_catalog([catalog_entity("Component", "Shop", app_name="shop")])
    assert recipients_for(index, "shop", {}) == ("component:default/shop",)
    assert recipients_for(index, "cart", {}) == ()


def test_app_selector_matches_applications_by_their_labels() -> None:
    index = index_catalog(
        [catalog_entity("Component", "shop", "payments", app_selector="app=shop,env in (prod, staging)")]
    )
    assert recipients_for(index, "shop-prod", {"app": "shop", "env": "prod"}) == ("component:payments/shop",)
    assert recipients_for(index, "shop-dev", {"app": "shop", "env": "dev"}) == ()
    assert recipients_for(index, "other", {"env": "prod"}) == ()


def test_every_matching_entity_is_a_recipient_sorted_and_once() -> None:
    index = index_catalog(
        [
            catalog_entity("Group", "team-b", app_name="shop"),
            catalog_entity("Component", "shop", app_selector="app=shop"),
            catalog_entity("System", "commerce", app_selector="part-of=commerce"),
            catalog_entity("Group", "team-b", app_name="shop"),  # listed twice by a paged read
        ]
    )
    refs = recipients_for(index, "shop", {"app": "shop", "part-of": "commerce"})
    assert refs == ("component:default/shop", "group:default/team-b", "system:default/commerce")


def test_instance_name_narrows_only_when_the_bridge_knows_its_instance() -> None:
    index = index_catalog(
        [
            catalog_entity("Component", "shop-east", app_name="shop", instance_name="east"),
            catalog_entity("Component", "shop-west", app_name="shop", instance_name="west"),
            catalog_entity("Component", "shop-any", app_name="shop"),
        ]
    )
    assert recipients_for(index, "shop", {}, "east") == ("component:default/shop-any", "component:default/shop-east")
    assert len(recipients_for(index, "shop", {}, None)) == 3


def test_app_namespace_narrows_apps_in_any_namespace() -> None:
    index = index_catalog([catalog_entity("Component", "shop", app_name="shop", app_namespace="team-a")])
    assert recipients_for(index, "shop", {}, app_namespace="team-a") == ("component:default/shop",)
    assert recipients_for(index, "shop", {}, app_namespace="team-b") == ()


def test_a_bad_selector_is_a_finding_and_never_hides_other_entities() -> None:
    index = index_catalog(
        [
            catalog_entity("Component", "broken", app_selector="app in (shop"),
            catalog_entity("Component", "shop", app_selector="app=shop"),
            catalog_entity("Component", "named", app_name="shop", app_selector="app==="),
        ]
    )
    assert recipients_for(index, "shop", {"app": "shop"}) == ("component:default/named", "component:default/shop")
    problems = {(finding.entity, finding.annotation) for finding in index.findings}
    assert ("component:default/broken", "argocd/app-selector") in problems
    assert ("component:default/named", "argocd/app-selector") in problems
    assert all(finding.problem for finding in index.findings)


def test_an_empty_selector_is_absent_not_match_everything() -> None:
    index = index_catalog([catalog_entity("Component", "shop", app_selector="  ")])
    assert recipients_for(index, "anything", {"a": "b"}) == ()
    assert index.findings == ()


def test_bad_app_names_and_entities_that_cannot_be_recipients_are_findings() -> None:
    index = index_catalog(
        [
            catalog_entity("Component", "a", app_name="Shop,Cart"),
            catalog_entity("Component", "bad name!", app_name="shop"),
            {"kind": "Component", "metadata": {"annotations": argocd(app_name="shop")}},
            "not an entity",
            catalog_entity("Component", "plain"),  # no Argo CD annotation: skipped silently
        ]
    )
    assert recipients_for(index, "shop", {}) == ()
    assert len(index.findings) == 3
    assert "argocd/app-selector" in index.findings[0].problem  # the fix is named


def test_both_annotations_match_either_and_say_the_card_refuses_the_pair() -> None:
    index = index_catalog([catalog_entity("Component", "shop", app_name="shop", app_selector="team=a")])
    assert recipients_for(index, "shop", {}) == ("component:default/shop",)
    assert recipients_for(index, "cart", {"team": "a"}) == ("component:default/shop",)
    assert [finding.annotation for finding in index.findings] == [None]


def test_a_by_query_page_is_read_like_a_list() -> None:
    page = {"items": [catalog_entity("Component", "shop", app_name="shop")], "totalItems": 1, "pageInfo": {}}
    assert recipients_for(index_catalog(page), "shop", None) == ("component:default/shop",)
    assert index_catalog(None).entities == 0
    assert index_catalog(page).entities == 1


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=shop", {"app": "shop"}, True),
        ("app==shop", {"app": "shop"}, True),
        ("app = shop , env=prod", {"app": "shop", "env": "prod"}, True),
        ("app!=shop", {}, True),  # as in Kubernetes: != holds when the label is absent
        ("app!=shop", {"app": "shop"}, False),
        ("env notin (dev)", {}, True),
        ("env in (prod,staging)", {"env": "staging"}, True),
        ("env in (prod)", {}, False),
        ("tier", {"tier": ""}, True),
        ("!legacy", {"legacy": "yes"}, False),
        ("replicas>2", {"replicas": "3"}, True),
        ("replicas<2", {"replicas": "three"}, False),
        ("example.com/team=a", {"example.com/team": "a"}, True),
        ("k=", {"k": ""}, True),
    ],
)
def test_selectors_match_as_kubernetes_does(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


@pytest.mark.parametrize(
    "selector",
    ["", " , ", "app=shop,", "=shop", "app shop", "app in ()", "app in (a", "app in a", "n>x", "Bad Key=1", "in=x"],
)
def test_selectors_argo_cd_would_refuse_are_refused_with_a_message(selector: str) -> None:
    with pytest.raises(SelectorError, match=r"\w"):
        parse_label_selector(selector)


label_words = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)
# `in` and `notin` are operators to Kubernetes' lexer, never keys ("in=x" is refused, above).
label_keys = label_words.filter(lambda word: word not in ("in", "notin"))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(label_keys, label_words, min_size=1, max_size=4), st.dictionaries(label_keys, label_words))
def test_a_selector_written_from_labels_matches_exactly_the_apps_carrying_them(
    wanted: dict[str, str], labels: dict[str, str]
) -> None:
    selector = parse_label_selector(",".join(f"{key}={value}" for key, value in wanted.items()))
    assert selector.matches(labels) is all(labels.get(key) == value for key, value in wanted.items())
    assert selector.matches({**labels, **wanted})


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_any_text_parses_or_is_refused_never_crashes(text: str) -> None:
    with contextlib.suppress(SelectorError):
        parse_label_selector(text)


def test_default_is_annotation_then_catalog() -> None:
    assert DEFAULT_ENTITY_REF_FROM is EntityRefFrom.ANNOTATION_THEN_CATALOG


def test_resolve_prefers_the_annotation_then_the_catalog() -> None:
    catalog = ("group:default/team-b",)
    both = EntityRefFrom.ANNOTATION_THEN_CATALOG
    annotated = Resolution(RecipientSource.ANNOTATION, ("component:default/shop",))
    assert resolve(both, "Component:shop", catalog) == annotated
    assert resolve(both, None, catalog) == Resolution(RecipientSource.CATALOG, catalog)
    assert resolve(both, "no kind here", catalog).source is RecipientSource.CATALOG  # invalid ref: catalog fills in
    assert resolve(both, None, ()).source is RecipientSource.UNRESOLVED
    assert resolve(EntityRefFrom.ANNOTATION, None, catalog).source is RecipientSource.UNRESOLVED
    assert resolve(EntityRefFrom.CATALOG, "component:default/shop", catalog).refs == catalog
    # Catalog replaces the annotation where the catalog claims the app, and keeps it where it does not
    assert resolve(EntityRefFrom.CATALOG, "component:default/shop", ()) == annotated
    assert resolve(EntityRefFrom.CATALOG, None, ()).source is RecipientSource.UNRESOLVED


def test_counts_name_every_source() -> None:
    resolutions = [Resolution(RecipientSource.CATALOG, ("a:b/c",)), Resolution(RecipientSource.UNRESOLVED)]
    assert count_resolutions(resolutions) == {"annotation": 0, "catalog": 1, "unresolved": 1}
