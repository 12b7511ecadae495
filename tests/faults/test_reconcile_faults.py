"""Reconciles that used to crash, proven to end in truthful conditions, against the real apiserver.

Each case names what a user sees: the bridge's conditions and reasons, whether Argo CD's configuration
was applied, and that no Event, status field or annotation of the bridge holds any part of the token
(every 6-character substring is looked for). Backstage's real backend cannot answer 200 with HTML, so
that case uses FakeHtmlCatalog; an unforeseen bug cannot be produced by a real part, so FakeBug* code is
swapped into the running operator for those two cases, and the Kubernetes API is made unreachable for
the operator alone by pointing its client at a closed port (the connection is really refused).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge_dev.controlplane import free_port
from tests.conftest import wait_for
from tests.delivery.standins import HungBackstage
from tests.integration.test_applications import create_app
from tests.integration.test_bridge_reconcile import (
    CM,
    SECRET,
    bridge,
    bridge_gone,
    cm_data,
    condition,
    create_bridge,
    expected_keys,
    get_bridge,
    wait_ready,
)

PROGRESS_PREFIX = f"{GROUP}/"


def token_of(core: client.CoreV1Api, namespace: str) -> str:
    raw = core.read_namespaced_secret(SECRET, namespace).data or {}
    return base64.b64decode(raw["backstage-token"]).decode("utf-8", errors="replace")


def visible_texts(core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str) -> list[str]:
    """Everything a user can read about the bridge: every Event of the namespace, the whole status
    and every annotation of the bridge (kopf's progress records included), both raw and JSON-escaped."""
    texts = [f"{event.reason} {event.message}" for event in core.list_namespaced_event(namespace).items]
    body = get_bridge(custom, namespace)
    texts.append(json.dumps(body.get("status") or {}, ensure_ascii=False))
    texts += [f"{key}={value}" for key, value in (body["metadata"].get("annotations") or {}).items()]
    return texts + [json.dumps(text) for text in texts]


def assert_no_part_of(token: str, texts: list[str]) -> None:
    parts = {token[start : start + 6] for start in range(len(token) - 5)}
    leaked = sorted({part for part in parts for text in texts if part in text})
    assert not leaked, f"{len(leaked)} six-character parts of the token are visible"


def wait_condition(
    custom: client.CustomObjectsApi, namespace: str, kind: str, status: str, reason: str, timeout: float = 30
) -> dict[str, Any]:
    def matches() -> dict[str, Any] | None:
        found = condition(get_bridge(custom, namespace), kind)
        return found if (found.get("status"), found.get("reason")) == (status, reason) else None

    return wait_for(matches, timeout=timeout, what=f"{kind} {status} {reason}")


def wait_event(core: client.CoreV1Api, namespace: str, reason: str) -> str:
    def posted() -> str | None:
        items = core.list_namespaced_event(namespace, field_selector=f"reason={reason}").items
        return items[0].message if items else None

    return str(wait_for(posted, what=f"a {reason} Event"))


def error_count(namespace: str, reason: str) -> float:
    from argobridge.metrics import REGISTRY

    labels = {"namespace": namespace, "bridge": "backstage", "reason": reason}
    return REGISTRY.get_sample_value("argobridge_reconcile_errors_total", labels) or 0.0


class FakeHtmlCatalog:
    """Answers like Backstage on the notifications endpoint (400 to an empty body) and 200 with an HTML
    page on the catalog, as a login proxy in front of Backstage does; real Backstage never does that."""

    def __init__(self) -> None:
        self.catalog_requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/api/catalog/"):
                    fake.catalog_requests += 1
                    self._answer(200, "text/html", b"<!doctype html><html><body>Please sign in</body></html>")
                else:
                    self._answer(400, "application/json", b'{"error":{"name":"InputError","message":"bad"}}')

            def _answer(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def html_catalog() -> Iterator[FakeHtmlCatalog]:
    fake = FakeHtmlCatalog()
    yield fake
    fake.close()


@pytest.mark.usefixtures("operator")
def test_ca_bundle_that_is_not_pem_is_CABundleInvalid_and_the_config_is_still_applied(core, custom, namespace):
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "backstage-ca"}, "stringData": {"ca.crt": "this is not a certificate"}}
    )
    spec = {"backstage": {"url": "https://backstage.example.com", "caBundle": {"secretName": "backstage-ca"}}}
    create_bridge(custom, bridge(namespace, **spec))

    reachable = wait_condition(custom, namespace, "BackstageReachable", "False", "CABundleInvalid")
    assert "PEM" in reachable["message"] and "backstage-ca" in reachable["message"]
    body = wait_ready(custom, namespace)
    assert condition(body, "ConfigApplied")["reason"] == "Applied"
    assert cm_data(core, namespace) == expected_keys(namespace, **spec)
    wait_event(core, namespace, "CABundleInvalid")
    assert_no_part_of(token_of(core, namespace), visible_texts(core, custom, namespace))


