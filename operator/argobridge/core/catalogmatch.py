"""Recipients of an Application from the Backstage catalog, by the Argo CD plugins' own annotations.

Catalogs that show Argo CD in Backstage already say which Applications belong to an entity: the entity
annotations `argocd/app-name` (one Application name) or `argocd/app-selector` (a label selector over
Applications' labels), narrowed by `argocd/app-namespace` and `argocd/instance-name`. Both plugins (Roadie's
and the community/Red Hat one) hand the selector to Argo CD's `GET /api/v1/applications?selector=`, which
parses it with Kubernetes' `labels.Parse`; the same grammar is accepted here (`k=v`, `k==v`, `k!=v`,
`k in (a,b)`, `k notin (a)`, `k`, `!k`, `k>1`, `k<9`, joined by commas), so an entity that works in the
plugin's card works here, and one that does not is reported, never guessed.

Pure: the catalog's JSON goes in once (the edge refreshes it on its own schedule), an immutable index
comes out, and every lookup after that is a dictionary read plus one pass over the selector entities.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeGuard

from argobridge.core.entityref import parse_entity_refs
from argobridge.core.labels import label_key_problem, label_value_problem

APP_NAME_ANNOTATION = "argocd/app-name"
APP_SELECTOR_ANNOTATION = "argocd/app-selector"
APP_NAMESPACE_ANNOTATION = "argocd/app-namespace"
INSTANCE_NAME_ANNOTATION = "argocd/instance-name"
CATALOG_ANNOTATIONS = (APP_NAME_ANNOTATION, APP_SELECTOR_ANNOTATION)
"""The annotations that make an entity an owner of Applications; the edge filters the catalog on them."""

# An Application name is a DNS subdomain (Kubernetes object names), at most 253 characters.
_APP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
MAX_APP_NAME = 253
_SPECIAL = "!=<>(),"
_SYMBOLS = frozenset({*_SPECIAL, "!=", "=="})
_INTEGER = re.compile(r"[-+]?[0-9]+")  # `>` and `<` compare label values as integers, as Kubernetes does


class SelectorError(ValueError):
    """A selector Argo CD's API would refuse; the message says what to write instead."""


class SelectorOperator(StrEnum):
    """The operators of Kubernetes' `labels.Parse` (`=` and `==` are one)."""

    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = ">"
    LESS_THAN = "<"


@dataclass(frozen=True)
class SelectorRequirement:
    """One comma-separated part of a selector."""

    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """As Kubernetes decides it: `!=` and `notin` also hold when the label is absent."""
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.operator is SelectorOperator.EXISTS:
            return present
        if self.operator is SelectorOperator.DOES_NOT_EXIST:
            return not present
        if self.operator in (SelectorOperator.EQUALS, SelectorOperator.IN):
            return present and value in self.values
        if self.operator in (SelectorOperator.NOT_EQUALS, SelectorOperator.NOT_IN):
            return not present or value not in self.values
        if not present or not _INTEGER.fullmatch(value):
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.operator is SelectorOperator.GREATER_THAN else int(value) < bound


@dataclass(frozen=True)
class LabelSelector:
    """Requirements that must all hold; never empty (an empty selector would match every Application)."""

    text: str
    requirements: tuple[SelectorRequirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)


def _tokens(text: str) -> list[str]:
    """Kubernetes' lexer: the special symbols, and identifiers (runs of anything else but spaces)."""
    tokens: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif text[index : index + 2] in ("!=", "=="):
            tokens.append(text[index : index + 2])
            index += 2
        elif char in _SPECIAL:
            tokens.append(char)
            index += 1
        else:
            end = index
            while end < len(text) and not text[end].isspace() and text[end] not in _SPECIAL:
                end += 1
            tokens.append(text[index:end])
            index = end
    return tokens


def _identifier(token: str | None) -> TypeGuard[str]:
    return token is not None and token not in _SYMBOLS


def _checked_key(key: str | None, text: str) -> str:
    if not _identifier(key) or key in ("in", "notin"):
        raise SelectorError(f"{text!r}: a label key is missing; write key=value, key in (a,b), key or !key")
    if problem := label_key_problem(key):
        raise SelectorError(f"{text!r}: the label key {key!r} {problem}")
    return key


