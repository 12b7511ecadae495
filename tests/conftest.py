"""Shared fixtures: a real control plane for the session, a fresh namespace per test, the operator.

The control plane is real etcd and kube-apiserver processes (see argobridge_dev), started once
per session; isolation between tests comes from namespaces, since one operator serves them all.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from argobridge_dev.controlplane import ControlPlane, free_port

FIGURES: list[str] = []


@pytest.fixture
def figures() -> list[str]:
    """Measurements a test reports; printed in the run's summary (figures, never pass/fail criteria)."""
    return FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@dataclass
class ExternalCluster:
    """A cluster the suite did not start (ARGOBRIDGE_TEST_KUBECONFIG), e.g. kind with the chart installed."""

    kubeconfig: Path


def external_operator() -> bool:
    """ARGOBRIDGE_TEST_OPERATOR=external: an operator already runs in the cluster (installed by the chart)."""
    return os.environ.get("ARGOBRIDGE_TEST_OPERATOR") == "external"


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane | ExternalCluster]:
    """The local control plane, or the cluster ARGOBRIDGE_TEST_KUBECONFIG names: same tests, either way."""
    external = os.environ.get("ARGOBRIDGE_TEST_KUBECONFIG")
    plane: ControlPlane | ExternalCluster
    if external:
        plane = ExternalCluster(Path(external))
        FIGURES.append(f"running against the cluster of {external}, not a local control plane")
    else:
        plane = ControlPlane().start()
        FIGURES.append(f"local control plane (etcd + kube-apiserver) ready in {plane.startup_seconds:.1f}s")
    os.environ["KUBECONFIG"] = str(plane.kubeconfig)
    config.load_kube_config(config_file=str(plane.kubeconfig))
    # The operator's edges share one cached client; point it at this control plane.
    from argobridge.kube import client as kube_client

    kube_client.api_client.cache_clear()
    try:
        yield plane
    finally:
        if isinstance(plane, ControlPlane):
            plane.stop()


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> list[str]:
    from argobridge.kube.crds import install_crds

    return install_crds()


@pytest.fixture(scope="session")
def argocd_crds(control_plane: ControlPlane) -> list[str]:
    """Argo CD's Application and AppProject CRDs, from the Argo CD Go module's own manifests."""
    from argobridge.kube.crds import apply_crds
    from argobridge_dev.engine import argocd_crd_documents

    return apply_crds(argocd_crd_documents())


@pytest.fixture(scope="session")
def operator(crds: list[str], argocd_crds: list[str]) -> Iterator[Any]:
    """The real operator (all handlers) running in this process against the control plane.

    Against an external cluster whose operator the chart installed, that one does the work instead.
    Argo CD's CRDs are installed first, as in a cluster where Argo CD runs: kopf starts watching
    Applications at once instead of when its scan notices the CRD.
    """
    import kopf.testing

    if external_operator():
        yield None
        return

    os.environ.setdefault("ARGOBRIDGE_RESYNC_SECONDS", "3")
    os.environ.setdefault("ARGOBRIDGE_LOG_FORMAT", "plain")
    os.environ.setdefault("ARGOBRIDGE_METRICS_PORT", str(free_port()))
    with kopf.testing.KopfRunner(
        ["run", "--standalone", "--all-namespaces", "-m", "argobridge.handlers"],
        timeout=60,
    ) as runner:
        yield runner
    assert runner.exception is None, runner.output[-4000:]


@pytest.fixture
def core(control_plane: ControlPlane) -> client.CoreV1Api:
    return client.CoreV1Api()


@pytest.fixture
def custom(control_plane: ControlPlane) -> client.CustomObjectsApi:
    return client.CustomObjectsApi()


@pytest.fixture
def bare_namespace(core: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace with nothing in it (never deleted: this control plane has no namespace controller)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    _delete_bridges_in(name)


def _delete_bridges_in(namespace: str) -> None:
    """Delete the test's bridges when it ends (without waiting): the session's operator would otherwise
    resync every bridge of every earlier test every few seconds, and the suite would slow down as it goes."""
    from argobridge.core.spec import GROUP, PLURAL, VERSION

    custom = client.CustomObjectsApi()
    try:
        found = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        for item in found:
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, item["metadata"]["name"])
    except (ApiException, urllib3.exceptions.HTTPError):
        pass  # no CRD in this control plane, the bridge already gone, or a test stopped the apiserver


@pytest.fixture
def namespace(core: client.CoreV1Api, bare_namespace: str) -> str:
    """A fresh namespace standing for an installed Argo CD: its (empty) argocd-notifications-cm and
    argocd-notifications-secret, which Argo CD's install creates and ArgoBridge never does."""
    from argobridge_dev.argocd_install import install_argocd_objects

    install_argocd_objects(core, bare_namespace)
    return bare_namespace


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> Any:
    """Poll until `predicate` returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last value: {last!r}")


@pytest.fixture(scope="session")
def argocd_operator(
    control_plane: ControlPlane, argocd_crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """The real Argo CD operator, one process for the session, with its CRDs and OpenShift's Route CRD."""
    from argobridge.kube.crds import apply_crds
    from argobridge_dev.argocd_operator import ArgoCDOperator, operator_crd_documents, route_crd_document

    started = time.monotonic()
    apply_crds([*operator_crd_documents(), route_crd_document()])
    process = ArgoCDOperator(control_plane.kubeconfig, tmp_path_factory.mktemp("argocd-operator") / "operator.log")
    process.start()
    FIGURES.append(f"Argo CD operator CRDs installed and operator started in {time.monotonic() - started:.1f}s")
    try:
        yield process
    finally:
        process.stop()
    assert "panic" not in process.log_text(), process.log_text()[-4000:]
