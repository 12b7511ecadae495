"""The README's upstream Backstage snippet is what the test backend loads, entry for entry.

The e2e and fault suites deliver through that backend (rotation included), so a snippet that drifted
from its app-config would be documentation no test proves.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- upstream-app-config:"


def readme_snippet() -> dict[str, Any]:
    text = (ROOT / "README.md").read_text()
    after = text[text.index(MARKER) :]
    match = re.search(r"```yaml\n(.*?)```", after, re.S)
    assert match, "no yaml block after the upstream-app-config marker"
    loaded: dict[str, Any] = yaml.safe_load(match.group(1))
    return loaded


def test_test_backend_loads_the_readme_upstream_entries() -> None:
    documented = readme_snippet()["backend"]["auth"]["externalAccess"]
    backend = yaml.safe_load((ROOT / "tests" / "e2e" / "backstage" / "app-config.yaml").read_text())
    loaded = backend["backend"]["auth"]["externalAccess"]
    assert loaded[: len(documented)] == documented


def test_the_harness_sets_the_variables_the_snippet_reads() -> None:
    entries = readme_snippet()["backend"]["auth"]["externalAccess"]
    names = {re.fullmatch(r"\$\{(\w+)\}", entry["options"]["token"]).group(1) for entry in entries}  # type: ignore[union-attr]
    harness = (ROOT / "operator" / "argobridge_dev" / "backstage.py").read_text()
    assert names == {"ARGOCD_TOKEN_CURRENT", "ARGOCD_TOKEN_PREVIOUS"}
    assert all(f"{name}=" in harness for name in names)
