"""The Helm chart and the plain manifests, as shipped: lint, schema, restricted-v2, and a real install
whose ServiceAccount runs a full reconcile and is refused everything else."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.request
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from argobridge_dev.chart import (
    CHART,
    CRD_FILE,
    INSTALL_MANIFEST,
    MANIFESTS,
    crds_in_sync,
    default_manifest,
    helm,
    render_chart,
)
from tests.conftest import FIGURES, wait_for
from tests.deploy.conftest import ARGOCD_NAMESPACE, OTHER_NAMESPACE, RELEASE_NAMESPACE, UNRELATED_SECRET, ChartInstall

GROUP, VERSION, PLURAL = "argobridge.io", "v1alpha1", "backstagebridges"

# What OpenShift's restricted-v2 SCC allows a pod (and the restricted Pod Security Standard requires).
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


DEPLOYMENT = {
    "metadata": {"name": "x"},
    "spec": {
        "selector": {"matchLabels": {"app": "x"}},
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "x", "image": "x"}]}},
    },
}


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def restricted_v2_violations(pod_spec: dict[str, Any]) -> list[str]:
    """Every way a pod spec breaks OpenShift's restricted-v2 SCC, in words."""
    problems = []
    pod_context = pod_spec.get("securityContext") or {}
    for field in ("runAsUser", "fsGroup", "runAsGroup", "supplementalGroups"):
        if field in pod_context:
            problems.append(f"pod securityContext.{field} is fixed; restricted-v2 assigns it from the namespace")
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            problems.append(f"{flag} is set")
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} of type {sorted(kinds)} is not allowed")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    for container in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        name = container["name"]
        context = container.get("securityContext") or {}
        if "runAsUser" in context:
            problems.append(f"container {name} fixes runAsUser")
        if context.get("privileged"):
            problems.append(f"container {name} is privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name} must set allowPrivilegeEscalation: false")
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"container {name} must run as non-root")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"container {name} must drop ALL capabilities")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"container {name} adds capabilities {capabilities['add']}")
        seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"container {name} needs seccompProfile RuntimeDefault")
        if not context.get("readOnlyRootFilesystem"):
            problems.append(f"container {name} should have a read-only root filesystem")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            problems.append(f"container {name} uses a hostPort")
    return problems


# --- static: no cluster ---------------------------------------------------------------------------


