"""Harness for the delivery proofs of issue 14 ("How it is proven" 1, 2 and 4).

Each proof runs its Relay half and its Direct half at the same time, side by side: two Argo CD
namespaces, each with its own bridge and its own real notifications controller, driven by the same
script. The Direct bridge is served by the session's operator (no relay configured: Argo CD posts to
Backstage itself); the Relay bridge carries this module's shard label and is served by a second,
real operator process configured with a real relay process (`argobridge relay`), so Argo CD's webhook
service points at the relay and the relay forwards to Backstage. One real Backstage backend serves
both halves, accepting both bridges' tokens (a Backstage lists several static tokens the same way).

This package runs in its own pytest process next to the main suite (`pytest tests/delivery`): it starts
its own control plane through the session fixtures and shares nothing with the other process.
"""

from __future__ import annotations

import base64
import shutil
import uuid
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge_dev.argocd_install import install_argocd_objects
from argobridge_dev.backstage import BackstageServer
from argobridge_dev.controlplane import ControlPlane
from argobridge_dev.engine import NotificationsController
from argobridge_dev.relayproc import RelayProcess
from tests.conftest import FIGURES, wait_for
from tests.e2e.conftest import Rig, create_default_project

BRIDGE = "backstage"
RELAY_CONFIG_SECRET = "argobridge-relay-config"
USERS = ("alice", "bob", "carol")
# alice is in team-a, which owns component:default/shop (every app's entity ref); carol is on call;
# bob is in no group. The route makes each degradation reach carol too, in the same POST, so
# "exactly once per user" is checked for two recipients of one notification and one non-recipient.
ROUTES = [
    {"name": "degraded-oncall", "match": [{"events": ["HealthDegraded"]}], "recipients": ["group:default/oncall"]}
]
# The user's own Slack wiring, next to ArgoBridge's keys and never inside them: a webhook service, and a
# template/trigger pair of their own, subscribed per Application by annotation.
SLACK_TRIGGER, SLACK_SERVICE = "on-synced-slack", "slack"
SLACK_SUBSCRIPTION = f"notifications.argoproj.io/subscribe.{SLACK_TRIGGER}.{SLACK_SERVICE}"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slack_config(url: str) -> dict[str, str]:
    """The ConfigMap keys a user adds for a Slack-like webhook (one message per successful sync)."""
    return {
        f"service.webhook.{SLACK_SERVICE}": (
            f"url: {url}/services/T000/B000\nheaders:\n- name: Content-Type\n  value: application/json\n"
        ),
        "template.app-synced-slack": (
            "webhook:\n"
            f"  {SLACK_SERVICE}:\n"
            "    method: POST\n"
            "    body: |\n"
            '      {{ dict "app" .app.metadata.name "namespace" .app.metadata.namespace'
            ' "revision" (dig "status" "operationState" "syncResult" "revision" "" .app) | toRawJson }}\n'
        ),
        f"trigger.{SLACK_TRIGGER}": (
            "- when: app.status?.operationState != nil and app.status.operationState.phase in ['Succeeded']\n"
            "  oncePer: app.status.operationState?.syncResult?.revision\n"
            "  send: [app-synced-slack]\n"
        ),
    }


def add_slack_service(core: client.CoreV1Api, namespace: str, url: str) -> None:
    """What a user does by hand (`kubectl edit cm argocd-notifications-cm`): add their own keys, touch no other."""
    core.patch_namespaced_config_map("argocd-notifications-cm", namespace, {"data": slack_config(url)})


class Side(Rig):
    """One half of a proof: an Argo CD namespace, its bridge in one delivery mode, its own controller."""

    def __init__(
        self, mode: str, namespace: str, backstage: BackstageServer | None, controller: NotificationsController
    ) -> None:
        super().__init__(namespace, backstage, controller)  # type: ignore[arg-type]
        self.mode = mode

    def create_app(self, name: str, slack: bool = False) -> None:  # type: ignore[override]
        """An Application owned by component:default/shop; Backstage reaches it by the bridge's global
        subscription, Slack (when asked) by the user's own subscribe annotation."""
        annotations = {"backstage.io/entity-ref": "component:default/shop"}
        if slack:
            annotations[SLACK_SUBSCRIPTION] = ""
        body = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations},
            "spec": {
                "project": "default",
                "source": {"repoURL": "https://git.example.com/shop.git", "path": "deploy", "targetRevision": "HEAD"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
            },
        }
        self.apps.create_namespaced_custom_object("argoproj.io", "v1alpha1", self.namespace, "applications", body)

    def config(self) -> dict[str, str]:
        return dict(self.core.read_namespaced_config_map("argocd-notifications-cm", self.namespace).data or {})

    def delivery_mode(self) -> str | None:
        """What the bridge's status says about how its notifications travel."""
        return ((self.bridge().get("status") or {}).get("delivery") or {}).get("mode")

    def webhook_url(self) -> str:
        """Where Argo CD's `backstage` webhook service posts (Backstage in Direct mode, the relay in Relay mode)."""
        service = self.config().get(f"service.webhook.{BRIDGE}", "")
        return next((line.split(":", 1)[1].strip() for line in service.splitlines() if line.startswith("url:")), "")


