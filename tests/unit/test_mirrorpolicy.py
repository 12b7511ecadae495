"""Which Secret the token mirror may write: one ArgoBridge created, or one that opted in."""

from __future__ import annotations

import pytest

from argobridge.core.mirrorpolicy import MIRROR_FOR_ANNOTATION, bridge_field_manager, mirror_refusal
from argobridge.core.spec import SpecError, parse_bridge_spec

THIS = "argocd/backstage"


def test_a_missing_secret_may_be_created():
    assert mirror_refusal(False, None, False, THIS, "backstage", "tokens") is None


def test_a_secret_marked_for_this_bridge_may_be_written():
    assert mirror_refusal(True, THIS, False, THIS, "backstage", "tokens") is None


def test_someone_elses_secret_is_refused_with_the_annotation_to_add():
    message = mirror_refusal(True, None, False, THIS, "backstage", "backstage-secrets")
    assert message is not None
    assert f"kubectl annotate secret backstage-secrets -n backstage {MIRROR_FOR_ANNOTATION}={THIS}" in message


def test_the_mirror_of_another_bridge_is_refused_and_named():
    message = mirror_refusal(True, "other/bridge", False, THIS, "backstage", "tokens")
    assert message is not None and "other/bridge" in message and "of its own" in message


def test_a_mirror_an_earlier_argobridge_wrote_is_claimed():
    assert mirror_refusal(True, None, True, THIS, "backstage", "tokens") is None


def test_field_managers_are_per_bridge_and_never_too_long():
    assert bridge_field_manager("argocd", "backstage") == "argobridge/argocd.backstage"
    long = bridge_field_manager("n" * 63, "b" * 253)
    assert len(long) <= 128 and long != bridge_field_manager("n" * 63, "b" * 252)


@pytest.mark.parametrize("name", ["argocd-notifications-secret", "argocd-notifications-secret-argobridge"])
def test_a_mirror_naming_argocds_own_secret_is_refused(name):
    spec = {"backstage": {"url": "https://b.example.com"}, "token": {"mirror": {"name": name}}}
    with pytest.raises(SpecError, match="Argo CD's own Secret"):
        parse_bridge_spec(spec, "argocd")


def test_a_mirror_of_that_name_in_backstages_namespace_is_fine():
    spec = {
        "backstage": {"url": "https://b.example.com"},
        "token": {"mirror": {"name": "argocd-notifications-secret", "namespace": "backstage"}},
    }
    assert parse_bridge_spec(spec, "argocd").mirror is not None
