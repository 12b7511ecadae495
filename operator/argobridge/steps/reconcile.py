"""One reconcile of a BackstageBridge: gather, decide with the core, write through the edges, report.

Order matters for "never half-applied": the token is made sure of first, because a webhook service
whose `$key` does not resolve sends the literal text as a bearer token and every delivery fails 401.
Every write happens only when the core says something differs, so an idle reconcile writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from argobridge.backstage import client as backstage_client
from argobridge.core.appcheck import (
    AppDiagnosis,
    AppFacts,
    CatalogAnswer,
    count_applications,
    diagnose_app,
    in_scope,
    known_config_for,
    missing_entities,
    refs_to_check,
)
from argobridge.core.catalogmatch import EntityRefFrom, RecipientSource, Resolution
from argobridge.core.conditions import CONFIG_APPLIED, TOKEN_READY, Condition, status_word
from argobridge.core.configplan import ConfigPlan, ForeignDataError, plan_config, plan_removal
from argobridge.core.deliveryplan import DeliveryPlan, plan_delivery
from argobridge.core.events import ENTITY_REF_ANNOTATION
from argobridge.core.ownership import (
    KeyConflict,
    Owner,
    Ownership,
    conflict_hint,
    data_key,
    describe_conflicts,
    field_manager,
)
from argobridge.core.probe import entities_condition, probe_due
from argobridge.core.relayrecipients import (
    application_counts,
    bounded_recipients,
    catalog_recipients,
    finding_message,
    recipients_condition,
    resolve_applications,
    unresolved_problem,
)
from argobridge.core.render import render_notifications_config, rendered_for_removal
from argobridge.core.resourceplan import UnsafeContextError
from argobridge.core.spec import (
    NOTIFICATIONS_CONFIGMAP,
    BridgeSpec,
    Flavor,
    SpecError,
    TokenDeletionPolicy,
    parse_bridge_spec,
)
from argobridge.core.status import Notice, ReconcileReport, build_status, config_hash, status_patch
from argobridge.core.token import generate_token, services_using_key, token_problem
from argobridge.kube import argocd, bridges, configmaps, secrets
from argobridge.kube.apply import APPLY_ATTEMPTS, StaleReadError, apply_planned
from argobridge.kube.errors import TRANSPORT_ERRORS, ArgoCDObjectMissing, KubeError
from argobridge.settings import Settings
from argobridge.steps import catalog_owners, drift_repairs, gitops_config, probing, relay_entry
from argobridge.steps.failures import describe_failure
from argobridge.steps.token_rotation import TOKEN_MIRRORED, rotate_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BridgeRef:
    """Which bridge, and the parts of its body a reconcile reads."""

    namespace: str
    name: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    created: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> BridgeRef:
        metadata = body.get("metadata") or {}
        return cls(
            namespace=str(metadata.get("namespace")),
            name=str(metadata.get("name")),
            generation=int(metadata.get("generation") or 0),
            spec=dict(body.get("spec") or {}),
            status=dict(body.get("status") or {}),
            created=str(metadata.get("creationTimestamp") or ""),
            annotations={str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()},
        )


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _holds_config(body: Mapping[str, Any]) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "ConfigApplied" and c.get("status") == "True" for c in conditions)


def _older_bridge(bridge: BridgeRef) -> str | None:
    """The name of the bridge that owns this namespace's configuration, if it is not this one.

    Two bridges would fight over the same keys. The one already applied wins; otherwise (or if both
    claim it) the older one, by creation time and then name, so every reconcile agrees on the answer.
    """

    def rank(body: Mapping[str, Any]) -> tuple[bool, str, str]:
        meta = body.get("metadata") or {}
        return (not _holds_config(body), str(meta.get("creationTimestamp") or ""), str(meta.get("name")))

    this = {"metadata": {"name": bridge.name, "creationTimestamp": bridge.created}, "status": bridge.status}
    for other in bridges.list_bridges(bridge.namespace):
        meta = other.get("metadata") or {}
        if meta.get("name") == bridge.name or meta.get("deletionTimestamp"):
            continue
        if rank(other) < rank(this):
            return str(meta.get("name"))
    return None


def _ensure_token(bridge: BridgeRef, spec: BridgeSpec, report: ReconcileReport, restore: bool = False) -> str | None:
    """Make sure Argo CD's Secret holds a usable token; return it (for the probe only) when it does.

    With `restore` (OpenShift GitOps, whose operator deletes that Secret when notifications are turned
    off) the copy ArgoBridge keeps is put back before a new token is made.
    """
    current = secrets.read_secret_key(bridge.namespace, spec.secret_name, spec.token_key)
    where = f"key {spec.token_key} of Secret {spec.secret_name}"
    if current is None and restore and (kept := gitops_config.restore_token(bridge.namespace, spec, report)):
        return kept
    if current is None:
        token = generate_token()
        secrets.apply_secret_key(bridge.namespace, spec.secret_name, spec.token_key, token)
        report.notices.append(Notice("Normal", "TokenGenerated", f"Generated a new Backstage token in {where}"))
        report.conditions.append(Condition(TOKEN_READY, True, "Generated", f"Token generated in {where}"))
        return token
    problem = token_problem(current)
    if problem:
        message = (
            f"The existing token in {where} cannot work: {problem}. Delete that key and ArgoBridge will"
            " generate a strong one (then give Backstage the new value), or replace it yourself"
        )
        report.conditions.append(Condition(TOKEN_READY, False, "InvalidToken", message))
        report.notices.append(Notice("Warning", "InvalidToken", message))
        return None
    report.conditions.append(Condition(TOKEN_READY, True, "Present", f"Token present in {where}"))
    return current


@dataclass(frozen=True)
class Recipients:
    """Relay mode with the catalog: each in-scope app's resolution and what the catalog read said."""

    resolutions: Mapping[str, Resolution]
    read: catalog_owners.CatalogRead

    @property
    def entry(self) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
        """The relay entry's catalogRecipients (bounded) and the apps that did not fit."""
        return bounded_recipients(catalog_recipients(self.resolutions))