@pytest.mark.usefixtures("operator")
def test_ca_bundle_secret_that_is_missing_is_CABundleMissing_and_the_config_is_still_applied(core, custom, namespace):
    spec = {"backstage": {"url": "https://backstage.example.com", "caBundle": {"secretName": "nowhere"}}}
    create_bridge(custom, bridge(namespace, **spec))

    reachable = wait_condition(custom, namespace, "BackstageReachable", "False", "CABundleMissing")
    assert "nowhere" in reachable["message"]
    wait_ready(custom, namespace)
    assert cm_data(core, namespace) == expected_keys(namespace, **spec)
    wait_event(core, namespace, "CABundleMissing")
    assert_no_part_of(token_of(core, namespace), visible_texts(core, custom, namespace))


@pytest.mark.usefixtures("operator", "argocd_crds")
def test_unreachable_backstage_and_catalog_never_block_the_configuration(core, custom, namespace):
    spec = {"backstage": {"url": f"http://127.0.0.1:{free_port()}"}}
    create_app(namespace, "shop", {"backstage.io/entity-ref": "component:default/shop"})
    create_bridge(custom, bridge(namespace, **spec))

    wait_condition(custom, namespace, "BackstageReachable", "False", "Unreachable")
    entities = wait_condition(custom, namespace, "EntitiesResolved", "Unknown", "CatalogUnavailable")
    assert "did not answer" in entities["message"]
    wait_ready(custom, namespace)
    assert cm_data(core, namespace) == expected_keys(namespace, **spec)
    wait_event(core, namespace, "Unreachable")
    assert_no_part_of(token_of(core, namespace), visible_texts(core, custom, namespace))


@pytest.mark.usefixtures("operator", "argocd_crds")
def test_a_bridge_deleted_while_its_backstage_hangs_is_gone_in_seconds_not_a_minute(core, custom, namespace):
    """A probe stuck on a Backstage that never answers must not hold the finalizer: kopf re-checks a
    timer still running only every `cancellation_polling` seconds (a minute by default) before it lets a
    deleted object go, so a user's `kubectl delete` would hang that long."""
    hung = HungBackstage().start()
    try:
        create_bridge(custom, bridge(namespace, backstage={"url": hung.url}))
        wait_for(lambda: hung.accepted > 0, timeout=60, what="the bridge's probe reached the hung Backstage")
        started = time.monotonic()
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")
        wait_for(lambda: bridge_gone(custom, namespace), timeout=45, what="the deleted bridge gone")
        assert time.monotonic() - started < 45
        assert "service.webhook.backstage" not in cm_data(core, namespace)
    finally:
        hung.stop()


@pytest.mark.usefixtures("operator", "argocd_crds")
def test_catalog_answering_200_with_html_is_EntitiesResolved_Unknown_and_the_config_is_applied(
    core, custom, namespace, html_catalog
):
    spec = {"backstage": {"url": html_catalog.url}}
    create_app(namespace, "shop", {"backstage.io/entity-ref": "component:default/shop"})
    create_bridge(custom, bridge(namespace, **spec))

    entities = wait_condition(custom, namespace, "EntitiesResolved", "Unknown", "CatalogUnavailable")
    assert "the catalog answered 200 with something that is not JSON" in entities["message"]
    assert html_catalog.catalog_requests >= 1
    body = wait_ready(custom, namespace)
    assert condition(body, "BackstageReachable")["reason"] == "TokenAccepted"
    assert cm_data(core, namespace) == expected_keys(namespace, **spec)
    assert body["status"]["applications"]["watched"] == 1 and "missingEntity" not in body["status"]["applications"]
    assert_no_part_of(token_of(core, namespace), visible_texts(core, custom, namespace))


