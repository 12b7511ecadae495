"""Group commit for the outbox: writes from concurrent coroutines share one transaction and one fsync.

Why: the relay answers 202 only after its notification is committed with synchronous=FULL, and one
commit per request caps ingress at the disk's fsync rate (about 300/s on the project's machine). Here a
write waits in a queue while the previous commit runs, then goes with everything that queued meanwhile;
each caller resumes only once the commit holding its write has returned, so an acknowledgement still
means "on disk". Under no load a write commits alone, as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from argobridge.outbox.store import Outbox, Write

MAX_WRITES_PER_COMMIT = 512


class GroupCommit:
    """Async front of an Outbox's writes; one commit at a time, on a worker thread."""

    def __init__(self, outbox: Outbox, max_writes: int = MAX_WRITES_PER_COMMIT) -> None:
        self.outbox = outbox
        self.max_writes = max_writes
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0  # how many transactions, for tests and benchmarks
        self.writes = 0

    async def write(self, kind: str, *args: Any) -> Any:
        """Queue one write and return its result once it is committed; its exception if it failed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((Write(kind, args), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def add(
        self, bridge: str, key: str | None, body: dict[str, Any], now: float, stage: str = "out"
    ) -> tuple[int, bool]:
        """Outbox.add, group-committed."""
        result: tuple[int, bool] = await self.write("add", bridge, key, body, now, stage)
        return result

    async def noise(
        self,
        bridge: str,
        consumed: list[int],
        passed: list[int],
        sends: list[tuple[str | None, dict[str, Any]]],
        state: dict[str, Any],
        now: float,
    ) -> list[int]:
        """Outbox._noise (one decision of noise control, all or nothing), group-committed."""
        ids: list[int] = await self.write("noise", bridge, consumed, passed, sends, state, now)
        return ids

    async def finish(
        self,
        item_id: int,
        bridge: str,
        result: str,
        now: float,
        scope: str | None = None,
        reason: str | None = None,
        revision: int | None = None,
    ) -> None:
        """Outbox.finish, group-committed."""
        await self.write("finish", item_id, bridge, result, now, scope, reason, revision)

    async def reschedule(self, item_id: int, next_attempt_at: float, error: str | None) -> None:
        """Outbox.reschedule, group-committed."""
        await self.write("reschedule", item_id, next_attempt_at, error)

    async def expire(self, bridge: str, received_before: float, now: float, reason: str) -> int:
        """Outbox.expire, group-committed."""
        count: int = await self.write("expire", bridge, received_before, now, reason)
        return count

    async def make_due(self, item_ids: list[int], now: float) -> int:
        """Outbox.make_due, group-committed."""
        count: int = await self.write("make_due", item_ids, now)
        return count

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_writes], self._queue[self.max_writes :]
            try:
                results = await asyncio.to_thread(self.outbox.apply, [write for write, _ in batch])
            except Exception as error:  # the commit failed: none of these writes happened
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.commits += 1
            self.writes += len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # its caller went away; the write is stored all the same
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
