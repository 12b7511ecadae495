"""Render the Argo CD notifications configuration that a `BackstageBridge` stands for.

Pure: the spec and what was detected go in, the exact ConfigMap keys ArgoBridge owns come out. One
malformed key silences every notification of the Argo CD instance, so every value is produced by a YAML
serialiser and every Go template from one reviewed file, never by string pasting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
import yaml

from argobridge.core.backstage_limits import (
    DIRECT_DESCRIPTION_JSON_BYTES,
    DIRECT_LINK_JSON_BYTES,
    DIRECT_RECIPIENTS_JSON_BYTES,
    JSON_BYTES_PER_CHAR,
    TRUNCATION_MARKER,
)
from argobridge.core.catalogmatch import EntityRefFrom
from argobridge.core.deliveryplan import DeliveryPlan
from argobridge.core.events import CATALOG, ENTITY_REF_ANNOTATION, HAS_ENTITY_REF, EventDefinition
from argobridge.core.exprsize import ENGINE_MAX_NODES, expr_node_count
from argobridge.core.labels import label_key_problem, label_value_problem
from argobridge.core.literals import quoted
from argobridge.core.placeholders import Placeholder, go_text_expression, parse_placeholders
from argobridge.core.routeplan import Delivery, plan_deliveries
from argobridge.core.routes import Route
from argobridge.core.spec import (
    DEFAULT_SEVERITIES,
    DEFAULT_TOPICS,
    BridgeSpec,
    EventName,
    EventSpec,
    SpecError,
    SubscriptionMode,
)

CONTEXT_KEY = "context"
SUBSCRIPTIONS_KEY = "subscriptions"
ARGOCD_URL_CONTEXT = "argocdUrl"
# A ConfigMap holds at most 1 MiB, shared with every other key of argocd-notifications-cm; ArgoBridge
# keeps its own share to half of it, and refuses a spec that needs more rather than fail at apply.
MAX_OWNED_BYTES = 512 * 1024
# Argo CD's engine (expr-lang) refuses a condition of more than 10,000 nodes; the count errs high, and a
# margin keeps us clear of a future parser that counts a node more here and there.
MAX_CONDITION_NODES = ENGINE_MAX_NODES - 500


@dataclass(frozen=True)
class RenderedConfig:
    """The keys ArgoBridge owns in `argocd-notifications-cm`, and its entries in the shared keys.

    `service` and `triggers` name what is ours, so our entry in the shared `subscriptions` list can be
    told from users' entries without remembering anything.
    """

    owned: dict[str, str]
    context: dict[str, str]
    subscriptions: tuple[dict[str, Any], ...] = ()
    service: str = "backstage"
    triggers: frozenset[str] = frozenset(definition.trigger for definition in CATALOG.values())


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings as `|` blocks so a reviewer reads templates as they are."""


