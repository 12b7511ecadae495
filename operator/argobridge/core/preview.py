"""What a bridge would do with one Application: which routes match each event, and the body sent.

Pure. `argobridge preview` prints this and, when the `argocd` binary is at hand, puts the engine's own
answer beside it; the contract tests hold the two to agreement, so the reading here is trustworthy
when the binary is not installed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argobridge.core.backstage_contract import MAX_TITLE, js_length
from argobridge.core.entityref import parse_entity_refs
from argobridge.core.events import CATALOG, ENTITY_REF_ANNOTATION, EventDefinition, MessageSource
from argobridge.core.placeholders import fill_placeholders
from argobridge.core.render import event_texts
from argobridge.core.routeplan import deciding_route, match_holds, plan_deliveries
from argobridge.core.routes import Route
from argobridge.core.spec import BridgeSpec, EventName, EventSpec


@dataclass(frozen=True)
class EventPreview:
    """One enabled event for one Application."""

    event: EventName
    trigger: str
    matching_routes: tuple[str, ...]  # every route whose match holds, in order
    deciding_route: str | None  # the first of them, which decides; None: the owners' default
    dropped: bool
    template: str | None  # what the trigger's condition sends; None when dropped
    body: dict[str, Any] | None  # None when dropped, or when there is nobody to send it to
    note: str = ""


def _dig(document: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(document, Mapping):
            return None
        document = document.get(key)
    return document


def _text(document: Any, *path: str) -> str:
    value = _dig(document, *path)
    return "" if value is None else str(value)


def _message(app: Mapping[str, Any], source: MessageSource) -> str:
    if source is MessageSource.OPERATION:
        return _text(app, "status", "operationState", "message")
    if source is MessageSource.HEALTH:
        return _text(app, "status", "health", "message")
    if source is MessageSource.CONDITIONS:
        for item in _dig(app, "status", "conditions") or []:
            if isinstance(item, Mapping) and item.get("message"):
                return str(item["message"])
    return ""


def _first(document: Any, *path: str) -> Any:
    """The first item of a list, as the template reads it: None when the value is not a non-empty list."""
    value = _dig(document, *path)
    return value[0] if isinstance(value, list) and value else None


_REVISIONS = (
    ("status", "operationState", "syncResult"),
    ("status", "operationState", "operation", "sync"),
    ("status", "sync"),
)


def _revision(app: Mapping[str, Any]) -> str:
    """The sync's revision, the one it asked for, the compared one; for multi-source apps (where all three
    are empty) the first source's entry of the same three lists."""
    singles = (_dig(app, *base, "revision") for base in _REVISIONS)
    firsts = (_first(app, *base, "revisions") for base in _REVISIONS)
    return next((str(value) for value in (*singles, *firsts) if value), "")


def _repo(app: Mapping[str, Any]) -> str:
    source = _first(app, "spec", "sources")
    candidates = (
        _dig(app, "spec", "source", "repoURL"),
        _dig(source, "repoURL") if isinstance(source, Mapping) else None,
        _dig(app, "spec", "sourceHydrator", "drySource", "repoURL"),
    )
    return next((str(value) for value in candidates if value), "")


def _destination(app: Mapping[str, Any]) -> str:
    cluster = _dig(app, "spec", "destination", "name") or _dig(app, "spec", "destination", "server") or ""
    namespace = _text(app, "spec", "destination", "namespace")
    return f"{cluster}/{namespace}" if cluster and namespace else str(cluster or namespace)


def _initiated_by(app: Mapping[str, Any]) -> str:
    initiator = _dig(app, "status", "operationState", "operation", "initiatedBy")
    if isinstance(initiator, Mapping) and str(initiator.get("automated")).lower() == "true":
        return "automated sync"
    return _text(initiator, "username")


# Go's RFC 3339 without `{`: the template's regex, which admits what metav1.Time writes and offsets.
_RFC3339 = re.compile(r"\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d([.]\d+)?(Z|[+-]\d\d:\d\d)", re.ASCII)


_ZERO_TIME = "0001-01-01T00:00:00Z"  # what Go's toDate gives for a string it cannot parse


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC to the second, as the template writes `{time}` (a 4-digit year, as Go writes it)."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"


def event_time(app: Mapping[str, Any], definition: EventDefinition, now: datetime) -> str:
    """`{time}`: the latest of the event's timestamps that parses as RFC 3339, else `now` (rendering).

    Like the template, it skips the zero time and a time whose offset carries it out of years 1-9999.
    """
    latest = ""
    for path in definition.times:
        value = _text(app, *path)
        if not _RFC3339.fullmatch(value):
            continue
        try:
            moment = format_time(datetime.fromisoformat(value))
        except (ValueError, OverflowError):
            continue
        if moment > _ZERO_TIME:
            latest = max(latest, moment)
    return latest or format_time(now)


