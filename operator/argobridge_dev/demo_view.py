"""What `argobridge demo` prints, as pure functions of what it read (no cluster, no network, no clock).

Kept apart from the demo's steps so the wording and the table layout are tested without starting
anything: `kubectl get`'s columns come from the CRD's own printer columns, so the line printed here
is the one a user sees from `kubectl get bsb`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

_STEP = re.compile(r"\w+(?:\[[^\]]*\])?")
_FILTER = re.compile(r'^(?P<field>\w+)\[\?\(@\.(?P<key>\w+)=="(?P<value>[^"]*)"\)\]$')


def json_path(body: Mapping[str, Any], path: str) -> Any:
    """The value at a printer column's JSONPath: `.a.b` and `.a[?(@.k=="v")].b`, the forms our CRD uses."""
    value: Any = body
    for part in _STEP.findall(path):
        match = _FILTER.match(part)
        if match:
            items = value.get(match["field"]) if isinstance(value, Mapping) else None
            value = next(
                (
                    item
                    for item in items or []
                    if isinstance(item, Mapping) and item.get(match["key"]) == match["value"]
                ),
                None,
            )
        else:
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return None
    return value


def human_age(seconds: float) -> str:
    """An age as `kubectl get` writes it (41s, 5m12s, 3h4m, 2d)."""
    total = max(0, int(seconds))
    minutes, hours = total // 60, total // 3600
    if total < 120:
        return f"{total}s"
    if minutes < 10:
        return f"{minutes}m{total % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def printer_columns(crd: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The served version's additionalPrinterColumns that `kubectl get` shows without `-o wide`."""
    version = next(v for v in crd["spec"]["versions"] if v.get("served", True))
    return [dict(c) for c in version.get("additionalPrinterColumns") or [] if not c.get("priority")]


def _cell(column: Mapping[str, Any], body: Mapping[str, Any], now: datetime) -> str:
    value = json_path(body, column["jsonPath"])
    if value is None:
        return "<none>" if column.get("type") != "date" else "<unknown>"
    if column.get("type") == "date":
        created = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return human_age((now - created).total_seconds())
    return str(value)


def kubectl_table(columns: Sequence[Mapping[str, Any]], bodies: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """The table `kubectl get` prints for these objects: NAME, then each printer column, padded by 3."""
    header = ["NAME", *(str(c["name"]).upper() for c in columns)]
    rows = [[str(b["metadata"]["name"]), *(_cell(c, b, now) for c in columns)] for b in bodies]
    return _aligned([header, *rows])


def conditions_table(body: Mapping[str, Any]) -> str:
    """The bridge's conditions, one line each: type, status, reason, message."""
    conditions = (body.get("status") or {}).get("conditions") or []
    rows = [["CONDITION", "STATUS", "REASON", "MESSAGE"]]
    rows += [
        [str(c.get("type")), str(c.get("status")), str(c.get("reason")), str(c.get("message", ""))] for c in conditions
    ]
    return _aligned(rows)


def _aligned(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        ("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "   " + row[-1]).rstrip()
        for row in rows
    )


def notification_text(
    item: Mapping[str, Any], reader: str, received: Sequence[str], not_received: Sequence[str], why: str
) -> str:
    """The notification as `reader` got it from Backstage's API, field by field, values verbatim."""
    payload = item.get("payload") or {}
    description = str(payload.get("description") or "").replace("\n", "\n" + " " * 15)
    lines = [
        f"  title:       {payload.get('title')}",
        f"  description: {description}",
        f"  link:        {payload.get('link')}",
        f"  severity:    {payload.get('severity')}    topic: {payload.get('topic')}",
        f"  scope:       {payload.get('scope')}",
        f"  origin:      {item.get('origin')} (the subject of the token Argo CD sent)",
        f"  created:     {item.get('created')}",
        f"  received by: {', '.join(received) or 'nobody'}",
        f"               {why}",
    ]
    if not_received:
        lines.append(f"  not sent to: {', '.join(not_received)} (their own notifications were read too)")
    return f"=== The notification, as {reader} reads it (GET /api/notifications/notifications)\n" + "\n".join(lines)


def ownership_text(entity_ref: str, entity: Mapping[str, Any], members: Mapping[str, Sequence[str]]) -> str:
    """Why the recipients got it: the entity's owner and, for a group owner, its members, from the catalog."""
    owner = str((entity.get("spec") or {}).get("owner") or "")
    if not owner:
        return f"({entity_ref} has no owner in the catalog)"
    if owner.startswith("group:"):
        names = ", ".join(members.get(owner) or []) or "no members"
        return f"(the catalog: {entity_ref} is owned by {owner}, whose members are {names})"
    return f"(the catalog: {entity_ref} is owned by {owner})"


def what_happened(
    *,
    namespace: str,
    app: str,
    entity_ref: str,
    kubeconfig: str,
    argobridge: str,
    bridge_file: str,
    app_file: str,
    logs: Mapping[str, str],
    relay: bool = False,
) -> str:
    """The demo's closing words: the path the notification took, and what to try next while it runs."""
    sent_to = "ArgoBridge's relay, which stored it and delivered it to Backstage" if relay else "Backstage directly"
    steps = [
        "=== What just happened",
        "  1. A local control plane (etcd, kube-apiserver) started, with Argo CD's Application and AppProject CRDs.",
        f"  2. ArgoBridge read the BackstageBridge {namespace}/backstage (the sample, pointed at the local Backstage),",
        "     generated a token into argocd-notifications-secret, and wrote the webhook service, four templates and",
        "     four triggers into argocd-notifications-cm: only its own keys, the rest of Argo CD's config untouched.",
        "  3. A Backstage backend (notifications and catalog plugins, a small catalog) started with that token, and",
        f"     Argo CD's real notifications controller started on {namespace} (a local process; the Deployment",
        "     argocd-notifications-controller stands for it, as `argobridge doctor` looks for one).",
        f"  4. The Application {app} carries backstage.io/entity-ref: {entity_ref} and no subscription annotation",
        "     (subscriptions.mode Global: ArgoBridge subscribes every app in Argo CD's config, apps stay untouched).",
        f"     Its sync failed; the controller ran on-sync-failed-backstage and posted the rendered body to {sent_to};",
        f"     Backstage resolved {entity_ref} to its owner and delivered to the owner's members.",
        "     (No Argo CD application controller runs here: the demo wrote the failed status the way it does.)",
        "",
        "=== Try next, while this runs (another terminal)",
        f"  export KUBECONFIG={kubeconfig}",
        f"  kubectl get bsb -n {namespace}        # or: kubectl --kubeconfig {kubeconfig} get bsb -n {namespace}",
        f"  kubectl get cm argocd-notifications-cm -n {namespace} -o yaml",
        f"  {argobridge} preview --bridge {bridge_file} --app {app_file}",
        f"  {argobridge} doctor -n {namespace}",
        "  logs: the operator's are above; " + "; ".join(f"{name}: {path}" for name, path in logs.items()),
    ]
    return "\n" + "\n".join(steps)
