"""A real Backstage backend (notifications, catalog, auth, events, signals) as a local process.

Installed from the npm registry with the lockfile in `tests/e2e/backstage/`, into the user's cache
directory keyed by that lockfile, so the four-minute install (better-sqlite3 compiles from the node
headers on this machine) happens once. Used by the end-to-end tests and available to developers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from argobridge_dev import processes
from argobridge_dev.controlplane import free_port
from argobridge_dev.gobuild import cache_root

SOURCE = Path(__file__).resolve().parents[2] / "tests" / "e2e" / "backstage"
INSTALL_FILES = ("package.json", "package-lock.json", ".npmrc")
RUNTIME_FILES = ("index.js", "app-config.yaml", "catalog")


def _log(message: str) -> None:
    print(f"[argobridge backstage] {message}", file=sys.stderr, flush=True)


def install_key(source: Path = SOURCE) -> str:
    digest = hashlib.sha256()
    for name in INSTALL_FILES:
        digest.update((source / name).read_bytes())
    return digest.hexdigest()[:16]


def _node_dir() -> str | None:
    """Where node's own headers live, so node-gyp builds native modules without downloading any."""
    node = shutil.which("node")
    if node is None:
        return None
    prefix = Path(os.path.realpath(node)).parent.parent
    return str(prefix) if (prefix / "include" / "node" / "node.h").exists() else None


