"""The relay's SQLite outbox: items survive reopening, coalescing keeps the newest body, results are counted."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from argobridge.outbox.commits import GroupCommit
from argobridge.outbox.store import Outbox, Write


def test_items_survive_reopen_and_coalesce_to_the_newest(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    first, coalesced = box.add("ns.b", "k", {"payload": {"title": "old"}}, now=1.0)
    assert not coalesced
    again, coalesced = box.add("ns.b", "k", {"payload": {"title": "new"}}, now=2.0)
    assert coalesced and again == first
    box.add("ns.b", None, {"payload": {"title": "other"}}, now=3.0)
    box.close()
    box = Outbox(tmp_path)
    items = box.due("ns.b", now=10.0, limit=10)
    assert [i.body["payload"]["title"] for i in items] == ["new", "other"]
    assert items[0].received_at == 1.0
    box.finish(items[0].id, "ns.b", "delivered", now=11.0)
    box.reschedule(items[1].id, 100.0, "timeout")
    assert box.due("ns.b", now=20.0, limit=10) == []
    assert box.counters() == {"ns.b": {"delivered": 1}}
    assert box.pending()["ns.b"][0] == 1


def test_a_failing_write_in_a_group_commit_leaves_the_others_stored(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    results = box.apply(
        [
            Write("add", ("ns.b", "k1", {"payload": {"title": "one"}}, 1.0)),
            Write("add", ("ns.b", "k2", {"payload": {"title": object()}}, 1.0)),  # not JSON: this one fails
            Write("add", ("ns.b", "k3", {"payload": {"title": "three"}}, 1.0)),
        ]
    )
    assert isinstance(results[1], TypeError)
    box.close()
    box = Outbox(tmp_path)
    assert [i.body["payload"]["title"] for i in box.due("ns.b", now=2.0, limit=10)] == ["one", "three"]


def test_a_delivery_finishing_after_a_newer_coalesced_body_keeps_the_newer_one(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.add("ns.b", "k", {"payload": {"title": "old"}}, now=1.0)
    (in_flight,) = box.due("ns.b", now=2.0, limit=10)
    box.add("ns.b", "k", {"payload": {"title": "new"}}, now=3.0)  # arrives while "old" is being delivered
    box.finish(in_flight.id, "ns.b", "delivered", now=4.0, revision=in_flight.revision)
    (left,) = box.due("ns.b", now=5.0, limit=10)
    assert left.body["payload"]["title"] == "new"
    box.finish(left.id, "ns.b", "delivered", now=6.0, revision=left.revision)
    assert box.due("ns.b", now=7.0, limit=10) == []
    assert box.counters() == {"ns.b": {"delivered": 2}}


def test_expire_dead_letters_what_is_older_than_retry_for_and_counts_it(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    for scope, received in (("a", 1.0), ("b", 2.0), ("c", 10.0)):
        box.add("ns.b", scope, {"payload": {"title": scope, "scope": scope}}, now=received)
    box.add("ns.other", "d", {"payload": {"title": "d", "scope": "d"}}, now=1.0)
    assert box.expire("ns.b", received_before=5.0, now=20.0, reason="retryFor passed") == 2
    assert [i.body["payload"]["scope"] for i in box.due("ns.b", now=30.0, limit=10)] == ["c"]
    assert box.counters() == {"ns.b": {"deadLettered": 2}}
    assert box.pending()["ns.other"][0] == 1
    assert sorted(box.bridges()) == ["ns.b", "ns.other"]


def test_a_volume_from_before_revisions_opens_and_keeps_its_items(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "outbox.db")
    old.executescript(
        "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, bridge TEXT NOT NULL, coalesce_key TEXT,"
        " body TEXT NOT NULL, received_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_at REAL NOT NULL, last_error TEXT);"
        """INSERT INTO items (bridge, coalesce_key, body, received_at, next_attempt_at)
           VALUES ('ns.b', 'k', '{"payload":{"title":"kept"}}', 1.0, 1.0);"""
    )
    old.commit()
    old.close()
    box = Outbox(tmp_path)
    (item,) = box.due("ns.b", now=2.0, limit=10)
    assert item.body["payload"]["title"] == "kept" and item.revision == 0


def test_concurrent_writes_share_commits_and_each_gets_its_own_result(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    commits = GroupCommit(box)

    async def many() -> list[tuple[int, bool]]:
        return await asyncio.gather(
            *(commits.add("ns.b", f"k{i % 150}", {"payload": {"title": str(i)}}, 1.0) for i in range(200))
        )

    results = asyncio.run(many())
    assert commits.writes == 200 and commits.commits < 200
    assert sum(coalesced for _, coalesced in results) == 50
    assert len({item_id for item_id, _ in results}) == 150
    box.close()
    assert len(Outbox(tmp_path).due("ns.b", now=2.0, limit=1000)) == 150


def test_make_due_brings_chosen_items_forward_and_never_pushes_one_back(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    ids = [box.add("ns.b", key, {"payload": {"title": key}}, now=1.0)[0] for key in ("probed", "backed-off", "due")]
    box.reschedule(ids[0], 500.0, "connection refused")
    box.reschedule(ids[1], 500.0, "Backstage answered 500")
    assert box.make_due([ids[0], ids[2]], now=10.0) == 1  # "due" was due already: left as it was
    assert [i.body["payload"]["title"] for i in box.due("ns.b", now=10.0, limit=10)] == ["probed", "due"]


def test_last_result_times_and_the_newest_dead_letters_survive_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    for i in range(12):
        item, _ = box.add("ns.b", None, {"payload": {"scope": f"s{i}"}}, now=float(i))
        box.finish(item, "ns.b", "deadLettered", now=100.0 + i, scope=f"s{i}", reason="ConnectError")
    other, _ = box.add("ns.c", None, {}, now=1.0)
    box.finish(other, "ns.c", "delivered", now=200.0)
    box.close()
    box = Outbox(tmp_path)
    assert box.last_times() == {"ns.b": {"deadLettered": 111.0}, "ns.c": {"delivered": 200.0}}
    letters = box.recent_dead_letters(10)
    assert [scope for scope, _, _ in letters["ns.b"]] == [f"s{i}" for i in range(11, 1, -1)]
    assert "ns.c" not in letters


def test_retry_now_brings_a_held_queue_forward_and_leaves_due_items_alone(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    held, _ = box.add("ns.b", None, {}, now=1.0)
    box.reschedule(held, 31.0, "Backstage answered 401")
    box.add("ns.other", None, {}, now=1.0)
    assert box.due("ns.b", now=2.0, limit=10) == []
    assert box.retry_now("ns.b", now=2.0) == 1
    assert [item.id for item in box.due("ns.b", now=2.0, limit=10)] == [held]
    assert box.retry_now("ns.b", now=2.0) == 0
