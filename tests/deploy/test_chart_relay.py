"""The chart's delivery relay: rendered by default, gone with `relay.enabled=false`, admitted as restricted,
installed on a real apiserver with RBAC that lets the operator get/patch and the relay only get the one
config Secret, and a `helm upgrade` that keeps the keys the operator wrote into that Secret."""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from argobridge_dev.chart import CHART, helm, render_chart
from tests.conftest import FIGURES, wait_for
from tests.deploy.conftest import RELAY, RELAY_CONFIG_SECRET, RELEASE, RELEASE_NAMESPACE, ChartInstall
from tests.deploy.test_chart import documents, of_kind, restricted_v2_violations

RELAY_ENV = ("ARGOBRIDGE_RELAY_URL", "ARGOBRIDGE_RELAY_CONFIG_SECRET", "ARGOBRIDGE_RELAY_STATUS_URLS")
# A bridge no other test creates: another module's live operator writes the real key of argocd-a/backstage.
BRIDGE_NAMESPACE, BRIDGE_NAME = "relay-rbac", "backstage"
BRIDGE_KEY = f"{BRIDGE_NAMESPACE}.{BRIDGE_NAME}"
BRIDGE_MANAGER = f"argobridge/{BRIDGE_NAMESPACE}/{BRIDGE_NAME}"  # the operator's field manager for that key


def operator_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    container = of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def relay_objects(docs: list[dict[str, Any]]) -> list[str]:
    """Every rendered object that belongs to the relay (by label or by name), as Kind/name."""
    return [
        f"{doc['kind']}/{doc['metadata']['name']}"
        for doc in docs
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "relay"
        or "relay" in doc["metadata"]["name"]
    ]


def relay_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = of_kind(docs, "StatefulSet")[0]["spec"]["template"]["spec"]
    return pod


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- static: no cluster ---------------------------------------------------------------------------


def test_default_rendering_installs_the_relay_and_points_the_operator_at_it() -> None:
    docs = documents(render_chart())
    assert sorted(relay_objects(docs)) == [
        "PodDisruptionBudget/argobridge-relay",
        "Role/argobridge-relay",
        "Role/argobridge-relay-config",
        "RoleBinding/argobridge-relay",
        "RoleBinding/argobridge-relay-config",
        "Secret/argobridge-relay-config",
        "Service/argobridge-relay",
        "Service/argobridge-relay-headless",
        "ServiceAccount/argobridge-relay",
        "StatefulSet/argobridge-relay",
    ]
    env = operator_env(docs)
    assert {name: env[name] for name in RELAY_ENV} == {
        "ARGOBRIDGE_RELAY_URL": "http://argobridge-relay.argobridge.svc:8090",
        "ARGOBRIDGE_RELAY_CONFIG_SECRET": "argobridge/argobridge-relay-config",
        "ARGOBRIDGE_RELAY_STATUS_URLS": "http://argobridge-relay-0.argobridge-relay-headless.argobridge.svc:8091,"
        "http://argobridge-relay-1.argobridge-relay-headless.argobridge.svc:8091",
    }
    statefulset = of_kind(docs, "StatefulSet")[0]
    assert statefulset["spec"]["replicas"] == 2
    assert statefulset["spec"]["serviceName"] == "argobridge-relay-headless"
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    deployment = of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == deployment["image"]  # one image, two commands
    assert container["args"][0] == "relay"
    assert "--config-secret=argobridge/argobridge-relay-config" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "status"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "status"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"ingress": 8090, "status": 8091}
    assert container["resources"]["limits"]["memory"] == "128Mi"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in claim["spec"]  # "" would mean "no class", not the cluster's default
    assert of_kind(docs, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] == 1


def test_config_secret_has_no_data_for_helm_to_reapply() -> None:
    secrets = of_kind(documents(render_chart()), "Secret")
    (secret,) = [doc for doc in secrets if doc["metadata"]["name"] == RELAY_CONFIG_SECRET]
    assert not {"data", "stringData", "immutable"} & set(secret)
    assert secret["metadata"]["labels"]["app.kubernetes.io/component"] == "relay"
    assert "helm.sh/resource-policy" not in (secret["metadata"].get("annotations") or {})