def _resolve_recipients(
    bridge: BridgeRef, spec: BridgeSpec, plan: DeliveryPlan, applications: Iterable[AppFacts], token: str
) -> Recipients | None:
    """In Relay mode, unless entityRefFrom is Annotation: the catalog's owners (cached) matched to the apps."""
    if not plan.relayed or spec.entity_ref_from is EntityRefFrom.ANNOTATION:
        catalog_owners.forget(bridge.namespace, bridge.name)  # nor does the annotation sync use it then
        return None
    read = catalog_owners.read_owners(bridge.namespace, bridge.name, spec, token)
    apps = [app for app in applications if in_scope(app.namespace, bridge.namespace, spec.application_namespaces)]
    return Recipients(resolve_applications(spec.entity_ref_from, read.index, apps, spec.catalog_instance), read)


def _entry_recipients(recipients: Recipients | None) -> Mapping[str, tuple[str, ...]] | None:
    """What the relay entry's catalogRecipients become: none without the catalog; the entry's own (None)
    while the catalog was never read since the operator started (a restart during a Backstage outage must
    not take the owners away from notifications the relay holds); else this resolution."""
    if recipients is None:
        return {}
    if recipients.read.index is None:
        return None
    return recipients.entry[0]


def _report_recipients(recipients: Recipients, diagnoses: list[AppDiagnosis], report: ReconcileReport) -> None:
    """Counts per source, RecipientsResolved, a Warning on each app nobody hears of, catalog findings."""
    read = recipients.read
    owners = read.index.entities if read.index else 0
    report.applications = {**(report.applications or {}), **application_counts(recipients.resolutions, owners)}
    findings = read.index.findings if read.index else ()
    left_out = recipients.entry[1] if read.index is not None else ()
    report.conditions.append(
        recipients_condition(recipients.resolutions, read.unavailable, findings, read.truncated, left_out)
    )
    for item in diagnoses:
        resolution = recipients.resolutions.get(f"{item.app.namespace}/{item.app.name}")
        if resolution is None:
            continue
        if resolution.source is RecipientSource.CATALOG:
            # "has no backstage.io/entity-ref, so nobody would be notified" is not true of a catalog-owned app
            report.app_problems = [
                (app, problem)
                for app, problem in report.app_problems
                if app.uid != item.app.uid or ENTITY_REF_ANNOTATION not in problem or "nobody" not in problem
            ]
        elif resolution.source is RecipientSource.UNRESOLVED and not item.ref_problems:
            report.app_problems.append((item.app, unresolved_problem(item.app.name)))
    for finding in read.new_findings:
        report.notices.append(Notice("Warning", "CatalogAnnotationInvalid", finding_message(finding)))


