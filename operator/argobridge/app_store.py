"""The Applications ArgoBridge has seen, in memory, kept current by the Application event handler.

A kopf index would do the same job, but kopf pre-populates indexes by waking every waiting object
stream on each object indexed, which grows with the square of the number of Applications (measured:
9 CPU seconds at 1,000 apps). A plain dict behind a lock grows linearly.
"""

from __future__ import annotations

import threading

from argobridge.core.appcheck import AppFacts


class AppStore:
    """Applications by uid, with a version that moves on every change (to recount only when needed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apps: dict[str, AppFacts] = {}
        self.version = 0

    def put(self, app: AppFacts) -> None:
        with self._lock:
            if self._apps.get(app.uid) != app:
                self._apps[app.uid] = app
                self.version += 1

    def remove(self, uid: str) -> None:
        with self._lock:
            if self._apps.pop(uid, None) is not None:
                self.version += 1

    def __len__(self) -> int:
        return len(self._apps)

    def all(self) -> list[AppFacts]:
        with self._lock:
            return list(self._apps.values())


APPS = AppStore()
