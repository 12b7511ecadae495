"""The OpenShift GitOps flavor of a reconcile: detect it, then write through `NotificationsConfiguration`.

On an install managed by the Argo CD operator, that operator rebuilds `argocd-notifications-cm` from the
`NotificationsConfiguration` resource, so ArgoBridge never writes the ConfigMap there: it applies its own
entries to the resource and lets the operator do the rest. It also deletes `argocd-notifications-secret`
whenever notifications are switched off, so a copy of the token is kept in a Secret ArgoBridge owns and
put back when they are switched on again (Backstage holds the same token; a new one would break it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from argobridge.core.conditions import CONFIG_APPLIED, TOKEN_READY, Condition
from argobridge.core.deliveryplan import DeliveryPlan
from argobridge.core.gitops import (
    ArgoCDInstance,
    detect_flavor,
    gitops_argocd_url,
    managing_instance,
    notifications_disabled_message,
    server_route_name,
)
from argobridge.core.ownership import (
    KeyConflict,
    Ownership,
    conflict_hint,
    describe_conflicts,
    field_manager,
    spec_entry,
)
from argobridge.core.render import render_notifications_config, rendered_for_removal
from argobridge.core.resourceplan import SECTIONS, ResourcePlan, flatten, plan_resource, plan_resource_removal
from argobridge.core.spec import DEFAULT_SECRET_NAME, NOTIFICATIONS_CONFIGMAP, BridgeSpec, Flavor
from argobridge.core.status import Notice, ReconcileReport, config_hash
from argobridge.core.token import token_problem
from argobridge.kube import argocd, gitops, secrets
from argobridge.kube.apply import APPLY_ATTEMPTS, StaleReadError, apply_planned
from argobridge.kube.errors import KubeError
from argobridge.steps import drift_repairs


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


def _ownership(namespace: str, name: str, status: Mapping[str, object], observed: gitops.ObservedResource) -> Ownership:
    record = status.get("ownership")
    keys = record.get("keys") if isinstance(record, Mapping) else None
    return Ownership.of(namespace, name, observed.owners, [str(key) for key in keys or []])


Writer = Callable[[gitops.ObservedResource, ResourcePlan, bool], None]


def _write(namespace: str, resource: str, manager: str) -> Writer:
    def write(observed: gitops.ObservedResource, plan: ResourcePlan, force: bool) -> None:
        gitops.apply_notifications_configuration(
            namespace, resource, plan.spec, manager, observed.resource_version, force
        )
        if plan.release_legacy:  # the legacy manager gives up every entry, after ours took them over
            gitops.apply_notifications_configuration(namespace, resource, None, force=False)

    return write


def _spec_entry(field: str) -> str | None:
    return spec_entry(field, SECTIONS)


def apply_config(
    namespace: str,
    spec: BridgeSpec,
    facts: FlavorFacts,
    status: Mapping[str, object],
    report: ReconcileReport,
    bridge: str = "backstage",
    delivery: DeliveryPlan | None = None,
) -> dict[str, str] | None:
    """Apply our entries to the resource; the ConfigMap data the operator will build, or None when waiting.

    As for the ConfigMap: this bridge's own field manager, the read's resourceVersion on every write, and
    an entry of the same name that someone else wrote is a KeyConflict with nothing written.
    """
    name = spec.notifications_configuration
    report.notifications_configuration = name
    report.config_map = NOTIFICATIONS_CONFIGMAP
    what = f"NotificationsConfiguration {name}"
    argocd_url = resolve_argocd_url(namespace, spec, facts)
    rendered = render_notifications_config(spec, argocd_url, delivery)
    manager = field_manager(namespace, bridge)

    def plan_for(observed: gitops.ObservedResource) -> ResourcePlan:
        if observed.spec is None:
            return ResourcePlan(spec={})
        return plan_resource(observed.spec, _ownership(namespace, bridge, status, observed), rendered)

    paced, write = [drift_repairs.Gate()], _write(namespace, name, manager)

    def paced_write(observed: gitops.ObservedResource, plan: ResourcePlan, force: bool) -> None:
        """Repairs of entries another writer changed are paced (core/repairs.py)."""
        if not force:
            fingerprint = config_hash({f"{section}/{key}": value for (section, key), value in plan.entries.items()})
            keys = [*plan.added, *plan.changed, *plan.removed] if status.get("configHash") == fingerprint else []
            paced[0] = drift_repairs.gate(namespace, bridge, "NotificationsConfiguration", name, keys, report)
        if paced[0].write:
            write(observed, plan, force)

    try:
        observed, plan, outcome = apply_planned(
            lambda: gitops.read_notifications_configuration(namespace, name),
            plan_for,
            paced_write,
            _spec_entry,
        )
    except StaleReadError:
        message = (
            f"{what} changed between every read and write ({APPLY_ATTEMPTS} attempts); ArgoBridge wrote nothing"
            " rather than overwrite those edits, and tries again at the next reconcile"
        )
        report.conditions.append(Condition(CONFIG_APPLIED, False, "ConcurrentEdits", message))
        return None
    if observed.spec is None:
        message = (
            f"NotificationsConfiguration {namespace}/{name} does not exist yet; the Argo CD operator creates"
            " it when notifications are enabled on the ArgoCD resource (or set spec.argocd.notificationsConfiguration"
            " to the one in use)"
        )
        report.conditions.append(Condition(CONFIG_APPLIED, False, "WaitingForNotificationsConfiguration", message))
        return None
    conflicts = plan.conflicts or tuple(
        KeyConflict(_spec_entry(item.field) or item.field, (repr(item.manager),), conflict_hint(item.field))
        for item in outcome.field_conflicts
    )
    if conflicts:
        message = describe_conflicts(conflicts, what)
        condition = Condition(CONFIG_APPLIED, False, "KeyConflict", message)
        report.conditions.append(condition)
        if _changed(status, condition):
            report.notices.append(Notice("Warning", "KeyConflict", message))
        return None
    fingerprint = config_hash({f"{section}/{key}": value for (section, key), value in plan.entries.items()})
    report.argocd_url = argocd_url
    report.owned_keys = len(rendered.owned)
    report.ownership = {"fieldManager": manager, "keys": list(plan.owned_keys)}
    drifted = status.get("configHash") == fingerprint
    if outcome.written and paced[0].write:
        summary = ", ".join(
            f"{label} {', '.join(keys)}"
            for label, keys in (("added", plan.added), ("changed", plan.changed), ("removed", plan.removed))
            if keys
        )
        report.drift_repaired = drifted
        if report.drift_repaired and paced[0].announce:
            report.notices.append(
                Notice("Warning", "DriftRepaired", f"Restored entries of {what} edited outside ArgoBridge: {summary}")
            )
        elif summary:
            report.notices.append(Notice("Normal", "ConfigApplied", f"Updated {what}: {summary}"))
    if plan.left:
        report.notices.append(
            Notice("Normal", "KeysLeft", f"Left {', '.join(plan.left)} in {what}: changed by someone else since")
        )
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
    for entry in plan.removed:
        section, key = entry.split(".", 1)
        final.get(section, {}).pop(key, None)
    for (section, key), value in plan.entries.items():
        final.setdefault(section, {})[key] = value
    return flatten(final)


def _changed(status: Mapping[str, object], condition: Condition) -> bool:
    """Whether a condition's status or reason differs from the bridge's status (post an Event only then)."""
    conditions = status.get("conditions")
    for item in conditions if isinstance(conditions, list) else []:
        if isinstance(item, Mapping) and item.get("type") == condition.type:
            return item.get("status") != ("True" if condition.status else "False") or item.get("reason") != (
                condition.reason
            )
    return True


def remove_config(namespace: str, bridge: str, spec: BridgeSpec, status: Mapping[str, object]) -> list[Notice]:
    """Take our entries out of the resource (users' entries and subscriptions stay)."""
    name = spec.notifications_configuration
    what = f"NotificationsConfiguration {name}"
    rendered = rendered_for_removal(spec)

    def plan_for(observed: gitops.ObservedResource) -> ResourcePlan:
        if observed.spec is None:
            return ResourcePlan(spec={})
        return plan_resource_removal(observed.spec, _ownership(namespace, bridge, status, observed), rendered)

    try:
        _, plan, outcome = apply_planned(
            lambda: gitops.read_notifications_configuration(namespace, name),
            plan_for,
            _write(namespace, name, field_manager(namespace, bridge)),
            _spec_entry,
        )
    except KubeError as error:
        if error.status not in (403, 404):
            raise
        return [Notice("Warning", "ConfigNotRemoved", f"Could not take ArgoBridge's entries out of {what}: {error}")]
    notices = []
    if outcome.written:
        notices.append(Notice("Normal", "ConfigRemoved", f"Removed {len(plan.removed)} entries from {what}"))
    for key in plan.unreadable:
        notices.append(
            Notice(
                "Warning",
                "UnreadableConfig",
                f"The `{key}` entry of {what} is not valid YAML: ArgoBridge took out only its own marked lines and"
                " left the rest exactly as it is; fix it, or Argo CD sends no notifications at all",
            )
        )
    if plan.left:
        notices.append(
            Notice("Normal", "KeysLeft", f"Left {', '.join(plan.left)} in {what}: changed by someone else since")
        )
    return notices
