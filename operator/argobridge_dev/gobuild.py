"""Build pinned binaries from their Go modules, once, into the user's cache directory.

Upstream go.mod files (Kubernetes, etcd, Argo CD) replace sibling modules with paths inside their own
repositories, which `go install module@version` refuses. A small wrapper module requires the upstream
module and repeats those replaces with published versions instead, the way their own release tooling
resolves them; the wrapper and the binary live under the cache, never in the repository.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from argobridge_dev.versions import GoTool

_REPLACE_LINE = re.compile(r"^\s*(?P<old>\S+)(?:\s+(?P<oldver>v\S+))?\s+=>\s+(?P<new>\S+)(?:\s+(?P<newver>v\S+))?\s*$")


def cache_root() -> Path:
    """The user's cache directory for ArgoBridge (`$XDG_CACHE_HOME/argobridge`, else `~/.cache/...`)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "argobridge"


def parse_replaces(go_mod: str) -> list[tuple[str, str, str]]:
    """The replace directives of a go.mod as (old module, new path or module, new version or "")."""
    replaces: list[tuple[str, str, str]] = []
    in_block = False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if line.startswith("replace ("):
            in_block = True
            continue
        if in_block and line == ")":
            in_block = False
            continue
        if line.startswith("replace "):
            line = line[len("replace ") :]
        elif not in_block:
            continue
        match = _REPLACE_LINE.match(line)
        if match:
            replaces.append((match["old"], match["new"], match["newver"] or ""))
    return replaces


def go_directive(go_mod: str) -> str:
    """The `go` version line of a go.mod, so the wrapper asks for the same language version."""
    match = re.search(r"^go\s+(\S+)\s*$", go_mod, re.MULTILINE)
    return match.group(1) if match else "1.24"


def wrapper_go_mod(tool: GoTool, upstream_go_mod: str) -> str:
    """The go.mod of the wrapper module that builds `tool`.

    In-repository replaces become the published version of the same module; replaces that point at a
    deliberately missing path (etcd's FORBIDDEN_DEPENDENCY) are dropped; replaces to other modules are
    kept verbatim, since upstream chose those versions.
    """
    lines = [
        f"module argobridge.local/build/{tool.name}",
        "",
        f"go {go_directive(upstream_go_mod)}",
        "",
        *([] if tool.main_source else [f"tool {tool.package}", ""]),
        f"require {tool.module} {tool.version}",
        "",
        "replace (",
    ]
    for old, new, newver in parse_replaces(upstream_go_mod):
        if new.startswith(("./", "../")):
            if "FORBIDDEN" in new:
                continue
            lines.append(f"\t{old} => {old} {tool.replace_version}")
        else:
            lines.append(f"\t{old} => {new} {newver}".rstrip())
    for old, new, newver in tool.extra_replaces:
        lines.append(f"\t{old} => {new} {newver}".rstrip())
    lines.append(")")
    return "\n".join(lines) + "\n"


def binary_path(tool: GoTool) -> Path:
    """Where the cached binary for this pin lives."""
    return cache_root() / "bin" / tool.key / tool.name


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Never fetch a Go toolchain (no such download here) and never touch a workspace around us.
    env.update({"GOTOOLCHAIN": "local", "GOWORK": "off", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"})
    return env


def _log(message: str) -> None:
    print(f"[argobridge build] {message}", file=sys.stderr, flush=True)


def _run(args: list[str], cwd: Path, progress: bool = False) -> None:
    """Run a go command; with progress, show each package as it compiles and a count every 100."""
    proc = subprocess.Popen(args, cwd=cwd, env=go_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    started = time.monotonic()
    for count, line in enumerate(proc.stdout, start=1):
        tail = [*tail, line.rstrip()][-40:]
        if progress and count % 100 == 0:
            _log(f"  {count} packages compiled ({time.monotonic() - started:.0f}s), now {line.strip()}")
    if proc.wait() != 0:
        raise RuntimeError(f"{' '.join(args)} failed in {cwd}:\n" + "\n".join(tail))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise builds of one tool across processes (pytest workers, a parallel `make`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_built(tool: GoTool) -> Path:
    """Return the cached binary for `tool`, building it first if this pin was never built here."""
    target = binary_path(tool)
    if target.exists():
        return target
    with _locked(cache_root() / "locks" / f"{tool.key}.lock"):
        if target.exists():
            return target
        if shutil.which("go") is None:
            raise RuntimeError("Go is needed to build the pinned binaries; install Go 1.24 or newer")
        workdir = cache_root() / "build" / tool.key
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        expect = f"from empty caches it took {tool.cold_build} on 2 cores; " if tool.cold_build else ""
        _log(f"building {tool.name} {tool.version} from {tool.module} (once; {expect}cached in {target.parent})")
        info = subprocess.run(
            ["go", "mod", "download", "-json", f"{tool.module}@{tool.version}"],
            cwd=workdir,
            env=go_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        upstream = Path(json.loads(info.stdout)["GoMod"]).read_text()
        (workdir / "go.mod").write_text(wrapper_go_mod(tool, upstream))
        (workdir / "go.sum").unlink(missing_ok=True)
        if tool.main_source:
            (workdir / "main.go").write_text(tool.main_source)
        _log(f"  resolving modules for {tool.name}")
        _run(["go", "mod", "tidy"], workdir)
        tmp = target.with_name(target.name + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        ldflags = " ".join(("-s", "-w", *tool.ldflags))
        build = ["go", "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", str(tmp)]
        if tool.tags:
            build += ["-tags", ",".join(tool.tags)]
        _log(f"  compiling {tool.package}")
        _run([*build, "." if tool.main_source else tool.package], workdir, progress=True)
        tmp.rename(target)
        _log(f"built {tool.name} in {time.monotonic() - started:.0f}s")
    return target


def module_dir(module: str, version: str) -> Path:
    """A Go module's source tree in Go's module cache (downloaded once), wherever GOMODCACHE points."""
    info = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        env=go_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(info.stdout)["Dir"])


def main(argv: list[str] | None = None) -> int:
    """`python -m argobridge_dev.gobuild [NAME...]`: build the named (default all) tools."""
    from argobridge_dev.versions import ALL_TOOLS, KIND, KIND_NODE_TOOLS

    names = set(argv if argv is not None else sys.argv[1:])
    for tool in (*ALL_TOOLS, KIND, *KIND_NODE_TOOLS) if names else ALL_TOOLS:
        if not names or tool.name in names:
            print(ensure_built(tool))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
