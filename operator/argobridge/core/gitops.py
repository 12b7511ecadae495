"""The OpenShift GitOps flavor, decided from what was observed: which flavor, which URL, what to tell the user.

On an install managed by the Argo CD operator (OpenShift GitOps is its product build) the operator rewrites
`argocd-notifications-cm` from the `NotificationsConfiguration` resource, so ArgoBridge writes there
instead. Everything here is pure: the edges read the `ArgoCD` resource, the Route and the CRD, and pass
plain data in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from argobridge.core.spec import Flavor

ARGOCD_GROUP = "argoproj.io"
ARGOCD_VERSION = "v1beta1"
ARGOCD_PLURAL = "argocds"
NOTIFICATIONS_CONFIGURATION_VERSION = "v1alpha1"
NOTIFICATIONS_CONFIGURATION_PLURAL = "notificationsconfigurations"


@dataclass(frozen=True)
class ArgoCDInstance:
    """The parts of an `ArgoCD` resource (argoproj.io/v1beta1) that ArgoBridge reads, never writes."""

    name: str
    notifications_enabled: bool
    server_host: str | None = None
    route_enabled: bool = False


def instance_from_resource(body: Mapping[str, Any]) -> ArgoCDInstance:
    """Read an `ArgoCD` resource; notifications count as enabled only when `enabled` is literally true,
    as the operator decides (an absent or empty `spec.notifications` is off)."""
    spec = body.get("spec") or {}
    notifications = spec.get("notifications") or {}
    server = spec.get("server") or {}
    route = server.get("route") or {}
    host = str(server.get("host") or "").strip()
    return ArgoCDInstance(
        name=str((body.get("metadata") or {}).get("name")),
        notifications_enabled=notifications.get("enabled") is True,
        server_host=host or None,
        route_enabled=route.get("enabled") is True,
    )


def detect_flavor(requested: Flavor, crd_present: bool, instances: Sequence[ArgoCDInstance]) -> Flavor:
    """Auto means OpenShift GitOps when the `NotificationsConfiguration` CRD exists and an `ArgoCD`
    resource manages the namespace; an explicit choice always wins."""
    if requested is not Flavor.AUTO:
        return requested
    return Flavor.OPENSHIFT_GITOPS if crd_present and instances else Flavor.ARGOCD


def managing_instance(instances: Sequence[ArgoCDInstance]) -> ArgoCDInstance | None:
    """The `ArgoCD` resource of the namespace (one per namespace in practice; the first by name if more)."""
    return min(instances, key=lambda item: item.name) if instances else None


def server_route_name(instance: ArgoCDInstance) -> str:
    """The operator names the server's Route (and Service) `<argocd-name>-server`."""
    return f"{instance.name}-server"


def url_from_route(route: Mapping[str, Any] | None) -> str | None:
    """The external URL a Route publishes: its host (set, or admitted by the router), https when it has TLS."""
    if not route:
        return None
    spec = route.get("spec") or {}
    host = str(spec.get("host") or "").strip()
    if not host:
        for ingress in (route.get("status") or {}).get("ingress") or []:
            host = str(ingress.get("host") or "").strip()
            if host:
                break
    if not host:
        return None
    scheme = "https" if spec.get("tls") else "http"
    path = str(spec.get("path") or "").rstrip("/")
    return f"{scheme}://{host}{path}"


def gitops_argocd_url(instance: ArgoCDInstance | None, route: Mapping[str, Any] | None) -> str | None:
    """The Argo CD URL this flavor publishes: the server Route, else the host set on the `ArgoCD` resource
    (the operator serves it over https). None lets the caller fall back to argocd-cm's `url`."""
    from_route = url_from_route(route)
    if from_route:
        return from_route
    if instance and instance.server_host:
        return f"https://{instance.server_host}"
    return None


def enable_notifications_command(namespace: str, instance: str) -> str:
    """The exact command that turns notifications on; ArgoBridge never edits the `ArgoCD` resource itself."""
    patch = json.dumps({"spec": {"notifications": {"enabled": True}}}, separators=(",", ":"))
    return f"kubectl patch {ARGOCD_PLURAL}.{ARGOCD_GROUP} {instance} -n {namespace} --type merge -p '{patch}'"


def notifications_disabled_message(namespace: str, instance: str) -> str:
    return (
        f"Notifications are not enabled on ArgoCD {namespace}/{instance}, so the Argo CD operator runs no"
        " notifications controller and deletes argocd-notifications-secret and the NotificationsConfiguration."
        f" Enable them with: {enable_notifications_command(namespace, instance)}"
    )


def context_value_problem(key: str, value: str) -> str | None:
    """Why `value` cannot go into the resource's `context`, or None when it can.

    The operator writes each context entry as an unquoted `key: value` line, so a value must read back as
    the same plain string from exactly that line (no `: `, ` #`, leading quote or indicator, no newline).
    """
    line = f"{key}: {value}\n"
    try:
        parsed = yaml.safe_load(line)
    except yaml.YAMLError:
        parsed = None
    if parsed == {key: value}:
        return None
    return (
        f"context entry {key}={value!r} would not survive the Argo CD operator, which writes context values"
        " unquoted; use a value that is a plain YAML string (no ': ', ' #', leading quote, brace or bracket)"
    )
