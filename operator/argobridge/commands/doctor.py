"""`argobridge doctor`: walk every known failure mode against the live cluster and say what to fix.

Each check gives ok, or the problem and the fix. Tokens are compared by digest and never printed.
Exit code 1 when anything is wrong, so it fits in a script or a CI gate; `-o json` for machines.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.appcheck import AppFacts, diagnose_app, in_scope, known_config_for
from argobridge.core.deliveryplan import DeliveryPlan, observed_plan
from argobridge.core.events import CATALOG
from argobridge.core.probe import LEGACY_NOTIFICATIONS_PATH
from argobridge.core.render import ARGOCD_URL_CONTEXT, CONTEXT_KEY, render_notifications_config, service_url_of
from argobridge.core.rotation import token_digest
from argobridge.core.spec import (
    GROUP,
    NOTIFICATIONS_CONFIGMAP,
    PLURAL,
    BridgeSpec,
    SpecError,
    parse_bridge_spec,
)
from argobridge.core.token import token_problem
from argobridge.engine.offline import EngineError, OfflineEngine, find_argocd
from argobridge.kube import bridges, configmaps, deployments, mirror, secrets
from argobridge.kube.client import api_client, custom_objects
from argobridge.kube.errors import TRANSPORT_ERRORS, KubeError, transport_message

BRIDGE_CRD = f"{PLURAL}.{GROUP}"
APPLICATION_CRD = "applications.argoproj.io"


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    message: str
    fix: str = ""


def ok(check: str, message: str) -> Finding:
    return Finding(check, True, message)


def problem(check: str, message: str, fix: str) -> Finding:
    return Finding(check, False, message, fix)


def check_crds() -> list[Finding]:
    api = client.ApiextensionsV1Api(api_client())
    findings = []
    for name, fix in (
        (BRIDGE_CRD, "install it: argobridge install-crds (or kubectl apply -f manifests/crds/)"),
        (APPLICATION_CRD, "install Argo CD in this cluster"),
    ):
        try:
            api.read_custom_resource_definition(name)
            findings.append(ok("crd", f"CustomResourceDefinition {name} is installed"))
        except ApiException as error:
            if error.status != 404:
                raise KubeError(f"reading CustomResourceDefinition {name}", error) from None
            findings.append(problem("crd", f"CustomResourceDefinition {name} is missing", fix))
    return findings


def check_bridge_status(body: Mapping[str, Any]) -> list[Finding]:
    """The operator's own report: caught up with the spec, Ready, and every condition."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    name = meta.get("name")
    findings = []
    if status.get("observedGeneration") != meta.get("generation"):
        findings.append(
            problem(
                "operator",
                f"BackstageBridge {name} generation {meta.get('generation')} has not been processed"
                f" (observedGeneration {status.get('observedGeneration')})",
                "make sure the ArgoBridge operator is running and watching this namespace (check its logs)",
            )
        )
    else:
        findings.append(ok("operator", f"BackstageBridge {name} is processed by the operator"))
    flavor = status.get("flavor")
    findings.append(
        ok("flavor", f"flavor {flavor}")
        if flavor
        else problem("flavor", "no flavor detected yet", "wait for the operator, or set spec.argocd.flavor")
    )
    for condition in status.get("conditions") or []:
        kind = str(condition.get("type"))
        if condition.get("status") == "True":
            findings.append(ok(f"condition/{kind}", f"{kind}: {condition.get('message', '')}"))
        else:
            findings.append(
                problem(
                    f"condition/{kind}",
                    f"{kind} is {condition.get('status')} ({condition.get('reason')})",
                    str(condition.get("message", "")),
                )
            )
    return findings