def test_chart_lints_strictly() -> None:
    output = helm("lint", str(CHART), "--strict")
    assert "1 chart(s) linted, 0 chart(s) failed" in output


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["--set", "watchNamespaces[0]=Argo_CD"], "watchNamespaces"),
        (["--set", "operator.logFormat=xml"], "logFormat"),
        (["--set", "metrics.serviceMonitr.enabled=true"], "serviceMonitr"),
        (["--set", "replicaCount=2"], "leaderElection.enabled=true"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(values: list[str], expected: str) -> None:
    with pytest.raises(RuntimeError) as refused:
        render_chart(*values)
    assert expected in str(refused.value)


def test_plain_manifests_are_the_charts_default_rendering() -> None:
    assert INSTALL_MANIFEST.read_text() == default_manifest(), "run `make manifests` after changing the chart"
    assert crds_in_sync(), "charts/argobridge/crds and manifests/crds differ: run `make manifests`"


def test_kustomization_lists_exactly_the_install() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {"namespace.yaml", f"crds/{CRD_FILE}", "install/argobridge.yaml"}
    kinds = Counter(doc["kind"] for path in listed for doc in documents((MANIFESTS / path).read_text()))
    assert kinds["Deployment"] == 1 and kinds["CustomResourceDefinition"] == 1 and kinds["Namespace"] == 1
    image = kustomization["images"][0]
    deployment = of_kind(documents(INSTALL_MANIFEST.read_text()), "Deployment")[0]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{image['name']}:{image['newTag']}"


@pytest.mark.parametrize(
    "values",
    [[], ["--set", "watchNamespaces={argocd,apps}", "--set", "leaderElection.enabled=true", "--set", "replicaCount=2"]],
    ids=["default", "namespaced-ha"],
)
def test_pod_meets_restricted_v2(values: list[str]) -> None:
    deployment = of_kind(documents(render_chart(*values)), "Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    assert restricted_v2_violations(pod) == []
    env = {item["name"]: item for item in pod["containers"][0]["env"]}
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_restricted_check_catches_a_privileged_setting() -> None:
    deployment = of_kind(
        documents(render_chart("--set", "securityContext.allowPrivilegeEscalation=true")), "Deployment"
    )
    assert restricted_v2_violations(deployment[0]["spec"]["template"]["spec"]) == [
        "container operator must set allowPrivilegeEscalation: false"
    ]


def test_application_patch_is_granted_only_for_annotations_mode() -> None:
    def application_verbs(*values: str) -> list[str]:
        role = of_kind(documents(render_chart(*values)), "ClusterRole")[0]
        return next(rule["verbs"] for rule in role["rules"] if "applications" in rule["resources"])

    assert "patch" not in application_verbs()
    assert "patch" in application_verbs("--set", "rbac.applicationAnnotations=true")


def test_backstage_restart_is_granted_on_that_one_deployment_only() -> None:
    def deployment_rules(*values: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            (doc["kind"], doc["metadata"].get("namespace", ""), rule)
            for doc in documents(render_chart(*values))
            if doc["kind"] in {"Role", "ClusterRole"}
            for rule in doc["rules"]
            if "deployments" in rule["resources"]
        ]

    assert deployment_rules() == []
    assert deployment_rules("--set", "backstage.namespace=backstage,backstage.restartDeployment=web") == [
        (
            "Role",
            "backstage",
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"], "verbs": ["patch"]},
        )
    ]


def test_namespaced_install_gets_the_mirror_secret_in_backstages_namespace() -> None:
    docs = documents(render_chart("--set", "watchNamespaces={argocd}", "--set", "backstage.namespace=backstage"))
    (role,) = [doc for doc in of_kind(docs, "Role") if doc["metadata"]["namespace"] == "backstage"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "patch"]}]


@pytest.mark.parametrize(
    "values",
    [[], ["--set", "watchNamespaces={argocd}"], ["--set", "rbac.caBundleSecrets={backstage-ca}"]],
    ids=["default", "namespaced", "ca-bundle"],
)
def test_secrets_and_configmaps_are_granted_by_name_only(values: list[str]) -> None:
    docs = documents(render_chart(*values))
    rules = [
        rule
        for doc in docs
        if doc["kind"] in {"Role", "ClusterRole"} and not doc["metadata"]["name"].endswith("-backstage")
        for rule in doc["rules"]
        if {"secrets", "configmaps"} & set(rule["resources"])
    ]
    assert rules and all(rule.get("resourceNames") for rule in rules), rules
    names = {name for rule in rules for name in rule["resourceNames"]}
    expected = {
        "argocd-notifications-cm",
        "argocd-cm",
        "argocd-notifications-secret",
        "argocd-notifications-secret-argobridge",
        "argobridge-relay-config",  # the relay's config Secret, in the release namespace
    }
    assert names == expected | ({"backstage-ca"} if "rbac.caBundleSecrets={backstage-ca}" in values else set())
    creates = [rule for rule in rules if "create" in rule["verbs"]]
    assert all(rule["resourceNames"] == ["argocd-notifications-secret-argobridge"] for rule in creates), creates


def test_namespaced_install_grants_nothing_cluster_wide() -> None:
    docs = documents(render_chart("--set", "watchNamespaces={argocd,apps}"))
    roles = sorted((role["metadata"]["namespace"], role["metadata"]["name"]) for role in of_kind(docs, "Role"))
    # The served namespaces, and the relay's config Secret (relay and operator) in the release namespace.
    assert roles == [
        ("apps", "argobridge"),
        ("argobridge", "argobridge-relay"),
        ("argobridge", "argobridge-relay-config"),
        ("argocd", "argobridge"),
    ]
    assert of_kind(docs, "ClusterRole") == [] and of_kind(docs, "ClusterRoleBinding") == []
    args = of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=argocd" in args and "--namespace=apps" in args