def _check_applications(
    bridge: BridgeRef,
    spec: BridgeSpec,
    config: Mapping[str, str],
    applications: Iterable[AppFacts],
    report: ReconcileReport,
    token: str,
    recipients: Recipients | None = None,
) -> None:
    """Count the Applications in scope and collect what is wrong with them, for status and Events."""
    known = known_config_for(spec, config)
    diagnoses = [
        diagnose_app(app, known)
        for app in applications
        if in_scope(app.namespace, bridge.namespace, spec.application_namespaces)
    ]
    report.applications = count_applications(diagnoses)
    report.app_problems = [(item.app, problem) for item in diagnoses for problem in item.problems]
    if recipients is not None:
        _report_recipients(recipients, diagnoses, report)
    answer = _catalog(bridge, spec, token, refs_to_check(diagnoses), report)
    if not answer.unavailable:
        missing = missing_entities(diagnoses, answer)
        report.applications["missingEntity"] = len({app.uid for app, _ in missing})
        report.app_problems += missing


# Last catalog answer per bridge: (monotonic time, the refs asked about, the answer); refreshed on the
# resync interval or when the set of refs changes, so an idle reconcile does not ask again.
_catalog_answers: dict[tuple[str, str], tuple[float, str, CatalogAnswer]] = {}


def forget_catalog_answer(namespace: str, name: str) -> None:
    """Drop a deleted bridge's cached catalog answer and catalog owners."""
    _catalog_answers.pop((namespace, name), None)
    catalog_owners.forget(namespace, name)


def _catalog(
    bridge: BridgeRef, spec: BridgeSpec, token: str, refs: list[str], report: ReconcileReport
) -> CatalogAnswer:
    """Which refs exist, from Backstage's catalog (cached), and the EntitiesResolved condition."""
    if not refs:
        answer = CatalogAnswer()
    else:
        key = hashlib.sha256("\n".join([spec.backstage_url, token, *refs]).encode()).hexdigest()[:16]
        last = _catalog_answers.get((bridge.namespace, bridge.name))
        now = time.monotonic()
        if last and not probe_due(last[0], last[1], key, now, Settings.from_env().resync_seconds):
            answer = last[2]
        else:
            try:
                verify = probing.verify_for(bridge.namespace, spec)
            except probing.CaBundleProblem as error:
                answer = CatalogAnswer(unavailable=str(error))
            else:
                answer = backstage_client.check_entities(spec.backstage_url, token, refs, verify=verify)
            _catalog_answers[(bridge.namespace, bridge.name)] = (now, key, answer)
    report.conditions.append(entities_condition(refs, answer))
    return answer


def _apply_gitops_config(
    bridge: BridgeRef,
    spec: BridgeSpec,
    facts: gitops_config.FlavorFacts,
    report: ReconcileReport,
    applications: Iterable[AppFacts],
    token: str,
    delivery: DeliveryPlan | None = None,
    recipients: Recipients | None = None,
) -> None:
    config = gitops_config.apply_config(bridge.namespace, spec, facts, bridge.status, report, bridge.name, delivery)
    if config is not None:
        _check_applications(bridge, spec, config, applications, report, token, recipients)


def _ownership(bridge: BridgeRef, owners: Mapping[str, list[Owner]]) -> Ownership:
    """What says which keys are this bridge's: field managers as read, and the keys its status records."""
    recorded = (bridge.status.get("ownership") or {}).get("keys") or []
    return Ownership.of(bridge.namespace, bridge.name, owners, [str(key) for key in recorded])


