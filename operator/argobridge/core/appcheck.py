"""Diagnose Applications against the notifications configuration: who gets notified, and what is wrong.

Pure: an Application's annotations and labels, and the names of the triggers and services that exist,
go in; whether it is subscribed, its refs, and every problem (with its fix) come out. These are the
failures of the manual procedure that Argo CD itself reports only as a log line, or not at all.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from argobridge.core.entityref import EntityRef, parse_entity_refs
from argobridge.core.events import CATALOG, ENTITY_REF_ANNOTATION
from argobridge.core.spec import BridgeSpec, SubscriptionMode

SUBSCRIBE_PREFIX = "notifications.argoproj.io/subscribe."


@dataclass(frozen=True, slots=True)
class AppFacts:
    """The parts of an Application that matter here, as the index keeps them.

    Slots, no per-object dict: the store holds one per Application (10,000 and more), so every field
    here costs that many times over; build them with `compact_app_facts` to share the repeated strings.
    """

    namespace: str
    name: str
    uid: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    owned_annotations: frozenset[str] = frozenset()  # what ArgoBridge applied, from managedFields


class StringPairs(Mapping[str, str]):
    """A read-only mapping kept as one flat tuple (key, value, key, value, ...).

    Why: a dict of three labels costs ~230 bytes, this ~140; an Application has a handful of labels and
    relevant annotations, so a linear lookup is as quick as hashing, and the store holds 10,000 of them.
    """

    __slots__ = ("_flat",)

    def __init__(self, flat: tuple[str, ...]) -> None:
        self._flat = flat

    def __getitem__(self, key: str) -> str:
        flat = self._flat
        for index in range(0, len(flat), 2):
            if flat[index] == key:
                return flat[index + 1]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._flat[::2])

    def __len__(self) -> int:
        return len(self._flat) // 2

    def __repr__(self) -> str:
        return f"StringPairs({dict(self)!r})"


_NO_STRINGS: Mapping[str, str] = StringPairs(())  # shared by every app with no labels or annotations
_OWNED_SETS: dict[frozenset[str], frozenset[str]] = {}  # a fleet has a handful of distinct owned sets


def _shared_strings(pairs: Mapping[str, str], intern_values: bool) -> Mapping[str, str]:
    if not pairs:
        return _NO_STRINGS
    flat: list[str] = []
    for key, value in pairs.items():
        flat += (sys.intern(str(key)), sys.intern(str(value)) if intern_values else str(value))
    return StringPairs(tuple(flat))


def compact_app_facts(
    namespace: str,
    name: str,
    uid: str,
    annotations: Mapping[str, str],
    labels: Mapping[str, str],
    owned: frozenset[str],
) -> AppFacts:
    """AppFacts with namespaces, keys, label values and owned sets shared between Applications.

    Why: at 10,000 Applications the same few namespaces, annotation keys, label keys and values (team,
    environment) repeat in every record; the watch decodes each one as a fresh string. Names, uids and
    entity refs are unique per app and stay as they are.
    """
    shared_owned: frozenset[str] = frozenset()
    if owned:
        interned = frozenset(sys.intern(key) for key in owned)
        shared_owned = _OWNED_SETS.setdefault(interned, interned)
    return AppFacts(
        sys.intern(str(namespace)),
        str(name),
        str(uid),
        _shared_strings(annotations, intern_values=False),
        _shared_strings(labels, intern_values=True),
        shared_owned,
    )


@dataclass(frozen=True)
class KnownConfig:
    """What the notifications configuration defines, and which parts are ArgoBridge's."""

    triggers: frozenset[str]
    services: frozenset[str]
    our_service: str
    our_triggers: frozenset[str]
    global_subscription: bool
    selector: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AppDiagnosis:
    """The verdict on one Application."""

    app: AppFacts
    refs: tuple[EntityRef, ...]
    subscribed: bool
    ref_problems: tuple[str, ...]
    subscription_problems: tuple[str, ...]

    @property
    def invalid_ref(self) -> bool:
        return bool(self.ref_problems)

    @property
    def misconfigured(self) -> bool:
        return bool(self.subscription_problems)

    @property
    def problems(self) -> tuple[str, ...]:
        return (*self.ref_problems, *self.subscription_problems)


def annotation_subscriptions(annotations: Mapping[str, str]) -> list[tuple[str | None, str]]:
    """(trigger, service) pairs from `subscribe.<trigger>.<service>` (trigger None: the default triggers)."""
    pairs: list[tuple[str | None, str]] = []
    for key in annotations:
        if not key.startswith(SUBSCRIBE_PREFIX):
            continue
        parts = key[len(SUBSCRIBE_PREFIX) :].split(".")
        if len(parts) == 1:
            pairs.append((None, parts[0]))
        elif len(parts) == 2:
            pairs.append((parts[0], parts[1]))
    return sorted(pairs, key=lambda pair: (pair[1], pair[0] or ""))


def _selected(labels: Mapping[str, str], selector: tuple[tuple[str, str], ...]) -> bool:
    return all(labels.get(key) == value for key, value in selector)