def placeholder_values(app: Mapping[str, Any], definition: EventDefinition, now: datetime) -> dict[str, str]:
    """The values the engine's template reads for each placeholder; `now` stands for the time of rendering."""
    return {
        "app": _text(app, "metadata", "name"),
        "namespace": _text(app, "metadata", "namespace"),
        "project": _text(app, "spec", "project") or "default",
        "revision": _revision(app),
        "message": _message(app, definition.message),
        "health": _text(app, "status", "health", "status"),
        "phase": _text(app, "status", "operationState", "phase"),
        "initiatedBy": _initiated_by(app),
        "repo": _repo(app),
        "destination": _destination(app),
        "time": event_time(app, definition, now),
    }


def cut_title(title: str) -> str:
    """Backstage's 255-character limit, counted in UTF-16 units, cut by characters as the template does."""
    if len(title) <= MAX_TITLE and js_length(title) <= MAX_TITLE:
        return title
    kept, units = [], 0
    for char in title:
        width = js_length(char)
        if units + width > MAX_TITLE - 1:
            break
        kept.append(char)
        units += width
    return "".join(kept) + "…"


def _scope(namespace: str, name: str, event: EventName) -> str:
    scope = f"argocd/{namespace}/{name}/{event.value}"
    raw = scope.encode()
    if len(raw) > 255:
        scope = raw[:190].decode(errors="replace") + "~" + hashlib.sha256(raw).hexdigest()
    return scope


def expected_body(
    definition: EventDefinition,
    event: EventSpec,
    route: Route | None,
    app: Mapping[str, Any],
    argocd_url: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    """The create request the template builds; None when it would have no recipient."""
    values = placeholder_values(app, definition, now)
    refs = [
        ref.canonical
        for ref in parse_entity_refs(_text(app, "metadata", "annotations", ENTITY_REF_ANNOTATION))
        if ref.canonical
    ]
    recipients: dict[str, Any]
    if route is not None and route.broadcast:
        recipients = {"type": "broadcast"}
    else:
        refs = list(dict.fromkeys([*refs, *(route.recipients if route else ())]))
        if not refs:
            return None
        recipients = {"type": "entity", "entityRef": refs[0] if len(refs) == 1 else refs}
    title, description = event_texts(definition, event, route)
    payload: dict[str, Any] = {
        "title": cut_title(fill_placeholders(title, values)),
        "description": fill_placeholders(description, values),
        "severity": ((route.severity if route else None) or event.severity).value,
        "topic": (route.topic if route else None) or event.topic,
        "scope": _scope(values["namespace"], values["app"], event.event),
    }
    icon = (route.icon if route else None) or event.icon
    if icon:
        payload["icon"] = icon
    if argocd_url:
        payload["link"] = f"{argocd_url.rstrip('/')}/applications/{values['namespace']}/{values['app']}"
    return {"recipients": recipients, "payload": payload}


def preview_application(
    spec: BridgeSpec,
    app: Mapping[str, Any],
    argocd_url: str | None,
    only: Sequence[EventName] = (),
    *,
    now: datetime,
) -> list[EventPreview]:
    """For each enabled event (or those asked for): the routes that match and what would be sent; `now`
    is the time `{time}` falls back to when the Application recorded none for the event."""
    previews = []
    for event in spec.events:
        if only and event.event not in only:
            continue
        definition = CATALOG[event.event]
        matching = tuple(
            route.name
            for route in spec.routes
            if not route.matches or any(m.applies_to(event) and match_holds(m, app) for m in route.matches)
        )
        route = deciding_route(event, spec.routes, app)
        deliveries = {d.route: d for d in plan_deliveries(event, spec.routes, definition.template)}
        dropped = route is not None and route.drop
        delivery = None if dropped else deliveries.get(route.name if route else None)
        body = expected_body(definition, event, route, app, argocd_url, now) if delivery else None
        note = ""
        if dropped:
            note = f"dropped by route {route.name if route else ''}: nothing is sent"
        elif body is None:
            note = "nobody to notify: the Application has no deliverable backstage.io/entity-ref"
        previews.append(
            EventPreview(
                event=event.event,
                trigger=definition.trigger,
                matching_routes=matching,
                deciding_route=route.name if route else None,
                dropped=dropped,
                template=delivery.template if delivery else None,
                body=body,
                note=note,
            )
        )
    return previews