def test_relay_disabled_renders_none_of_it_and_the_operator_gets_no_relay_settings() -> None:
    docs = documents(render_chart("--set", "relay.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"))
    assert relay_objects(docs) == []
    assert not set(RELAY_ENV) & set(operator_env(docs))
    assert "relay" not in json.dumps([doc for doc in docs if doc["kind"] in {"Role", "ClusterRole"}])


@pytest.mark.parametrize("values", [[], ["--set", "relay.persistence.enabled=false"]], ids=["persistent", "emptydir"])
def test_relay_pod_meets_restricted_v2(values: list[str]) -> None:
    pod = relay_pod(documents(render_chart(*values)))
    assert restricted_v2_violations(pod) == []
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"data": "/var/lib/argobridge-relay", "tmp": "/tmp"}


def test_without_persistence_the_outbox_is_an_emptydir() -> None:
    statefulset = of_kind(documents(render_chart("--set", "relay.persistence.enabled=false")), "StatefulSet")[0]
    assert "volumeClaimTemplates" not in statefulset["spec"]
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}


def test_storage_class_and_replicas_and_names_follow_the_values() -> None:
    docs = documents(
        render_chart(
            "--set",
            "relay.persistence.storageClassName=fast,relay.replicas=3,relay.ports.status=9191",
            "--set",
            "fullnameOverride=ab",
            namespace="ops",
        )
    )
    claim = of_kind(docs, "StatefulSet")[0]["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["storageClassName"] == "fast"
    urls = operator_env(docs)["ARGOBRIDGE_RELAY_STATUS_URLS"].split(",")
    assert urls == [f"http://ab-relay-{i}.ab-relay-headless.ops.svc:9191" for i in range(3)]
    assert operator_env(docs)["ARGOBRIDGE_RELAY_CONFIG_SECRET"] == "ops/ab-relay-config"


def test_long_release_names_still_give_valid_relay_names() -> None:
    docs = documents(render_chart("--set", "fullnameOverride=" + "a" * 63))
    names = [doc["metadata"]["name"] for doc in docs if "relay" in doc["metadata"]["name"]]
    assert names and all(len(name) <= 63 for name in names), names
    statefulset = of_kind(docs, "StatefulSet")[0]["metadata"]["name"]
    # The controller-revision-hash label is <name>-<10 characters> and a pod's DNS label is <name>-<i>.
    assert len(statefulset) + 11 <= 63


def test_operator_selectors_never_match_relay_pods() -> None:
    """The operator's Deployment, metrics Service and ServiceMonitor must not pick up relay pods."""
    docs = documents(render_chart("--set", "metrics.serviceMonitor.enabled=true"))
    relay_labels = of_kind(docs, "StatefulSet")[0]["spec"]["template"]["metadata"]["labels"]
    operator_labels = of_kind(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert not matches(of_kind(docs, "Deployment")[0]["spec"]["selector"]["matchLabels"], relay_labels)
    services = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "Service")}
    assert not matches(services["argobridge-metrics"]["spec"]["selector"], relay_labels)
    for name in ("argobridge-relay", "argobridge-relay-headless"):
        assert matches(services[name]["spec"]["selector"], relay_labels)
        assert not matches(services[name]["spec"]["selector"], operator_labels)
    monitors = {doc["metadata"]["name"]: doc["spec"] for doc in of_kind(docs, "ServiceMonitor")}
    assert set(monitors) == {"argobridge", "argobridge-relay"}
    picked = {
        monitor: [name for name, svc in services.items() if matches(wanted, svc["metadata"]["labels"])]
        for monitor, wanted in ((monitor, spec["selector"]["matchLabels"]) for monitor, spec in monitors.items())
    }
    # One target per relay pod: through the headless Service only, not twice through both.
    assert picked == {"argobridge": ["argobridge-metrics"], "argobridge-relay": ["argobridge-relay-headless"]}
    assert monitors["argobridge-relay"]["endpoints"][0]["port"] == "status"


