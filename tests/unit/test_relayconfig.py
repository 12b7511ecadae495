"""A bridge's entry in the relay's config Secret: the contract's JSON, the tokens a rotation needs."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from argobridge.core.relayconfig import (
    accept_tokens,
    entry_key,
    entry_needs_write,
    relay_entry,
    split_entry_key,
)
from argobridge.core.spec import parse_bridge_spec

tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)


def spec(**extra: Any) -> Any:
    return parse_bridge_spec({"backstage": {"url": "https://backstage.example.com"}, **extra}, "argocd")


def test_entry_is_the_contracts_json_with_the_exact_webhook_url():
    entry = relay_entry(
        spec(delivery={"retryFor": "2h", "attemptTimeout": "5s"}), "tok-now", ca_bundle="-----BEGIN CERT"
    )
    assert json.loads(entry.encoded()) == {
        "url": "https://backstage.example.com/api/notifications/notifications",
        "token": "tok-now",
        "acceptTokens": [],
        "retryForSeconds": 7200.0,
        "attemptTimeoutSeconds": 5.0,
        "caBundle": "-----BEGIN CERT",
        "insecureSkipVerify": False,
        # Noise control's defaults: a 5-minute flap window, recovered problems resolved, no rate limit.
        "noise": {
            "minIntervalSeconds": 300.0,
            "resolveRecovered": True,
            "signalOnly": ["HealthRecovered"],
            "rateLimit": None,
            "routes": {},
        },
    }


def test_defaults_and_insecure_skip_verify_travel_to_the_relay():
    document = relay_entry(spec(backstage={"url": "https://b.example.com", "insecureSkipVerify": True}), "t").document()
    assert document["retryForSeconds"] == 86400.0 and document["attemptTimeoutSeconds"] == 10.0
    assert document["insecureSkipVerify"] is True and document["caBundle"] is None


def test_no_token_in_the_entrys_repr():
    entry = relay_entry(spec(), "secret-now", ("secret-old", "secret-new"))
    assert "secret" not in repr(entry)


def test_rotation_overlap_accepts_the_mirrors_other_values():
    # Published: Argo CD still holds the old token (= previous); the new one (current) is accepted ahead.
    assert accept_tokens("old", ("new", "old")) == ("new",)
    # Grace: Argo CD holds the new token; the previous one may still be in flight.
    assert accept_tokens("new", ("new", "old")) == ("old",)
    # Idle: one token everywhere.
    assert accept_tokens("same", ("same", "same")) == ()
    assert accept_tokens("t", ()) == () and accept_tokens("t", (None, None)) == ()


@given(token=tokens, values=st.lists(st.one_of(st.none(), tokens), max_size=4))
def test_accepted_tokens_are_distinct_never_the_token_and_cover_every_mirror_value(
    token: str, values: list[str | None]
):
    accepted = accept_tokens(token, values)
    assert token not in accepted and len(set(accepted)) == len(accepted)
    assert set(accepted) | {token} == {value for value in values if value} | {token}


@given(
    namespace=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
    name=st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?", fullmatch=True),
)
def test_entry_key_splits_back_at_the_first_dot(namespace: str, name: str):
    assert split_entry_key(entry_key(namespace, name)) == (namespace, name)


def test_write_only_when_the_value_differs():
    entry = relay_entry(spec(), "t")
    assert entry_needs_write(None, entry)
    assert not entry_needs_write(entry.encoded(), entry)
    assert not entry_needs_write(json.dumps(entry.document(), indent=2), entry), "formatting is not drift"
    assert entry_needs_write(entry.encoded().replace('"t"', '"u"'), entry)
    assert entry_needs_write("not json", entry)


def test_same_entry_encodes_to_the_same_text():
    assert relay_entry(spec(), "t", ("a",)).encoded() == relay_entry(spec(), "t", ("a",)).encoded()