# Strings that PyYAML writes plain but Go's yaml.v2 (the engine's reader) takes for something else:
# y, n, on, off are booleans there and 1e3, 0o17, 1_000 numbers. A service named `y` made the engine
# refuse the whole configuration ("cannot unmarshal bool into ... recipients"). Quoting more than needed
# is harmless (the same string for every reader), so anything that starts like a number is quoted too.
_AMBIGUOUS_PLAIN = re.compile(
    r"(?i:y|n|yes|no|on|off|true|false|null|~|[-+]?\.inf|\.nan)|[-+]?\.?[0-9][0-9A-Za-z_.:+-]*"
)


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    if not data or _AMBIGUOUS_PLAIN.fullmatch(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_LiteralDumper.add_representer(str, _str_presenter)


def to_yaml(value: Any) -> str:
    """Serialise one ConfigMap value; key order is kept so the output reads like the docs."""
    return yaml.dump(value, Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True, width=1000)


def go_string(value: str) -> str:
    """A Go template string literal (see `argobridge.core.literals`)."""
    return quoted(value)


@cache
def _jinja() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("argobridge", "templates"),
        variable_start_string="[[",
        variable_end_string="]]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="{#",
        comment_end_string="#}",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["gostr"] = go_string
    return env


def default_delivery(definition: EventDefinition, event: EventSpec) -> Delivery:
    """The owners' notification when no route decides otherwise."""
    return plan_deliveries(event, (), definition.template)[-1]


def event_texts(definition: EventDefinition, event: EventSpec, route: Route | None) -> tuple[str, str]:
    """Title and description in placeholder syntax: the route's, else the event's, else the catalog's."""
    title = (route.title if route else None) or event.title or definition.title
    description = (route.description if route else None) or event.description or definition.description
    return title, description


def render_webhook_body(
    definition: EventDefinition,
    event: EventSpec,
    delivery: Delivery | None = None,
    route: Route | None = None,
    relayed: bool = False,
) -> str:
    """The Go template that builds the JSON body Backstage receives for one event (and route).

    In Relay mode the body also carries `argobridge`: the event, the route and the app, which the relay's
    noise control and catalog recipients read (and strip: Backstage never sees them). Direct bodies stay as
    Backstage takes them."""
    delivery = delivery or default_delivery(definition, event)
    title, description = event_texts(definition, event, route)
    # Canonical refs are ASCII: each costs its length, its quotes and a comma in the body's JSON.
    description_bytes = DIRECT_DESCRIPTION_JSON_BYTES - len(TRUNCATION_MARKER.encode())
    recipients_bytes = sum(len(ref) + 3 for ref in delivery.recipients)
    if recipients_bytes > DIRECT_RECIPIENTS_JSON_BYTES:
        raise SpecError(
            f"spec.routes: route {delivery.route} names {len(delivery.recipients)} recipients, {recipients_bytes}"
            f" bytes of the body; Backstage accepts a body of 100 kB, of which recipients may take"
            f" {DIRECT_RECIPIENTS_JSON_BYTES}: name groups rather than each of their members"
        )
    return (
        _jinja()
        .get_template("webhook-body.gotmpl.j2")
        .render(
            entity_ref_annotation=ENTITY_REF_ANNOTATION,
            event=definition.name.value,
            title=go_text_expression(title),
            description=go_text_expression(description),
            severity=delivery.severity.value,
            topic=delivery.topic,
            icon=delivery.icon,
            times=definition.times,
            message=definition.message.value,
            broadcast=delivery.broadcast,
            recipients=delivery.recipients,
            recipients_bytes=recipients_bytes,
            max_recipients_bytes=DIRECT_RECIPIENTS_JSON_BYTES,
            # The cut text's share leaves room for the marker; any `safe` bytes fit even at 6 bytes each.
            description_bytes=description_bytes,
            description_safe_bytes=(description_bytes - 2) // JSON_BYTES_PER_CHAR,
            link_bytes=DIRECT_LINK_JSON_BYTES,
            relayed=relayed,
            route=delivery.route,
            uses={
                part.name
                for text in (title, description)
                for part in parse_placeholders(text)
                if isinstance(part, Placeholder)
            },
        )
    )


def render_service(spec: BridgeSpec, plan: DeliveryPlan | None = None) -> str:
    """The webhook service: Backstage's create endpoint (or the relay's ingress for this bridge, in Relay
    mode), JSON, and the token read from Argo CD's Secret: the relay checks the same token Backstage would."""
    relayed = plan is not None and plan.relayed
    service: dict[str, Any] = {
        "url": plan.service_url if plan is not None else spec.webhook_url,
        "headers": [
            {"name": "Content-Type", "value": "application/json"},
            {"name": "Authorization", "value": f"Bearer ${spec.token_key}"},
        ],
    }
    # insecureSkipVerify is about Backstage's certificate: in Relay mode the relay applies it, and Argo CD
    # keeps verifying whatever it talks to.
    if spec.insecure_skip_verify and not relayed:
        service["insecureSkipVerify"] = True
    return to_yaml(service)


def service_url_of(service_text: str) -> str | None:
    """The `url` of a rendered webhook service (what Argo CD posts to), None when unreadable."""
    try:
        loaded = yaml.safe_load(service_text) if service_text.strip() else None
    except yaml.YAMLError:
        return None
    url = loaded.get("url") if isinstance(loaded, dict) else None
    return url if isinstance(url, str) else None


def render_template(
    spec: BridgeSpec,
    definition: EventDefinition,
    event: EventSpec,
    delivery: Delivery | None = None,
    route: Route | None = None,
    relayed: bool = False,
) -> str:
    """A notification template whose webhook block is keyed by our service name (else the engine GETs)."""
    body = render_webhook_body(definition, event, delivery, route, relayed)
    return to_yaml({"webhook": {spec.service_name: {"method": "POST", "body": body}}})


def render_trigger(
    definition: EventDefinition,
    window_minutes: int,
    deliveries: tuple[Delivery, ...],
    owners_from_catalog: bool = False,
) -> str:
    """The event's trigger: one condition per delivery, each guarded by recency so subscribing is quiet.

    Deliveries to the owners are also guarded by the entity ref; a route with its own recipients
    reaches them even for an app that names no owner. With `owners_from_catalog` (Relay mode, entityRefFrom
    not Annotation) that guard goes: the relay finds the owners in the catalog, or counts the app unresolved.
    """
    conditions: list[dict[str, Any]] = []
    for delivery in deliveries:
        parts = [HAS_ENTITY_REF] if delivery.needs_owner and not owners_from_catalog else []
        parts += [definition.condition, definition.recency(window_minutes)]
        if delivery.when != "true":
            parts.append(delivery.when)
        route = f" (route {delivery.route})" if delivery.route else ""
        when = " and ".join(parts)
        nodes = expr_node_count(when)
        if nodes > MAX_CONDITION_NODES:
            raise SpecError(
                f"spec.routes: the condition of event {definition.name.value}{route} would have {nodes} expression"
                f" nodes; Argo CD's engine refuses the whole configuration beyond {ENGINE_MAX_NODES}. Each route's"
                " condition also carries the negation of every earlier route's: use fewer match alternatives,"
                " names, label values or routes for this event (match.events), or put broad routes last"
            )
        condition: dict[str, Any] = {
            "description": f"Backstage: application {definition.label}{route}",
            "when": when,
            "send": [delivery.template],
        }
        if definition.once_per:
            condition["oncePer"] = definition.once_per
        conditions.append(condition)
    return to_yaml(conditions)


def rendered_for_removal(spec: BridgeSpec | None) -> RenderedConfig | None:
    """What the bridge renders, for taking its entries out, or None when its spec does not render (routes
    too big, a condition over the engine's limit): removal then works from the records alone (field managers
    and markers), so a bridge that could never be applied can still be deleted, never a stuck finalizer."""
    if spec is None:
        return None
    try:
        return render_notifications_config(spec, None)
    except SpecError:
        return None


def render_notifications_config(
    spec: BridgeSpec, argocd_url: str | None, delivery_plan: DeliveryPlan | None = None
) -> RenderedConfig:
    """Every key ArgoBridge owns in the notifications ConfigMap, for this spec, Argo CD URL and delivery
    plan (None: Direct). Relay mode differs in the service, the relay's part of each body, the HealthRecovered
    signal (`rendered_events`) and, when the catalog may name owners, triggers without the ref guard."""
    owned: dict[str, str] = {f"service.webhook.{spec.service_name}": render_service(spec, delivery_plan)}
    from_catalog = owners_from_catalog(spec, delivery_plan)
    routes = {route.name: route for route in spec.routes}
    relayed = delivery_plan is not None and delivery_plan.relayed
    for event in rendered_events(spec, relayed):
        definition = CATALOG[event.event]
        deliveries = plan_deliveries(event, spec.routes, definition.template)
        for delivery in deliveries:
            route = routes[delivery.route] if delivery.route else None
            owned[f"template.{delivery.template}"] = render_template(spec, definition, event, delivery, route, relayed)
        owned[f"trigger.{definition.trigger}"] = render_trigger(
            definition, spec.event_window_minutes, deliveries, from_catalog
        )
    size = sum(len(key) + len(value.encode()) for key, value in owned.items())
    if size > MAX_OWNED_BYTES:
        raise SpecError(
            f"spec.routes: the configuration for {len(spec.events)} events and {len(spec.routes)} routes would take"
            f" {size // 1024} KiB of argocd-notifications-cm, more than the {MAX_OWNED_BYTES // 1024} KiB ArgoBridge"
            " allows itself (a ConfigMap holds 1 MiB); merge routes that share an action, or limit routes to fewer"
            " events with match.events"
        )
    context = {ARGOCD_URL_CONTEXT: argocd_url} if argocd_url else {}
    return RenderedConfig(
        owned=owned,
        context=context,
        subscriptions=render_subscriptions(spec, relayed),
        service=spec.service_name,
        triggers=frozenset(definition.trigger for definition in CATALOG.values()),
    )


def owners_from_catalog(spec: BridgeSpec, delivery_plan: DeliveryPlan | None) -> bool:
    """Whether the relay may find an app's owners in the catalog: Relay mode and entityRefFrom not Annotation."""
    return delivery_plan is not None and delivery_plan.relayed and spec.entity_ref_from is not EntityRefFrom.ANNOTATION


def rendered_events(spec: BridgeSpec, relayed: bool) -> tuple[EventSpec, ...]:
    """The events the engine watches: the enabled ones and, in Relay mode, HealthRecovered as a signal.

    Why the signal: a Degraded app that becomes Healthy without a new sync (a crash loop fixed, a node
    back) fires no other event, and its "degraded" notification would stay unresolved. The relay's noise
    control only resolves with it (spec.delivery.resolveRecovered); it becomes a notification of its own
    only when listed in spec.events. Direct mode has no relay to absorb it, so it is not rendered there.
    """
    enabled = {event.event for event in spec.events}
    if (
        not relayed
        or not spec.delivery.resolve_recovered
        or EventName.HEALTH_DEGRADED not in enabled
        or EventName.HEALTH_RECOVERED in enabled
    ):
        return spec.events
    signal = EventSpec(
        EventName.HEALTH_RECOVERED,
        DEFAULT_SEVERITIES[EventName.HEALTH_RECOVERED],
        DEFAULT_TOPICS[EventName.HEALTH_RECOVERED],
    )
    return (*spec.events, signal)


def render_subscriptions(spec: BridgeSpec, relayed: bool = False) -> tuple[dict[str, Any], ...]:
    """In Global mode, one entry subscribing every Application (or those the selector picks)."""
    if spec.subscription_mode is not SubscriptionMode.GLOBAL or not spec.events:
        return ()
    entry: dict[str, Any] = {
        "recipients": [spec.service_name],
        "triggers": [CATALOG[event.event].trigger for event in rendered_events(spec, relayed)],
    }
    if spec.subscription_selector:
        entry["selector"] = render_selector(spec.subscription_selector)
    return (entry,)


def render_selector(labels: tuple[tuple[str, str], ...]) -> str:
    """The `labels.Parse` string for matchLabels; refuses (again) what the engine would refuse or misread."""
    for key, value in labels:
        problem = label_key_problem(key) or label_value_problem(value)
        if problem:
            raise SpecError(f"spec.subscriptions.selector.matchLabels: {key!r}: {value!r} {problem}")
    return ",".join(f"{key}={value}" for key, value in labels)