def test_replicas_prefer_different_nodes_and_spread_constraints_get_the_relay_selector() -> None:
    spread = '[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway"}]'
    pod = relay_pod(documents(render_chart("--set-json", f"relay.topologySpreadConstraints={spread}")))
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    relay_selector = {"app.kubernetes.io/name": "argobridge-relay", "app.kubernetes.io/instance": "argobridge"}
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == relay_selector
    (constraint,) = pod["topologySpreadConstraints"]
    assert constraint["labelSelector"] == {"matchLabels": relay_selector}
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"


def test_relay_rbac_is_get_on_its_secret_and_the_operators_is_get_patch() -> None:
    roles = {doc["metadata"]["name"]: doc["rules"] for doc in of_kind(documents(render_chart()), "Role")}
    secret_rule = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [RELAY_CONFIG_SECRET]}
    assert roles["argobridge-relay"] == [{**secret_rule, "verbs": ["get"]}]
    assert roles["argobridge-relay-config"] == [{**secret_rule, "verbs": ["get", "patch"]}]
    bindings = {doc["metadata"]["name"]: doc["subjects"] for doc in of_kind(documents(render_chart()), "RoleBinding")}
    assert [s["name"] for s in bindings["argobridge-relay"]] == ["argobridge-relay"]
    assert [s["name"] for s in bindings["argobridge-relay-config"]] == ["argobridge"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["--set-string", "relay.replicas=two"], "replicas"),
        (["--set", "relay.replicas=0"], "replicas"),
        (["--set", "relay.persistence.sise=2Gi"], "sise"),
        (["--set", "relay.persistence.size=lots"], "size"),
        (["--set", "relay.ports.status=70000"], "status"),
        (["--set", "relay.persistence.accessModes={ReadWriteSometimes}"], "accessModes"),
        (["--set", "relay.enabled=yes-please"], "enabled"),
    ],
)
def test_bad_relay_values_are_refused_with_the_field_named(values: list[str], expected: str) -> None:
    with pytest.raises(RuntimeError) as refused:
        render_chart(*values)
    assert expected in str(refused.value)


# --- against a real apiserver (objects only: there is no kubelet) -----------------------------------


def test_install_creates_the_relay_objects(chart_install: ChartInstall) -> None:
    admin = chart_install.admin
    statefulset = client.AppsV1Api(admin).read_namespaced_stateful_set(RELAY, RELEASE_NAMESPACE)
    assert statefulset.spec.replicas == 2
    assert statefulset.spec.volume_claim_templates[0].spec.resources.requests["storage"] == "1Gi"
    core = client.CoreV1Api(admin)
    assert core.read_namespaced_service(RELAY, RELEASE_NAMESPACE).spec.type == "ClusterIP"
    assert core.read_namespaced_service(f"{RELAY}-headless", RELEASE_NAMESPACE).spec.cluster_ip == "None"
    pdb = client.PolicyV1Api(admin).read_namespaced_pod_disruption_budget(RELAY, RELEASE_NAMESPACE)
    assert pdb.spec.max_unavailable == 1
    secret = core.read_namespaced_secret(RELAY_CONFIG_SECRET, RELEASE_NAMESPACE)
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
    env = chart_install.operator_env
    assert env["ARGOBRIDGE_RELAY_URL"] == f"http://{RELAY}.{RELEASE_NAMESPACE}.svc:8090"
    assert env["ARGOBRIDGE_RELAY_CONFIG_SECRET"] == f"{RELEASE_NAMESPACE}/{RELAY_CONFIG_SECRET}"


