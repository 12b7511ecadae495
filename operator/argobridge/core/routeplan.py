"""Compile routes into the engine's language: one delivery per (event, route), first matching route wins.

Each enabled event keeps its one trigger (so subscriptions, Global or by annotation, never change when
routes do); routes become extra conditions of that trigger, each sending its own template. For an event,
the routes that can apply (its `events` and `minSeverity` are decided here) are tried in order: the
first whose match holds decides how the event is delivered (its recipients are added to the owners, or
it is broadcast, or dropped), and when none holds the owners get the default notification. Exactly one
condition of a trigger is true at a time, and every variant carries the same `scope`, so a person who is
both owner and on call sees one notification.

Every value from the spec enters an expression only as a quoted literal (`argobridge.core.literals`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from argobridge.core.literals import quoted, quoted_list
from argobridge.core.routes import LabelOperator, LabelRequirement, Route, RouteMatch
from argobridge.core.spec import EventSpec, Severity

_PROJECT = '(app.spec?.project ?? "")'
_APP_NAMESPACE = '(app.metadata?.namespace ?? "")'
_NAME = '(app.metadata?.name ?? "")'
_DEST_NAMESPACE = '(app.spec?.destination?.namespace ?? "")'
_DEST_SERVER = '(app.spec?.destination?.server ?? "")'
_DEST_NAME = '(app.spec?.destination?.name ?? "")'


@dataclass(frozen=True)
class Delivery:
    """One way an event can be delivered: a condition of the event's trigger and the template it sends.

    `when` is the route part of the condition ("true" when there is nothing to check at run time);
    `needs_owner` adds the entity-ref guard: without extra recipients there is nobody else to notify.
    """

    template: str
    route: str | None
    when: str
    needs_owner: bool
    recipients: tuple[str, ...]
    broadcast: bool
    severity: Severity
    topic: str
    icon: str | None = None


def glob_regex(glob: str) -> str:
    """An RE2 pattern for a glob of `*` and `?` over the characters the schema allows."""
    body = "".join(".*" if c == "*" else "." if c == "?" else c if c.isalnum() else "\\" + c for c in glob)
    return f"^(?:{body})$"


def _one_of(path: str, globs: tuple[str, ...]) -> str:
    exact = [glob for glob in globs if "*" not in glob and "?" not in glob]
    wild = [glob for glob in globs if glob not in exact]
    parts = []
    if exact:
        parts.append(f"{path} in {quoted_list(exact)}")
    if wild:
        parts.append(f"{path} matches {quoted('|'.join(glob_regex(glob) for glob in wild))}")
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def _label(requirement: LabelRequirement) -> str:
    # `?.[...]` yields nil for an app without labels or without this key, which no value equals.
    value = f"app.metadata?.labels?.[{quoted(requirement.key)}]"
    if requirement.operator is LabelOperator.IN:
        return f"{value} in {quoted_list(requirement.values)}"
    if requirement.operator is LabelOperator.NOT_IN:
        return f"not ({value} in {quoted_list(requirement.values)})"
    if requirement.operator is LabelOperator.EXISTS:
        return f"{value} != nil"
    return f"{value} == nil"


def match_condition(match: RouteMatch) -> str:
    """The run-time part of one alternative as an expr-lang expression; "true" if it has none."""
    parts = []
    if match.projects:
        parts.append(_one_of(_PROJECT, match.projects))
    if match.application_namespaces:
        parts.append(_one_of(_APP_NAMESPACE, match.application_namespaces))
    if match.names:
        parts.append(_one_of(_NAME, match.names))
    if match.destination_namespaces:
        parts.append(_one_of(_DEST_NAMESPACE, match.destination_namespaces))
    if match.destination_clusters:
        clusters = match.destination_clusters
        parts.append(f"({_one_of(_DEST_SERVER, clusters)} or {_one_of(_DEST_NAME, clusters)})")
    parts.extend(_label(requirement) for requirement in match.labels)
    if not parts:
        return "true"
    return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"


def route_condition(route: Route, event: EventSpec) -> str | None:
    """Whether the route holds for this event, at run time; None when it can never apply to the event."""
    if not route.matches:
        return "true"
    alternatives = [match_condition(match) for match in route.matches if match.applies_to(event)]
    if not alternatives:
        return None
    if "true" in alternatives:
        return "true"
    return alternatives[0] if len(alternatives) == 1 else "(" + " or ".join(alternatives) + ")"


def route_template_name(default_template: str, route: str) -> str:
    """`app-sync-failed-backstage` and route `oncall` give `app-sync-failed-oncall-backstage`."""
    return default_template.removesuffix("-backstage") + f"-{route}-backstage"


def plan_deliveries(event: EventSpec, routes: tuple[Route, ...], default_template: str) -> tuple[Delivery, ...]:
    """The conditions of one event's trigger, in route order, the owners' default last (if reachable)."""
    deliveries: list[Delivery] = []
    earlier: list[str] = []  # conditions of routes tried before: each later condition requires them false
    for route in routes:
        condition = route_condition(route, event)
        if condition is None:
            continue
        parts = [f"not ({item})" for item in earlier]
        if condition != "true":
            parts.append(f"({condition})")
        when = " and ".join(parts) or "true"
        if not route.drop:
            deliveries.append(
                Delivery(
                    template=route_template_name(default_template, route.name),
                    route=route.name,
                    when=when,
                    needs_owner=not (route.recipients or route.broadcast),
                    recipients=route.recipients,
                    broadcast=route.broadcast,
                    severity=route.severity or event.severity,
                    topic=route.topic or event.topic,
                    icon=route.icon or event.icon,
                )
            )
        if condition == "true":
            return tuple(deliveries)  # nothing after an unconditional route is ever reached
        earlier.append(condition)
    deliveries.append(
        Delivery(
            template=default_template,
            route=None,
            when=" and ".join(f"not ({item})" for item in earlier) or "true",
            needs_owner=True,
            recipients=(),
            broadcast=False,
            severity=event.severity,
            topic=event.topic,
            icon=event.icon,
        )
    )
    return tuple(deliveries)


def _glob_hit(value: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(value, glob) for glob in globs)


def _dig(document: Mapping[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(document, Mapping):
            return None
        document = document.get(key)  # type: ignore[assignment]
    return document


def _label_holds(labels: Mapping[str, Any], requirement: LabelRequirement) -> bool:
    value = labels.get(requirement.key)
    if requirement.operator is LabelOperator.IN:
        return value in requirement.values
    if requirement.operator is LabelOperator.NOT_IN:
        return value not in requirement.values
    if requirement.operator is LabelOperator.EXISTS:
        return value is not None
    return value is None


def match_holds(match: RouteMatch, app: Mapping[str, Any]) -> bool:
    """The run-time part of one alternative, evaluated in Python (for `preview` without the engine)."""

    def text(*path: str) -> str:
        value = _dig(app, *path)
        return value if isinstance(value, str) else ""

    checks = [
        (match.projects, text("spec", "project")),
        (match.application_namespaces, text("metadata", "namespace")),
        (match.names, text("metadata", "name")),
        (match.destination_namespaces, text("spec", "destination", "namespace")),
    ]
    if any(globs and not _glob_hit(value, globs) for globs, value in checks):
        return False
    clusters = match.destination_clusters
    server, name = text("spec", "destination", "server"), text("spec", "destination", "name")
    if clusters and not (_glob_hit(server, clusters) or _glob_hit(name, clusters)):
        return False
    labels = _dig(app, "metadata", "labels")
    labels = labels if isinstance(labels, Mapping) else {}
    return all(_label_holds(labels, requirement) for requirement in match.labels)


def deciding_route(event: EventSpec, routes: tuple[Route, ...], app: Mapping[str, Any]) -> Route | None:
    """The first route that decides this event for this app (Python's reading of `plan_deliveries`)."""
    for route in routes:
        if not route.matches:
            return route
        if any(match.applies_to(event) and match_holds(match, app) for match in route.matches):
            return route
    return None
