"""`argobridge preview`: which routes match one Application, and the exact bodies Backstage would get.

The reading of routes and bodies comes from the core; when an `argocd` binary is at hand (on PATH, or
the pinned build in ArgoBridge's cache) the real engine renders the body and evaluates the trigger, so
what is printed is what Argo CD would send. Nothing is built or downloaded for a preview.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from argobridge.core.preview import EventPreview, preview_application
from argobridge.core.render import render_notifications_config
from argobridge.core.spec import KIND, BridgeSpec, EventName, SpecError, parse_bridge_spec
from argobridge.engine.offline import EngineError, OfflineEngine, find_argocd


def _document(path: str, kind: str) -> Mapping[str, Any] | None:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return next((d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") == kind), None)


def _engine_view(
    spec: BridgeSpec, argocd_url: str | None, app: Mapping[str, Any], previews: Sequence[EventPreview], binary: Path
) -> dict[EventName, tuple[str, dict[str, Any] | None]]:
    """Per event: what the engine says about firing now, and the body it renders."""

    rendered = render_notifications_config(spec, argocd_url)
    data = dict(rendered.owned)
    if rendered.context:
        data["context"] = yaml.safe_dump(rendered.context)
    engine = OfflineEngine(data, {spec.token_key: "preview-token"}, binary=binary)
    views: dict[EventName, tuple[str, dict[str, Any] | None]] = {}
    for preview in previews:
        try:
            results = engine.trigger(preview.trigger, app)
            fired = [index for index, hit in enumerate(results) if hit]
            if fired:
                fires = f"fires now (condition {fired[0] + 1} of {len(results)})"
            else:
                fires = "does not fire now (not happened, older than the event window, or dropped)"
            body = None
            if preview.template and preview.body is not None:
                body = json.loads(engine.webhook_body(preview.template, app, spec.service_name))
            views[preview.event] = (fires, body)
        except (EngineError, ValueError) as error:
            views[preview.event] = (f"engine error: {error}", None)
    return views


def format_preview(
    previews: Sequence[EventPreview], engine: Mapping[EventName, tuple[str, dict[str, Any] | None]] | None
) -> str:
    """The printed report, one block per event."""
    lines: list[str] = []
    for preview in previews:
        lines.append(f"{preview.event.value} (trigger {preview.trigger})")
        lines.append(f"  matching routes: {', '.join(preview.matching_routes) or 'none'}")
        if preview.dropped:
            lines.append(f"  decided by: route {preview.deciding_route} (drop)")
        elif preview.deciding_route:
            lines.append(f"  decided by: route {preview.deciding_route} -> template {preview.template}")
        else:
            lines.append(f"  decided by: no route; the owners' default -> template {preview.template}")
        if preview.note:
            lines.append(f"  {preview.note}")
        body = preview.body
        if engine is not None and preview.event in engine:
            fires, engine_body = engine[preview.event]
            lines.append(f"  engine: {fires}")
            if engine_body is not None:
                body = engine_body
                lines.append("  body (rendered by the argocd engine):")
        elif body is not None:
            lines.append("  body (computed by ArgoBridge; install argocd for the engine's own rendering):")
        if body is not None:
            text = json.dumps(body, indent=2, ensure_ascii=False)
            lines.extend("    " + line for line in text.splitlines())
        lines.append("")
    return "\n".join(lines)


def preview_command(bridge_path: str, app_path: str, events: Sequence[str], argocd_url: str | None) -> int:
    """Print the preview; 2 for input that cannot be previewed, with the reason."""
    bridge = _document(bridge_path, KIND)
    app = _document(app_path, "Application")
    if bridge is None or app is None:
        missing = f"a {KIND} in {bridge_path}" if bridge is None else f"an Application in {app_path}"
        print(f"error: no {missing}", file=sys.stderr)
        return 2
    try:
        spec = parse_bridge_spec(bridge.get("spec") or {})
        only = [EventName(event) for event in events]
    except SpecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ValueError:
        print(f"error: --event takes one of {', '.join(e.value for e in EventName)}", file=sys.stderr)
        return 2
    enabled = {item.event for item in spec.events}
    if not_enabled := [event.value for event in only if event not in enabled]:
        print(f"error: not enabled in spec.events: {', '.join(not_enabled)}", file=sys.stderr)
        return 2
    url = spec.argocd_url or argocd_url
    previews = preview_application(spec, app, url, only, now=datetime.now(UTC))
    binary = find_argocd()
    try:
        engine = _engine_view(spec, url, app, previews, binary) if binary else None
    except SpecError as error:  # a configuration too big to apply
        print(f"error: {error}", file=sys.stderr)
        return 2
    if binary is None:
        print("# argocd binary not found: routes and bodies as ArgoBridge computes them (`make tools` builds it)")
    else:
        print(f"# engine: {binary}")
    print(format_preview(previews, engine), end="")
    return 0
