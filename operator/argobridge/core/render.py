"""Render the Argo CD notifications configuration that a `BackstageBridge` stands for.

Pure: the spec and what was detected go in, the exact ConfigMap keys ArgoBridge owns come out. One
malformed key silences every notification of the Argo CD instance, so every value is produced by a YAML
serialiser and every Go template from one reviewed file, never by string pasting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
import yaml

from argobridge.core.events import CATALOG, ENTITY_REF_ANNOTATION, HAS_ENTITY_REF, EventDefinition
from argobridge.core.spec import BridgeSpec, EventSpec, SubscriptionMode

CONTEXT_KEY = "context"
SUBSCRIPTIONS_KEY = "subscriptions"
ARGOCD_URL_CONTEXT = "argocdUrl"


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


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_LiteralDumper.add_representer(str, _str_presenter)


def to_yaml(value: Any) -> str:
    """Serialise one ConfigMap value; key order is kept so the output reads like the docs."""
    return yaml.dump(value, Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True, width=1000)


def go_string(value: str) -> str:
    """A Go template string literal: JSON's escaping is a subset of Go's, ASCII-only to be safe."""
    return json.dumps(value, ensure_ascii=True)


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
        autoescape=False,
    )
    env.filters["gostr"] = go_string
    return env


def render_webhook_body(definition: EventDefinition, event: EventSpec) -> str:
    """The Go template that builds the JSON body Backstage receives for one event."""
    return (
        _jinja()
        .get_template("webhook-body.gotmpl.j2")
        .render(
            entity_ref_annotation=ENTITY_REF_ANNOTATION,
            event=definition.name.value,
            label=definition.label,
            description=definition.description,
            severity=event.severity.value,
            topic=event.topic,
        )
    )


def render_service(spec: BridgeSpec) -> str:
    """The webhook service: Backstage's create endpoint, JSON, and the token read from Argo CD's Secret."""
    service: dict[str, Any] = {
        "url": spec.webhook_url,
        "headers": [
            {"name": "Content-Type", "value": "application/json"},
            {"name": "Authorization", "value": f"Bearer ${spec.token_key}"},
        ],
    }
    if spec.insecure_skip_verify:
        service["insecureSkipVerify"] = True
    return to_yaml(service)


def render_template(spec: BridgeSpec, definition: EventDefinition, event: EventSpec) -> str:
    """A notification template whose webhook block is keyed by our service name (else the engine GETs)."""
    body = render_webhook_body(definition, event)
    return to_yaml({"webhook": {spec.service_name: {"method": "POST", "body": body}}})


def render_trigger(definition: EventDefinition, window_minutes: int) -> str:
    """A trigger guarded by the entity ref, and by recency so that subscribing old apps sends nothing."""
    condition: dict[str, Any] = {
        "description": f"Backstage: application {definition.label}",
        "when": f"{HAS_ENTITY_REF} and {definition.condition} and {definition.recency(window_minutes)}",
        "send": [definition.template],
    }
    if definition.once_per:
        condition["oncePer"] = definition.once_per
    return to_yaml([condition])


def render_notifications_config(spec: BridgeSpec, argocd_url: str | None) -> RenderedConfig:
    """Every key ArgoBridge owns in the notifications ConfigMap, for this spec and Argo CD URL."""
    owned: dict[str, str] = {f"service.webhook.{spec.service_name}": render_service(spec)}
    for event in spec.events:
        definition = CATALOG[event.event]
        owned[f"template.{definition.template}"] = render_template(spec, definition, event)
        owned[f"trigger.{definition.trigger}"] = render_trigger(definition, spec.event_window_minutes)
    context = {ARGOCD_URL_CONTEXT: argocd_url} if argocd_url else {}
    return RenderedConfig(
        owned=owned,
        context=context,
        subscriptions=render_subscriptions(spec),
        service=spec.service_name,
        triggers=frozenset(definition.trigger for definition in CATALOG.values()),
    )


def render_subscriptions(spec: BridgeSpec) -> tuple[dict[str, Any], ...]:
    """In Global mode, one entry subscribing every Application (or those the selector picks)."""
    if spec.subscription_mode is not SubscriptionMode.GLOBAL or not spec.events:
        return ()
    entry: dict[str, Any] = {
        "recipients": [spec.service_name],
        "triggers": [CATALOG[event.event].trigger for event in spec.events],
    }
    if spec.subscription_selector:
        entry["selector"] = ",".join(f"{key}={value}" for key, value in spec.subscription_selector)
    return (entry,)