def test_pod_security_admission_admits_the_relay_pod(chart_install: ChartInstall) -> None:
    """The release namespace enforces the restricted Pod Security Standard: the real admission judges it."""
    core = client.CoreV1Api(chart_install.admin)
    statefulset = of_kind(documents(render_chart(namespace=RELEASE_NAMESPACE)), "StatefulSet")[0]
    spec = statefulset["spec"]["template"]["spec"]
    # What the StatefulSet controller adds for replica 0: its claim from the volumeClaimTemplate.
    spec["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": f"data-{RELAY}-0"}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{RELAY}-0"}, "spec": spec}
    core.create_namespaced_pod(RELEASE_NAMESPACE, pod, dry_run="All")
    root = yaml.safe_load(yaml.safe_dump(pod))
    root["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(RELEASE_NAMESPACE, root, dry_run="All")
    assert refused.value.status == 403 and "runAsUser=0" in refused.value.body


def allowed(install: ChartInstall, user: str, verb: str, name: str | None) -> bool:
    """The apiserver's own RBAC decision (SubjectAccessReview) for a Secret in the release namespace."""
    review = {
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{RELEASE_NAMESPACE}", "system:authenticated"],
            "resourceAttributes": {"namespace": RELEASE_NAMESPACE, "resource": "secrets", "verb": verb, "name": name},
        }
    }
    answer = client.AuthorizationV1Api(install.admin).create_subject_access_review(review)
    return bool(answer.status.allowed)


SECRET_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


def test_operator_may_get_and_patch_only_the_config_secret(chart_install: ChartInstall) -> None:
    user = chart_install.service_account_user
    granted = {verb for verb in SECRET_VERBS if allowed(chart_install, user, verb, RELAY_CONFIG_SECRET)}
    assert granted == {"get", "patch"}
    assert not any(allowed(chart_install, user, verb, "some-other-secret") for verb in SECRET_VERBS)
    assert not any(allowed(chart_install, user, verb, None) for verb in SECRET_VERBS)


def test_relay_may_only_get_the_config_secret(chart_install: ChartInstall) -> None:
    user = chart_install.relay_user
    assert {verb for verb in SECRET_VERBS if allowed(chart_install, user, verb, RELAY_CONFIG_SECRET)} == {"get"}
    assert not any(allowed(chart_install, user, verb, "some-other-secret") for verb in SECRET_VERBS)
    assert not any(allowed(chart_install, user, verb, None) for verb in SECRET_VERBS)


def relay_entry(url: str) -> dict[str, Any]:
    return {
        "url": url,
        "token": "t" * 43,
        "acceptTokens": [],
        "retryForSeconds": 86400.0,
        "attemptTimeoutSeconds": 10.0,
        "caBundle": None,
        "insecureSkipVerify": False,
    }


