"""`argobridge demo` (`make run`): the mission end to end, or the operator on your cluster.

Without a reachable cluster (the usual first run), everything runs here as local processes: etcd and
kube-apiserver, the operator, Argo CD's real notifications controller and a real Backstage backend
with a small catalog. An Application owned (through the catalog) by alice has its sync fail, and the
demo prints the notification as alice reads it from Backstage's API, then the bridge's status.

With a reachable cluster it applies the sample bridge into its own namespace (an existing Argo CD is
never touched), prints what the operator wrote and keeps the operator running.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import yaml
from kubernetes import client, config

from argobridge.core.render import to_yaml
from argobridge.core.spec import DEFAULT_SECRET_NAME, GROUP, NOTIFICATIONS_CONFIGMAP, PLURAL, VERSION
from argobridge.kube.crds import MANIFESTS

if TYPE_CHECKING:
    from argobridge_dev.backstage import BackstageServer

DEMO_NAMESPACE = "argobridge-demo"
DEMO_APP = "shop"
DEMO_ENTITY_REF = "component:default/shop"  # in tests/e2e/backstage/catalog: owned by group team-a (alice)
DEMO_READER = "alice"
STOP_GRACE = 2.5  # seconds the operator gets to stop after Ctrl-C; the promise to users is 5 s in all

T = TypeVar("T")


def cluster_reachable() -> bool:
    """Whether the current kubeconfig points at an apiserver that answers within a few seconds."""
    try:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)  # type: ignore[no-untyped-call]
        api = client.VersionApi()
        api.get_code(_request_timeout=5)
    except Exception:
        return False
    return True


def say(message: str = "") -> None:
    print(message, flush=True)


def sample_bridge(namespace: str, backstage_url: str | None = None) -> dict[str, Any]:
    """The sample bridge of manifests/samples, in `namespace`, pointed at `backstage_url` when given."""
    sample: dict[str, Any] = yaml.safe_load((MANIFESTS / "samples" / "backstagebridge.yaml").read_text())
    sample["metadata"]["namespace"] = namespace
    if backstage_url:
        sample["spec"]["backstage"]["url"] = backstage_url
    return sample


def apply_sample(namespace: str, backstage_url: str | None = None) -> dict[str, Any]:
    """Create the demo namespace, Argo CD's two objects, and apply the sample bridge into it."""
    from argobridge.kube.client import api_client
    from argobridge_dev.argocd_install import install_argocd_objects

    core = client.CoreV1Api(api_client())
    core.patch_namespace(
        namespace,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        field_manager="argobridge-demo",
        _content_type="application/apply-patch+yaml",
    )
    # The demo stands in for an installed Argo CD: its install creates these two, ArgoBridge never does.
    install_argocd_objects(core, namespace)
    sample = sample_bridge(namespace, backstage_url)
    client.CustomObjectsApi(api_client()).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        sample["metadata"]["name"],
        sample,
        field_manager="argobridge-demo",
        _content_type="application/apply-patch+yaml",
    )
    return sample


def _condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def wait_ready(namespace: str, name: str, timeout: float = 60.0, also: tuple[str, ...] = ()) -> dict[str, Any]:
    """Poll the bridge until Ready (and the `also` conditions) are True; return the body either way at the deadline."""
    from argobridge.kube.bridges import get_bridge

    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = get_bridge(namespace, name) or {}
        if all(_condition(body, kind).get("status") == "True" for kind in ("Ready", *also)):
            return body
        time.sleep(0.5)
    return body


