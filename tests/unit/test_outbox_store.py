"""The relay's SQLite outbox: items survive reopening, coalescing keeps the newest body, results are counted."""

from __future__ import annotations

from pathlib import Path

from argobridge.outbox.store import Outbox


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