def _checked_value(value: str, key: str, text: str) -> str:
    if problem := label_value_problem(value):
        raise SelectorError(f"{text!r}: the value {value!r} of {key} {problem}")
    return value


def parse_label_selector(text: str) -> LabelSelector:
    """A selector in the grammar Argo CD's API accepts (Kubernetes' `labels.Parse`), or SelectorError."""
    tokens = _tokens(text)
    if not tokens:
        raise SelectorError("the selector is empty, which would match every Application; write key=value")
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str | None:
        nonlocal position
        token = peek()
        position += 1
        return token

    requirements: list[SelectorRequirement] = []
    while True:
        if peek() == "!":
            take()
            key = _checked_key(take(), text)
            requirements.append(SelectorRequirement(key, SelectorOperator.DOES_NOT_EXIST))
        else:
            key = _checked_key(take(), text)
            operator = peek()
            if operator in (None, ","):
                requirements.append(SelectorRequirement(key, SelectorOperator.EXISTS))
            elif operator in ("=", "==", "!="):
                take()
                value = "" if peek() in (None, ",") else take()
                if not _identifier(value):
                    raise SelectorError(f"{text!r}: {key}{operator} must be followed by a value")
                kind = SelectorOperator.NOT_EQUALS if operator == "!=" else SelectorOperator.EQUALS
                requirements.append(SelectorRequirement(key, kind, (_checked_value(value, key, text),)))
            elif operator in ("<", ">"):
                take()
                value = take()
                if value is None or not _INTEGER.fullmatch(value):
                    raise SelectorError(f"{text!r}: {key}{operator} needs a whole number")
                kind = SelectorOperator.GREATER_THAN if operator == ">" else SelectorOperator.LESS_THAN
                requirements.append(SelectorRequirement(key, kind, (value,)))
            elif operator in ("in", "notin"):
                take()
                if take() != "(":
                    raise SelectorError(f"{text!r}: {key} {operator} must be followed by values in parentheses")
                values: list[str] = []
                expect_value = True
                while (token := take()) != ")":
                    if token is None:
                        raise SelectorError(f"{text!r}: the parenthesis after {key} {operator} is not closed")
                    if token == ",":
                        if expect_value:
                            values.append("")  # `(a,,b)` and `(a,)` hold an empty value, as in Kubernetes
                        expect_value = True
                    elif _identifier(token) and expect_value:
                        values.append(_checked_value(token, key, text))
                        expect_value = False
                    else:
                        raise SelectorError(f"{text!r}: unexpected {token!r} in the values of {key} {operator}")
                if expect_value and values:
                    values.append("")
                if not values:
                    raise SelectorError(f"{text!r}: {key} {operator} () has no values; give at least one")
                kind = SelectorOperator.IN if operator == "in" else SelectorOperator.NOT_IN
                requirements.append(SelectorRequirement(key, kind, tuple(dict.fromkeys(values))))
            else:
                raise SelectorError(f"{text!r}: unexpected {operator!r} after {key}; write =, !=, in or notin")
        token = take()
        if token is None:
            return LabelSelector(text, tuple(requirements))
        if token != ",":
            raise SelectorError(f"{text!r}: unexpected {token!r}; requirements are separated by commas")
        if peek() is None:
            raise SelectorError(f"{text!r}: ends with a comma; remove it or add a requirement")


@dataclass(frozen=True)
class CatalogEntity:
    """An entity that owns Applications by name or by selector, narrowed by namespace and instance."""

    ref: str
    app_name: str | None = None
    selector: LabelSelector | None = None
    app_namespace: str | None = None
    instance: str | None = None

    def owns(self, app_name: str, labels: Mapping[str, str], instance: str | None, app_namespace: str | None) -> bool:
        """Whether this entity claims the Application; an unknown instance or namespace does not narrow."""
        if self.instance is not None and instance is not None and self.instance != instance:
            return False
        if self.app_namespace is not None and app_namespace is not None and self.app_namespace != app_namespace:
            return False
        return self.app_name == app_name or (self.selector is not None and self.selector.matches(labels))


@dataclass(frozen=True)
class CatalogFinding:
    """Something about one entity that keeps an annotation from working, with the fix."""

    entity: str
    annotation: str | None
    problem: str