def wait(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll `probe` until it returns something; a TimeoutError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: nothing after {timeout:.0f}s")
        time.sleep(interval)


def show(namespace: str, body: dict[str, Any]) -> None:
    from argobridge.kube.configmaps import read_config_map

    data = read_config_map(namespace, NOTIFICATIONS_CONFIGMAP).data or {}
    say(f"\n=== ConfigMap {namespace}/{NOTIFICATIONS_CONFIGMAP} (written by ArgoBridge)")
    say(to_yaml({"data": dict(sorted(data.items()))}))
    say(f"=== BackstageBridge {namespace}/{body.get('metadata', {}).get('name')} status")
    say(yaml.safe_dump({"status": body.get("status")}, sort_keys=False, width=1000))


def run_demo(once: bool = False) -> int:
    """The mission on a local control plane, or the sample bridge on the cluster that answers."""
    from argobridge_dev.processes import sigterm_as_interrupt

    # SIGTERM unwinds like Ctrl-C, so every `with` below stops what it started.
    with sigterm_as_interrupt():
        try:
            if cluster_reachable():
                return run_on_cluster(once)
            code = run_mission(once)
        except KeyboardInterrupt:
            code = 0
    exit_without_teardown(code)


def exit_without_teardown(code: int) -> NoReturn:
    """Exit once everything the mission started has stopped, skipping the interpreter's teardown.

    Freeing the heap of the operator, the Kubernetes client's models and kopf took 3 to 5 s on a busy
    2-core machine (a gc pass alone 1.2 s), all of it after every process was gone: Ctrl-C of the
    demo took 6 s against the 5 s promised. Nothing is left to do at that point but flush the output.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_on_cluster(once: bool) -> int:
    """Install the CRD, apply the sample, run the operator; print what it produced once it is Ready."""
    from argobridge.kube.crds import install_crds
    from argobridge.runtime.operator_main import run_operator

    say("Using the cluster of the current kubeconfig.")
    install_crds()
    outcome: dict[str, bool] = {}
    stop, ready = threading.Event(), threading.Event()

    def drive() -> None:
        ready.wait()
        sample = apply_sample(DEMO_NAMESPACE)
        body = wait_ready(DEMO_NAMESPACE, sample["metadata"]["name"])
        show(DEMO_NAMESPACE, body)
        outcome["ready"] = _condition(body, "Ready").get("status") == "True"
        if once:
            stop.set()
        else:
            say("The operator keeps running and repairs drift; press Ctrl-C to stop.")

    threading.Thread(target=drive, name="demo", daemon=True).start()
    os.environ.setdefault("ARGOBRIDGE_LOG_FORMAT", "plain")
    # kopf runs in this thread and handles Ctrl-C and SIGTERM itself.
    run_operator(stop_flag=stop, ready_flag=ready)
    return 0 if outcome.get("ready") or not once else 1


# --- the local path -------------------------------------------------------------------------------


class _Background:
    """A function run in a daemon thread (the Backstage install beside the Go builds); its result or error."""

    def __init__(self, function: Callable[[], Path]) -> None:
        self.result: Path | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, args=(function,), name="backstage-install", daemon=True)
        self._thread.start()

    def _run(self, function: Callable[[], Path]) -> None:
        started = time.monotonic()
        try:
            self.result = function()
        except BaseException as error:  # handed to the main thread, which reports it
            self.error = error
        self.seconds = time.monotonic() - started

    def get(self) -> Path:
        self._thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _plan() -> list[str]:
    """What the local path needs, cached or to build, with how long a build from empty caches took here."""
    from argobridge_dev import backstage
    from argobridge_dev.gobuild import binary_path, cache_root
    from argobridge_dev.versions import ARGO_CD, ARGO_CD_NOTIFICATIONS, ETCD, KUBE_APISERVER

    def state(tool: Any) -> str:
        return "cached" if binary_path(tool).exists() else f"to build (from empty caches: {tool.cold_build})"

    controller = (
        f"Argo CD {ARGO_CD.version} notifications controller: cached (the full argocd binary)"
        if binary_path(ARGO_CD).exists() and not binary_path(ARGO_CD_NOTIFICATIONS).exists()
        else f"Argo CD {ARGO_CD.version} notifications controller (built alone): {state(ARGO_CD_NOTIFICATIONS)}"
    )
    installed = (cache_root() / "backstage" / backstage.install_key() / "node_modules").is_dir()
    npm = "cached" if installed else "to install with npm ci, beside the Go builds (from empty caches: 2 to 3 minutes)"
    return [
        f"  etcd {ETCD.version}: {state(ETCD)}",
        f"  kube-apiserver {KUBE_APISERVER.version}: {state(KUBE_APISERVER)}",
        f"  {controller}",
        f"  Backstage test backend (notifications, catalog): {npm}",
    ]


def _build_everything() -> tuple[Path, _Background]:
    """Build the Go tools one after another (2 cores) while npm installs Backstage in the background."""
    from argobridge_dev.backstage import ensure_installed
    from argobridge_dev.engine import controller_only_binary
    from argobridge_dev.gobuild import ensure_built
    from argobridge_dev.versions import ETCD, KUBE_APISERVER

    for needed in ("go", "node", "npm"):
        if shutil.which(needed) is None:
            raise RuntimeError(f"`{needed}` is needed for the local demo (Go 1.24+, Node.js 20 or 22); install it")
    install = _Background(ensure_installed)
    ensure_built(ETCD)
    ensure_built(KUBE_APISERVER)
    return controller_only_binary(), install


# The delivery relay (issue 14, argobridge_dev/relayproc.py): once the operator reads ARGOBRIDGE_RELAY_URL
# (branch t14-wire), set this True. The demo then runs a real relay process, the operator renders the
# webhook toward it, and Argo CD posts there instead of to Backstage; nothing else here changes.
WITH_RELAY = True


def start_relay(workdir: Path, children: list[subprocess.Popen[bytes]]) -> dict[str, str]:
    """The operator's relay settings for the demo: {} while the relay is not wired in."""
    if not WITH_RELAY:
        return {}
    from argobridge.kube.client import api_client
    from argobridge_dev.relayproc import RelayProcess

    secret = f"{DEMO_NAMESPACE}/argobridge-relay-config"
    # The chart creates this Secret empty and the operator fills its keys (RELAY_CONTRACT.md).
    empty = client.V1Secret(metadata=client.V1ObjectMeta(name=secret.split("/")[1]))
    client.CoreV1Api(api_client()).create_namespaced_secret(DEMO_NAMESPACE, empty)
    relay = RelayProcess(workdir / "relay", config_secret=secret, kubeconfig=os.environ["KUBECONFIG"]).start()
    assert relay.proc is not None
    children.append(relay.proc)
    return {
        "ARGOBRIDGE_RELAY_URL": relay.url,
        "ARGOBRIDGE_RELAY_CONFIG_SECRET": secret,
        "ARGOBRIDGE_RELAY_STATUS_URLS": relay.status_url,
    }


def _not_the_signals_warning(record: logging.LogRecord) -> bool:
    """kopf warns that it cannot handle signals off the main thread: here the main thread handles them."""
    return "OS signals are ignored" not in record.getMessage()


class _Operator:
    """The operator in a thread of this process, so the main thread keeps Ctrl-C and owns every child
    process (they die with the thread that spawned them, PR_SET_PDEATHSIG)."""

    def __init__(self) -> None:
        from argobridge.runtime.operator_main import run_operator

        logging.getLogger("kopf._core.reactor.running").addFilter(_not_the_signals_warning)
        self.stop_flag, self.ready = threading.Event(), threading.Event()
        self.error: BaseException | None = None

        def run() -> None:
            try:
                run_operator(stop_flag=self.stop_flag, ready_flag=self.ready)
            except BaseException as error:  # reported by the main thread
                self.error = error

        self.thread = threading.Thread(target=run, name="operator", daemon=True)
        self.thread.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            if self.error is not None or not self.thread.is_alive():
                raise RuntimeError(f"the operator stopped before it was ready: {self.error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the operator was not ready after {timeout:.0f}s")

    def stop(self, timeout: float) -> None:
        self.stop_flag.set()
        self.thread.join(timeout)


def _token(namespace: str) -> str | None:
    from argobridge.kube.client import api_client

    try:
        secret = client.CoreV1Api(api_client()).read_namespaced_secret(DEFAULT_SECRET_NAME, namespace)
    except client.exceptions.ApiException:
        return None
    value = (secret.data or {}).get("backstage-token")
    return base64.b64decode(value).decode() if value else None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown_command() -> str:
    """How to type `argobridge` here: the venv's script, relative when it lies under the working directory."""
    script = Path(sys.executable).with_name("argobridge")
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def run_mission(once: bool) -> int:
    """Everything local: build what is missing, start it all, make a sync fail, print what alice receives."""
    from argobridge.kube.client import api_client
    from argobridge.kube.crds import apply_crds, install_crds
    from argobridge_dev import argocd_apps, demo_view
    from argobridge_dev.backstage import BackstageServer
    from argobridge_dev.controlplane import ControlPlane, free_port
    from argobridge_dev.engine import NotificationsController, argocd_crd_documents
    from argobridge_dev.processes import stop_all

    began = time.monotonic()
    say("No reachable cluster in the current kubeconfig: the demo runs the whole path here, as local processes.")
    say("It needs (cached under ~/.cache/argobridge, keyed by the pinned versions):")
    for line in _plan():
        say(line)
    controller_binary, install = _build_everything()
    install.get()
    say(f"Everything needed is built and installed ({time.monotonic() - began:.0f}s).")

    children: list[subprocess.Popen[bytes]] = []
    operator: _Operator | None = None
    with ExitStack() as stack:
        plane = stack.enter_context(ControlPlane())
        os.environ["KUBECONFIG"] = str(plane.kubeconfig)
        workdir = plane.workdir / "demo"
        workdir.mkdir()
        say(f"Local control plane (etcd, kube-apiserver) ready in {plane.startup_seconds:.1f}s")
        install_crds()
        apply_crds(argocd_crd_documents())  # Argo CD's Application and AppProject, from its own module
        port = free_port()
        bridge = apply_sample(DEMO_NAMESPACE, backstage_url=f"http://127.0.0.1:{port}")
        custom = client.CustomObjectsApi(api_client())
        argocd_apps.create_default_project(custom, DEMO_NAMESPACE)
        os.environ.update(start_relay(workdir, children))

        def shutdown() -> None:
            # Children first and all at once (nothing there needs a graceful stop), the operator beside them;
            # the control plane goes last, when the ExitStack unwinds.
            for proc in children:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            if operator is not None:
                operator.stop(STOP_GRACE)
            stop_all(children, timeout=0.3)

        stack.callback(shutdown)
        os.environ.setdefault("ARGOBRIDGE_LOG_FORMAT", "plain")
        # A probe of Backstage made before it was started is retried after 5 s, 10 s, 20 s... up to the
        # resync interval; 20 s instead of 5 minutes lets the demo's status catch up within seconds.
        os.environ.setdefault("ARGOBRIDGE_RESYNC_SECONDS", "20")
        operator = _Operator()
        operator.wait_ready()
        say(f"Operator running; BackstageBridge {DEMO_NAMESPACE}/{bridge['metadata']['name']} applied.")

        token = wait("the token ArgoBridge generates", lambda: _token(DEMO_NAMESPACE), timeout=60)
        (workdir / "backstage-db").mkdir()
        backstage = BackstageServer(token=token, port=port, database=workdir / "backstage-db")
        stack.callback(lambda: shutil.rmtree(backstage.workdir or workdir, ignore_errors=True))
        try:
            backstage.start()
        finally:
            if backstage.process is not None:
                children.append(backstage.process)
        say(
            f"Backstage backend (notifications, catalog) ready in {backstage.startup_seconds:.1f}s at {backstage.url},"
            " started with the token ArgoBridge generated"
        )
        controller = NotificationsController(
            plane.kubeconfig, DEMO_NAMESPACE, workdir / "notifications-controller.log", binary=controller_binary
        )
        try:
            controller.start()
        finally:
            if controller.process is not None:
                children.append(controller.process)
        argocd_apps.stand_in_controller_deployment(client.AppsV1Api(api_client()), DEMO_NAMESPACE)
        shown = f"{controller_binary.parent.name}/{controller_binary.name}"
        say(f"Argo CD's notifications controller running ({shown}), watching {DEMO_NAMESPACE}")

        app = argocd_apps.application(DEMO_APP, DEMO_NAMESPACE, {"backstage.io/entity-ref": DEMO_ENTITY_REF})
        custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", DEMO_NAMESPACE, "applications", app)
        say(f"Application {DEMO_NAMESPACE}/{DEMO_APP} created with backstage.io/entity-ref: {DEMO_ENTITY_REF}")
        wait(
            "the operator counting the Application",
            lambda: ((demo_bridge() or {}).get("status") or {}).get("applications", {}).get("watched"),
            timeout=30,
        )
        failed_at = time.monotonic()
        argocd_apps.set_status(
            custom,
            DEMO_NAMESPACE,
            DEMO_APP,
            "Failed",
            "Degraded",
            'one or more objects failed to apply: Deployment.apps "shop" is invalid: spec.replicas: Invalid value: -1',
            started=_now(),
        )
        say(f"Sync of {DEMO_APP} failed (status written as Argo CD's application controller writes it).")
        scope = f"argocd/{DEMO_NAMESPACE}/{DEMO_APP}/SyncFailed"

        def arrived() -> dict[str, Any] | None:
            mine = [n for n in backstage.notifications(DEMO_READER) if (n["payload"].get("scope") or "") == scope]
            return mine[0] if mine else None

        try:
            item = wait(f"the SyncFailed notification for {DEMO_READER}", arrived, timeout=90)
        except TimeoutError:
            say(f"No notification reached {DEMO_READER} in 90 s. Controller log: {controller.log_path}")
            say("\n".join(controller.log_path.read_text(errors="replace").splitlines()[-15:]))
            raise
        took = time.monotonic() - failed_at
        say("")
        say(_as_the_owner_reads_it(backstage, item, scope))
        say(f"  ({took:.1f}s after the sync failed; {time.monotonic() - began:.0f}s since the demo started)")
        body = wait_ready(DEMO_NAMESPACE, bridge["metadata"]["name"], timeout=45, also=("BackstageReachable",))
        say(f"\n=== kubectl get bsb -n {DEMO_NAMESPACE}")
        say(_as_kubectl_shows_it(body))

        bridge_file, app_file = workdir / "bridge.yaml", workdir / "shop.yaml"
        bridge_file.write_text(yaml.safe_dump(sample_bridge(DEMO_NAMESPACE, backstage.url), sort_keys=False))
        live = cast(
            dict[str, Any],
            custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", DEMO_NAMESPACE, "applications", DEMO_APP),
        )
        live["metadata"] = {k: live["metadata"][k] for k in ("name", "namespace", "annotations")}
        app_file.write_text(yaml.safe_dump(live, sort_keys=False))
        say(
            demo_view.what_happened(
                namespace=DEMO_NAMESPACE,
                app=DEMO_APP,
                entity_ref=DEMO_ENTITY_REF,
                kubeconfig=str(plane.kubeconfig),
                argobridge=_shown_command(),
                bridge_file=str(bridge_file),
                app_file=str(app_file),
                logs={"notifications controller": str(controller.log_path), "Backstage": str(backstage.log_path)},
                relay=WITH_RELAY,
            )
        )
        if once:
            return 0 if _condition(body, "Ready").get("status") == "True" else 1
        say("The operator keeps running and repairs drift; press Ctrl-C to stop.")
        while operator.thread.is_alive():
            operator.thread.join(1.0)
        say(f"The operator stopped: {operator.error!r}")
        return 1
    return 1


def _as_the_owner_reads_it(backstage: BackstageServer, item: dict[str, Any], scope: str) -> str:
    """The notification as the reader got it, with who else got it and why, all read back from Backstage."""
    from argobridge_dev import demo_view

    users = backstage.users(DEMO_READER)
    received = [
        f"user:default/{user}"
        for user in users
        if any(scope == n["payload"].get("scope") for n in backstage.notifications(user))
    ]
    entity = backstage.entity(DEMO_ENTITY_REF, DEMO_READER)
    owner = str(entity.get("spec", {}).get("owner", ""))
    members = {}
    if owner.startswith("group:"):
        group = backstage.entity(owner, DEMO_READER)
        members[owner] = [r["targetRef"] for r in group.get("relations", []) if r.get("type") == "hasMember"]
    return demo_view.notification_text(
        item,
        f"user:default/{DEMO_READER}",
        received,
        [f"user:default/{user}" for user in users if f"user:default/{user}" not in received],
        demo_view.ownership_text(DEMO_ENTITY_REF, entity, members),
    )


def _as_kubectl_shows_it(body: dict[str, Any]) -> str:
    """The bridge's `kubectl get` line (the CRD's own printer columns), then its conditions."""
    from argobridge.kube.crds import crd_documents
    from argobridge_dev import demo_view

    crd = next(d for d in crd_documents() if d["spec"]["names"]["plural"] == PLURAL)
    table = demo_view.kubectl_table(demo_view.printer_columns(crd), [body], datetime.now(UTC))
    return table + "\n" + demo_view.conditions_table(body)


def demo_bridge() -> dict[str, Any] | None:
    from argobridge.kube.bridges import get_bridge

    return get_bridge(DEMO_NAMESPACE, "backstage")


if __name__ == "__main__":
    sys.exit(run_demo())
