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
from argobridge.core.entityref import parse_entity_ref
from argobridge.core.probe import LEGACY_NOTIFICATIONS_PATH, ProbeResult, probe_condition
from argobridge.core.spec import SpecError, parse_bridge_spec
from argobridge.core.token import token_problem
from argobridge.kube import bridges, secrets
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


def send_test(namespace: str, name: str, entity_ref: str | None) -> SendOutcome:
    """Send the test notification for one bridge; `entity_ref` None means broadcast."""
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


def send_test_command(namespace: str, name: str, entity_ref: str | None) -> int:
    outcome = send_test(namespace, name, entity_ref)
    for line in outcome.lines:
        print(line)
    return 0 if outcome.ok else 1
