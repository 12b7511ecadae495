"""doctor's engine check with the real `argocd` binary: a sound configuration passes, a broken one fails."""

from __future__ import annotations

from argobridge.commands.doctor import check_engine
from argobridge.core.render import render_notifications_config
from argobridge.core.spec import parse_bridge_spec


def rendered() -> dict[str, str]:
    spec = parse_bridge_spec({"backstage": {"url": "https://backstage.example.com"}})
    return dict(render_notifications_config(spec, "https://argocd.example.com").owned)


def test_engine_check_passes_what_argobridge_renders():
    (finding,) = check_engine(rendered(), "backstage-token")
    assert finding.ok and "renders every template" in finding.message


def test_engine_check_names_a_trigger_that_does_not_compile():
    data = rendered()
    trigger = next(key for key in data if key.startswith("trigger."))
    data[trigger] = "- when: app.status ?? )\n  send: [x]\n"
    (finding,) = check_engine(data, "backstage-token")
    assert not finding.ok and "rejects the configuration" in finding.message
