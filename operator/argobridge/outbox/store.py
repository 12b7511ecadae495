"""SQLite outbox of the delivery relay: WAL, synchronous=FULL, so an acknowledged item survives a SIGKILL.

Why one connection used from one thread: sqlite3 connections are not shared across threads; callers in
asyncio wrap calls with asyncio.to_thread behind a lock (see `Outbox.lock`).
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
    last_error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS items_coalesce ON items(coalesce_key) WHERE coalesce_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_due ON items(bridge, next_attempt_at);
CREATE TABLE IF NOT EXISTS counters (
    bridge TEXT NOT NULL, result TEXT NOT NULL, count INTEGER NOT NULL, last_time REAL,
    PRIMARY KEY (bridge, result)
);
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


class Outbox:
    """The durable queue: add (coalescing), due items, finish (final result) or reschedule."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self._db = sqlite3.connect(data_dir / "outbox.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def add(self, bridge: str, key: str | None, body: dict[str, Any], now: float) -> tuple[int, bool]:
        """Store (committed before returning); a pending item with the same key takes the newest body."""
        text = json.dumps(body, separators=(",", ":"))
        with self.lock:
            if key is not None:
                row = self._db.execute("SELECT id FROM items WHERE coalesce_key = ?", (key,)).fetchone()
                if row is not None:
                    self._db.execute(
                        "UPDATE items SET body = ?, next_attempt_at = MIN(next_attempt_at, ?) WHERE id = ?",
                        (text, now, row[0]),
                    )
                    return int(row[0]), True
            cursor = self._db.execute(
                "INSERT INTO items (bridge, coalesce_key, body, received_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)",
                (bridge, key, text, now, now),
            )
            return int(cursor.lastrowid or 0), False

    def due(self, bridge: str, now: float, limit: int) -> list[Item]:
        """Items of a bridge whose next attempt time has come, oldest first."""
        with self.lock:
            rows = self._db.execute(
                "SELECT id, bridge, body, received_at, attempts FROM items"
                " WHERE bridge = ? AND next_attempt_at <= ? ORDER BY id LIMIT ?",
                (bridge, now, limit),
            ).fetchall()
        return [Item(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def finish(
        self, item_id: int, bridge: str, result: str, now: float, scope: str | None = None, reason: str | None = None
    ) -> None:
        """Remove an item with its final result and count it, in one transaction."""
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM items WHERE id = ?", (item_id,))
            self._db.execute(
                "INSERT INTO counters (bridge, result, count, last_time) VALUES (?, ?, 1, ?) "
                "ON CONFLICT(bridge, result) DO UPDATE SET count = count + 1, last_time = excluded.last_time",
                (bridge, result, now),
            )
            if result == "deadLettered":
                self._db.execute(
                    "INSERT INTO dead_letters (bridge, scope, time, reason) VALUES (?, ?, ?, ?)",
                    (bridge, scope, now, reason or ""),
                )
            self._db.execute("COMMIT")

    def reschedule(self, item_id: int, next_attempt_at: float, error: str | None) -> None:
        """Record a failed attempt and when to try again."""
        with self.lock:
            self._db.execute(
                "UPDATE items SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
                (next_attempt_at, error, item_id),
            )

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

    def close(self) -> None:
        """Close the connection (WAL is checkpointed by SQLite)."""
        with self.lock:
            self._db.close()
