"""`argobridge demo` (`make run`): the operator's main job, with a sample bridge to look at.

Against the current kubeconfig when a cluster answers, else against a local control plane started
here. The sample goes into its own namespace, so an existing Argo CD is never touched by the demo.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from contextlib import ExitStack
from typing import Any

import yaml
from kubernetes import client, config

from argobridge.core.render import to_yaml
from argobridge.core.spec import GROUP, NOTIFICATIONS_CONFIGMAP, PLURAL, VERSION
from argobridge.kube.crds import MANIFESTS

DEMO_NAMESPACE = "argobridge-demo"


def cluster_reachable() -> bool:
    """Whether the current kubeconfig points at an apiserver that answers within a few seconds."""
    try:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)  # type: ignore[no-untyped-call]
        api = client.VersionApi()
        api.get_code(_request_timeout=5)
    except Exception:
        return False
    return True


def apply_sample(namespace: str) -> dict[str, Any]:
    """Create the demo namespace and apply the sample bridge into it."""
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
    sample: dict[str, Any] = yaml.safe_load((MANIFESTS / "samples" / "backstagebridge.yaml").read_text())
    sample["metadata"]["namespace"] = namespace
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


def wait_ready(namespace: str, name: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the bridge until its Ready condition is True; return the body either way at the deadline."""
    from argobridge.kube.bridges import get_bridge

    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = get_bridge(namespace, name) or {}
        for condition in (body.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready" and condition.get("status") == "True":
                return body
        time.sleep(0.5)
    return body


def show(namespace: str, body: dict[str, Any]) -> None:
    from argobridge.kube.configmaps import read_config_map

    data = read_config_map(namespace, NOTIFICATIONS_CONFIGMAP).data or {}
    print(f"\n=== ConfigMap {namespace}/{NOTIFICATIONS_CONFIGMAP} (written by ArgoBridge)")
    print(to_yaml({"data": dict(sorted(data.items()))}))
    print(f"=== BackstageBridge {namespace}/{body.get('metadata', {}).get('name')} status")
    print(yaml.safe_dump({"status": body.get("status")}, sort_keys=False, width=1000))


def run_demo(once: bool = False) -> int:
    """Install the CRD, apply the sample, run the operator; print what it produced once it is Ready."""
    from argobridge.kube.crds import install_crds
    from argobridge.runtime.operator_main import run_operator
    from argobridge_dev.controlplane import ControlPlane
    from argobridge_dev.processes import sigterm_as_interrupt

    # Ctrl-C or SIGTERM before kopf runs (while the control plane starts) unwinds the ExitStack, so
    # etcd and kube-apiserver stop too; while kopf runs it handles both signals itself.
    outcome: dict[str, bool] = {}
    with sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt), ExitStack() as stack:
        if cluster_reachable():
            print("Using the cluster of the current kubeconfig.", flush=True)
        else:
            print("No reachable cluster in the current kubeconfig: starting a local control plane.", flush=True)
            plane = stack.enter_context(ControlPlane())
            os.environ["KUBECONFIG"] = str(plane.kubeconfig)
            print(
                f"Local control plane ready in {plane.startup_seconds:.1f}s; KUBECONFIG={plane.kubeconfig}",
                flush=True,
            )
        install_crds()
        stop, ready = threading.Event(), threading.Event()

        def drive() -> None:
            ready.wait()
            sample = apply_sample(DEMO_NAMESPACE)
            body = wait_ready(DEMO_NAMESPACE, sample["metadata"]["name"])
            show(DEMO_NAMESPACE, body)
            outcome["ready"] = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (body.get("status") or {}).get("conditions") or []
            )
            if once:
                stop.set()
            else:
                print("The operator keeps running and repairs drift; press Ctrl-C to stop.", flush=True)

        threading.Thread(target=drive, name="demo", daemon=True).start()
        os.environ.setdefault("ARGOBRIDGE_LOG_FORMAT", "plain")
        run_operator(stop_flag=stop, ready_flag=ready)
    return 0 if outcome.get("ready") or not once else 1


if __name__ == "__main__":
    sys.exit(run_demo())
