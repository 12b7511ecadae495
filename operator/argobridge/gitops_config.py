"""The OpenShift GitOps flavor of a reconcile: detect it, then write through `NotificationsConfiguration`.

On an install managed by the Argo CD operator, that operator rebuilds `argocd-notifications-cm` from the
`NotificationsConfiguration` resource, so ArgoBridge never writes the ConfigMap there: it applies its own
entries to the resource and lets the operator do the rest. It also deletes `argocd-notifications-secret`
whenever notifications are switched off, so a copy of the token is kept in a Secret ArgoBridge owns and
put back when they are switched on again (Backstage holds the same token; a new one would break it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from argobridge.core.conditions import CONFIG_APPLIED, TOKEN_READY, Condition
from argobridge.core.gitops import (
    ArgoCDInstance,
    detect_flavor,
    gitops_argocd_url,
    managing_instance,
    notifications_disabled_message,
    server_route_name,
)
from argobridge.core.render import render_notifications_config
from argobridge.core.resourceplan import flatten, plan_resource, plan_resource_removal
from argobridge.core.spec import DEFAULT_SECRET_NAME, NOTIFICATIONS_CONFIGMAP, BridgeSpec, Flavor
from argobridge.core.status import Notice, ReconcileReport, config_hash
from argobridge.core.token import token_problem
from argobridge.kube import argocd, gitops, secrets


@dataclass(frozen=True)
class FlavorFacts:
    """What detection saw: the flavor in effect and, for OpenShift GitOps, the managing `ArgoCD` resource."""

    flavor: Flavor
    crd_present: bool = False
    instance: ArgoCDInstance | None = None


def observe_flavor(namespace: str, requested: Flavor) -> FlavorFacts:
    """Read only what the decision needs: nothing at all for an explicit plain Argo CD."""
    if requested is Flavor.ARGOCD:
        return FlavorFacts(Flavor.ARGOCD)
    crd_present = gitops.notifications_configuration_served(namespace)
    instances = gitops.list_argocd_instances(namespace) if crd_present else []
    flavor = detect_flavor(requested, crd_present, instances)
    return FlavorFacts(flavor, crd_present, managing_instance(instances))


def blocked(namespace: str, spec: BridgeSpec, facts: FlavorFacts) -> list[Condition]:
    """Conditions that stop this flavor before any write (empty when it can go ahead)."""
    if not facts.crd_present:
        message = (
            "spec.argocd.flavor is OpenShiftGitOps but this cluster has no NotificationsConfiguration CRD"
            " (argoproj.io); install OpenShift GitOps or the Argo CD operator, or set spec.argocd.flavor to Auto"
        )
        return [Condition(CONFIG_APPLIED, False, "FlavorUnavailable", message)]
    if facts.instance and not facts.instance.notifications_enabled:
        message = notifications_disabled_message(namespace, facts.instance.name)
        where = f"Secret {backup_secret_name(spec)}"
        return [
            Condition(CONFIG_APPLIED, False, "NotificationsDisabled", message),
            Condition(
                TOKEN_READY,
                False,
                "NotificationsDisabled",
                f"Notifications are disabled; the token is kept in {where} and restored when they are enabled",
            ),
        ]
    return []


# ArgoBridge's own copy of the token, which the Argo CD operator never deletes.
BACKUP_SECRET_NAME = f"{DEFAULT_SECRET_NAME}-argobridge"


def backup_secret_name(spec: BridgeSpec) -> str:
    """ArgoBridge's own copy of the token (one name: the token always lives in Argo CD's one Secret)."""
    return BACKUP_SECRET_NAME


def restore_token(namespace: str, spec: BridgeSpec, report: ReconcileReport) -> str | None:
    """Put the kept token back into Argo CD's Secret after the operator deleted it; None if none is kept."""
    kept = secrets.read_secret_key(namespace, backup_secret_name(spec), spec.token_key)
    if kept is None or token_problem(kept):
        return None
    secrets.apply_secret_key(namespace, spec.secret_name, spec.token_key, kept)
    where = f"key {spec.token_key} of Secret {spec.secret_name}"
    message = f"Restored the Backstage token in {where} from Secret {backup_secret_name(spec)}"
    report.notices.append(Notice("Normal", "TokenRestored", message))
    report.conditions.append(Condition(TOKEN_READY, True, "Restored", message))
    return kept


