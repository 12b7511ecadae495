"""`argobridge send-test`: one real, clearly labelled notification with the bridge's own token.

It goes through the same URL, token and TLS settings Argo CD uses, so a success here means the
Backstage side works; it prints who received it, and explains `200 []` (nobody resolved).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from argobridge.backstage.client import UNSENDABLE
from argobridge.core.deliveryplan import relay_ingress_url
from argobridge.core.entityref import parse_entity_ref
from argobridge.core.probe import LEGACY_NOTIFICATIONS_PATH, ProbeResult, probe_condition
from argobridge.core.render import service_url_of
from argobridge.core.spec import NOTIFICATIONS_CONFIGMAP, SpecError, parse_bridge_spec
from argobridge.core.token import token_problem
from argobridge.kube import bridges, configmaps, secrets
from argobridge.kube.errors import TRANSPORT_ERRORS, KubeError, transport_message
from argobridge.steps.probing import CaBundleProblem, verify_for

TEST_TOPIC = "argobridge.test"


@dataclass
class SendOutcome:
    ok: bool
    lines: list[str] = field(default_factory=list)


def labelled_payload(namespace: str, bridge: str, entity_ref: str | None) -> dict[str, Any]:
    """The body: an entity or a broadcast, titled and described so nobody mistakes it for a real event."""
    recipients: dict[str, Any] = (
        {"type": "broadcast"} if entity_ref is None else {"type": "entity", "entityRef": entity_ref}
    )
    sent = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return {
        "recipients": recipients,
        "payload": {
            "title": "ArgoBridge test notification",
            "description": (
                f"Sent by `argobridge send-test` for BackstageBridge {namespace}/{bridge} at {sent}, with the"
                " token Argo CD uses, to check delivery. No action needed."
            ),
            "severity": "low",
            "topic": TEST_TOPIC,
            "scope": f"argobridge-test/{namespace}/{bridge}",
        },
    }


def explain_answer(status: int, body: Any, entity_ref: str | None, url: str, where: tuple[str, str]) -> SendOutcome:
    """Turn Backstage's answer into what a person should read (pure, for tests)."""
    if status == 200 and isinstance(body, list):
        if not body:
            return SendOutcome(
                False,
                [
                    "Backstage accepted the notification but no recipient resolved (200 []): nobody received it.",
                    f"Likely cause: {entity_ref} names no entity in Backstage's catalog (refs must be canonical"
                    " lowercase kind:namespace/name), or the entity has no owner, or its owning group has no members.",
                ],
            )
        users = sorted({str(item.get("user")) for item in body if isinstance(item, dict) and item.get("user")})
        if entity_ref is None:
            return SendOutcome(True, ["Broadcast delivered: every Backstage user sees it."])
        return SendOutcome(True, [f"Delivered to {len(users)} recipient(s): {', '.join(users)}"])
    if status == 400:
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        return SendOutcome(False, [f"Backstage refused the notification (400): {message or body}"])
    condition = probe_condition(ProbeResult(status=status), url, *where)
    return SendOutcome(False, [condition.message])


def explain_relay_answer(status: int, body: Any, url: str) -> SendOutcome:
    """The relay's answer to a test notification, as a person should read it (pure, for tests).

    The relay answers before Backstage sees anything, so success here proves Argo CD's half of the path
    (URL, token, the bridge's entry); Backstage's half shows in status.delivery a few seconds later.
    """
    if status == 202:
        return SendOutcome(
            True,
            [
                f"The relay at {url} stored the test notification (202) and delivers it to Backstage.",
                "Its result shows within seconds in `kubectl get bsb` (PENDING) and status.delivery"
                " (delivered, noRecipients, lastError); `argobridge send-test` without --via-relay shows"
                " who receives it.",
            ],
        )
    reason = body.get("error") if isinstance(body, dict) else None
    hints = {
        401: "the relay does not accept this bridge's token: the operator writes the bridge's entry into the"
        " relay's config Secret; check the operator is running with the relay (status.delivery.mode Relay)",
        404: "the relay has no entry for this bridge: is status.delivery.mode Relay, and does the operator"
        " have ARGOBRIDGE_RELAY_CONFIG_SECRET (the chart sets it)?",
        413: "the body is over Backstage's 100 kB limit",
        503: "the relay cannot store notifications (its volume may be full or read-only); see its log",
    }
    return SendOutcome(False, [f"The relay refused the test notification ({status}): {hints.get(status, reason)}"])


def relay_target(namespace: str, name: str, spec_service: str, relay_url: str | None) -> str | None:
    """Where Argo CD posts this bridge's notifications in Relay mode: `relay_url` (e.g. a port-forward)
    with the bridge's ingress path, else the URL in Argo CD's own service (the ConfigMap flavor)."""
    if relay_url:
        return relay_ingress_url(relay_url, namespace, name)
    data = configmaps.read_config_map(namespace, NOTIFICATIONS_CONFIGMAP).data or {}
    return service_url_of(data.get(f"service.webhook.{spec_service}", ""))


