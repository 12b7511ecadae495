"""Within one reconcile, each object read from the apiserver once: gather, decide, write.

Why: one reconcile used to read the token Secret up to four times (the token, its uid before a write,
the key's write time for the metric) and the notifications ConfigMap twice (the install check, then
the plan); an idle resync should cost one read per object. A write of an object drops it from the
snapshot, so whatever reads it next (a retry after a conflict, the next rotation step) reads it anew.
Outside `read_once` nothing is kept: every read goes to the apiserver, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_SNAPSHOT: ContextVar[dict[tuple[str, str, str], Any] | None] = ContextVar("read_snapshot", default=None)


@contextmanager
def read_once() -> Iterator[None]:
    """Each object read inside this block is fetched once (until something writes it)."""
    token = _SNAPSHOT.set({})
    try:
        yield
    finally:
        _SNAPSHOT.reset(token)


def read(kind: str, namespace: str, name: str, fetch: Callable[[], T]) -> T:
    """`fetch()`'s answer, from the snapshot when this object was already read in it."""
    snapshot = _SNAPSHOT.get()
    if snapshot is None:
        return fetch()
    key = (kind, namespace, name)
    if key not in snapshot:
        snapshot[key] = fetch()
    value: T = snapshot[key]
    return value


def forget(kind: str, namespace: str, name: str) -> None:
    """Drop one object from the current snapshot: called before every write of it."""
    snapshot = _SNAPSHOT.get()
    if snapshot is not None:
        snapshot.pop((kind, namespace, name), None)
