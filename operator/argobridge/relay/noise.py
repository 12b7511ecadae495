"""The relay's noise-control stage: incoming notifications in, what to post out, state kept on disk.

Why a stage between ingress and delivery: Argo CD posts one notification per transition; what a person
should get (one per flap window, a resolution instead of a new "healthy", a summary past a rate limit, a
digest) depends on what came before, which `core.noisecontrol` decides as pure functions. This edge only
feeds it from the outbox and stores its answer: the incoming items it consumed, the sends it produced
and its new state go in one transaction (`Outbox.noise`), so a relay killed at any point loses nothing
and posts nothing twice. Each replica keeps its own state: with several relay replicas behind the
Service, a window is per replica (at most one notification per window and replica).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from argobridge.core.delivery import coalesce_key
from argobridge.core.noisecodec import is_off, policy_from_document, state_document, state_from_document
from argobridge.core.noisecontrol import NoisePolicy, NoiseState, event_from_body, next_wakeup, run, with_policy
from argobridge.outbox.commits import GroupCommit
from argobridge.outbox.store import Outbox

log = logging.getLogger("argobridge.relay")
BATCH = 200  # incoming items decided on per round and bridge: one transaction each
META = "argobridge"  # the body's relay-only part (event, route, app), stripped before Backstage


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def route_of(body: dict[str, Any]) -> str | None:
    """The route that produced a body (the template says so in Relay mode), None for the owners' default."""
    meta = body.get(META)
    route = meta.get("route") if isinstance(meta, dict) else None
    return route if isinstance(route, str) else None


def for_backstage(body: dict[str, Any]) -> dict[str, Any]:
    """The body without what only the relay reads."""
    return {key: value for key, value in body.items() if key != META}


class NoiseStage:
    """Per bridge: its state (loaded once from the store), and one decision round at a time."""

    def __init__(self, outbox: Outbox, writes: GroupCommit) -> None:
        self.outbox = outbox
        self.writes = writes
        self.states: dict[str, NoiseState] = {}

    @staticmethod
    def policy(bridge: dict[str, Any]) -> NoisePolicy:
        return policy_from_document(bridge.get("noise"))

    def enabled(self, bridge: dict[str, Any]) -> bool:
        """Whether ingress hands this bridge's notifications to noise control (else they go as posted)."""
        return not is_off(self.policy(bridge))

    def held(self, key: str) -> int:
        """Events noise control holds for later (flap windows, rate-limit windows, digests), for status."""
        state = self.states.get(key)
        if state is None:
            return 0
        pending = sum(
            len(thread.pending.ids)
            for threads in state.threads.values()
            for thread in threads.values()
            if thread.pending
        )
        held = sum(len(line.ids) for window in state.windows.values() for line in window.held)
        return pending + held + sum(len(line.ids) for batch in state.digests.values() for line in batch.lines)

    async def _state(self, key: str, policy: NoisePolicy) -> NoiseState:
        state = self.states.get(key)
        if state is None:
            stored = await asyncio.to_thread(self.outbox.noise_state, key)
            state = NoiseState(policy=policy) if stored is None else state_from_document(stored, policy)
        elif state.policy != policy:
            state = with_policy(state, policy)
        self.states[key] = state
        return state

    async def step(self, key: str, bridge: dict[str, Any]) -> bool:
        """Decide on the bridge's incoming items and on what came due; whether anything was stored."""
        policy = self.policy(bridge)
        incoming = await asyncio.to_thread(self.outbox.incoming, key, BATCH)
        state = await self._state(key, policy)
        now = time.time()
        wake = next_wakeup(state)
        if not incoming and (wake is None or wake.timestamp() > now):
            return False
        offers = []
        passed: list[int] = []
        for item in incoming:
            event = None if is_off(policy) else event_from_body(str(item.id), item.body, route_of(item.body))
            if event is None or not event.recipients:
                # Not one of ours, noise control off, or nobody named yet (catalog recipients are filled in
                # at delivery): posted as it is, where delivery decides.
                passed.append(item.id)
            else:
                offers.append((event, _at(item.received_at)))
        decision = run(state, offers, _at(now))
        sends = [send.body() for send in decision.sends]
        consumed = [item.id for item in incoming if item.id not in passed]
        await self.writes.noise(
            key,
            consumed,
            passed,
            [(coalesce_key(key, body), body) for body in sends],
            state_document(decision.state),
            now,
        )
        self.states[key] = decision.state
        if decision.sends or decision.absorbed:
            log.info(
                "%s: noise control took %d, sends %d (%s), absorbed %d",
                key,
                len(consumed),
                len(sends),
                ",".join(sorted({send.kind for send in decision.sends})) or "-",
                len(decision.absorbed),
            )
        return True