@dataclass(frozen=True)
class CatalogIndex:
    """The catalog's Application owners, looked up by name in one read and by selector in one pass."""

    by_name: Mapping[str, tuple[CatalogEntity, ...]] = field(default_factory=lambda: MappingProxyType({}))
    by_selector: tuple[CatalogEntity, ...] = ()
    findings: tuple[CatalogFinding, ...] = ()

    @property
    def entities(self) -> int:
        """How many entities own Applications (for status and logs)."""
        named = {entity.ref for entities in self.by_name.values() for entity in entities}
        return len(named | {entity.ref for entity in self.by_selector})


def _annotation(annotations: Mapping[str, Any], key: str) -> str | None:
    value = annotations.get(key)
    if not isinstance(value, str) or not value.strip():
        return None  # the plugins treat an empty annotation as absent; so do we (never "match everything")
    return value.strip()


def _entity(raw: Any) -> tuple[CatalogEntity | None, list[CatalogFinding]]:
    """One catalog entity, or None when it owns no Application (most of a catalog)."""
    if not isinstance(raw, Mapping) or not isinstance(metadata := raw.get("metadata"), Mapping):
        return None, []
    annotations = metadata.get("annotations")
    if not isinstance(annotations, Mapping) or not any(_annotation(annotations, key) for key in CATALOG_ANNOTATIONS):
        return None, []
    kind, namespace, name = raw.get("kind"), metadata.get("namespace") or "default", metadata.get("name")
    written = f"{kind}:{namespace}/{name}"
    refs = parse_entity_refs(written) if isinstance(kind, str) and isinstance(name, str) else []
    if len(refs) != 1 or refs[0].canonical is None:
        why = refs[0].problem if len(refs) == 1 else "it has no kind or name"
        return None, [CatalogFinding(written, None, f"the entity cannot be a recipient: {why}")]
    ref = refs[0].canonical
    findings: list[CatalogFinding] = []
    app_name = _annotation(annotations, APP_NAME_ANNOTATION)
    if app_name is not None and (len(app_name) > MAX_APP_NAME or not _APP_NAME.fullmatch(app_name)):
        findings.append(
            CatalogFinding(
                ref,
                APP_NAME_ANNOTATION,
                f"{app_name!r} is not an Application name (one lowercase DNS name); to own several"
                f" Applications, label them and use {APP_SELECTOR_ANNOTATION}",
            )
        )
        app_name = None
    selector: LabelSelector | None = None
    if (text := _annotation(annotations, APP_SELECTOR_ANNOTATION)) is not None:
        try:
            selector = parse_label_selector(text)
        except SelectorError as error:
            fallback = f"matched by {APP_NAME_ANNOTATION} only" if app_name else "not matched to any Application"
            findings.append(CatalogFinding(ref, APP_SELECTOR_ANNOTATION, f"{error}; meanwhile it is {fallback}"))
    if app_name is not None and selector is not None:
        # Roadie's card refuses an entity with both; recipients are not lost over it, but the card is broken.
        findings.append(
            CatalogFinding(
                ref,
                None,
                f"both {APP_NAME_ANNOTATION} and {APP_SELECTOR_ANNOTATION} are set: Applications matching either"
                " notify this entity, but Roadie's Argo CD card refuses the pair; keep one",
            )
        )
    if app_name is None and selector is None:
        return None, findings
    entity = CatalogEntity(
        ref=ref,
        app_name=app_name,
        selector=selector,
        app_namespace=_annotation(annotations, APP_NAMESPACE_ANNOTATION),
        instance=_annotation(annotations, INSTANCE_NAME_ANNOTATION),
    )
    return entity, findings