def ensure_installed(source: Path = SOURCE) -> Path:
    """The directory holding an installed copy of the test backend, installing it on first use."""
    target = cache_root() / "backstage" / install_key(source)
    marker = target / "node_modules" / ".argobridge-installed"
    if marker.exists():
        return target
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed for the Backstage test backend; install Node.js 20 or 22")
    target.mkdir(parents=True, exist_ok=True)
    for name in INSTALL_FILES:
        shutil.copy2(source / name, target / name)
    env = dict(os.environ, npm_config_build_from_source="true", npm_config_update_notifier="false")
    node_dir = _node_dir()
    if node_dir:
        env["npm_config_nodedir"] = node_dir
    started = time.monotonic()
    _log(f"installing the Backstage backend with npm ci into {target} (once, about 4 minutes on 2 cores)")
    proc = subprocess.Popen(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel", "http"],
        cwd=target,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # The demo installs in a thread beside the Go builds: a demo stopped meanwhile takes npm with it.
        preexec_fn=processes.die_with_parent,
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for count, line in enumerate(proc.stdout, start=1):
        tail = [*tail, line.rstrip()][-40:]
        if count % 200 == 0:
            _log(f"  {count} npm log lines ({time.monotonic() - started:.0f}s)")
    if proc.wait() != 0:
        raise RuntimeError("npm ci failed:\n" + "\n".join(tail))
    marker.touch()
    _log(f"installed in {time.monotonic() - started:.0f}s")
    return target


def _request(method: str, url: str, token: str | None = None, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    # A str is sent byte for byte (a body exactly as Argo CD's engine rendered it); anything else as JSON.
    data = None if body is None else body.encode() if isinstance(body, str) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
            return response.status, json.loads(payload) if payload else None
    except urllib.error.HTTPError as error:
        payload = error.read()
        try:
            return error.code, json.loads(payload)
        except ValueError:
            return error.code, payload.decode(errors="replace")


# Accepted by the test backend for the catalog plugin only (app-config.yaml): a token "restricted to
# another plugin", which the notifications API answers with 403.
CATALOG_ONLY_TOKEN = "catalog-only-test-token-0123456789"


def _runtime_dir(installed: Path) -> Path:
    """A private directory for one backend: its own config and catalog, the shared installed modules.

    The installation is shared by every checkout on the machine; the files a backend reads at start
    (config, catalog) are per checkout, so copying them into the shared directory would let one
    checkout's tests run with another's catalog.
    """
    runtime = Path(tempfile.mkdtemp(prefix="argobridge-backstage-run-"))
    (runtime / "node_modules").symlink_to(installed / "node_modules", target_is_directory=True)
    for name in INSTALL_FILES:
        shutil.copy2(installed / name, runtime / name)
    return runtime


@dataclass
class BackstageServer:
    """One backend process on a free loopback port, accepting `token` (and `previous_token`, when given)
    as static external-access tokens for notifications, the way a rotation-ready app-config lists both."""

    token: str
    previous_token: str | None = None
    port: int = field(default_factory=free_port)
    # The address Argo CD and the operator use; another than loopback (a kind cluster's gateway) makes
    # the backend listen on every interface so that pods can reach it.
    host: str = field(default_factory=lambda: os.environ.get("ARGOBRIDGE_TEST_BACKSTAGE_HOST", "127.0.0.1"))
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    database: Path | None = None
    startup_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 120.0) -> BackstageServer:
        """Install if needed, start, and wait until the catalog has resolved group membership."""
        self.workdir = self.workdir or _runtime_dir(ensure_installed())
        for name in RUNTIME_FILES:
            source, target = SOURCE / name, self.workdir / name
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
        started = time.monotonic()
        if self.database is None:
            self.database = Path(tempfile.mkdtemp(prefix="argobridge-backstage-db-"))
        env = dict(
            os.environ,
            BACKEND_PORT=str(self.port),
            BACKEND_HOST=self.host,
            BACKEND_LISTEN_HOST="127.0.0.1" if self.host == "127.0.0.1" else "0.0.0.0",
            # The names the README's app-config snippet reads (the mirror Secret's `current`, `previous`).
            ARGOCD_TOKEN_CURRENT=self.token,
            ARGOCD_TOKEN_PREVIOUS=self.previous_token or self.token,
            BACKSTAGE_CATALOG_ONLY_TOKEN=CATALOG_ONLY_TOKEN,
            BACKSTAGE_DB_DIR=str(self.database),
            NODE_ENV="production",
        )
        log = open(self.workdir / f"backend-{self.port}.log", "wb")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            ["node", "index.js"],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=processes.start_detached,  # only os calls and prctl
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Backstage exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._catalog_ready():
                self.startup_seconds = time.monotonic() - started
                return self
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"Backstage not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def _catalog_ready(self) -> bool:
        try:
            status, _ = _request("GET", f"{self.url}/.backstage/health/v1/readiness", timeout=2)
            if status != 200:
                return False
            user = self.user_token("alice")
            status, group = _request("GET", f"{self.url}/api/catalog/entities/by-name/group/default/team-a", user)
        except (urllib.error.URLError, OSError, KeyError, TypeError):
            return False
        relations = group.get("relations", []) if isinstance(group, dict) else []
        return status == 200 and any(relation.get("type") == "hasMember" for relation in relations)

    def user_token(self, user: str) -> str:
        """A Backstage user token for `user:default/<user>` (test-only sign-in provider)."""
        status, body = _request("GET", f"{self.url}/api/auth/testuser/refresh?user={user}")
        if status != 200:
            raise RuntimeError(f"sign-in as {user} failed: {status} {body}")
        return str(body["backstageIdentity"]["token"])

    def notifications(self, user: str) -> list[dict[str, Any]]:
        """The notifications `user:default/<user>` sees, read with that user's own token."""
        status, body = _request("GET", f"{self.url}/api/notifications/notifications", self.user_token(user))
        if status != 200:
            raise RuntimeError(f"reading notifications as {user} failed: {status} {body}")
        return list(body["notifications"])

    def entity(self, ref: str, user: str) -> dict[str, Any]:
        """The catalog entity `kind:namespace/name`, read as `user:default/<user>` reads it."""
        kind, _, rest = ref.partition(":")
        namespace, _, name = rest.partition("/")
        url = f"{self.url}/api/catalog/entities/by-name/{kind}/{namespace}/{name}"
        status, body = _request("GET", url, self.user_token(user))
        if status != 200:
            raise RuntimeError(f"reading {ref} as {user} failed: {status} {body}")
        return dict(body)

    def users(self, user: str) -> list[str]:
        """The names of every User in the catalog, read as `user:default/<user>`."""
        status, body = _request("GET", f"{self.url}/api/catalog/entities?filter=kind=user", self.user_token(user))
        if status != 200:
            raise RuntimeError(f"listing users as {user} failed: {status} {body}")
        return sorted(str(entity["metadata"]["name"]) for entity in body)

    def send(self, body: Any, token: str | None = None) -> tuple[int, Any]:
        """POST a create request, as Argo CD's engine would; a str body is sent exactly as it is."""
        return _request("POST", f"{self.url}/api/notifications/notifications", token or self.token, body)

    @property
    def log_path(self) -> Path | None:
        """The backend's log file (stdout and stderr), once it was started."""
        return self.workdir / f"backend-{self.port}.log" if self.workdir else None

    def log_tail(self, lines: int = 40) -> str:
        path = self.log_path
        if path is None:
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        processes.stop(self.process)

    def restart(self, token: str, previous_token: str | None = None) -> BackstageServer:
        """Stop and start again with these tokens (Backstage reads static tokens only at start); the
        database directory is kept, as a restarted production backend keeps its database."""
        self.stop()
        self.token, self.previous_token = token, previous_token
        return self.start()

    def __enter__(self) -> BackstageServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
