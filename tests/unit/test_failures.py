"""Failures a reconcile can meet, judged without a cluster: each becomes a reason and a safe message."""

from __future__ import annotations

import logging
import ssl

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError

from argobridge.backstage.client import InvalidCaBundle, catalog_answer, probe_create_endpoint, tls_verify
from argobridge.core.conditions import CONFIG_APPLIED, Condition, merge_conditions
from argobridge.core.probe import ProbeResult, entities_condition, probe_condition
from argobridge.core.spec import SpecError, parse_bridge_spec
from argobridge.core.status import ReconcileReport, build_status
from argobridge.core.token import generate_token, token_problem
from argobridge.kube.errors import KubeError
from argobridge.steps.failures import describe_failure

TOKEN = "Zq9xTokenWith-ü-and-€-inside-4711"


@pytest.mark.parametrize(
    "value",
    [TOKEN, "abcdefgh\x01ijk", "abcdefgh\x7fijk", "näive-token-123", "\u200btoken-1234567"],
)
def test_token_an_authorization_header_cannot_carry_is_refused(value):
    problem = token_problem(value)
    assert problem and "printable ASCII" in problem
    assert not any(character in problem for character in value if not character.isascii())


def test_generated_tokens_pass_the_token_check():
    assert all(token_problem(generate_token()) is None for _ in range(50))


@pytest.mark.parametrize(
    "url",
    [
        "https://backstage..example.com",
        "https://.backstage.example.com",
        "https://[::1/",
        "https://[::1",
        "https://backstage.example.com:99999999/",
        "https://" + "a" * 64 + ".example.com",
        "https://user:password@backstage.example.com",
    ],
)
def test_url_httpx_cannot_send_to_is_refused_with_the_fix(url):
    with pytest.raises(SpecError, match="no empty label"):
        parse_bridge_spec({"backstage": {"url": url}})


@pytest.mark.parametrize(
    "url",
    [
        "https://backstage.example.com",
        "http://backstage.backstage.svc.cluster.local:7007/base",
        "https://[::1]:7007/",
        "https://10.0.0.7",
        "https://my_backstage.internal",
    ],
)
def test_usual_urls_stay_accepted(url):
    assert parse_bridge_spec({"backstage": {"url": url}}).backstage_url == url.rstrip("/")


def test_ca_bundle_that_is_not_pem_raises_only_its_own_error():
    with pytest.raises(InvalidCaBundle) as caught:
        tls_verify("this is not a certificate", insecure=False)
    assert str(caught.value) == "SSLError"


def test_the_system_trust_store_is_loaded_once_not_per_request():
    # Loading it per request was most of an idle operator's CPU with 100 bridges (make bench).
    first, again = tls_verify(None, insecure=False), tls_verify(None, insecure=False)
    assert isinstance(first, ssl.SSLContext) and first is again
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname  # still verifies, as httpx does
    assert tls_verify(None, insecure=True) is False


@pytest.mark.parametrize(
    "url",
    ["https://backstage..example.com/api/notifications/notifications", "https://[::1/api/notifications"],
)
def test_probe_of_an_unsendable_url_is_a_result_not_an_exception(url):
    result = probe_create_endpoint(url, "a-valid-token-123", timeout=1)
    assert result.error == "invalid" and result.detail in ("UnicodeError", "InvalidURL")
    condition = probe_condition(result, url, "argocd-notifications-secret", "backstage-token")
    assert (condition.status, condition.reason) == (False, "InvalidRequest")


def test_probe_with_a_non_ascii_token_never_quotes_it():
    result = probe_create_endpoint("http://127.0.0.1:9/x", TOKEN, timeout=1)
    assert result == ProbeResult(error="invalid", detail="UnicodeEncodeError")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"<!doctype html><html><body>Sign in</body></html>", "something that is not JSON"),
        (b'["component:default/shop"]', "JSON that is not an answer"),
        (b'{"items": "nope"}', "JSON that is not an answer"),
        (b'{"items": [null, null, null]}', "JSON that is not an answer"),
    ],
)
def test_catalog_answer_that_is_not_the_catalogs_leaves_refs_unknown(content, says):
    refs = ["component:default/shop", "group:default/team"]
    answer = catalog_answer(refs, content)
    assert answer.unavailable and says in answer.unavailable
    condition = entities_condition(refs, answer)
    assert (condition.status, condition.reason) == (None, "CatalogUnavailable")
    assert merge_conditions([], [condition], 1, "now")[0]["status"] == "Unknown"


def test_catalog_answer_of_backstage_names_the_existing_refs():
    answer = catalog_answer(["component:default/shop", "group:default/ghosts"], b'{"items": [{"kind": "x"}, null]}')
    assert answer.existing == {"component:default/shop"} and not answer.unavailable


@pytest.mark.parametrize(
    "error",
    [
        MaxRetryError(None, "/api/v1/namespaces/x/secrets/s", NewConnectionError(None, "refused")),
        ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
        ReadTimeoutError(None, "/api/v1/namespaces/x/secrets/s", "Read timed out. (read timeout=10)"),
    ],
)
def test_kubernetes_transport_errors_become_api_errors_without_their_text(error):
    reason, message = describe_failure(error, "Reconciling BackstageBridge a/b")
    assert reason == "ApiError" and type(error).__name__ in message
    assert "/api/v1" not in message and "reset" not in message and "timed out" not in message
    kube = KubeError("reading Secret a/s", error)
    assert kube.status == 0 and "did not answer" in str(kube) and "/api/v1" not in str(kube)


def test_api_exception_keeps_its_short_reason():
    error = ApiException(status=403, reason="Forbidden")
    reason, message = describe_failure(KubeError("reading Secret a/s", error), "Reconciling BackstageBridge a/b")
    assert reason == "ApiError" and "HTTP 403 Forbidden" in message


def _raise_with_the_token() -> None:
    TOKEN.encode("ascii")  # UnicodeEncodeError, whose text quotes a character of the token


def test_unforeseen_exception_is_an_internal_error_with_type_and_place_only(caplog):
    try:
        _raise_with_the_token()
    except UnicodeEncodeError as error:
        with caplog.at_level(logging.ERROR, logger="argobridge.steps.failures"):
            reason, message = describe_failure(error, "Reconciling BackstageBridge a/b")
    assert reason == "InternalError"
    assert "UnicodeEncodeError in " in message and "_raise_with_the_token line" in message
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "_raise_with_the_token" in logged, "the log has the frames"
    for text in (message, logged):
        assert "ü" not in text and "\\xfc" not in text and "position" not in text


def test_ready_goes_false_when_a_reconcile_fails_after_it_was_true():
    good = ReconcileReport(
        conditions=[
            Condition(CONFIG_APPLIED, True, "Applied", "up to date"),
            Condition("TokenReady", True, "Present", "present"),
        ]
    )
    ready = build_status({}, good, 1, "t1")
    assert [c["status"] for c in ready["conditions"] if c["type"] == "Ready"] == ["True"]
    failed = ReconcileReport(conditions=[Condition(CONFIG_APPLIED, False, "InternalError", "boom")])
    after = build_status(ready, failed, 1, "t2")
    summary = next(c for c in after["conditions"] if c["type"] == "Ready")
    assert (summary["status"], summary["reason"], summary["lastTransitionTime"]) == ("False", "InternalError", "t2")