def index_catalog(entities: Any) -> CatalogIndex:
    """Index the catalog API's answer: a list of entities, or a `{items: [...]}` page of `by-query`.

    The edge is expected to ask only for owners (`filter=metadata.annotations.argocd/app-name` and a second
    `filter` for `argocd/app-selector`, which Backstage ORs) and only the fields read here (`kind`,
    `metadata.namespace`, `metadata.name`, `metadata.annotations`); anything else is skipped. One entity's
    bad annotation is a finding and never hides another entity.
    """
    items = entities.get("items") if isinstance(entities, Mapping) else entities
    by_name: dict[str, list[CatalogEntity]] = {}
    by_selector: list[CatalogEntity] = []
    findings: list[CatalogFinding] = []
    seen: set[CatalogEntity] = set()
    for raw in items if isinstance(items, Sequence) and not isinstance(items, str) else ():
        entity, problems = _entity(raw)
        findings.extend(problems)
        if entity is None or entity in seen:
            continue
        seen.add(entity)
        if entity.app_name is not None:
            by_name.setdefault(entity.app_name, []).append(entity)
        if entity.selector is not None:
            by_selector.append(entity)
    return CatalogIndex(
        by_name=MappingProxyType({name: tuple(owners) for name, owners in by_name.items()}),
        by_selector=tuple(by_selector),
        findings=tuple(findings),
    )


def recipients_for(
    index: CatalogIndex,
    app_name: str,
    app_labels: Mapping[str, str] | None,
    instance: str | None = None,
    *,
    app_namespace: str | None = None,
) -> tuple[str, ...]:
    """Every entity that claims the Application (sorted canonical refs; empty when none does).

    `instance` is the bridge's Argo CD as Backstage's Argo CD config names it, `app_namespace` the
    Application's namespace; None means unknown, and then the entities' annotations do not narrow.
    """
    labels = app_labels or {}
    owners = {
        entity.ref
        for entity in (*index.by_name.get(app_name, ()), *index.by_selector)
        if entity.owns(app_name, labels, instance, app_namespace)
    }
    return tuple(sorted(owners))


class EntityRefFrom(StrEnum):
    """`spec.subscriptions.entityRefFrom`: where an Application's recipients come from."""

    ANNOTATION = "Annotation"
    CATALOG = "Catalog"
    ANNOTATION_THEN_CATALOG = "AnnotationThenCatalog"


DEFAULT_ENTITY_REF_FROM = EntityRefFrom.ANNOTATION_THEN_CATALOG
"""The default: an Application's own `backstage.io/entity-ref` is the most specific statement of who owns
it, so every app that is notified today keeps exactly its recipients on upgrade; the catalog only fills in
apps that would otherwise reach nobody. `Catalog` would silently change recipients of annotated apps, and
`Annotation` would leave the zero-touch catalog unused."""


class RecipientSource(StrEnum):
    """Which source gave an Application its recipients (what `status.applications` counts)."""

    ANNOTATION = "annotation"
    CATALOG = "catalog"
    UNRESOLVED = "unresolved"


@dataclass(frozen=True)
class Resolution:
    """The recipients an Application's notifications go to, and where they came from."""

    source: RecipientSource
    refs: tuple[str, ...] = ()


def resolve(mode: EntityRefFrom, annotation: str | None, catalog_refs: Iterable[str]) -> Resolution:
    """Choose the recipients: `annotation` is the raw `backstage.io/entity-ref` (None when absent), of which
    only deliverable refs count; `catalog_refs` what `recipients_for` found.

    With AnnotationThenCatalog an annotation whose refs are all invalid falls back to the catalog: the bad
    annotation is still reported by the application checks, but the owners the catalog names are reached.
    With Catalog the catalog's owners replace the annotation's where the catalog claims the app; an app it
    does not claim keeps its annotation (the relay does the same), so no app goes silent by the switch.
    """
    annotated = tuple(dict.fromkeys(ref.canonical for ref in parse_entity_refs(annotation or "") if ref.canonical))
    catalog = tuple(sorted(set(catalog_refs)))
    if mode is EntityRefFrom.CATALOG and catalog:
        return Resolution(RecipientSource.CATALOG, catalog)
    if annotated:
        return Resolution(RecipientSource.ANNOTATION, annotated)
    if mode is not EntityRefFrom.ANNOTATION and catalog:
        return Resolution(RecipientSource.CATALOG, catalog)
    return Resolution(RecipientSource.UNRESOLVED)


def count_resolutions(resolutions: Iterable[Resolution]) -> dict[str, int]:
    """How many Applications were resolved each way, every source present (zeros included)."""
    counts = dict.fromkeys((source.value for source in RecipientSource), 0)
    for resolution in resolutions:
        counts[resolution.source.value] += 1
    return counts
