"""When to repair a key another writer changed again: at once the first time, then after a growing delay.

Without it, ArgoBridge and another writer of the same key (a GitOps sync of the ConfigMap, a script,
a second operator) answer each other's writes at once, forever, with an Event every round. Each repair
of a key waits 5 s, 10 s, 20 s ... up to the resync interval after the one before; a fight is told once,
with the key and what to do, and then counted in `driftRepairs`, not posted on every round. A key left
alone for a while is forgiven. Pure: the caller passes `now` and keeps the returned state.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_DELAY_SECONDS = 5.0
# Repairs of one key after which it is a fight worth one Warning, not a one-off edit.
FIGHT_AFTER_REPAIRS = 3
# A key not repaired for this many resync intervals is forgotten: the fight (if any) is over.
QUIET_INTERVALS = 4


@dataclass(frozen=True)
class RepairState:
    """What is remembered about one key: repairs in a row, the last one (monotonic seconds), warned yet."""

    repairs: int = 0
    last: float = 0.0
    warned: bool = False


@dataclass(frozen=True)
class RepairDecision:
    """Repair now or not; the state to keep; whether to post the one fight Warning now; whether the
    repair is still worth its own Event (only the first few of a key are)."""

    repair: bool
    state: RepairState
    warn: bool = False
    announce: bool = True
    wait: float = 0.0


def repair_delay(repairs: int, cap: float) -> float:
    """Seconds to wait after `repairs` repairs in a row before the next one: 0, 5, 10, 20 ... up to cap."""
    if repairs <= 0:
        return 0.0
    return float(min(cap, FIRST_DELAY_SECONDS * 2 ** min(repairs - 1, 20)))


def decide_repair(state: RepairState | None, now: float, cap: float) -> RepairDecision:
    """Whether the key may be repaired at `now`, given what is remembered of it and the resync interval `cap`."""
    current = state or RepairState()
    if current.repairs and now - current.last >= QUIET_INTERVALS * max(cap, FIRST_DELAY_SECONDS):
        current = RepairState()  # quiet for long enough: a new edit is a new story
    wait = current.last + repair_delay(current.repairs, cap) - now
    if current.repairs and wait > 0:
        return RepairDecision(repair=False, state=current, announce=False, wait=wait)
    repairs = current.repairs + 1
    fight = repairs >= FIGHT_AFTER_REPAIRS
    warn = fight and not current.warned
    return RepairDecision(
        repair=True,
        state=RepairState(repairs, now, current.warned or warn),
        warn=warn,
        announce=not fight,
    )


def fight_message(kind: str, namespace: str, name: str, keys: list[str], repairs: int) -> str:
    """The one Warning for a fight over `keys` of an object: how to find the writer and the ways out."""
    shown = ", ".join(keys)
    return (
        f"Another writer keeps changing {shown} of {kind} {namespace}/{name} ({repairs} repairs in a row);"
        " ArgoBridge now repairs it only after a growing delay (up to the resync interval) and posts no"
        f" Event per round. Find the writer with `kubectl get {kind.lower()} {name} -n {namespace} -o yaml"
        " --show-managed-fields` and stop it writing that key (take the key out of what it applies), or"
        " delete this BackstageBridge if the other writer should own it"
    )
