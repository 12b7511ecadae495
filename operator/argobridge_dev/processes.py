"""Local helper processes (etcd, kube-apiserver, the notifications controller, Backstage).

Each runs in its own process group with its output in a log file, so stopping it also stops anything
it spawned, and a test that fails still leaves nothing running. Each also asks the kernel to SIGKILL it
when its parent dies (PR_SET_PDEATHSIG): a `make run` or test killed with SIGKILL gets no chance to
clean up, and without this its etcd and kube-apiserver ran on for good.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec: be SIGKILLed when the parent that spawned us dies (Linux only).

    The signal survives exec; the check of getppid afterwards closes the race of a parent dying
    between fork and prctl.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def start_detached() -> None:
    """preexec_fn: a new session (its own process group, so stop() reaches its children) that dies with us."""
    os.setsid()
    die_with_parent()


def spawn(
    args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a process in a new session that dies with this one, its stdout and stderr going to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            preexec_fn=start_detached,  # only os calls and prctl, no locks taken
        )


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not exited within `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM every process group at once, give them one shared `timeout`, then SIGKILL what is left.

    One deadline for all, not one per process: stopping etcd, kube-apiserver and the rest one after
    another is what made Ctrl-C of `make run` take more than its 5 s on a busy machine.
    """
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM unwinds like Ctrl-C, so `with` blocks stop what they started.

    By default SIGTERM ends Python at once, without running a single `finally`: a `make run` or
    `argobridge dev-cluster` stopped by a process manager left its etcd and kube-apiserver behind.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
