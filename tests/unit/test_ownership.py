"""Ownership records: field manager names the apiserver accepts, its 409 answers read safely."""

from __future__ import annotations

import json
import re

import yaml

from argobridge.core.ownership import (
    MAX_MANAGER_LENGTH,
    FieldConflict,
    data_key,
    field_manager,
    parse_apply_conflicts,
    spec_entry,
)


def test_field_manager_names_the_bridge_and_fits_the_apiservers_limit():
    assert field_manager("argocd", "backstage") == "argobridge/argocd/backstage"
    longest = field_manager("n" * 63, "x" * 253)
    assert len(longest) == MAX_MANAGER_LENGTH and longest.isprintable()
    assert longest != field_manager("n" * 63, "x" * 252)  # the digest keeps long names apart


def test_conflict_causes_of_a_409_name_field_and_manager():
    body = json.dumps(
        {
            "kind": "Status",
            "reason": "Conflict",
            "details": {
                "causes": [
                    {
                        "reason": "FieldManagerConflict",
                        "message": 'conflict with "kubectl-edit" using v1',
                        "field": ".data.service.webhook.backstage",
                    }
                ]
            },
            "code": 409,
        }
    )
    assert parse_apply_conflicts(body) == (FieldConflict(".data.service.webhook.backstage", "kubectl-edit"),)
    assert data_key(".data.service.webhook.backstage") == "service.webhook.backstage"
    assert spec_entry(".spec.services.service.webhook.backstage", ["services"]) == "services.service.webhook.backstage"


def test_a_stale_resource_version_409_has_no_field_conflicts():
    body = '{"kind":"Status","reason":"Conflict","message":"the object has been modified","details":{"name":"cm"}}'
    assert parse_apply_conflicts(body) == ()
    assert parse_apply_conflicts("not json") == ()


def test_shared_text_without_a_final_newline_comes_back_byte_for_byte():
    from argobridge.core.ownership import edit_context, edit_subscriptions

    added = edit_context("env: prod", "argocdUrl", "https://cd", "ns/b")
    assert yaml.safe_load(added.text) == {"env": "prod", "argocdUrl": "https://cd"}
    assert edit_context(added.text, "argocdUrl", None, "ns/b").text == "env: prod"
    theirs = "- recipients: [slack:ops]\n  triggers: [on-sync-failed]"
    ours = [{"recipients": ["backstage"], "triggers": ["t"]}]
    added = edit_subscriptions(theirs, ours, "ns/b")
    assert len(yaml.safe_load(added.text)) == 2
    assert edit_subscriptions(added.text, [], "ns/b").text == theirs


def test_our_entry_between_users_entries_stays_where_it_is():
    from argobridge.core.ownership import edit_subscriptions, marker_line

    ours = [{"recipients": ["backstage"], "triggers": ["t"]}]
    text = f"- a: 1\n{marker_line('ns/b')}\n- recipients: [old]\n- b: 2\n"
    edited = edit_subscriptions(text, ours, "ns/b")
    assert yaml.safe_load(edited.text) == [{"a": 1}, *ours, {"b": 2}]
    assert edited.text.startswith("- a: 1\n") and edited.text.endswith("- b: 2\n")


def test_each_shard_has_a_finalizer_of_its_own_and_every_one_is_a_valid_name():
    from argobridge.core.ownership import FINALIZER, shard_finalizer

    assert shard_finalizer("") == FINALIZER == "argobridge.io/finalizer"
    assert shard_finalizer("team-a") == "argobridge.io/finalizer-team-a"
    names = {shard_finalizer(s) for s in ("", "team-a", "team-b", "x" * 63, "y" * 63, "bad value/")}
    assert len(names) == 6
    qualified = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
    for name in names:
        prefix, _, part = name.partition("/")
        assert prefix == "argobridge.io" and len(part) <= 63 and qualified.fullmatch(part), name