def keep_token(namespace: str, spec: BridgeSpec, token: str) -> None:
    """Keep ArgoBridge's copy equal to the token in use; writes only when it differs."""
    if secrets.read_secret_key(namespace, backup_secret_name(spec), spec.token_key) != token:
        # ArgoBridge's own Secret: the one Secret the operator may create.
        secrets.apply_secret_key(namespace, backup_secret_name(spec), spec.token_key, token, may_create=True)


def resolve_argocd_url(namespace: str, spec: BridgeSpec, facts: FlavorFacts) -> str | None:
    """spec.argocd.url, else the server Route or the host on the `ArgoCD` resource, else argocd-cm's `url`."""
    if spec.argocd_url:
        return spec.argocd_url
    if facts.instance:
        route = gitops.read_route(namespace, server_route_name(facts.instance))
        url = gitops_argocd_url(facts.instance, route)
        if url:
            return url
    return argocd.read_argocd_url(namespace)


def apply_config(
    namespace: str, spec: BridgeSpec, facts: FlavorFacts, status: Mapping[str, object], report: ReconcileReport
) -> dict[str, str] | None:
    """Apply our entries to the resource; the ConfigMap data the operator will build, or None when waiting."""
    name = spec.notifications_configuration
    report.notifications_configuration = name
    report.config_map = NOTIFICATIONS_CONFIGMAP
    observed = gitops.read_notifications_configuration(namespace, name)
    if observed.spec is None:
        message = (
            f"NotificationsConfiguration {namespace}/{name} does not exist yet; the Argo CD operator creates"
            " it when notifications are enabled on the ArgoCD resource (or set spec.argocd.notificationsConfiguration"
            " to the one in use)"
        )
        report.conditions.append(Condition(CONFIG_APPLIED, False, "WaitingForNotificationsConfiguration", message))
        return None
    argocd_url = resolve_argocd_url(namespace, spec, facts)
    rendered = render_notifications_config(spec, argocd_url)
    plan = plan_resource(observed.spec, observed.managed, rendered)
    fingerprint = config_hash({f"{section}/{key}": value for (section, key), value in plan.entries.items()})
    report.argocd_url = argocd_url
    report.owned_keys = len(rendered.owned)
    what = f"NotificationsConfiguration {name}"
    if plan.needs_write:
        gitops.apply_notifications_configuration(namespace, name, plan.spec)
        summary = ", ".join(
            f"{label} {', '.join(keys)}"
            for label, keys in (("added", plan.added), ("changed", plan.changed), ("removed", plan.removed))
            if keys
        )
        report.drift_repaired = status.get("configHash") == fingerprint
        if report.drift_repaired:
            report.notices.append(
                Notice("Warning", "DriftRepaired", f"Restored entries of {what} edited outside ArgoBridge: {summary}")
            )
        else:
            report.notices.append(Notice("Normal", "ConfigApplied", f"Updated {what}: {summary}"))
    report.config_hash = fingerprint
    link_note = "" if argocd_url else "; no Argo CD URL is known, so notifications carry no link"
    report.conditions.append(
        Condition(
            CONFIG_APPLIED,
            True,
            "Applied",
            f"{len(rendered.owned)} keys in {what} are up to date; the Argo CD operator copies them into"
            f" {NOTIFICATIONS_CONFIGMAP}{link_note}",
        )
    )
    final = {section: dict(values) for section, values in observed.spec.items() if isinstance(values, dict)}
    for section, key in observed.managed - set(plan.entries):
        final.get(section, {}).pop(key, None)
    for (section, key), value in plan.entries.items():
        final.setdefault(section, {})[key] = value
    return flatten(final)


def remove_config(namespace: str, spec: BridgeSpec) -> list[Notice]:
    """Take our entries out of the resource (users' entries and subscriptions stay)."""
    name = spec.notifications_configuration
    observed = gitops.read_notifications_configuration(namespace, name)
    if observed.spec is None:
        return []
    plan = plan_resource_removal(observed.spec, observed.managed, render_notifications_config(spec, None))
    if not plan.needs_write:
        return []
    gitops.apply_notifications_configuration(namespace, name, plan.spec)
    return [
        Notice("Normal", "ConfigRemoved", f"Removed {len(plan.removed)} entries from NotificationsConfiguration {name}")
    ]
