"""Which path Argo CD is sent to when Backstage's default path answers 404.

The real test backend shows the race this guards against (measured: while it mounts its routers, one
request to `/api/notifications/notifications` answered 404 and the next, to `/api/notifications`,
answered 400), but it cannot be made to show it on demand: the window is about 100 ms of its start. So
both backends here are FAKES, each a few lines of `http.server` that answer exactly one way:
`FakeStartingBackstage` mounts its router between two requests, `FakeOldBackstage` is a
notifications-backend older than 0.5.0 (the root path only).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from argobridge.core.spec import parse_bridge_spec
from argobridge.steps import probing

DEFAULT = "/api/notifications/notifications"
ROOT = "/api/notifications"


class _Fake(ThreadingHTTPServer):
    def __init__(self, answer_404_on_default: int | None) -> None:
        """`answer_404_on_default`: how many requests to the default path get 404 (None: all of them)."""
        self.remaining = answer_404_on_default
        self.paths: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def status_for(self, path: str) -> int:
        self.paths.append(path)
        if path == DEFAULT and (self.remaining is None or self.remaining > 0):
            if self.remaining is not None:
                self.remaining -= 1
            return 404
        return 400 if path in (DEFAULT, ROOT) else 404


class _Handler(BaseHTTPRequestHandler):
    server: _Fake

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.server.status_for(self.path))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_starting_backstage() -> Iterator[_Fake]:
    """FAKE: 404 on the default path once (its router not mounted yet), then 400 on both paths."""
    server = _Fake(answer_404_on_default=1)
    yield server
    server.shutdown()


@pytest.fixture
def fake_old_backstage() -> Iterator[_Fake]:
    """FAKE: a notifications-backend older than 0.5.0, 404 on the default path for good, 400 on the root."""
    server = _Fake(answer_404_on_default=None)
    yield server
    server.shutdown()


def _probe(url: str, name: str) -> tuple[bool | None, str, str]:
    spec = parse_bridge_spec({"backstage": {"url": url}}, "probe-faults")
    probing.forget("probe-faults", name)
    condition, effective = probing.probe_bridge("probe-faults", name, spec, "a-token-for-the-fake")
    return condition.status, condition.reason, effective.webhook_url


def test_a_backstage_starting_between_two_requests_keeps_argo_cd_on_the_default_path(fake_starting_backstage):
    status, reason, url = _probe(fake_starting_backstage.url, "starting")
    assert (status, reason) == (True, "TokenAccepted")
    assert url == fake_starting_backstage.url + DEFAULT
    assert fake_starting_backstage.paths == [DEFAULT, ROOT, DEFAULT]


def test_an_old_backstage_gets_the_root_path_and_says_why(fake_old_backstage):
    status, reason, url = _probe(fake_old_backstage.url, "old")
    assert (status, reason) == (True, "TokenAcceptedLegacyPath")
    assert url == fake_old_backstage.url + ROOT