NON_ASCII_TOKEN = "Kq7Wv9ümRtX€Zx93Lp0vR2Yh"


@pytest.mark.usefixtures("operator")
def test_token_with_a_non_ascii_character_is_InvalidToken_and_leaves_no_character_of_it_anywhere(
    core, custom, namespace, caplog
):
    foreign = {"service.slack": "token: $slack-token\n", "template.mine": "message: hello\n"}
    core.replace_namespaced_config_map(CM, namespace, {"metadata": {"name": CM}, "data": foreign})
    core.replace_namespaced_secret(
        SECRET, namespace, {"metadata": {"name": SECRET}, "stringData": {"backstage-token": NON_ASCII_TOKEN}}
    )
    create_bridge(custom, bridge(namespace))

    token = wait_condition(custom, namespace, "TokenReady", "False", "InvalidToken")
    assert "printable ASCII" in token["message"] and "Delete that key" in token["message"]
    wait_condition(custom, namespace, "Ready", "False", "WaitingForToken")
    assert condition(get_bridge(custom, namespace), "ConfigApplied")["reason"] == "WaitingForToken"
    assert cm_data(core, namespace) == foreign, "Argo CD's configuration is left as it was"
    wait_event(core, namespace, "InvalidToken")
    assert caplog.records, "the operator's log is captured"
    texts = [*visible_texts(core, custom, namespace), caplog.text]
    assert_no_part_of(NON_ASCII_TOKEN, texts)
    for character in "ü€":
        escaped = (character, json.dumps(character)[1:-1], repr(character.encode())[2:-1], f"\\x{ord(character):x}")
        assert not [form for form in escaped for text in texts if form in text], f"{character!r} is visible"


@pytest.mark.usefixtures("operator")
@pytest.mark.parametrize("url", ["https://backstage..example.com", "https://[::1/", "https://[::1"])
def test_url_with_an_empty_label_or_an_unclosed_bracket_is_refused_by_the_schema(core, custom, namespace, url):
    with pytest.raises(ApiException) as refused:
        create_bridge(custom, bridge(namespace, backstage={"url": url}))
    assert refused.value.status == 422 and "spec.backstage.url" in refused.value.body

    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    before = core.read_namespaced_config_map(CM, namespace).data
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "backstage", {"spec": {"backstage": {"url": url}}}
        )
    assert refused.value.status == 422
    assert core.read_namespaced_config_map(CM, namespace).data == before


def progress_records(custom: client.CustomObjectsApi, namespace: str) -> dict[str, str]:
    annotations = get_bridge(custom, namespace)["metadata"].get("annotations") or {}
    return {k: v for k, v in annotations.items() if k.startswith(PROGRESS_PREFIX) and "last-handled" not in k}


@pytest.mark.usefixtures("operator")
def test_kubernetes_api_refusing_connections_is_a_safe_temporary_error_and_the_bridge_recovers(
    core, custom, namespace, figures
):
    from argobridge.handlers.bridge import RETRY_SECONDS  # imported here: it reads settings at import
    from argobridge.kube.client import api_client

    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    before = error_count(namespace, "ApiError")
    # Only the operator's client is pointed at a closed port (this test's clients are separate); the
    # kubeconfig loader's refresh hook would put the real host back before each request, so it rests.
    operator_client = api_client().configuration
    real_host, refresh, dead_port = operator_client.host, operator_client.refresh_api_key_hook, free_port()
    operator_client.refresh_api_key_hook = None
    operator_client.host = f"https://127.0.0.1:{dead_port}"
    try:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "backstage", {"spec": {"argocd": {"url": "https://cd.example.com"}}}
        )

        def failed_safely() -> str | None:
            records = progress_records(custom, namespace)
            return next((value for value in records.values() if "did not answer" in value), None)

        record = wait_for(failed_safely, what="kopf's progress record of the failed handler")
    finally:
        operator_client.host, operator_client.refresh_api_key_hook = real_host, refresh
    restored = time.monotonic()
    assert "MaxRetryError" in record
    texts = visible_texts(core, custom, namespace)
    for detail in ("Max retries exceeded", "HTTPSConnectionPool", str(dead_port), "Connection refused", "Errno 111"):
        assert not [text for text in texts if detail in text], f"{detail!r} is visible"
    assert error_count(namespace, "ApiError") > before

    def applied() -> bool:
        body = get_bridge(custom, namespace)
        return (
            condition(body, "Ready").get("status") == "True"
            and body["status"].get("observedGeneration") == body["metadata"]["generation"]
            and "argocdUrl: https://cd.example.com" in cm_data(core, namespace).get("context", "")
        )

    wait_for(applied, timeout=60, what="the change applied once the API answers again")
    figures.append(
        f"API refusing connections: change applied {time.monotonic() - restored:.1f}s after it answered again"
        f" (retry delay {RETRY_SECONDS}s, resync 3s)"
    )
    assert_no_part_of(token_of(core, namespace), visible_texts(core, custom, namespace))