def apply_key_as_operator(install: ChartInstall, key: str, entry: dict[str, Any]) -> None:
    """What the operator does for a bridge in Relay mode: server-side apply of its one key, with its token."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": RELAY_CONFIG_SECRET, "namespace": RELEASE_NAMESPACE},
        "data": {key: base64.b64encode(json.dumps(entry).encode()).decode()},
    }
    client.CoreV1Api(install.operator).patch_namespaced_secret(
        RELAY_CONFIG_SECRET,
        RELEASE_NAMESPACE,
        body,
        field_manager=BRIDGE_MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )


def config_keys(install: ChartInstall) -> dict[str, Any]:
    secret = client.CoreV1Api(install.admin).read_namespaced_secret(RELAY_CONFIG_SECRET, RELEASE_NAMESPACE)
    return {key: json.loads(base64.b64decode(value)) for key, value in (secret.data or {}).items()}


@pytest.fixture(scope="module")
def operator_key(chart_install: ChartInstall) -> dict[str, Any]:
    """A bridge's key in the config Secret, written under the operator's RBAC as the operator writes it."""
    entry = relay_entry("https://backstage.example.com/api/notifications/notifications")
    apply_key_as_operator(chart_install, BRIDGE_KEY, entry)
    return entry


def test_the_relay_reads_the_operators_key_under_its_own_rbac(
    chart_install: ChartInstall, operator_key: dict[str, Any]
) -> None:
    started = time.monotonic()
    wait_for(
        lambda: chart_install.relay.bridge_status(BRIDGE_NAMESPACE, BRIDGE_NAME),
        timeout=30,
        what=f"the relay knowing the bridge from its config Secret (log: {chart_install.relay.log()[-2000:]})",
    )
    FIGURES.append(f"relay under its chart RBAC saw the operator's key after {time.monotonic() - started:.1f}s")
    assert "cannot read relay config" not in chart_install.relay.log()
    relay_api = client.CoreV1Api(config.new_client_from_config(config_file=str(chart_install.relay.kubeconfig)))
    with pytest.raises(ApiException) as refused:  # the relay's token may not write its config
        relay_api.patch_namespaced_secret(RELAY_CONFIG_SECRET, RELEASE_NAMESPACE, {"data": {"x": "eA=="}})
    assert refused.value.status == 403


def test_every_call_the_relay_made_was_a_get_of_its_config_secret(
    chart_install: ChartInstall, operator_key: dict[str, Any]
) -> None:
    """The apiserver's audit log: the relay's token read its one Secret, was allowed, and did nothing else."""
    relay = chart_install.relay
    wait_for(lambda: relay.bridge_status(BRIDGE_NAMESPACE, BRIDGE_NAME), timeout=30, what="relay config read")
    calls: set[tuple[str, str, str, int]] = set()
    for line in chart_install.plane.audit_log.read_text().splitlines():
        event = json.loads(line)
        if event["user"]["username"] != chart_install.relay_user:
            continue
        ref = event.get("objectRef") or {}
        calls.add((event["verb"], ref.get("resource", ""), ref.get("name", ""), event["responseStatus"]["code"]))
    # The refused patch is the test above, made with the relay's token on purpose.
    calls.discard(("patch", "secrets", RELAY_CONFIG_SECRET, 403))
    assert calls == {("get", "secrets", RELAY_CONFIG_SECRET, 200)}


def test_helm_upgrade_keeps_the_keys_the_operator_wrote(
    chart_install: ChartInstall, operator_key: dict[str, Any], tmp_path: Path
) -> None:
    """A new chart version relabels the Secret, so Helm really patches it; the operator's key stays."""
    before = config_keys(chart_install)[BRIDGE_KEY]
    assert before == operator_key
    newer = tmp_path / "argobridge"
    shutil.copytree(CHART, newer)
    chart = yaml.safe_load((newer / "Chart.yaml").read_text())
    chart["version"] = "0.1.1-upgrade"
    (newer / "Chart.yaml").write_text(yaml.safe_dump(chart))
    started = time.monotonic()
    helm(
        "upgrade",
        RELEASE,
        str(newer),
        "--namespace",
        RELEASE_NAMESPACE,
        "--reuse-values",
        "--set",
        "relay.podAnnotations.upgraded=yes",
        kubeconfig=chart_install.plane.kubeconfig,
    )
    FIGURES.append(f"helm upgrade of the chart: {time.monotonic() - started:.1f}s")
    statefulset = client.AppsV1Api(chart_install.admin).read_namespaced_stateful_set(RELAY, RELEASE_NAMESPACE)
    assert statefulset.spec.template.metadata.annotations == {"upgraded": "yes"}  # the upgrade did apply
    secret = client.CoreV1Api(chart_install.admin).read_namespaced_secret(RELAY_CONFIG_SECRET, RELEASE_NAMESPACE)
    assert secret.metadata.labels["helm.sh/chart"] == "argobridge-0.1.1-upgrade"  # Helm did patch the Secret
    # Only this key: other modules' live operators keep writing theirs (real bridges, real tokens).
    assert config_keys(chart_install).get(BRIDGE_KEY) == operator_key, "helm upgrade lost the operator's key"
    managers = {entry.manager for entry in secret.metadata.managed_fields}
    assert BRIDGE_MANAGER in managers


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], "keeps its outbox on a 1Gi PersistentVolumeClaim"),
        (["--set", "relay.persistence.enabled=false"], "pending and the\ndelivery counters are lost"),
        (["--set", "relay.enabled=false"], "No delivery relay (relay.enabled=false): every bridge delivers directly"),
    ],
    ids=["persistent", "emptydir", "disabled"],
)
def test_install_notes_say_what_the_relay_keeps(chart_install: ChartInstall, values: list[str], expected: str) -> None:
    output = helm(
        "install",
        "notes",
        str(CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--dry-run=server",
        *values,
        kubeconfig=chart_install.plane.kubeconfig,
    )
    assert expected in output.split("NOTES:", 1)[1]