def send_test(
    namespace: str, name: str, entity_ref: str | None, via_relay: bool = False, relay_url: str | None = None
) -> SendOutcome:
    """Send the test notification for one bridge; `entity_ref` None means broadcast; `via_relay` sends it
    the way Argo CD does in Relay mode, to the relay, instead of to Backstage."""
    try:
        body = bridges.get_bridge(namespace, name)
        if body is None:
            return SendOutcome(False, [f"BackstageBridge {namespace}/{name} not found; check --bridge and -n"])
        spec = parse_bridge_spec(body.get("spec") or {}, namespace)
        conditions = (body.get("status") or {}).get("conditions") or []
        if any(c.get("reason") == "TokenAcceptedLegacyPath" for c in conditions):
            spec = replace(spec, notifications_path=LEGACY_NOTIFICATIONS_PATH)
        token = secrets.read_secret_key(namespace, spec.secret_name, spec.token_key)
        verify = verify_for(namespace, spec)
    except (SpecError, KubeError, CaBundleProblem) as error:
        return SendOutcome(False, [str(error)])
    except TRANSPORT_ERRORS as error:
        return SendOutcome(False, [transport_message(error)])
    if token is None:
        return SendOutcome(
            False,
            [f"No token in key {spec.token_key} of Secret {spec.secret_name}; is the ArgoBridge operator running?"],
        )
    if problem := token_problem(token):
        return SendOutcome(
            False, [f"The token in key {spec.token_key} of Secret {spec.secret_name} cannot work: {problem}"]
        )
    notes: list[str] = []
    if entity_ref is not None:
        parsed = parse_entity_ref(entity_ref)
        if parsed.problem:
            return SendOutcome(False, [f"--entity-ref {entity_ref}: {parsed.problem}"])
        if parsed.canonical and parsed.canonical != entity_ref:
            notes.append(f"Sending to {parsed.canonical} (the canonical form of {entity_ref}).")
            entity_ref = parsed.canonical
    url = spec.webhook_url
    if via_relay:
        mode = ((body.get("status") or {}).get("delivery") or {}).get("mode")
        if mode != "Relay" and not relay_url:
            return SendOutcome(
                False,
                [
                    f"BackstageBridge {namespace}/{name} delivers {mode or 'Direct'}: there is no relay on its path;"
                    " drop --via-relay, or pass --relay-url to test a relay anyway"
                ],
            )
        try:
            target = relay_target(namespace, name, spec.service_name, relay_url)
        except (KubeError, *TRANSPORT_ERRORS) as error:
            return SendOutcome(False, [f"Cannot read Argo CD's service for this bridge: {type(error).__name__}"])
        if not target or "/v1/bridges/" not in target:
            return SendOutcome(False, ["Argo CD's service does not point at a relay; pass --relay-url"])
        try:
            response = httpx.post(
                target,
                json=labelled_payload(namespace, name, entity_ref),
                headers={"Authorization": f"Bearer {token}"},
                timeout=15,
            )
        except httpx.HTTPError as error:
            return SendOutcome(
                False,
                [
                    f"Could not reach the relay at {target}: {type(error).__name__}. From outside the cluster, use"
                    " `kubectl port-forward -n <operator namespace> svc/argobridge-relay 8090` and"
                    " --relay-url http://127.0.0.1:8090"
                ],
            )
        try:
            answer_body: Any = response.json()
        except ValueError:
            answer_body = None
        outcome = explain_relay_answer(response.status_code, answer_body, target)
        outcome.lines[:0] = notes
        return outcome
    try:
        response = httpx.post(
            url,
            json=labelled_payload(namespace, name, entity_ref),
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
            verify=verify,
        )
    except httpx.HTTPError as error:
        return SendOutcome(False, [f"Could not reach {url}: {type(error).__name__} {str(error)[:200]}"])
    except UNSENDABLE as error:  # its text may quote the token: the type only
        return SendOutcome(
            False, [f"No request to {url} could be made ({type(error).__name__}); check spec.backstage.url"]
        )
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text[:300]
    outcome = explain_answer(response.status_code, answer, entity_ref, url, (spec.secret_name, spec.token_key))
    outcome.lines[:0] = notes
    return outcome


def send_test_command(
    namespace: str, name: str, entity_ref: str | None, via_relay: bool = False, relay_url: str | None = None
) -> int:
    outcome = send_test(namespace, name, entity_ref, via_relay, relay_url)
    for line in outcome.lines:
        print(line)
    return 0 if outcome.ok else 1
