"""doctor's engine check with the real `argocd` binary: a sound configuration passes, a broken one fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from argobridge.commands.doctor import check_engine
from argobridge.core.render import render_notifications_config
from argobridge.core.spec import parse_bridge_spec


def rendered() -> dict[str, str]:
    spec = parse_bridge_spec({"backstage": {"url": "https://backstage.example.com"}})
    return dict(render_notifications_config(spec, "https://argocd.example.com").owned)


def test_engine_check_passes_what_argobridge_renders():
    (finding,) = check_engine(rendered(), "backstage-token")
    assert finding.ok and "renders every template" in finding.message


def test_engine_check_names_a_trigger_that_does_not_compile():
    data = rendered()
    trigger = next(key for key in data if key.startswith("trigger."))
    data[trigger] = "- when: app.status ?? )\n  send: [x]\n"
    (finding,) = check_engine(data, "backstage-token")
    assert not finding.ok and "rejects the configuration" in finding.message


def _path_with_only(tmp_path: Path, script: str | None, mode: int = 0o755) -> str:
    """A PATH whose `argocd` is the given script (or not executable, or absent), then the system's tools."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    if script is not None:
        argocd = bindir / "argocd"
        argocd.write_text(script)
        argocd.chmod(mode)
    return f"{bindir}:/usr/bin:/bin"


@pytest.mark.parametrize(
    ("script", "mode", "said"),
    [
        ("#!/bin/sh\necho 'argocd: unknown command \"admin\"' >&2\nexit 1\n", 0o755, "exited 1"),
        ("\x7fELF-truncated download", 0o755, "cannot be run"),
    ],
    ids=["exits-non-zero", "not-a-program"],
)
def test_an_argocd_on_path_that_cannot_run_is_a_clear_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, mode: int, said: str
) -> None:
    monkeypatch.delenv("ARGOBRIDGE_ARGOCD", raising=False)
    monkeypatch.setenv("PATH", _path_with_only(tmp_path, script, mode))
    (finding,) = check_engine(rendered(), "backstage-token")
    assert not finding.ok
    assert said in finding.message and str(tmp_path / "bin" / "argocd") in finding.message
    assert "rejects the configuration" not in finding.message  # not blamed on the user's config
    assert "ARGOBRIDGE_ARGOCD" in finding.fix


def test_no_argocd_anywhere_skips_the_engine_check_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARGOBRIDGE_ARGOCD", raising=False)
    monkeypatch.setenv("PATH", _path_with_only(tmp_path, None))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    (finding,) = check_engine(rendered(), "backstage-token")
    assert finding.ok and "skipped" in finding.message
    assert not (tmp_path / "empty-cache" / "argobridge" / "build").exists()


def test_argobridge_argocd_naming_a_missing_file_skips_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGOBRIDGE_ARGOCD", str(tmp_path / "no-such-argocd"))
    (finding,) = check_engine(rendered(), "backstage-token")
    assert finding.ok and "skipped" in finding.message
