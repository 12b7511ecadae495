"""`spec.routes`: ordered rules that send an event to more people, to everyone, differently, or nowhere.

Parsing only: every value that will later be written into an expr-lang condition or a Go template is
checked here against the same rules the CRD schema applies, so `argobridge render` and `preview` on a
file (which no API server validated) refuse what the cluster would refuse, with the route's name in
the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argobridge.core.entityref import parse_entity_ref
from argobridge.core.labels import KEY_HINT, VALUE_HINT, label_key_problem, label_value_problem
from argobridge.core.noisecontrol import Digest, RateLimit, parse_digest, parse_rate_limit
from argobridge.core.placeholders import PlaceholderError, parse_placeholders
from argobridge.core.spec import (
    MAX_ICON,
    MAX_TEXTS,
    MAX_TOPIC,
    TOPIC,
    EventName,
    EventSpec,
    Severity,
    SpecError,
    checked_word,
    flag,
)

ROUTE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_ROUTE_NAME = 40
NAME_GLOB = re.compile(r"^[a-z0-9*?.-]{1,253}$")
CLUSTER_GLOB = re.compile(r"^[A-Za-z0-9*?._:/-]{1,253}$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")

SEVERITY_RANK = {Severity.LOW: 0, Severity.NORMAL: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class LabelOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class LabelRequirement:
    """One requirement of a Kubernetes label selector (matchLabels entries are `In` with one value)."""

    key: str
    operator: LabelOperator
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteMatch:
    """One alternative of a route's `match`: every field given must hold (and)."""

    events: frozenset[EventName] | None = None  # None: every enabled event
    min_severity: Severity | None = None
    projects: tuple[str, ...] = ()
    application_namespaces: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    destination_namespaces: tuple[str, ...] = ()
    destination_clusters: tuple[str, ...] = ()
    labels: tuple[LabelRequirement, ...] = ()

    def applies_to(self, event: EventSpec) -> bool:
        """Decided when rendering: the event and its configured severity are known then."""
        if self.events is not None and event.event not in self.events:
            return False
        return self.min_severity is None or SEVERITY_RANK[event.severity] >= SEVERITY_RANK[self.min_severity]


@dataclass(frozen=True)
class Route:
    """One entry of `spec.routes`; `matches` empty means every event of every application."""

    name: str
    index: int
    matches: tuple[RouteMatch, ...] = ()
    recipients: tuple[str, ...] = ()
    broadcast: bool = False
    drop: bool = False
    severity: Severity | None = None
    topic: str | None = None
    title: str | None = None
    description: str | None = None
    icon: str | None = None
    # Relay mode: its matches as one digest per recipient and period, and/or its own rate limit.
    digest: Digest | None = None
    rate_limit: RateLimit | None = None

    @property
    def path(self) -> str:
        return f"spec.routes[{self.index}] ({self.name})"