def inbox(backstage: BackstageServer, user: str) -> list[dict[str, Any]]:
    """Every notification `user` has in Backstage, read with their own token (one page, large enough)."""
    answer = httpx.get(
        f"{backstage.url}/api/notifications/notifications",
        params={"limit": 5000, "offset": 0},
        headers={"Authorization": f"Bearer {backstage.user_token(user)}"},
        timeout=30,
    )
    answer.raise_for_status()
    body = answer.json()
    items = list(body["notifications"])
    assert len(items) == body.get("totalCount", len(items)), "one page must hold every notification"
    return items


def tally(
    backstage: BackstageServer, namespace: str, apps: Collection[str], users: tuple[str, ...] = USERS
) -> Counter[tuple[str, str, str]]:
    """How many notifications each user holds per (app, event), for these apps of one Argo CD namespace."""
    counts: Counter[tuple[str, str, str]] = Counter()
    prefix = f"argocd/{namespace}/"
    for user in users:
        for item in inbox(backstage, user):
            scope = item["payload"].get("scope") or ""
            if scope.startswith(prefix):
                app, _, event = scope[len(prefix) :].partition("/")
                if app in apps:
                    counts[(app, event, user)] += 1
    return counts


def expected_per_user(apps: list[str], events: tuple[str, ...]) -> Counter[tuple[str, str, str]]:
    """Exactly once for each recipient: alice (owning team) every event, carol (route) each degradation."""
    want: Counter[tuple[str, str, str]] = Counter()
    for app in apps:
        for event in events:
            want[(app, event, "alice")] = 1
            if event == "HealthDegraded":
                want[(app, event, "carol")] = 1
    return want


def compare(got: Counter[tuple[str, str, str]], want: Counter[tuple[str, str, str]]) -> tuple[int, int, int]:
    """(delivered exactly once, missing, extra) over the wanted app x event x user triples and any others."""
    once = sum(1 for key in want if got.get(key, 0) == 1)
    missing = sum(1 for key in want if got.get(key, 0) == 0)
    extra = sum(count for key, count in got.items() if key not in want) + sum(
        max(got.get(key, 0) - 1, 0) for key in want
    )
    return once, missing, extra


@dataclass
class RelayWiring:
    """A real relay process and a real operator process using it, serving bridges labelled `shard`."""

    relay: RelayProcess
    shard: str
    operator: Any
    config_secret: str

    def knows(self, namespace: str) -> bool:
        """The relay has this bridge in its config (Argo CD's posts to it would be refused with 404 before)."""
        try:
            return f"{namespace}/{BRIDGE}" in self.relay.status()["bridges"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    def pending(self, namespace: str) -> int:
        return int(self.relay.bridge_status(namespace, BRIDGE).get("pending", 0))


def start_relay_operator(kubeconfig: Path, shard: str, relay: RelayProcess, config_secret: str, log_path: Path) -> Any:
    """The operator as its own process, with the relay configured (the way the chart's Deployment runs it)."""
    from argobridge_dev.operatorproc import OperatorProcess  # from t14-wire

    env = {
        "ARGOBRIDGE_RELAY_URL": relay.url,
        "ARGOBRIDGE_RELAY_CONFIG_SECRET": config_secret,
        "ARGOBRIDGE_RELAY_STATUS_URLS": relay.status_url,
    }
    return OperatorProcess(kubeconfig, shard=shard, log_path=log_path, env=env).start()


@pytest.fixture(scope="module")
def relay_wiring(
    control_plane: ControlPlane, operator: Any, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelayWiring]:
    """The relay's namespace with its (chart-created, empty) config Secret, the relay, its operator."""
    core = client.CoreV1Api()
    suffix = uuid.uuid4().hex[:6]
    namespace, shard = f"argobridge-{suffix}", f"relay-{suffix}"
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": RELAY_CONFIG_SECRET}, "data": {}})
    secret = f"{namespace}/{RELAY_CONFIG_SECRET}"
    work = tmp_path_factory.mktemp("relay")
    relay = RelayProcess(work, config_secret=secret, kubeconfig=control_plane.kubeconfig).start()
    relay_operator = start_relay_operator(control_plane.kubeconfig, shard, relay, secret, work / "operator.log")
    try:
        yield RelayWiring(relay, shard, relay_operator, secret)
    finally:
        relay_operator.stop()
        relay.stop()


def create_bridge(custom: client.CustomObjectsApi, namespace: str, url: str, mode: str, labels: dict[str, str]) -> None:
    spec: dict[str, Any] = {
        "backstage": {"url": url},
        "argocd": {"url": "https://argocd.example.com"},
        "routes": ROUTES,
        # These proofs count each (app, event) Argo CD posted; noise control would fold a deploy's two
        # halves into one notification (tests/e2e/test_noise_control.py), so it is off here.
        "delivery": {"mode": mode, "minInterval": "0s"},
    }
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BackstageBridge",
        "metadata": {"name": BRIDGE, "namespace": namespace, "labels": labels},
        "spec": spec,
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def argocd_namespace(core: client.CoreV1Api, custom: client.CustomObjectsApi, tag: str) -> str:
    """A namespace standing for an installed Argo CD (its ConfigMap, Secret and `default` project)."""
    namespace = f"argocd-{tag}-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": namespace}})
    install_argocd_objects(core, namespace)
    create_default_project(custom, namespace)
    return namespace


