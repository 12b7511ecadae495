"""Annotations mode: which `subscribe.*` annotations ArgoBridge keeps on an Application, and when.

ArgoBridge owns exactly the annotations it applies (server-side apply, field manager `argobridge`), so
taking them away never touches a user's annotation. Something else (an ApplicationSet, a GitOps sync)
may keep resetting them; ArgoBridge then re-applies with a growing delay instead of fighting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from argobridge.core.appcheck import SUBSCRIBE_PREFIX, AppFacts
from argobridge.core.entityref import parse_entity_refs
from argobridge.core.events import ENTITY_REF_ANNOTATION

FIRST_BACKOFF_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 600.0
FIGHT_MEMORY_SECONDS = 1800.0


@dataclass(frozen=True)
class AnnotationPlan:
    """The annotations to own after the write (the apply body), or None when nothing needs writing."""

    desired: dict[str, str]
    repair: bool  # ours were there before and someone took them away


def desired_annotations(
    app: AppFacts, service: str, triggers: Sequence[str], owned_in_catalog: bool = False
) -> dict[str, str]:
    """One `subscribe.<trigger>.<service>: ""` per enabled trigger, for apps with a deliverable ref or, with
    `owned_in_catalog` (Relay mode, the catalog's entities claim the app), whose owners the relay fills in."""
    raw = app.annotations.get(ENTITY_REF_ANNOTATION)
    deliverable = raw is not None and any(ref.canonical for ref in parse_entity_refs(raw))
    if not deliverable and not owned_in_catalog:
        return {}
    return {f"{SUBSCRIBE_PREFIX}{trigger}.{service}": "" for trigger in triggers}


def plan_annotations(
    app: AppFacts, desired: Mapping[str, str], owned: Iterable[str], applied_before: Iterable[str] = ()
) -> AnnotationPlan | None:
    """What to apply so the app carries `desired` and none of our former annotations; None if it does.

    `applied_before` is what ArgoBridge last applied to this app: when another writer removes those
    fields the apiserver drops our ownership with them, so only this memory tells a repair from a first write.
    """
    owned = set(owned)
    missing = [key for key, value in desired.items() if app.annotations.get(key) != value]
    stale = [key for key in owned if key not in desired and key in app.annotations]
    if not missing and not stale:
        return None
    return AnnotationPlan(desired=dict(desired), repair=bool((owned | set(applied_before)) & set(missing)))


def repair_delay(repairs: Sequence[float], now: float) -> float:
    """Seconds to wait before the next repair, given recent repair times: 0, then 30 s doubling to 10 min."""
    recent = [moment for moment in repairs if now - moment < FIGHT_MEMORY_SECONDS]
    if not recent:
        return 0.0
    wait = min(FIRST_BACKOFF_SECONDS * 2.0 ** (len(recent) - 1), MAX_BACKOFF_SECONDS)
    return max(0.0, recent[-1] + wait - now)
