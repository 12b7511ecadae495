"""SQLite outbox of the delivery relay: WAL, synchronous=FULL, so an acknowledged item survives a SIGKILL.

Why one connection used from one thread: sqlite3 connections are not shared across threads; callers in
asyncio wrap calls with asyncio.to_thread behind a lock (see `Outbox.lock`).

Why `apply`: with synchronous=FULL every commit costs an fsync, so one commit per notification caps the
relay at the disk's fsync rate. `apply` runs many writes in one transaction (each in its own savepoint, so
one failing write does not undo the others); `outbox.commits.GroupCommit` feeds it from concurrent callers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bridge TEXT NOT NULL,
    coalesce_key TEXT,
    body TEXT NOT NULL,
    received_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    revision INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS items_coalesce ON items(coalesce_key) WHERE coalesce_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_due ON items(bridge, next_attempt_at);
CREATE TABLE IF NOT EXISTS counters (
    bridge TEXT NOT NULL, result TEXT NOT NULL, count INTEGER NOT NULL, last_time REAL,
    PRIMARY KEY (bridge, result)
);
CREATE TABLE IF NOT EXISTS noise_state (bridge TEXT PRIMARY KEY, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, bridge TEXT NOT NULL, scope TEXT, time REAL NOT NULL, reason TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Item:
    """One pending notification as stored."""

    id: int
    bridge: str
    body: dict[str, Any]
    received_at: float
    attempts: int
    # Bumped each time a newer notification with the same coalescing key replaces the body, so that a
    # delivery of the older body finishing late does not remove the newer one.
    revision: int = 0


@dataclass(frozen=True)
class Write:
    """One write for `Outbox.apply`: the name of an Outbox write method and its arguments."""

    kind: str  # "add", "finish", "reschedule", "expire", "make_due" or "noise"
    args: tuple[Any, ...]


_WRITES = frozenset({"add", "finish", "reschedule", "expire", "make_due", "noise"})
INCOMING = "in"
"""An item's stage before noise control decided on it (see `Outbox.noise`); "out" is what is posted."""