def _conflict_condition(
    bridge: BridgeRef, report: ReconcileReport, conflicts: tuple[KeyConflict, ...], where: str
) -> None:
    """ConfigApplied False, KeyConflict: which keys, whose, how to hand them over; posted once per change."""
    message = describe_conflicts(conflicts, where)
    condition = Condition(CONFIG_APPLIED, False, "KeyConflict", message)
    report.conditions.append(condition)
    if _changed(bridge.status, condition):
        report.notices.append(Notice("Warning", "KeyConflict", message))


def _config_map_writer(bridge: BridgeRef) -> Callable[[configmaps.ObservedConfigMap, ConfigPlan, bool], None]:
    """How a plan lands in Argo CD's ConfigMap: as this bridge's field manager, on the version and the
    object (uid) it was planned from, releasing the legacy manager once its fields are taken over."""
    manager = field_manager(bridge.namespace, bridge.name)

    def write(observed: configmaps.ObservedConfigMap, plan: ConfigPlan, force: bool) -> None:
        configmaps.apply_config_map_data(
            bridge.namespace,
            NOTIFICATIONS_CONFIGMAP,
            plan.data,
            manager,
            observed.resource_version,
            force,
            uid=observed.uid,
        )
        if plan.release_legacy:
            configmaps.release_legacy_manager(bridge.namespace, NOTIFICATIONS_CONFIGMAP, observed.uid)

    return write


def _apply_config(
    bridge: BridgeRef,
    spec: BridgeSpec,
    report: ReconcileReport,
    applications: Iterable[AppFacts],
    token: str,
    delivery: DeliveryPlan | None = None,
    recipients: Recipients | None = None,
) -> None:
    """Apply the plan as this bridge's field manager, on exactly the version it was made from (see
    kube.apply.apply_planned); a key someone else wrote stops the whole write (nothing half-applied)."""
    argocd_url = spec.argocd_url or argocd.read_argocd_url(bridge.namespace)
    rendered = render_notifications_config(spec, argocd_url, delivery)
    previous_url = bridge.status.get("argocdUrl")
    manager = field_manager(bridge.namespace, bridge.name)
    where = f"ConfigMap {NOTIFICATIONS_CONFIGMAP}"

    def plan_for(observed: configmaps.ObservedConfigMap) -> ConfigPlan:
        ownership = _ownership(bridge, observed.owners)
        return plan_config(observed.data, ownership, rendered, str(previous_url) if previous_url else None)

    paced = drift_repairs.Gate()
    land = _config_map_writer(bridge)

    def write(observed: configmaps.ObservedConfigMap, plan: ConfigPlan, force: bool) -> None:
        nonlocal paced
        if not force:  # repairs of keys another writer changed are paced (core/repairs.py)
            drifted = bridge.status.get("configHash") == config_hash(plan.data)
            keys = [*plan.added, *plan.changed, *plan.removed] if drifted else []
            paced = drift_repairs.gate(
                bridge.namespace, bridge.name, "ConfigMap", NOTIFICATIONS_CONFIGMAP, keys, report
            )
        if paced.write:
            land(observed, plan, force)

    report.config_map = NOTIFICATIONS_CONFIGMAP
    try:
        observed, plan, outcome = apply_planned(
            lambda: configmaps.read_config_map(bridge.namespace, NOTIFICATIONS_CONFIGMAP), plan_for, write, data_key
        )
    except StaleReadError:
        message = (
            f"{where} changed between every read and write ({APPLY_ATTEMPTS} attempts); ArgoBridge wrote nothing"
            " rather than overwrite those edits, and tries again at the next reconcile"
        )
        report.conditions.append(Condition(CONFIG_APPLIED, False, "ConcurrentEdits", message))
        return
    conflicts = plan.conflicts or tuple(
        KeyConflict(data_key(item.field) or item.field, (repr(item.manager),), conflict_hint(item.field))
        for item in outcome.field_conflicts
    )
    if conflicts:
        _conflict_condition(bridge, report, conflicts, where)
        _check_applications(bridge, spec, observed.data or {}, applications, report, token, recipients)
        return
    fingerprint = config_hash(plan.data)
    report.argocd_url = argocd_url
    report.owned_keys = len(rendered.owned)
    report.ownership = {"fieldManager": manager, "keys": list(plan.owned_keys)}
    drifted = bridge.status.get("configHash") == fingerprint
    if outcome.written and paced.write:
        summary = ", ".join(
            f"{label} {', '.join(keys)}"
            for label, keys in (("added", plan.added), ("changed", plan.changed), ("removed", plan.removed))
            if keys
        )
        report.drift_repaired = drifted
        if report.drift_repaired and paced.announce:
            report.notices.append(
                Notice(
                    "Warning",
                    "DriftRepaired",
                    f"Restored keys of {NOTIFICATIONS_CONFIGMAP} edited outside ArgoBridge: {summary}",
                )
            )
        elif summary:
            report.notices.append(Notice("Normal", "ConfigApplied", f"Updated {NOTIFICATIONS_CONFIGMAP}: {summary}"))
    if plan.left:
        report.notices.append(_left_notice(plan.left, where))
    report.config_hash = fingerprint
    final = {key: value for key, value in (observed.data or {}).items() if key not in plan.removed}
    _check_applications(bridge, spec, {**final, **plan.data}, applications, report, token, recipients)
    link_note = (
        ""
        if argocd_url
        else ("; no Argo CD URL is known, so notifications carry no link (set spec.argocd.url or `url` in argocd-cm)")
    )
    report.conditions.append(
        Condition(
            CONFIG_APPLIED,
            True,
            "Applied",
            f"{len(rendered.owned)} keys in {NOTIFICATIONS_CONFIGMAP} are up to date{link_note}",
        )
    )


