"""Diagnosing Applications: the manual procedure's silent failures, each named with its fix."""

from __future__ import annotations

from argobridge.core.appcheck import (
    AppFacts,
    KnownConfig,
    annotation_subscriptions,
    configured_names,
    count_applications,
    diagnose_app,
    in_scope,
)

OURS = frozenset({"on-sync-failed-backstage", "on-deployed-backstage"})
KNOWN = KnownConfig(
    triggers=frozenset({"on-sync-failed", "on-deployed", *OURS}),
    services=frozenset({"backstage", "slack"}),
    our_service="backstage",
    our_triggers=OURS,
    global_subscription=True,
)
SUB = "notifications.argoproj.io/subscribe."


def app(annotations=None, labels=None) -> AppFacts:
    return AppFacts("argocd", "shop", "uid-1", annotations or {}, labels or {})


def test_annotated_app_is_subscribed_globally_without_problems():
    result = diagnose_app(app({"backstage.io/entity-ref": "component:default/shop"}), KNOWN)
    assert result.subscribed and result.problems == ()


def test_app_without_ref_is_watched_but_not_subscribed_and_not_a_problem():
    result = diagnose_app(app(), KNOWN)
    assert not result.subscribed and result.problems == ()


def test_default_catalog_trigger_to_backstage_is_the_not_valid_json_mistake():
    result = diagnose_app(
        app({"backstage.io/entity-ref": "component:default/shop", SUB + "on-sync-failed.backstage": ""}), KNOWN
    )
    assert result.misconfigured
    assert "subscribe on-sync-failed-backstage instead" in result.problems[0]


def test_service_only_subscription_to_backstage_uses_default_triggers():
    result = diagnose_app(app({"backstage.io/entity-ref": "component:default/shop", SUB + "backstage": ""}), KNOWN)
    assert "default triggers" in result.problems[0]


def test_unknown_trigger_and_unknown_service_are_named():
    result = diagnose_app(app({SUB + "on-nothing.backstage": "", SUB + "on-deployed.teams": ""}), KNOWN)
    text = " ".join(result.problems)
    assert "trigger on-nothing, which the notifications configuration does not define" in text
    assert "service teams, which the notifications configuration does not define" in text


def test_subscribed_without_ref_is_reported():
    result = diagnose_app(app({SUB + "on-sync-failed-backstage.backstage": ""}), KNOWN)
    assert result.misconfigured and "no backstage.io/entity-ref" in result.problems[0]


def test_unparseable_ref_counts_as_invalid_not_misconfigured():
    result = diagnose_app(app({"backstage.io/entity-ref": "shop"}), KNOWN)
    assert result.invalid_ref and not result.misconfigured and not result.subscribed
    assert "has no kind" in result.problems[0]


def test_global_selector_limits_who_is_subscribed():
    known = KnownConfig(**{**KNOWN.__dict__, "selector": (("team", "shop"),)})
    ref = {"backstage.io/entity-ref": "component:default/shop"}
    assert diagnose_app(app(ref, {"team": "shop"}), known).subscribed
    assert not diagnose_app(app(ref, {"team": "other"}), known).subscribed


def test_counts():
    diagnoses = [
        diagnose_app(app({"backstage.io/entity-ref": "component:default/shop"}), KNOWN),
        diagnose_app(app({"backstage.io/entity-ref": "nope"}), KNOWN),
        diagnose_app(app({SUB + "on-deployed.backstage": "", "backstage.io/entity-ref": "component:x/y"}), KNOWN),
        diagnose_app(app(), KNOWN),
    ]
    assert count_applications(diagnoses) == {"watched": 4, "subscribed": 2, "invalidEntityRef": 1, "misconfigured": 1}


def test_subscription_annotations_are_parsed():
    pairs = annotation_subscriptions({SUB + "on-a.slack": "", SUB + "backstage": "", "other": ""})
    assert pairs == [(None, "backstage"), ("on-a", "slack")]


def test_configured_names_reads_triggers_and_services():
    triggers, services = configured_names(
        {"trigger.on-a": "", "service.webhook.backstage": "", "service.slack": "", "template.x": ""}
    )
    assert triggers == {"on-a"} and services == {"backstage", "slack"}


def test_scope_follows_the_argocd_namespace_and_application_namespaces():
    assert in_scope("argocd", "argocd", [])
    assert in_scope("team-a", "argocd", ["team-*"])
    assert not in_scope("other", "argocd", ["team-*"])


def test_missing_entities_are_named_per_app_and_summarised():
    from argobridge.core.appcheck import CatalogAnswer, missing_entities, refs_to_check
    from argobridge.core.probe import entities_condition

    diagnoses = [
        diagnose_app(app({"backstage.io/entity-ref": "component:default/shop, group:default/ghosts"}), KNOWN),
        diagnose_app(app({"backstage.io/entity-ref": "Component:Shop"}), KNOWN),
    ]
    refs = refs_to_check(diagnoses)
    assert refs == ["component:default/shop", "group:default/ghosts"]
    answer = CatalogAnswer(existing=frozenset({"component:default/shop"}))
    missing = missing_entities(diagnoses, answer)
    assert [problem.split(" is not")[0] for _, problem in missing] == ["backstage.io/entity-ref: group:default/ghosts"]
    condition = entities_condition(refs, answer)
    assert (condition.status, condition.reason) == (
        False,
        "MissingEntities",
    ) and "group:default/ghosts" in condition.message
    unavailable = entities_condition(refs, CatalogAnswer(unavailable="the token may not read the catalog (403)"))
    assert (
        unavailable.reason == "CatalogUnavailable" and missing_entities(diagnoses, CatalogAnswer(unavailable="x")) == []
    )


def test_compact_app_facts_shares_repeated_strings_and_keeps_the_values() -> None:
    from argobridge.core.appcheck import compact_app_facts

    def decoded(text: str) -> str:
        return "".join(list(text))  # a fresh string object, as JSON decoding makes one

    first = compact_app_facts(
        decoded("argocd"),
        "a",
        "u1",
        {decoded("backstage.io/entity-ref"): "component:x"},
        {decoded("team"): "t"},
        frozenset({decoded("k")}),
    )
    second = compact_app_facts(
        decoded("argocd"),
        "b",
        "u2",
        {decoded("backstage.io/entity-ref"): "component:y"},
        {decoded("team"): "t"},
        frozenset({decoded("k")}),
    )
    assert first.namespace is second.namespace
    assert next(iter(first.labels)) is next(iter(second.labels))
    assert first.owned_annotations is second.owned_annotations
    assert dict(first.annotations) == {"backstage.io/entity-ref": "component:x"}
    assert dict(second.labels) == {"team": "t"} and second.owned_annotations == {"k"}
    assert compact_app_facts("ns", "c", "u3", {}, {}, frozenset()).labels == {}