# --- against a real apiserver -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "watchNamespaces={argocd-a,other-team}", "--set", "leaderElection.enabled=true"],
        ["--set", "rbac.applicationAnnotations=true", "--set", "metrics.enabled=false"],
        [
            "--set",
            "watchNamespaces={argocd-a}",
            "--set",
            "backstage.namespace=other-team,backstage.restartDeployment=web",
        ],
        ["--set", "relay.persistence.enabled=false,relay.replicas=3"],
        ["--set", "relay.enabled=false"],
    ],
    ids=["default", "namespaced-leader", "annotations-no-metrics", "backstage-restart", "relay-emptydir", "no-relay"],
)
def test_rendered_chart_passes_server_side_dry_run(chart_install: ChartInstall, values: list[str]) -> None:
    api = dynamic.DynamicClient(chart_install.admin)
    for doc in documents(render_chart(*values, namespace=RELEASE_NAMESPACE, release="dry")):
        resource = api.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        namespace = doc["metadata"].get("namespace") if resource.namespaced else None
        resource.server_side_apply(body=doc, namespace=namespace, field_manager="dry-run", dry_run="All")


def test_pod_security_admission_admits_the_pod(chart_install: ChartInstall) -> None:
    """The namespace enforces the restricted Pod Security Standard: the real admission judges the pod."""
    core = client.CoreV1Api(chart_install.admin)
    deployment = of_kind(documents(render_chart(namespace=RELEASE_NAMESPACE)), "Deployment")[0]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "admission-check"}}
    pod["spec"] = deployment["spec"]["template"]["spec"]
    core.create_namespaced_pod(RELEASE_NAMESPACE, pod, dry_run="All")
    privileged = yaml.safe_load(yaml.safe_dump(pod))
    privileged["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(RELEASE_NAMESPACE, privileged, dry_run="All")
    assert refused.value.status == 403 and "allowPrivilegeEscalation" in refused.value.body


def bridge_status(install: ChartInstall) -> dict[str, Any]:
    custom = client.CustomObjectsApi(install.admin)
    return (
        custom.get_namespaced_custom_object(GROUP, VERSION, ARGOCD_NAMESPACE, PLURAL, "backstage").get("status") or {}
    )


def ready(install: ChartInstall) -> dict[str, Any] | None:
    status = bridge_status(install)
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    return status if conditions.get("Ready", {}).get("status") == "True" else None


@pytest.fixture(scope="session")
def reconciled(chart_install: ChartInstall) -> dict[str, Any]:
    """A bridge and an Application in the served namespace, reconciled by the operator under the chart's RBAC."""
    admin = chart_install.admin
    custom = client.CustomObjectsApi(admin)
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop", "annotations": {"backstage.io/entity-ref": "component:default/shop"}},
        "spec": {"project": "default", "destination": {"namespace": "shop"}, "source": {"repoURL": "https://git"}},
    }
    custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", ARGOCD_NAMESPACE, "applications", app)
    bridge = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BackstageBridge",
        "metadata": {"name": "backstage"},
        "spec": {
            "backstage": {"url": "https://backstage.example.com"},
            "argocd": {"url": "https://argocd.example.com"},
        },
    }
    started = time.monotonic()
    custom.create_namespaced_custom_object(GROUP, VERSION, ARGOCD_NAMESPACE, PLURAL, bridge)
    status = wait_for(
        lambda: ready(chart_install),
        timeout=60,
        what=f"bridge Ready under the chart's RBAC (status: {bridge_status(chart_install)})",
    )
    FIGURES.append(f"bridge Ready under the chart's RBAC {time.monotonic() - started:.1f}s after creation")
    wait_for(lambda: (bridge_status(chart_install).get("applications") or {}).get("watched") == 1, what="app counted")
    return status