def _held_before_writing(bridge: BridgeRef, spec: BridgeSpec, gitops: bool, report: ReconcileReport) -> bool:
    """Plain Argo CD: what stops a bridge before it writes anything, with its conditions in `report`.

    Its notifications ConfigMap missing (checked before the token is written, so a bridge facing half an
    install writes nothing; a missing Secret stops the token's own write), or a token key that another
    service of that ConfigMap already reads (another service's credential must never become ours).
    """
    if gitops:
        return False
    observed = configmaps.read_config_map(bridge.namespace, NOTIFICATIONS_CONFIGMAP)
    if observed.uid is None:
        _waiting_for_argocd(bridge, ArgoCDObjectMissing("ConfigMap", bridge.namespace, NOTIFICATIONS_CONFIGMAP), report)
        return True
    users = services_using_key(spec.token_key, observed.data or {}, f"service.webhook.{spec.service_name}")
    if not users:
        return False
    message = (
        f"spec.token.key {spec.token_key} is the key of {spec.secret_name} that {', '.join(users)} of"
        f" {NOTIFICATIONS_CONFIGMAP} reads: another service's credential is never used as Backstage's token;"
        " choose a key of ArgoBridge's own (the default is backstage-token)"
    )
    conditions = [
        Condition(TOKEN_READY, False, "KeyInUse", message),
        Condition(CONFIG_APPLIED, False, "KeyInUse", message),
    ]
    report.conditions += conditions
    if _changed(bridge.status, conditions[0]):
        report.notices.append(Notice("Warning", "KeyInUse", message))
    return True


def _waiting_for_argocd(bridge: BridgeRef, missing: ArgoCDObjectMissing, report: ReconcileReport) -> None:
    """Conditions (and one Event when they start) for an Argo CD object that only Argo CD's install creates."""
    waiting = [
        Condition(CONFIG_APPLIED, False, "WaitingForArgoCD", str(missing)),
        Condition(TOKEN_READY, False, "WaitingForArgoCD", str(missing)),
    ]
    report.conditions += waiting
    if _changed(bridge.status, waiting[0]):
        report.notices.append(Notice("Warning", "WaitingForArgoCD", str(missing)))


def _left_notice(keys: tuple[str, ...], where: str) -> Notice:
    return Notice(
        "Normal",
        "KeysLeft",
        f"Left {', '.join(keys)} in {where}: ArgoBridge wrote them but someone changed them since, so they are"
        " theirs now; delete them if nothing uses them",
    )