@pytest.mark.usefixtures("operator")
def test_unforeseen_exception_is_InternalError_with_type_and_place_only_and_ready_goes_false(
    core, custom, namespace, monkeypatch, caplog
):
    import argobridge.steps.reconcile as reconcile

    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    token = token_of(core, namespace)
    real_apply = reconcile._apply_config

    def FakeBugInApply(bridge_ref: Any, *args: Any) -> None:
        if bridge_ref.namespace != namespace:
            return real_apply(bridge_ref, *args)
        raise UnicodeEncodeError("ascii", token, 0, 1, f"cannot carry {token}")

    before = error_count(namespace, "InternalError")
    monkeypatch.setattr(reconcile, "_apply_config", FakeBugInApply)
    failed = wait_condition(custom, namespace, "ConfigApplied", "False", "InternalError")
    assert "UnicodeEncodeError in argobridge.steps.reconcile.reconcile_bridge" in failed["message"]
    ready = condition(get_bridge(custom, namespace), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InternalError"), "no stale Ready=True"
    assert "UnicodeEncodeError" in wait_event(core, namespace, "InternalError")
    wait_for(lambda: error_count(namespace, "InternalError") > before, what="the errors metric")
    assert "Traceback (frames only)" in caplog.text and "FakeBugInApply" in caplog.text, "the log has the frames"
    assert_no_part_of(token, [*visible_texts(core, custom, namespace), caplog.text])

    monkeypatch.undo()
    body = wait_ready(custom, namespace)
    assert condition(body, "ConfigApplied")["reason"] == "Applied"
    assert cm_data(core, namespace) == expected_keys(namespace)


@pytest.mark.usefixtures("operator")
def test_unforeseen_exception_while_deleting_is_reported_retried_and_never_quotes_the_token(
    core, custom, namespace, monkeypatch
):
    import argobridge.handlers.bridge as handlers

    create_bridge(custom, bridge(namespace))
    wait_ready(custom, namespace)
    token = token_of(core, namespace)
    real_remove = handlers.remove_bridge

    def FakeBugInRemoval(body: Any) -> Any:
        if body["metadata"]["namespace"] != namespace:
            return real_remove(body)
        raise ValueError(f"could not remove {token}")

    monkeypatch.setattr(handlers, "remove_bridge", FakeBugInRemoval)
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "backstage")
    failed = wait_condition(custom, namespace, "ConfigApplied", "False", "InternalError")
    assert "ValueError in " in failed["message"] and "Removing" in failed["message"]
    wait_for(lambda: progress_records(custom, namespace), what="kopf's record of the failed deletion handler")
    wait_event(core, namespace, "InternalError")
    assert_no_part_of(token, visible_texts(core, custom, namespace))
    assert cm_data(core, namespace) == expected_keys(namespace), "nothing half-removed"

    monkeypatch.undo()

    def gone() -> bool:
        try:
            get_bridge(custom, namespace)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, timeout=60, what="the bridge deleted once removal works")
    own = {key for key in expected_keys(namespace) if key.startswith(("service.", "template.", "trigger."))}
    assert own and not own & set(cm_data(core, namespace)), "the retried removal took the bridge's keys out"
