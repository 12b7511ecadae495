"""`argobridge preview` without the engine must say what the engine says: same route, same body."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from argobridge.core.preview import preview_application
from argobridge.core.render import render_notifications_config
from argobridge.core.spec import parse_bridge_spec
from argobridge_dev.engine import OfflineEngine
from tests.contract.test_engine_contract import ARGOCD_URL, CORPUS
from tests.contract.test_routes_contract import BRIDGE, FAILED, HOSTILE_LABEL, with_

# Every corpus app records the time of each event these routes send, so the fallback is never read.
NOW = datetime(2000, 1, 1, tzinfo=UTC)

APPS = {
    **{name: CORPUS[name] for name in ("healthy", "failed-hostile-message", "unicode", "very-long", "several-refs")},
    "long-unicode-title": with_(FAILED, metadata__name="é🚀" * 100, spec__destination__namespace="prod"),
    "prod": with_(FAILED, spec__destination__namespace="prod-eu"),
    "orphan-prod": with_(with_(FAILED, spec__destination__namespace="prod"), metadata__annotations={}),
    "platform": with_(FAILED, spec__project="platform"),
    "sandbox": with_(FAILED, spec__project="sandbox"),
    "labelled": with_(FAILED, metadata__labels={"example.com/team": HOSTILE_LABEL, "tier": "web"}),
    "cluster": with_(FAILED, spec__destination__name="edge-1"),
}


@pytest.fixture(scope="module")
def spec():
    return parse_bridge_spec(BRIDGE)


@pytest.fixture(scope="module")
def engine(spec):
    rendered = render_notifications_config(spec, ARGOCD_URL)
    return OfflineEngine({**rendered.owned, "context": f"argocdUrl: {ARGOCD_URL}\n"}, {"backstage-token": "t"})


@pytest.mark.parametrize("case", list(APPS))
def test_computed_bodies_are_the_engines_bodies(engine, spec, case):
    application = APPS[case]
    checked = 0
    for preview in preview_application(spec, application, ARGOCD_URL, now=NOW):
        if preview.template is None or preview.body is None:
            continue
        assert json.loads(engine.webhook_body(preview.template, application)) == preview.body, preview.event
        checked += 1
    assert checked or case in {"sandbox", "orphan-prod"}
