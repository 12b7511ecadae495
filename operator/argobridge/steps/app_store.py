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
        self._stored_at: dict[str, int] = {}  # the version at which each app was last stored
        self.version = 0

    def put(self, app: AppFacts) -> None:
        with self._lock:
            if self._apps.get(app.uid) != app:
                self.version += 1
                self._apps[app.uid] = app
                self._stored_at[app.uid] = self.version

    def remove(self, uid: str) -> None:
        with self._lock:
            self._stored_at.pop(uid, None)
            if self._apps.pop(uid, None) is not None:
                self.version += 1

    def stored_version(self, uid: str) -> int:
        """The version at which the app was last stored (0: not stored)."""
        with self._lock:
            return self._stored_at.get(uid, 0)

    def namespaces(self) -> set[str]:
        with self._lock:
            return {app.namespace for app in self._apps.values()}

    def drop_vanished(self, namespace: str, present: set[str], listed_after: int) -> list[str]:
        """Remove the apps of `namespace` missing from `present`, a list made after version `listed_after`
        (apps stored later may be newer than the list). Kopf relists after a 410 without sending DELETED
        for what vanished meanwhile, so only this tells the store."""
        with self._lock:
            gone = [
                uid
                for uid, app in self._apps.items()
                if app.namespace == namespace and uid not in present and self._stored_at.get(uid, 0) <= listed_after
            ]
            for uid in gone:
                del self._apps[uid]
                self._stored_at.pop(uid, None)
            if gone:
                self.version += 1
            return gone

    def __len__(self) -> int:
        return len(self._apps)

    def all(self) -> list[AppFacts]:
        with self._lock:
            return list(self._apps.values())


APPS = AppStore()
