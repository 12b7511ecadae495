"""Repairs of drifted keys, paced: remembers each bridge's recent repairs per key (see core/repairs.py).

Called by the reconcile just before it would rewrite keys someone else changed; the answer says whether
to write now and whether the repair still deserves its own Event. Memory is per process and per
bridge, dropped when the bridge goes away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from argobridge.core.repairs import RepairState, decide_repair, fight_message
from argobridge.core.status import Notice, ReconcileReport
from argobridge.settings import Settings

_lock = threading.Lock()
_states: dict[tuple[str, str], dict[str, RepairState]] = {}


@dataclass(frozen=True)
class Gate:
    """Write now or wait for a later reconcile; post the usual DriftRepaired Event or stay quiet."""

    write: bool = True
    announce: bool = True


def gate(namespace: str, bridge: str, kind: str, name: str, keys: Iterable[str], report: ReconcileReport) -> Gate:
    """Whether repairing `keys` of the object may happen now; adds the one fight Warning to `report`."""
    keys = sorted(set(keys))
    now = time.monotonic()
    cap = Settings.from_env().resync_seconds
    with _lock:
        remembered = _states.setdefault((namespace, bridge), {})
        decisions = {key: decide_repair(remembered.get(key), now, cap) for key in keys}
        if not all(decision.repair for decision in decisions.values()):
            return Gate(write=False, announce=False)
        remembered.update({key: decision.state for key, decision in decisions.items()})
    fought = [key for key, decision in decisions.items() if decision.warn]
    if fought:
        repairs = max(decisions[key].state.repairs for key in fought)
        message = fight_message(kind, namespace, name, fought, repairs)
        report.notices.append(Notice("Warning", "DriftContested", message))
    return Gate(write=True, announce=all(decision.announce for decision in decisions.values()))


def forget(namespace: str, bridge: str) -> None:
    """Drop what is remembered of a deleted bridge."""
    with _lock:
        _states.pop((namespace, bridge), None)