def bridge_token(core: client.CoreV1Api, namespace: str) -> str | None:
    """The token ArgoBridge generated for this bridge, from Argo CD's Secret (None until it exists)."""
    try:
        data = core.read_namespaced_secret("argocd-notifications-secret", namespace).data or {}
    except client.exceptions.ApiException:
        return None
    value = data.get("backstage-token")
    return base64.b64decode(value).decode() if value else None


@dataclass
class Pair:
    relay: Side
    direct: Side
    wiring: RelayWiring
    backstage: BackstageServer | None

    @property
    def sides(self) -> tuple[Side, Side]:
        return self.relay, self.direct


@contextmanager
def side_by_side(
    control_plane: ControlPlane,
    wiring: RelayWiring,
    tmp_path_factory: pytest.TempPathFactory,
    backstage_url: str | None = None,
    slack_url: str | None = None,
) -> Iterator[Pair]:
    """Two Argo CD namespaces, one bridge each (Relay, Direct), both pointing at one Backstage.

    With `backstage_url` None a real Backstage is started on a port chosen first, accepting both bridges'
    tokens; otherwise both bridges point at `backstage_url` (e.g. HungBackstage). With `slack_url` each
    Argo CD also gets the user's own Slack service. Returns once Argo CD's webhook service of each side
    points where its mode says and the relay knows its bridge.
    """
    from argobridge_dev.controlplane import free_port

    core, custom = client.CoreV1Api(), client.CustomObjectsApi()
    backstage: BackstageServer | None = None
    port = free_port()
    url = backstage_url or f"http://127.0.0.1:{port}"
    relay_ns, direct_ns = argocd_namespace(core, custom, "relay"), argocd_namespace(core, custom, "direct")
    if slack_url:
        for namespace in (relay_ns, direct_ns):
            add_slack_service(core, namespace, slack_url)
    create_bridge(custom, relay_ns, url, "Relay", {"argobridge.io/shard": wiring.shard})
    create_bridge(custom, direct_ns, url, "Direct", {})
    relay_token = wait_for(lambda: bridge_token(core, relay_ns), timeout=60, what="Relay bridge's token")
    direct_token = wait_for(lambda: bridge_token(core, direct_ns), timeout=60, what="Direct bridge's token")
    if backstage_url is None:
        backstage = BackstageServer(token=direct_token, previous_token=relay_token, port=port).start()
        FIGURES.append(f"delivery: Backstage backend ready (catalog ingested) in {backstage.startup_seconds:.1f}s")
    logs = tmp_path_factory.mktemp("controllers")
    controllers = [
        NotificationsController(control_plane.kubeconfig, namespace, logs / f"{namespace}.log").start()
        for namespace in (relay_ns, direct_ns)
    ]
    pair = Pair(
        Side("Relay", relay_ns, backstage, controllers[0]),
        Side("Direct", direct_ns, backstage, controllers[1]),
        wiring,
        backstage,
    )
    try:
        relay_hook = f"{wiring.relay.url}/v1/bridges/{relay_ns}/{BRIDGE}/notifications"
        wait_for(lambda: pair.relay.webhook_url() == relay_hook, timeout=90, what=f"Argo CD posting to {relay_hook}")
        wait_for(lambda: wiring.knows(relay_ns), timeout=60, what="the relay knowing the Relay bridge")
        for side in pair.sides:
            wait_for(
                lambda side=side: side.delivery_mode() == side.mode,
                timeout=60,
                what=f"status.delivery.mode {side.mode}",
            )
        direct_hook = f"{url}/api/notifications/notifications"
        wait_for(lambda: pair.direct.webhook_url() == direct_hook, timeout=90, what=f"Argo CD posting to {direct_hook}")
        if slack_url:
            for side in pair.sides:
                assert side.config()[f"service.webhook.{SLACK_SERVICE}"].startswith(f"url: {slack_url}")
        yield pair
    finally:
        for controller in controllers:
            controller.stop()
        if backstage is not None:
            backstage.stop()
            if backstage.database:
                shutil.rmtree(backstage.database, ignore_errors=True)