def test_full_reconcile_succeeds_under_the_charts_rbac(chart_install: ChartInstall, reconciled: dict[str, Any]) -> None:
    core = client.CoreV1Api(chart_install.admin)
    data = core.read_namespaced_config_map("argocd-notifications-cm", ARGOCD_NAMESPACE).data
    assert "service.webhook.backstage" in data and "trigger.on-sync-failed-backstage" in data
    secret = core.read_namespaced_secret("argocd-notifications-secret", ARGOCD_NAMESPACE)
    assert len(base64.b64decode(secret.data["backstage-token"])) >= 32
    log = chart_install.log.read_text()
    # 403 as a number of its own: a random port such as 40331 in "Serving Prometheus metrics" is no refusal.
    assert "Forbidden" not in log and not re.search(r"(?<!\d)403(?!\d)", log), log[-3000:]


def test_every_call_the_operator_made_was_allowed(chart_install: ChartInstall, reconciled: dict[str, Any]) -> None:
    """The audit log of the apiserver: every request by the ServiceAccount, and its response code."""
    time.sleep(4)  # one resync more, so periodic calls are in the log too
    calls: Counter[tuple[str, str, int]] = Counter()
    for line in chart_install.plane.audit_log.read_text().splitlines():
        event = json.loads(line)
        if event["user"]["username"] != chart_install.service_account_user:
            continue
        ref = event.get("objectRef") or {}
        resource = "/".join(filter(None, (ref.get("resource"), ref.get("subresource")))) or event["requestURI"]
        calls[(event["verb"], resource, event["responseStatus"]["code"])] += 1
    refused = {call: n for call, n in calls.items() if call[2] == 403}
    assert calls and not refused, f"calls refused by RBAC: {refused}"
    used = sorted({f"{verb} {resource}" for verb, resource, _ in calls})
    FIGURES.append(f"operator under chart RBAC made {sum(calls.values())} API calls, all allowed: {', '.join(used)}")


def test_secrets_and_configmaps_are_listed_and_watched_only_by_name(
    chart_install: ChartInstall, reconciled: dict[str, Any]
) -> None:
    """The audit log: every list or watch of Secrets or ConfigMaps the operator made named one object."""
    time.sleep(4)  # one resync more
    by_name: Counter[str] = Counter()
    other: list[str] = []
    for line in chart_install.plane.audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (
            event["user"]["username"] != chart_install.service_account_user
            or event["verb"] not in ("list", "watch")
            or ref.get("resource") not in ("secrets", "configmaps")
        ):
            continue
        query = parse_qs(urlsplit(event["requestURI"]).query)
        selector = query.get("fieldSelector", [""])[0]
        if selector.startswith("metadata.name=") and "," not in selector:
            by_name[f"{event['verb']} {ref['resource']} {selector}"] += 1
        else:
            other.append(event["requestURI"])
    assert not other, f"lists or watches of Secrets or ConfigMaps not by name: {other[:5]}"
    assert {"secrets", "configmaps"} <= {key.split()[1] for key in by_name}, by_name
    watched = sorted({key.split(" ", 1)[1] for key in by_name if key.startswith("watch")})
    FIGURES.append(f"operator lists and watches Secrets and ConfigMaps only by name: {', '.join(watched)}")