def _strings(raw: Any, path: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError(f"{path} must be a list of {what}")
    for item in raw:
        if not isinstance(item, str) or not pattern.fullmatch(item):
            raise SpecError(f"{path}: {item!r} is not a valid {what}")
    return tuple(raw)


def _labels(raw: Any, path: str) -> tuple[LabelRequirement, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or set(raw) - {"matchLabels", "matchExpressions"}:
        raise SpecError(f"{path} must be a label selector with matchLabels and/or matchExpressions")
    requirements: list[LabelRequirement] = []
    for key, value in (raw.get("matchLabels") or {}).items():
        if problem := label_key_problem(key):
            raise SpecError(f"{path}.matchLabels: key {key!r} {problem}; {KEY_HINT}")
        if problem := label_value_problem(value):
            raise SpecError(f"{path}.matchLabels: value {value!r} of key {key!r} {problem}; {VALUE_HINT}")
        requirements.append(LabelRequirement(str(key), LabelOperator.IN, (value,)))
    for index, item in enumerate(raw.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{index}]"
        if not isinstance(item, Mapping):
            raise SpecError(f"{where} must be an object with key, operator and values")
        if problem := label_key_problem(item.get("key")):
            raise SpecError(f"{where}.key {item.get('key')!r} {problem}; {KEY_HINT}")
        try:
            operator = LabelOperator(str(item.get("operator")))
        except ValueError:
            raise SpecError(f"{where}.operator must be one of In, NotIn, Exists, DoesNotExist") from None
        values = _strings(item.get("values"), f"{where}.values", LABEL_VALUE, "label value")
        if operator in (LabelOperator.IN, LabelOperator.NOT_IN) and not values:
            raise SpecError(f"{where}: operator {operator.value} needs at least one value")
        if operator in (LabelOperator.EXISTS, LabelOperator.DOES_NOT_EXIST) and values:
            raise SpecError(f"{where}: operator {operator.value} takes no values; remove them")
        requirements.append(LabelRequirement(str(item["key"]), operator, values))
    return tuple(requirements)


def _match(raw: Any, path: str, enabled: Mapping[EventName, EventSpec], route: str) -> RouteMatch:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{path} must be an object")
    events: frozenset[EventName] | None = None
    if raw.get("events") is not None:
        names: set[EventName] = set()
        for item in raw["events"]:
            try:
                name = EventName(item)
            except ValueError:
                allowed = ", ".join(member.value for member in EventName)
                raise SpecError(f"{path}.events: {item!r} is not an event; use one of: {allowed}") from None
            if name not in enabled:
                raise SpecError(
                    f"{route}: event {name.value} is not enabled in spec.events, so this route could never"
                    f" apply to it; add {{event: {name.value}}} to spec.events or remove it from {path}.events"
                )
            names.add(name)
        events = frozenset(names)
    severity = raw.get("minSeverity")
    try:
        min_severity = Severity(severity) if severity is not None else None
    except ValueError:
        raise SpecError(f"{path}.minSeverity {severity!r}: use one of critical, high, normal, low") from None
    return RouteMatch(
        events=events,
        min_severity=min_severity,
        projects=_strings(raw.get("projects"), f"{path}.projects", NAME_GLOB, "project name or glob"),
        application_namespaces=_strings(
            raw.get("applicationNamespaces"), f"{path}.applicationNamespaces", NAME_GLOB, "namespace or glob"
        ),
        names=_strings(raw.get("names"), f"{path}.names", NAME_GLOB, "application name or glob"),
        destination_namespaces=_strings(
            raw.get("destinationNamespaces"), f"{path}.destinationNamespaces", NAME_GLOB, "namespace or glob"
        ),
        destination_clusters=_strings(
            raw.get("destinationClusters"), f"{path}.destinationClusters", CLUSTER_GLOB, "cluster URL, name or glob"
        ),
        labels=_labels(raw.get("labels"), f"{path}.labels"),
    )


def _route_text(raw: Mapping[str, Any], key: str, route: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXTS[key]:
        raise SpecError(f"{route}: {key} must be a string of at most {MAX_TEXTS[key]} characters")
    try:
        parse_placeholders(value)
    except PlaceholderError as error:
        raise SpecError(f"{route}: {key} {error}") from None
    return value


def _recipients(raw: Any, route: str) -> tuple[str, ...]:
    refs: list[str] = []
    for item in raw or ():
        ref = parse_entity_ref(str(item))
        if ref.canonical is None:
            raise SpecError(f"{route}: recipient {ref.problem}")
        if ref.canonical not in refs:
            refs.append(ref.canonical)
    return tuple(refs)


def _route(raw: Any, index: int, enabled: Mapping[EventName, EventSpec]) -> Route:
    if not isinstance(raw, Mapping):
        raise SpecError(f"spec.routes[{index}] must be an object with a name, a match and an action")
    name = raw.get("name")
    if not isinstance(name, str) or len(name) > MAX_ROUTE_NAME or not ROUTE_NAME.fullmatch(name):
        raise SpecError(
            f"spec.routes[{index}].name {name!r} must be up to {MAX_ROUTE_NAME} lowercase letters, digits and -"
        )
    path = f"spec.routes[{index}] ({name})"
    raw_match = raw.get("match")
    alternatives = raw_match if isinstance(raw_match, list) else ([] if raw_match is None else [raw_match])
    matches = tuple(
        _match(item, f"spec.routes[{index}].match[{number}]", enabled, path) for number, item in enumerate(alternatives)
    )
    if raw_match is not None and not matches:
        raise SpecError(f"{path}: match is an empty list, which would match nothing; remove the route or add a match")
    severity = raw.get("severity")
    try:
        override = Severity(severity) if severity is not None else None
    except ValueError:
        raise SpecError(f"{path}: severity {severity!r}: use one of critical, high, normal, low") from None
    topic = raw.get("topic")
    if topic is not None:
        topic = checked_word(topic, f"{path}: topic", TOPIC, MAX_TOPIC)
    icon = raw.get("icon")
    if icon is not None:
        icon = checked_word(icon, f"{path}: icon", TOPIC, MAX_ICON)
    digest = None if raw.get("digest") is None else parse_digest(raw["digest"], f"{path}: digest")
    limit = None if raw.get("rateLimit") is None else parse_rate_limit(raw["rateLimit"], f"{path}: rateLimit")
    route = Route(
        name=name,
        index=index,
        matches=matches,
        recipients=_recipients(raw.get("recipients"), path),
        broadcast=flag(raw, "broadcast", f"spec.routes[{index}]"),
        drop=flag(raw, "drop", f"spec.routes[{index}]"),
        severity=override,
        topic=topic,
        title=_route_text(raw, "title", path),
        description=_route_text(raw, "description", path),
        icon=icon,
        digest=digest,
        rate_limit=limit,
    )
    changes = (
        route.recipients
        or route.broadcast
        or override
        or topic is not None
        or icon is not None
        or route.title
        or route.description
        or digest is not None
        or limit is not None
    )
    if route.drop and changes:
        raise SpecError(f"{path}: drop sends nothing, so it cannot be combined with other actions; keep one")
    if route.broadcast and route.recipients:
        raise SpecError(f"{path}: a broadcast already reaches every user; remove recipients or broadcast")
    if not route.drop and not changes:
        raise SpecError(
            f"{path} has no action; give recipients, broadcast: true, drop: true, severity, topic, icon, title,"
            " description, digest or rateLimit"
        )
    return route


def parse_routes(raw: Any, events: Sequence[EventSpec]) -> tuple[Route, ...]:
    """The ordered routes, or `SpecError` naming the route and the fix."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError("spec.routes must be a list of {name, match, action}")
    enabled = {event.event: event for event in events}
    routes = tuple(_route(item, index, enabled) for index, item in enumerate(raw))
    seen: set[str] = set()
    for route in routes:
        if route.name in seen:
            raise SpecError(f"{route.path}: the name {route.name} is used twice; route names must be unique")
        seen.add(route.name)
    return routes