def _rotate(
    bridge: BridgeRef, spec: BridgeSpec, token: str, report: ReconcileReport, delivery: DeliveryPlan | None = None
) -> str:
    """Mirror and rotate the token (see token_rotation); an API error stops rotation, not configuration.

    In Relay mode the relay is told to accept a new token before Argo CD is given it."""

    def before_switch(new_token: str) -> None:
        if delivery is not None:
            relay_entry.prepare_switch(bridge.namespace, bridge.name, spec, delivery, token, new_token)

    try:
        rotated = rotate_token(
            bridge.namespace,
            spec,
            token,
            bridge.annotations,
            report,
            accepts=lambda candidate: probing.accepts(bridge.namespace, spec, candidate, bridge.name),
            clock=time.time,
            bridge=bridge.name,
            before_switch=before_switch,
        )
        # A standing problem is posted once, when the condition changes, not on every resync.
        mirrored = [c for c in report.conditions if c.type == TOKEN_MIRRORED]
        if mirrored and not mirrored[-1].status and not _changed(bridge.status, mirrored[-1]):
            report.notices = [n for n in report.notices if n.reason != mirrored[-1].reason]
        return rotated
    except (KubeError, *TRANSPORT_ERRORS) as error:
        failure = error if isinstance(error, KubeError) else KubeError("talking to the Kubernetes API", error)
        message = f"Token mirror or rotation failed: {failure}; check ArgoBridge's RBAC for that Secret and Deployment"
        report.conditions.append(Condition(TOKEN_MIRRORED, False, "ApiError", message))
        report.notices.append(Notice("Warning", "TokenMirrorFailed", message))
        return token
    except Exception as error:  # a bug in rotation must not hold Argo CD's configuration back
        reason, message = describe_failure(error, "Token mirror or rotation")
        report.conditions.append(Condition(TOKEN_MIRRORED, False, reason, message))
        report.notices.append(Notice("Warning", "TokenMirrorFailed", message))
        return token


def _changed(status: Mapping[str, Any], condition: Condition) -> bool:
    """Whether a condition's status or reason differs from what the bridge's status says now."""
    for item in status.get("conditions") or []:
        if item.get("type") == condition.type:
            return bool(item.get("status") != status_word(condition.status) or item.get("reason") != condition.reason)
    return True


