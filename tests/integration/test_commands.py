"""The commands a person types: `argobridge render` offline, and `make run`'s demo on a fresh cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from argobridge_dev.controlplane import ControlPlane, free_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "manifests" / "samples" / "backstagebridge.yaml"


def argobridge(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "argobridge.commands.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_render_prints_the_configmap_for_the_sample():
    result = argobridge("render", "-f", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    manifest = next(doc for doc in yaml.safe_load_all(result.stdout) if doc)
    assert manifest["kind"] == "ConfigMap" and manifest["metadata"]["name"] == "argocd-notifications-cm"
    assert yaml.safe_load(manifest["data"]["context"]) == {"argocdUrl": "https://argocd.example.com"}
    assert len([key for key in manifest["data"] if key.startswith("trigger.")]) == 4


def test_render_reports_an_invalid_bridge_with_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: argobridge.io/v1alpha1\nkind: BackstageBridge\nspec: {backstage: {url: nope}}\n")
    result = argobridge("render", "-f", str(bad))
    assert result.returncode == 2 and "spec.backstage.url" in result.stderr


def test_demo_shows_a_ready_bridge_and_its_configmap():
    # A control plane of its own: the session's operator must not reconcile the demo's bridge too.
    with ControlPlane() as plane:
        # Its own metrics port too: the session's operator (if running) holds the one in the environment.
        env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig), "ARGOBRIDGE_METRICS_PORT": str(free_port())}
        result = argobridge("demo", "--once", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Using the cluster of the current kubeconfig." in result.stdout
    assert "=== ConfigMap argobridge-demo/argocd-notifications-cm" in result.stdout
    assert "service.webhook.backstage:" in result.stdout
    assert "type: Ready" in result.stdout and "status: 'True'" in result.stdout