def check_delivery(status: Mapping[str, Any]) -> list[Finding]:
    """How notifications travel and what the relay did with them, from status.delivery (pure).

    The Delivering condition already says whether delivery works now; this adds the figures a person
    looks for first (what was lost for good, what waits), and a Relay asked for but not in effect.
    """
    delivery = status.get("delivery") or {}
    mode = delivery.get("mode")
    if not mode:
        return [problem("delivery", "no delivery mode in the status yet", "wait for the operator's next reconcile")]
    if mode != "Relay":
        if delivery.get("reason"):
            return [
                problem(
                    "delivery",
                    f"delivery is {mode} ({delivery['reason']}): notifications Backstage misses are lost",
                    "install the chart with relay.enabled=true (the default), or set spec.delivery.mode: Direct",
                )
            ]
        return [ok("delivery", "delivery is Direct: Argo CD posts to Backstage itself; misses are not counted")]
    figures = (
        f"delivered {delivery.get('delivered', 0)}, pending {delivery.get('pending', 0)}, rejected"
        f" {delivery.get('rejected', 0)}, dead-lettered {delivery.get('deadLettered', 0)}, no recipients"
        f" {delivery.get('noRecipients', 0)}"
    )
    findings = [ok("delivery", f"delivery is Relay: {figures}")]
    if delivery.get("deadLettered"):
        findings.append(
            problem(
                "delivery/dead-letters",
                f"{delivery['deadLettered']} notification(s) were given up after spec.delivery.retryFor",
                "see the bridge's DeadLettered Events for their scopes; lengthen spec.delivery.retryFor if"
                " Backstage is often down that long",
            )
        )
    if delivery.get("rejected"):
        findings.append(
            problem(
                "delivery/rejected",
                f"Backstage refused {delivery['rejected']} notification(s) for good"
                f" (last error: {delivery.get('lastError') or 'none recorded'})",
                "check the bridge's routes and texts with `argobridge preview`",
            )
        )
    return findings


def check_controller(namespace: str) -> list[Finding]:
    candidates = [
        item
        for item in deployments.list_deployments(namespace)
        if str(item["metadata"]["name"]).endswith("notifications-controller")
    ]
    if not candidates:
        return [
            problem(
                "controller",
                f"no notifications controller Deployment (*-notifications-controller) in {namespace}",
                "enable Argo CD notifications (Helm: notifications.enabled=true; ArgoCD resource:"
                " spec.notifications.enabled: true)",
            )
        ]
    findings = []
    for item in candidates:
        name = item["metadata"]["name"]
        available = int((item.get("status") or {}).get("availableReplicas") or 0)
        findings.append(
            ok("controller", f"Deployment {name} is available ({available} replica(s))")
            if available > 0
            else problem(
                "controller",
                f"Deployment {name} has no available replica",
                f"kubectl -n {namespace} describe deployment {name}; kubectl -n {namespace} logs deploy/{name}",
            )
        )
    return findings


def check_config(
    spec: BridgeSpec, data: Mapping[str, str], argocd_url: str | None, delivery: DeliveryPlan | None = None
) -> list[Finding]:
    """Our keys present and unchanged, every key parseable, and context.argocdUrl set (pure).

    `delivery`: the Relay plan the operator applied (core.deliveryplan.observed_plan), None for Direct."""
    findings: list[Finding] = []
    rendered = render_notifications_config(spec, argocd_url, delivery)
    missing = sorted(key for key in rendered.owned if key not in data)
    changed = sorted(key for key, value in rendered.owned.items() if key in data and data[key] != value)
    if missing:
        findings.append(
            problem(
                "config",
                f'{NOTIFICATIONS_CONFIGMAP} lacks {", ".join(missing)} (Argo CD then logs "notification service'
                f" '{spec.service_name}' is not supported\" or skips the triggers)",
                "the operator restores them within seconds; if they keep disappearing another tool overwrites"
                " the ConfigMap (on OpenShift GitOps the Argo CD operator does: use flavor OpenShiftGitOps)",
            )
        )
    if changed:
        findings.append(
            problem(
                "config",
                f"{NOTIFICATIONS_CONFIGMAP} keys {', '.join(changed)} differ from what ArgoBridge renders",
                "someone edited them; the operator repairs them (see DriftRepaired Events); stop the other writer",
            )
        )
    if not missing and not changed:
        findings.append(ok("config", f"all {len(rendered.owned)} keys of ArgoBridge in {NOTIFICATIONS_CONFIGMAP}"))
    broken = []
    for key, value in sorted(data.items()):
        try:
            yaml.safe_load(value)
        except yaml.YAMLError as error:
            broken.append(f"{key} ({str(error).splitlines()[0]})")
    findings.append(
        problem(
            "config-parse",
            f"keys that are not valid YAML: {'; '.join(broken)}",
            "one unparsable key disables every notification for every app: fix or remove it",
        )
        if broken
        else ok("config-parse", f"all {len(data)} keys of {NOTIFICATIONS_CONFIGMAP} are valid YAML")
    )
    try:
        context = yaml.safe_load(data.get(CONTEXT_KEY) or "")
    except yaml.YAMLError:
        context = None
    if isinstance(context, Mapping) and context.get(ARGOCD_URL_CONTEXT):
        findings.append(ok("context", f"context.argocdUrl is {context[ARGOCD_URL_CONTEXT]}"))
    else:
        findings.append(
            problem(
                "context",
                "context.argocdUrl is not set: notification links show <no value> or are left out",
                "set spec.argocd.url on the bridge, or `url` in argocd-cm",
            )
        )
    return findings