def reconcile_bridge(body: Mapping[str, Any], applications: Iterable[AppFacts] = ()) -> ReconcileReport:
    """Bring Argo CD's configuration in line with one bridge and write its status if it changed."""
    bridge = BridgeRef.from_body(body)
    report = ReconcileReport()
    try:
        spec = parse_bridge_spec(bridge.spec, bridge.namespace)
        facts = gitops_config.observe_flavor(bridge.namespace, spec.flavor)
        gitops = facts.flavor is Flavor.OPENSHIFT_GITOPS
        report.flavor = facts.flavor.value
        held = gitops_config.blocked(bridge.namespace, spec, facts) if gitops else []
        older = _older_bridge(bridge)
        if older:
            message = (
                f"BackstageBridge {older} already configures Argo CD in namespace {bridge.namespace};"
                " keep one bridge per namespace and delete this one"
            )
            report.conditions += [
                Condition(CONFIG_APPLIED, False, "Conflict", message),
                Condition(TOKEN_READY, False, "Conflict", message),
            ]
            report.notices.append(Notice("Warning", "Conflict", message))
        elif held:
            report.conditions += held
            if _changed(bridge.status, held[0]):
                report.notices.append(Notice("Warning", held[0].reason, held[0].message))
        elif _held_before_writing(bridge, spec, gitops, report):
            pass
        elif token := _ensure_token(bridge, spec, report, restore=gitops):
            reachable, effective = probing.probe_bridge(bridge.namespace, bridge.name, spec, token)
            settings = Settings.from_env()
            planned = plan_delivery(
                effective, bridge.namespace, bridge.name, settings.relay_url, settings.relay_secret_ref is not None
            )
            rotated = _rotate(bridge, effective, token, report, planned)
            if rotated != token:
                token = rotated
                reachable, effective = probing.probe_bridge(bridge.namespace, bridge.name, spec, token)
                planned = plan_delivery(
                    effective, bridge.namespace, bridge.name, settings.relay_url, settings.relay_secret_ref is not None
                )
            # The relay learns of the bridge (and the catalog's recipients) before Argo CD is pointed at it.
            applications = list(applications)
            recipients = _resolve_recipients(bridge, effective, planned, applications, token)
            delivery = relay_entry.sync_entry(
                bridge.namespace,
                bridge.name,
                effective,
                planned,
                token,
                report,
                bridge.status,
                catalog=_entry_recipients(recipients),
            )
            if not delivery.relayed and recipients is not None:
                recipients = None  # fell back to Direct: Argo CD posts itself, the catalog is not used
                catalog_owners.forget(bridge.namespace, bridge.name)
            if gitops:
                gitops_config.keep_token(bridge.namespace, spec, token)
                _apply_gitops_config(bridge, effective, facts, report, applications, token, delivery, recipients)
            else:
                _apply_config(bridge, effective, report, applications, token, delivery, recipients)
            report.conditions.append(reachable)
            if _changed(bridge.status, reachable):
                kind = "Normal" if reachable.status else "Warning"
                report.notices.append(Notice(kind, reachable.reason, reachable.message))
        else:
            report.conditions.append(
                Condition(
                    CONFIG_APPLIED,
                    False,
                    "WaitingForToken",
                    "Configuration is held back until the token is usable",
                )
            )
    except SpecError as error:
        report.conditions += [
            Condition(CONFIG_APPLIED, False, "InvalidSpec", str(error)),
            Condition(TOKEN_READY, False, "InvalidSpec", str(error)),
        ]
        report.notices.append(Notice("Warning", "InvalidSpec", str(error)))
    except UnsafeContextError as error:
        report.conditions.append(Condition(CONFIG_APPLIED, False, "UnsafeContext", str(error)))
        report.notices.append(Notice("Warning", "UnsafeContext", str(error)))
    except ForeignDataError as error:
        report.conditions.append(Condition(CONFIG_APPLIED, False, "UnreadableConfig", str(error)))
        report.notices.append(Notice("Warning", "UnreadableConfig", str(error)))
    except ArgoCDObjectMissing as error:
        report.conditions = [c for c in report.conditions if c.type not in (CONFIG_APPLIED, TOKEN_READY)]
        _waiting_for_argocd(bridge, error, report)
    except KubeError as error:
        report.conditions.append(Condition(CONFIG_APPLIED, False, "ApiError", str(error)))
        report.notices.append(Notice("Warning", "ApiError", str(error)))
    except Exception as error:  # last resort: a reconcile ends in a truthful condition, never a crash
        _failed(report, *describe_failure(error, f"Reconciling BackstageBridge {bridge.namespace}/{bridge.name}"))
    _write_status(bridge, report)
    return report


def _failed(report: ReconcileReport, reason: str, message: str) -> None:
    """ConfigApplied False (so Ready goes False too) and a Warning, replacing any ConfigApplied so far."""
    report.conditions = [c for c in report.conditions if c.type != CONFIG_APPLIED]
    report.conditions.append(Condition(CONFIG_APPLIED, False, reason, message))
    report.notices.append(Notice("Warning", reason, message))


def report_removal_failure(body: Mapping[str, Any], reason: str, message: str) -> None:
    """Deletion failed: say so in ConfigApplied (the finalizer stays and the removal is retried)."""
    bridge = BridgeRef.from_body(body)
    report = ReconcileReport()
    _failed(report, reason, message)
    _write_status(bridge, report)


def _write_status(bridge: BridgeRef, report: ReconcileReport) -> None:
    new = build_status(bridge.status, report, bridge.generation, now_rfc3339())
    patch = status_patch(bridge.status, new)
    if patch:
        bridges.patch_bridge_status(bridge.namespace, bridge.name, patch)