@pytest.mark.parametrize(
    ("action", "call"),
    [
        (
            "patch an Application (Global mode grants no write)",
            lambda c: client.CustomObjectsApi(c).patch_namespaced_custom_object(
                "argoproj.io",
                "v1alpha1",
                ARGOCD_NAMESPACE,
                "applications",
                "shop",
                {"metadata": {"labels": {"x": "y"}}},
            ),
        ),
        (
            "read a Secret in a namespace it does not serve",
            lambda c: client.CoreV1Api(c).list_namespaced_secret(OTHER_NAMESPACE),
        ),
        (
            "delete Argo CD's notifications ConfigMap",
            lambda c: client.CoreV1Api(c).delete_namespaced_config_map("argocd-notifications-cm", ARGOCD_NAMESPACE),
        ),
        (
            "read an unrelated Secret beside Argo CD's, in a namespace it serves",
            lambda c: client.CoreV1Api(c).read_namespaced_secret(UNRELATED_SECRET, ARGOCD_NAMESPACE),
        ),
        (
            "list the Secrets of a namespace it serves (only by name)",
            lambda c: client.CoreV1Api(c).list_namespaced_secret(ARGOCD_NAMESPACE),
        ),
        (
            "watch the ConfigMaps of a namespace it serves (only by name)",
            lambda c: client.CoreV1Api(c).list_namespaced_config_map(ARGOCD_NAMESPACE, watch=True, timeout_seconds=1),
        ),
        (
            "create a Secret of another name in a namespace it serves",
            lambda c: client.CoreV1Api(c).create_namespaced_secret(ARGOCD_NAMESPACE, {"metadata": {"name": "x"}}),
        ),
        (
            "create Argo CD's notifications ConfigMap (Argo CD's install does)",
            lambda c: client.CoreV1Api(c).create_namespaced_config_map(
                ARGOCD_NAMESPACE, {"metadata": {"name": "argocd-notifications-cm"}}
            ),
        ),
        (
            "create a Deployment",
            lambda c: client.AppsV1Api(c).create_namespaced_deployment(ARGOCD_NAMESPACE, DEPLOYMENT),
        ),
        (
            "write a Secret cluster-wide",
            lambda c: client.CoreV1Api(c).create_namespaced_secret("kube-system", {"metadata": {"name": "x"}}),
        ),
    ],
    ids=[
        "app-patch",
        "other-ns-secret",
        "cm-delete",
        "unrelated-secret-read",
        "secret-list",
        "configmap-watch",
        "secret-create",
        "cm-create",
        "deployment",
        "kube-system-secret",
    ],
)
def test_a_call_outside_the_charts_rbac_is_refused(
    chart_install: ChartInstall, reconciled: dict[str, Any], action: str, call: Any
) -> None:
    with pytest.raises(ApiException) as refused:
        call(chart_install.operator)
    assert refused.value.status == 403, f"{action}: expected 403, got {refused.value.status}"


def test_metrics_endpoint_reports_the_reconcile(chart_install: ChartInstall, reconciled: dict[str, Any]) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{chart_install.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def value(name: str, **extra: str) -> float:
        labels = tuple(sorted({"namespace": ARGOCD_NAMESPACE, "bridge": "backstage", **extra}.items()))
        assert (name, labels) in samples, f"no sample {name}{dict(labels)} in:\n{text}"
        return samples[(name, labels)]

    assert value("argobridge_reconcile_total", result="ready") >= 1
    assert value("argobridge_reconcile_duration_seconds_count") >= 1
    assert value("argobridge_applications", state="watched") == 1
    assert 0 <= value("argobridge_token_age_seconds") < 600
    assert value("argobridge_backstage_reachable") == 0  # backstage.example.com does not answer here
    assert value("argobridge_backstage_probe", reason="Unreachable") == 1


def test_the_leader_holds_the_lease(chart_install: ChartInstall, reconciled: dict[str, Any]) -> None:
    lease = client.CoordinationV1Api(chart_install.admin).read_namespaced_lease("argobridge", RELEASE_NAMESPACE)
    assert lease.spec.holder_identity == "argobridge-7d9f8c6b5-x2k4p"


def test_annotations_mode_without_the_grant_says_which_value_grants_it(
    chart_install: ChartInstall, reconciled: dict[str, Any]
) -> None:
    """Last in this module: it switches the shared bridge to Annotations mode."""
    custom = client.CustomObjectsApi(chart_install.admin)
    patch = {"spec": {"subscriptions": {"mode": "Annotations"}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, ARGOCD_NAMESPACE, PLURAL, "backstage", patch)
    core = client.CoreV1Api(chart_install.admin)

    def warning() -> str | None:
        events = core.list_namespaced_event(ARGOCD_NAMESPACE).items
        found = [e.message for e in events if e.reason == "AnnotationsForbidden"]
        return found[0] if found else None

    message = wait_for(warning, what="an AnnotationsForbidden Event on the bridge")
    assert "--set rbac.applicationAnnotations=true" in message
    app = custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", ARGOCD_NAMESPACE, "applications", "shop")
    assert not any(key.startswith("notifications.argoproj.io") for key in app["metadata"].get("annotations", {}))