def argocd_unusable(binary: Path) -> str | None:
    """Why the `argocd` found cannot run the notifications engine offline, or None when it can.

    An `argocd` on PATH may be a broken download, not executable, or a build without the `admin
    notifications` commands: the doctor must say so, not report it as the configuration's fault.
    """
    try:
        result = subprocess.run(
            [str(binary), "admin", "notifications", "--help"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        return f"{binary} cannot be run ({type(error).__name__}: {reason})"
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        return f"{binary} exited {result.returncode} for `argocd admin notifications --help`" + (
            f": {said[0][:200]}" if said else ""
        )
    return None


def check_engine(data: Mapping[str, str], token_key: str) -> list[Finding]:
    """Every trigger we generate, evaluated by the real `argocd` binary when it is at hand."""
    binary = find_argocd()
    if binary is None:
        return [ok("engine", "argocd binary not found: the engine check was skipped (YAML was checked)")]
    unusable = argocd_unusable(binary)
    if unusable:
        return [
            problem(
                "engine",
                f"the engine check could not run: {unusable}",
                "install a working argocd CLI (v2.x or v3.x), or point ARGOBRIDGE_ARGOCD at one",
            )
        ]
    sample = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "doctor-sample", "namespace": "argocd", "annotations": {}},
        "spec": {"project": "default"},
        "status": {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}},
    }
    # A stand-in value under the token's key: the engine only needs the key to exist, never the token.
    engine = OfflineEngine(dict(data), secret={token_key: "doctor-placeholder"}, binary=binary)
    failures = []
    for definition in CATALOG.values():
        if f"trigger.{definition.trigger}" not in data:
            continue
        try:
            engine.trigger(definition.trigger, sample)
            if f"template.{definition.template}" in data:
                engine.notify(definition.template, sample)
        except EngineError as error:
            failures.append(f"{definition.trigger}: {str(error)[:300]}")
        except (OSError, subprocess.SubprocessError) as error:
            return [
                problem(
                    "engine",
                    f"the engine check could not run {binary}: {type(error).__name__}",
                    "install a working argocd CLI, or point ARGOBRIDGE_ARGOCD at one",
                )
            ]
    if failures:
        return [
            problem(
                "engine",
                f"Argo CD's engine rejects the configuration: {'; '.join(failures)}",
                "a key in argocd-notifications-cm breaks the whole configuration; compare with `argobridge render`",
            )
        ]
    return [ok("engine", "Argo CD's engine loads the configuration, runs every trigger, renders every template")]


def check_token(namespace: str, spec: BridgeSpec) -> tuple[list[Finding], str | None]:
    token = secrets.read_secret_key(namespace, spec.secret_name, spec.token_key)
    where = f"key {spec.token_key} of Secret {spec.secret_name}"
    if token is None and secrets.secret_uid(namespace, spec.secret_name) is None:
        fix = "Argo CD's install creates it (ArgoBridge never does): install or repair Argo CD's notifications"
        return [problem("token", f"Secret {namespace}/{spec.secret_name} does not exist", fix)], None
    if token is None:
        return [problem("token", f"no token in {where}", "the operator generates it; is it running?")], None
    why = token_problem(token)
    if why:
        return [problem("token", f"the token in {where} cannot work: {why}", "delete that key to get a new one")], None
    findings = [ok("token", f"token present in {where} (digest {token_digest(token)})")]
    if spec.mirror is not None:
        m = spec.mirror
        content = mirror.read_mirror(m.namespace, m.name, m.key, m.previous_key)
        digests = {"argocd": token_digest(token), "current": token_digest(content.current)}
        digests["previous"] = token_digest(content.previous)
        target = f"Secret {m.namespace}/{m.name}"
        if content.current is None:
            findings.append(problem("mirror", f"{target} holds no token", "the operator writes it; check its RBAC"))
        elif token in (content.current, content.previous):
            findings.append(ok("mirror", f"{target} holds Argo CD's token (digests {digests})"))
        else:
            findings.append(
                problem(
                    "mirror",
                    f"Argo CD's token is neither value of {target} (digests {digests}): Backstage answers 401",
                    "let the operator reconcile (it adopts Argo CD's token), then restart Backstage",
                )
            )
    return findings, token