def remove_bridge(body: Mapping[str, Any]) -> list[Notice]:
    """Take out what this bridge wrote (its field manager's keys, its marked entries); leave the token
    unless told otherwise. Never stops the deletion for data it cannot read: it says so in an Event."""
    bridge = BridgeRef.from_body(body)
    if _older_bridge(bridge):
        return []  # this bridge never wrote anything: the older one owns the configuration
    relayed = relay_entry.remove_entry(bridge.namespace, bridge.name)
    if bridge.status.get("flavor") == Flavor.OPENSHIFT_GITOPS.value:
        return relayed + _remove_gitops_bridge(bridge)
    try:
        spec: BridgeSpec | None = parse_bridge_spec(bridge.spec, bridge.namespace)
    except SpecError:
        spec = None
    notices = relayed + _remove_config(bridge, spec)
    if spec is None:
        return notices
    if spec.token_deletion_policy is TokenDeletionPolicy.DELETE and secrets.remove_secret_key(
        bridge.namespace, spec.secret_name, spec.token_key
    ):
        notices.append(Notice("Normal", "TokenDeleted", f"Deleted key {spec.token_key} of Secret {spec.secret_name}"))
    return notices


def _remove_config(bridge: BridgeRef, spec: BridgeSpec | None) -> list[Notice]:
    """The ConfigMap part of a deletion; works from the records alone when the spec no longer parses."""
    rendered = rendered_for_removal(spec)
    previous_url = bridge.status.get("argocdUrl")
    where = f"ConfigMap {NOTIFICATIONS_CONFIGMAP}"

    def plan_for(observed: configmaps.ObservedConfigMap) -> ConfigPlan:
        ownership = _ownership(bridge, observed.owners)
        return plan_removal(observed.data, ownership, rendered, str(previous_url) if previous_url else None)

    notices: list[Notice] = []
    try:
        _, plan, outcome = apply_planned(
            lambda: configmaps.read_config_map(bridge.namespace, NOTIFICATIONS_CONFIGMAP),
            plan_for,
            _config_map_writer(bridge),
            data_key,
        )
    except KubeError as error:
        if error.status not in (403, 404):
            raise  # transient: kopf retries the deletion
        message = f"Could not take ArgoBridge's keys out of {where}: {error}; remove them by hand"
        return [Notice("Warning", "ConfigNotRemoved", message)]
    if outcome.written:
        notices.append(
            Notice("Normal", "ConfigRemoved", f"Removed {len(plan.removed)} keys from {NOTIFICATIONS_CONFIGMAP}")
        )
    for key in plan.unreadable:
        notices.append(
            Notice(
                "Warning",
                "UnreadableConfig",
                f"The `{key}` key of {where} is not valid YAML: ArgoBridge took out only its own marked lines and"
                " left the rest exactly as it is; fix it, or Argo CD sends no notifications at all",
            )
        )
    if outcome.field_conflicts:
        keys = ", ".join(data_key(item.field) or item.field for item in outcome.field_conflicts)
        notices.append(Notice("Warning", "ConfigNotRemoved", f"Left {keys} in {where}: owned by another manager"))
    if plan.left:
        notices.append(_left_notice(plan.left, where))
    return notices


def _remove_gitops_bridge(bridge: BridgeRef) -> list[Notice]:
    """Removal on OpenShift GitOps: our entries leave the NotificationsConfiguration, never the ConfigMap."""
    try:
        spec = parse_bridge_spec(bridge.spec, bridge.namespace)
    except SpecError:
        return []  # an unreadable spec never got past detection, so it wrote nothing there
    notices = gitops_config.remove_config(bridge.namespace, bridge.name, spec, bridge.status)
    if spec.token_deletion_policy is TokenDeletionPolicy.DELETE:
        secrets.remove_secret_key(bridge.namespace, gitops_config.backup_secret_name(spec), spec.token_key)
        if secrets.remove_secret_key(bridge.namespace, spec.secret_name, spec.token_key):
            notices.append(
                Notice("Normal", "TokenDeleted", f"Deleted key {spec.token_key} of Secret {spec.secret_name}")
            )
    return notices