def diagnose_app(app: AppFacts, known: KnownConfig) -> AppDiagnosis:
    """Whether the app will be notified through ArgoBridge, and every misconfiguration with its fix."""
    raw_ref = app.annotations.get(ENTITY_REF_ANNOTATION)
    refs = tuple(parse_entity_refs(raw_ref)) if raw_ref is not None else ()
    deliverable = any(ref.canonical for ref in refs)
    ref_problems: list[str] = [f"backstage.io/entity-ref: {ref.problem}" for ref in refs if ref.problem]
    if raw_ref is not None and not refs:
        ref_problems.append(
            "backstage.io/entity-ref is empty; set it to the owning entity, e.g. component:default/<name>"
        )

    problems: list[str] = []
    ours = False
    for trigger, service in annotation_subscriptions(app.annotations):
        where = f"annotation {SUBSCRIBE_PREFIX}{trigger + '.' if trigger else ''}{service}"
        if service == known.our_service:
            if trigger is None:
                problems.append(
                    f"{where} uses Argo CD's default triggers, whose templates have no webhook body for"
                    f" {service} (the engine sends a GET with plain text); subscribe the -backstage triggers"
                )
            elif trigger not in known.our_triggers:
                suggestion = (
                    f"{trigger}-backstage" if f"{trigger}-backstage" in known.our_triggers else "a -backstage trigger"
                )
                problems.append(
                    f"{where} sends Argo CD's catalog trigger {trigger} to {service}; its template has no JSON"
                    f" body for Backstage (400 'not valid JSON' or a GET); subscribe {suggestion} instead"
                )
            else:
                ours = True
        elif service not in known.services:
            problems.append(f"{where} names service {service}, which the notifications configuration does not define")
        if trigger is not None and trigger not in known.triggers and trigger not in known.our_triggers:
            problems.append(f"{where} names trigger {trigger}, which the notifications configuration does not define")

    if known.global_subscription and _selected(app.labels, known.selector):
        ours = True
    explicitly_ours = any(service == known.our_service for _, service in annotation_subscriptions(app.annotations))
    if explicitly_ours and raw_ref is None and not app.owned_annotations:
        problems.append(
            f"subscribed to {known.our_service} but has no backstage.io/entity-ref annotation, so nobody"
            " would be notified; add the owning entity, e.g. component:default/<name>"
        )
    return AppDiagnosis(
        app=app,
        refs=refs,
        subscribed=ours and deliverable,
        ref_problems=tuple(ref_problems),
        subscription_problems=tuple(problems),
    )


@dataclass(frozen=True)
class CatalogAnswer:
    """Which refs exist in Backstage's catalog; `unavailable` says why the check could not be made."""

    existing: frozenset[str] = frozenset()
    unavailable: str | None = None


def refs_to_check(diagnoses: Iterable[AppDiagnosis]) -> list[str]:
    """The distinct canonical refs that notifications would go to."""
    return sorted({ref.canonical for item in diagnoses if item.subscribed for ref in item.refs if ref.canonical})


def missing_entities(diagnoses: Iterable[AppDiagnosis], answer: CatalogAnswer) -> list[tuple[AppFacts, str]]:
    """Each subscribed app's refs that name no entity: Backstage would answer 200 [] and notify nobody."""
    if answer.unavailable:
        return []
    return [
        (
            item.app,
            f"backstage.io/entity-ref: {ref.canonical} is not in Backstage's catalog; Backstage accepts such a"
            " notification and delivers it to nobody. Fix the ref or register the entity",
        )
        for item in diagnoses
        if item.subscribed
        for ref in item.refs
        if ref.canonical and ref.canonical not in answer.existing
    ]


def in_scope(namespace: str, argocd_namespace: str, application_namespaces: Iterable[str]) -> bool:
    """Apps in the Argo CD namespace, or in one the controller's --application-namespaces would match."""
    return namespace == argocd_namespace or any(fnmatch.fnmatchcase(namespace, p) for p in application_namespaces)


def count_applications(diagnoses: Iterable[AppDiagnosis]) -> dict[str, int]:
    """The `status.applications` summary."""
    items = list(diagnoses)
    return {
        "watched": len(items),
        "subscribed": sum(1 for item in items if item.subscribed),
        "invalidEntityRef": sum(1 for item in items if item.invalid_ref),
        "misconfigured": sum(1 for item in items if item.misconfigured),
    }


def annotations_owned_by(managed_fields: Iterable[Mapping[str, Any]] | None, manager: str) -> frozenset[str]:
    """The annotation keys a field manager owns through apply, read from `metadata.managedFields`."""
    keys: set[str] = set()
    for entry in managed_fields or ():
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        annotations = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:annotations") or {}
        keys.update(name[2:] for name in annotations if name.startswith("f:"))
    return frozenset(keys)


def configured_names(data: Mapping[str, str]) -> tuple[frozenset[str], frozenset[str]]:
    """Trigger names and service names defined in a notifications ConfigMap's data."""
    triggers = frozenset(key[len("trigger.") :] for key in data if key.startswith("trigger."))
    services: set[str] = set()
    for key in data:
        if key.startswith("service."):
            parts = key.split(".")
            services.add(parts[2] if len(parts) >= 3 else parts[1])
    return triggers, frozenset(services)


def known_config_for(spec: BridgeSpec, data: Mapping[str, str]) -> KnownConfig:
    """What an Application's subscriptions are judged against: the effective notifications config and
    the bridge's own service, triggers and subscription mode."""
    triggers, services = configured_names(data)
    return KnownConfig(
        triggers=triggers,
        services=services,
        our_service=spec.service_name,
        our_triggers=frozenset(definition.trigger for definition in CATALOG.values()),
        global_subscription=spec.subscription_mode is SubscriptionMode.GLOBAL,
        selector=spec.subscription_selector,
    )