def check_probe(namespace: str, name: str, spec: BridgeSpec, token: str) -> list[Finding]:
    from argobridge.steps.probing import forget, probe_bridge

    forget(namespace, name)
    condition, _ = probe_bridge(namespace, name, spec, token)
    if condition.status:
        return [ok("backstage", condition.message)]
    return [problem("backstage", f"Backstage probe: {condition.reason}", condition.message)]


def check_applications(namespace: str, spec: BridgeSpec, data: Mapping[str, str]) -> list[Finding]:
    items = custom_objects().list_cluster_custom_object("argoproj.io", "v1alpha1", "applications").get("items") or []
    known = known_config_for(spec, data)
    findings, count = [], 0
    for item in items:
        meta = item.get("metadata") or {}
        if not in_scope(str(meta.get("namespace")), namespace, spec.application_namespaces):
            continue
        count += 1
        facts = AppFacts(
            namespace=str(meta.get("namespace")),
            name=str(meta.get("name")),
            uid=str(meta.get("uid")),
            annotations=dict(meta.get("annotations") or {}),
            labels=dict(meta.get("labels") or {}),
        )
        diagnosis = diagnose_app(facts, known)
        for text in (*diagnosis.ref_problems, *diagnosis.subscription_problems):
            findings.append(problem("application", f"Application {facts.namespace}/{facts.name}: {text}", text))
    if not findings:
        findings.append(ok("application", f"{count} Applications checked, none with a bad ref or subscription"))
    return findings


def run_checks(namespace: str) -> list[Finding]:
    findings = check_crds()
    if not all(finding.ok for finding in findings if BRIDGE_CRD in finding.message):
        return findings
    found = bridges.list_bridges(namespace)
    if not found:
        return [
            *findings,
            problem(
                "bridge", f"no BackstageBridge in namespace {namespace}", "apply one (see the README's quick start)"
            ),
        ]
    findings.extend(check_controller(namespace))
    for body in found:
        name = str(body["metadata"]["name"])
        findings.append(ok("bridge", f"BackstageBridge {namespace}/{name}"))
        findings.extend(check_bridge_status(body))
        findings.extend(check_delivery(body.get("status") or {}))
        try:
            spec = parse_bridge_spec(body.get("spec") or {}, namespace)
        except SpecError as error:
            findings.append(problem("spec", str(error), "fix the spec"))
            continue
        conditions = (body.get("status") or {}).get("conditions") or []
        if any(c.get("reason") == "TokenAcceptedLegacyPath" for c in conditions):
            spec = replace(spec, notifications_path=LEGACY_NOTIFICATIONS_PATH)
        data = dict(configmaps.read_config_map(namespace, NOTIFICATIONS_CONFIGMAP).data or {})
        argocd_url = spec.argocd_url or (body.get("status") or {}).get("argocdUrl")
        url = service_url_of(data.get(f"service.webhook.{spec.service_name}") or "")
        delivery = observed_plan(spec, namespace, name, body.get("status") or {}, url)
        findings.extend(check_config(spec, data, argocd_url, delivery))
        findings.extend(check_engine(data, spec.token_key))
        token_findings, token = check_token(namespace, spec)
        findings.extend(token_findings)
        if token is not None:
            findings.extend(check_probe(namespace, name, spec, token))
        findings.extend(check_applications(namespace, spec, data))
    return findings


def format_text(findings: list[Finding]) -> str:
    lines = []
    for finding in findings:
        lines.append(f"{'ok  ' if finding.ok else 'FAIL'}  {finding.check:<22} {finding.message}")
        if not finding.ok and finding.fix and finding.fix != finding.message:
            lines.append(f"      {'':<22} fix: {finding.fix}")
    problems = sum(1 for finding in findings if not finding.ok)
    lines.append(f"{problems} problem(s) found" if problems else "no problems found")
    return "\n".join(lines)


def format_json(namespace: str, findings: list[Finding]) -> str:
    return json.dumps(
        {"namespace": namespace, "ok": all(f.ok for f in findings), "checks": [asdict(f) for f in findings]},
        indent=2,
    )


def doctor_command(namespace: str, output: str, checks: Callable[[str], list[Finding]] = run_checks) -> int:
    try:
        findings = checks(namespace)
    except KubeError as error:
        findings = [problem("cluster", str(error), "check the kubeconfig and ArgoBridge's permissions")]
    except TRANSPORT_ERRORS as error:
        findings = [problem("cluster", transport_message(error), "check the kubeconfig's server and the network")]
    print(format_json(namespace, findings) if output == "json" else format_text(findings))
    return 0 if all(finding.ok for finding in findings) else 1
