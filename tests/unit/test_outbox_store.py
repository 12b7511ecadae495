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