class Outbox:
    """The durable queue: add (coalescing), due items, finish (final result) or reschedule."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self._db = sqlite3.connect(data_dir / "outbox.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
        if "revision" not in columns:  # a volume created before the column existed
            self._db.execute("ALTER TABLE items ADD COLUMN revision INTEGER NOT NULL DEFAULT 0")
        if "stage" not in columns:  # before noise control: every stored item is one to post
            self._db.execute("ALTER TABLE items ADD COLUMN stage TEXT NOT NULL DEFAULT 'out'")

    def apply(self, writes: list[Write]) -> list[Any]:
        """Run `writes` in one transaction and one commit; per write its result, or the exception it raised.

        Nothing is acknowledged before this returns: the commit (and its fsync) comes first. A failing
        commit raises, and then none of the writes happened.
        """
        for write in writes:
            if write.kind not in _WRITES:
                raise ValueError(f"unknown outbox write {write.kind!r}")
        results: list[Any] = []
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for write in writes:
                    self._db.execute("SAVEPOINT one_write")
                    try:
                        results.append(getattr(self, f"_{write.kind}")(*write.args))
                    except Exception as error:  # this write only: the others in the group still commit
                        self._db.execute("ROLLBACK TO one_write")
                        results.append(error)
                    self._db.execute("RELEASE one_write")
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return results

    def _one(self, kind: str, *args: Any) -> Any:
        (result,) = self.apply([Write(kind, args)])
        if isinstance(result, Exception):
            raise result
        return result

    def add(
        self, bridge: str, key: str | None, body: dict[str, Any], now: float, stage: str = "out"
    ) -> tuple[int, bool]:
        """Store (committed before returning); a pending item with the same key takes the newest body.

        `stage` INCOMING: noise control decides on it first (it is never posted as it is, see `noise`)."""
        result: tuple[int, bool] = self._one("add", bridge, key, body, now, stage)
        return result

    def _add(
        self, bridge: str, key: str | None, body: dict[str, Any], now: float, stage: str = "out"
    ) -> tuple[int, bool]:
        text = json.dumps(body, separators=(",", ":"))
        if key is not None:
            row = self._db.execute("SELECT id FROM items WHERE coalesce_key = ?", (key,)).fetchone()
            if row is not None:
                self._db.execute(
                    "UPDATE items SET body = ?, next_attempt_at = MIN(next_attempt_at, ?), revision = revision + 1"
                    " WHERE id = ?",
                    (text, now, row[0]),
                )
                return int(row[0]), True
        cursor = self._db.execute(
            "INSERT INTO items (bridge, coalesce_key, body, received_at, next_attempt_at, stage)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (bridge, key, text, now, now, stage),
        )
        return int(cursor.lastrowid or 0), False

    def incoming(self, bridge: str, limit: int) -> list[Item]:
        """Items noise control has not decided on yet, oldest first."""
        with self.lock:
            rows = self._db.execute(
                "SELECT id, bridge, body, received_at, attempts, revision FROM items"
                " WHERE bridge = ? AND stage = ? ORDER BY id LIMIT ?",
                (bridge, INCOMING, limit),
            ).fetchall()
        return [Item(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5]) for r in rows]

    def noise_state(self, bridge: str) -> dict[str, Any] | None:
        """The bridge's stored noise-control state (None: none yet)."""
        with self.lock:
            row = self._db.execute("SELECT document FROM noise_state WHERE bridge = ?", (bridge,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def _noise(
        self,
        bridge: str,
        consumed: list[int],
        passed: list[int],
        sends: list[tuple[str | None, dict[str, Any]]],
        state: dict[str, Any],
        now: float,
    ) -> list[int]:
        """One decision of noise control, all or nothing: the incoming items it took are gone, those it let
        through are to be posted as they are, its sends are stored, and its state is saved. Whatever moment
        the relay dies, an event is either still incoming (decided on again) or fully accounted for."""
        for item_id in consumed:
            self._db.execute("DELETE FROM items WHERE id = ? AND stage = ?", (item_id, INCOMING))
        for item_id in passed:
            self._db.execute("UPDATE items SET stage = 'out' WHERE id = ?", (item_id,))
        ids = [self._add(bridge, key, body, now)[0] for key, body in sends]
        self._db.execute(
            "INSERT INTO noise_state (bridge, document) VALUES (?, ?)"
            " ON CONFLICT(bridge) DO UPDATE SET document = excluded.document",
            (bridge, json.dumps(state, separators=(",", ":"))),
        )
        return ids

    def due(self, bridge: str, now: float, limit: int, any_stage: bool = False) -> list[Item]:
        """Items of a bridge whose next attempt time has come, oldest first; with `any_stage` also those
        noise control has not decided on (a bridge no longer configured has nobody to decide)."""
        stage = "" if any_stage else " AND stage = 'out'"
        with self.lock:
            rows = self._db.execute(
                "SELECT id, bridge, body, received_at, attempts, revision FROM items"
                f" WHERE bridge = ? AND next_attempt_at <= ?{stage} ORDER BY id LIMIT ?",
                (bridge, now, limit),
            ).fetchall()
        return [Item(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5]) for r in rows]

    def finish(
        self,
        item_id: int,
        bridge: str,
        result: str,
        now: float,
        scope: str | None = None,
        reason: str | None = None,
        revision: int | None = None,
    ) -> None:
        """Remove an item with its final result and count it, in one transaction.

        With `revision`, an item whose body was replaced since it was read (a newer notification with the
        same key arrived during the attempt) stays pending for the newer body; the result still counts.
        """
        self._one("finish", item_id, bridge, result, now, scope, reason, revision)

    def _finish(
        self,
        item_id: int,
        bridge: str,
        result: str,
        now: float,
        scope: str | None = None,
        reason: str | None = None,
        revision: int | None = None,
    ) -> None:
        if revision is None:
            self._db.execute("DELETE FROM items WHERE id = ?", (item_id,))
        else:
            self._db.execute("DELETE FROM items WHERE id = ? AND revision = ?", (item_id, revision))
        self._count(bridge, result, now, 1)
        if result == "deadLettered":
            self._db.execute(
                "INSERT INTO dead_letters (bridge, scope, time, reason) VALUES (?, ?, ?, ?)",
                (bridge, scope, now, reason or ""),
            )

    def _count(self, bridge: str, result: str, now: float, count: int) -> None:
        self._db.execute(
            "INSERT INTO counters (bridge, result, count, last_time) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(bridge, result) DO UPDATE SET count = count + excluded.count, last_time = excluded.last_time",
            (bridge, result, count, now),
        )

    def reschedule(self, item_id: int, next_attempt_at: float, error: str | None) -> None:
        """Record a failed attempt and when to try again."""
        self._one("reschedule", item_id, next_attempt_at, error)

    def _reschedule(self, item_id: int, next_attempt_at: float, error: str | None) -> None:
        self._db.execute(
            "UPDATE items SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
            (next_attempt_at, error, item_id),
        )

    def expire(self, bridge: str, received_before: float, now: float, reason: str) -> int:
        """Dead-letter every item of a bridge received before `received_before`; how many.

        Why: while a bridge's Backstage is down the relay probes it with one item at a time and leaves
        the others untouched, so their age is checked here rather than after an attempt.
        """
        result: int = self._one("expire", bridge, received_before, now, reason)
        return result

    def _expire(self, bridge: str, received_before: float, now: float, reason: str) -> int:
        self._db.execute(
            "INSERT INTO dead_letters (bridge, scope, time, reason)"
            " SELECT bridge, json_extract(body, '$.payload.scope'), ?, ? FROM items"
            " WHERE bridge = ? AND received_at < ? ORDER BY id",
            (now, reason, bridge, received_before),
        )
        count = self._db.execute(
            "DELETE FROM items WHERE bridge = ? AND received_at < ?", (bridge, received_before)
        ).rowcount
        if count:
            self._count(bridge, "deadLettered", now, count)
        return int(count)

    def make_due(self, item_ids: list[int], now: float) -> int:
        """Bring these items' next attempt forward to `now` (none is pushed back); how many moved."""
        result: int = self._one("make_due", item_ids, now)
        return result

    def _make_due(self, item_ids: list[int], now: float) -> int:
        moved = 0
        for start in range(0, len(item_ids), 500):  # SQLite's bound-parameter limit
            chunk = item_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            moved += self._db.execute(
                f"UPDATE items SET next_attempt_at = ? WHERE next_attempt_at > ? AND id IN ({marks})",
                (now, now, *chunk),
            ).rowcount
        return moved

    def counters(self) -> dict[str, dict[str, int]]:
        """Cumulative final results per bridge."""
        with self.lock:
            rows = self._db.execute("SELECT bridge, result, count FROM counters").fetchall()
        out: dict[str, dict[str, int]] = {}
        for bridge, result, count in rows:
            out.setdefault(bridge, {})[result] = int(count)
        return out

    def last_times(self) -> dict[str, dict[str, float]]:
        """Per bridge and final result: when it last happened (persisted, so a restart keeps it)."""
        with self.lock:
            rows = self._db.execute(
                "SELECT bridge, result, last_time FROM counters WHERE last_time IS NOT NULL"
            ).fetchall()
        out: dict[str, dict[str, float]] = {}
        for bridge, result, last_time in rows:
            out.setdefault(bridge, {})[result] = float(last_time)
        return out

    def recent_dead_letters(self, limit: int) -> dict[str, list[tuple[str | None, float, str]]]:
        """Per bridge: its newest `limit` dead letters (scope, time, reason), newest first."""
        with self.lock:
            rows = self._db.execute(
                "SELECT bridge, scope, time, reason FROM ("
                " SELECT bridge, scope, time, reason, id,"
                " ROW_NUMBER() OVER (PARTITION BY bridge ORDER BY id DESC) AS rank FROM dead_letters"
                ") WHERE rank <= ? ORDER BY bridge, id DESC",
                (limit,),
            ).fetchall()
        out: dict[str, list[tuple[str | None, float, str]]] = {}
        for bridge, scope, when, reason in rows:
            out.setdefault(bridge, []).append((scope, float(when), str(reason)))
        return out

    def retry_now(self, bridge: str, now: float) -> int:
        """Bring every pending item of a bridge forward to `now` (its config changed: a held queue goes at once)."""
        with self.lock:
            cursor = self._db.execute(
                "UPDATE items SET next_attempt_at = ? WHERE bridge = ? AND next_attempt_at > ?", (now, bridge, now)
            )
            return int(cursor.rowcount)

    def pending(self) -> dict[str, tuple[int, float]]:
        """Per bridge: pending count and oldest received time."""
        with self.lock:
            rows = self._db.execute("SELECT bridge, COUNT(*), MIN(received_at) FROM items GROUP BY bridge").fetchall()
        return {r[0]: (int(r[1]), float(r[2])) for r in rows}

    def bridges(self) -> list[str]:
        """Bridges with pending items, one index seek per bridge (not a scan of every item)."""
        with self.lock:
            rows = self._db.execute(
                "WITH RECURSIVE b(name) AS (SELECT MIN(bridge) FROM items"
                " UNION ALL SELECT (SELECT MIN(bridge) FROM items WHERE bridge > b.name) FROM b"
                " WHERE b.name IS NOT NULL)"
                " SELECT name FROM b WHERE name IS NOT NULL"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        """Close the connection (WAL is checkpointed by SQLite)."""
        with self.lock:
            self._db.close()
