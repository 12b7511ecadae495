"""Recipients from the Backstage catalog in Relay mode: which apps the catalog resolves, and the relay's fill.

The operator resolves every in-scope Application once per catalog refresh (`resolve_applications`) and
puts only the catalog-resolved ones in the bridge's relay entry (`catalog_recipients`): an app whose own
annotation decides its recipients costs the entry nothing, so the entry stays small and an unchanged
resolution writes nothing. The relay then fills each body before its POST (`fill_recipients`), without
a catalog request per event, and finishes a body that has nobody to go to as `unresolved`.

Pure: bodies and entries are plain JSON data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from argobridge.core.catalogmatch import (
    APP_NAME_ANNOTATION,
    APP_SELECTOR_ANNOTATION,
    DEFAULT_ENTITY_REF_FROM,
    CatalogFinding,
    CatalogIndex,
    EntityRefFrom,
    RecipientSource,
    Resolution,
    count_resolutions,
    recipients_for,
    resolve,
)
from argobridge.core.conditions import Condition
from argobridge.core.events import ENTITY_REF_ANNOTATION

if TYPE_CHECKING:
    from argobridge.core.appcheck import AppFacts


def app_key(namespace: str, name: str) -> str:
    """The key of an app in `catalogRecipients`: `<namespace>/<name>` (neither may hold a slash)."""
    return f"{namespace}/{name}"


def resolve_applications(
    mode: EntityRefFrom, index: CatalogIndex | None, apps: Iterable[AppFacts], instance: str | None = None
) -> dict[str, Resolution]:
    """Each app's Resolution by `app_key`; `index` None (no catalog: Direct mode, or unreadable) resolves
    by annotation only, so an unreadable catalog never takes recipients away from annotated apps."""
    resolutions: dict[str, Resolution] = {}
    for app in apps:
        catalog: tuple[str, ...] = ()
        if index is not None and mode is not EntityRefFrom.ANNOTATION:
            catalog = recipients_for(index, app.name, app.labels, instance, app_namespace=app.namespace)
        annotation = app.annotations.get(ENTITY_REF_ANNOTATION)
        resolutions[app_key(app.namespace, app.name)] = resolve(mode, annotation, catalog)
    return resolutions


def catalog_recipients(resolutions: Mapping[str, Resolution]) -> dict[str, tuple[str, ...]]:
    """The relay entry's `catalogRecipients`: only the apps the catalog resolved, sorted by key."""
    return {
        key: resolution.refs
        for key, resolution in sorted(resolutions.items())
        if resolution.source is RecipientSource.CATALOG and resolution.refs
    }


# The relay's config Secret holds every bridge's entry and a Secret holds at most 1 MiB: one bridge's
# catalog recipients keep to a quarter of it (about 4,000 apps); beyond, apps are left out and reported.
CATALOG_RECIPIENTS_BYTES = 256 * 1024


def bounded_recipients(
    table: Mapping[str, tuple[str, ...]], limit: int = CATALOG_RECIPIENTS_BYTES
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """The table cut to `limit` bytes of JSON (apps in key order, so the same table gives the same cut),
    and the apps left out (their notifications are then unresolved, which the condition says)."""
    kept: dict[str, tuple[str, ...]] = {}
    left: list[str] = []
    size = 2
    for app, refs in sorted(table.items()):
        cost = len(app) + 5 + sum(len(ref) + 3 for ref in refs)  # "app":["ref",...], in compact JSON (ASCII)
        if left or size + cost > limit:
            left.append(app)
            continue
        kept[app] = refs
        size += cost
    return kept, tuple(left)


def body_app(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, name) of the app a body is about: its `argobridge.app`, else its `payload.scope`
    (`argocd/<namespace>/<app>/<event>`, what every template writes); None when neither says."""
    meta = body.get("argobridge")
    app = meta.get("app") if isinstance(meta, Mapping) else None
    if isinstance(app, Mapping) and isinstance(app.get("namespace"), str) and isinstance(app.get("name"), str):
        return app["namespace"], app["name"]
    payload = body.get("payload")
    scope = payload.get("scope") if isinstance(payload, Mapping) else None
    if not isinstance(scope, str) or "~" in scope:
        return None  # a scope cut to 255 characters carries a `~` and its hash: not read
    parts = scope.split("/")
    if len(parts) == 4 and parts[0] == "argocd" and parts[1] and parts[2]:
        return parts[1], parts[2]
    return None


def _owner_delivery(body: Mapping[str, Any]) -> bool:
    """Whether the body is the owners' own notification (no route's recipients added to it). Only a body
    that says so (`argobridge` without `route`) counts: otherwise a route's recipients could be in the list."""
    meta = body.get("argobridge")
    return isinstance(meta, Mapping) and meta.get("route") is None


def _refs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str) and item]
    return []


def _mode(entry: Mapping[str, Any]) -> EntityRefFrom:
    try:
        return EntityRefFrom(entry.get("entityRefFrom") or DEFAULT_ENTITY_REF_FROM)
    except ValueError:
        return DEFAULT_ENTITY_REF_FROM


def fill_recipients(body: dict[str, Any], entry: Mapping[str, Any]) -> tuple[dict[str, Any] | None, RecipientSource]:
    """The body to POST with the catalog's recipients put in, and where its recipients came from; None
    (unresolved) when it has nobody to go to, so it is finished without a POST.

    The operator lists an app in `catalogRecipients` only when its owners come from the catalog, so then
    the body's refs are a route's (AnnotationThenCatalog: the app's annotation had no deliverable ref) and
    the catalog's are added to them; in Catalog mode the owners' own notification gets the catalog's refs
    instead of the annotation's. Broadcasts and anything that is not an entity list are left as they are.
    """
    recipients = body.get("recipients")
    if not isinstance(recipients, Mapping) or recipients.get("type") != "entity":
        return body, RecipientSource.ANNOTATION
    refs = _refs(recipients.get("entityRef"))
    where = body_app(body)
    table = entry.get("catalogRecipients")
    mode = _mode(entry)
    catalog: list[str] = []
    if where is not None and isinstance(table, Mapping) and mode is not EntityRefFrom.ANNOTATION:
        catalog = _refs(table.get(app_key(*where)))
    if catalog:
        chosen = catalog if mode is EntityRefFrom.CATALOG and _owner_delivery(body) else [*catalog, *refs]
        filled = dict(body)
        filled["recipients"] = {**recipients, "entityRef": list(dict.fromkeys(chosen))}
        return filled, RecipientSource.CATALOG
    if not refs:
        return None, RecipientSource.UNRESOLVED
    return body, RecipientSource.ANNOTATION


RECIPIENTS_RESOLVED = "RecipientsResolved"
NAMES_SHOWN = 5


def unresolved_problem(app_name: str) -> str:
    """The Warning on an Application that nobody would hear of, with both fixes."""
    return (
        f"no recipient: {ENTITY_REF_ANNOTATION} names no deliverable entity and no Backstage catalog entity"
        f" claims this Application, so its notifications reach nobody (the relay counts them unresolved)."
        f" Annotate it ({ENTITY_REF_ANNOTATION}: component:default/<name>), or give its entity"
        f" {APP_NAME_ANNOTATION}: {app_name} or {APP_SELECTOR_ANNOTATION}: <label>=<value>"
    )


def finding_message(finding: CatalogFinding) -> str:
    """One catalog finding as an Event says it: the entity, the annotation, the problem and its fix."""
    where = f" annotation {finding.annotation}" if finding.annotation else ""
    return f"Backstage catalog entity {finding.entity}{where}: {finding.problem}"


def application_counts(resolutions: Mapping[str, Resolution], owners: int) -> dict[str, int]:
    """The `status.applications` figures of recipient resolution (in Relay mode)."""
    counts = count_resolutions(resolutions.values())
    return {
        "byAnnotation": counts[RecipientSource.ANNOTATION.value],
        "byCatalog": counts[RecipientSource.CATALOG.value],
        "unresolved": counts[RecipientSource.UNRESOLVED.value],
        "catalogOwners": owners,
    }


def recipients_condition(
    resolutions: Mapping[str, Resolution],
    unavailable: str | None,
    findings: Sequence[CatalogFinding] = (),
    truncated: bool = False,
    left_out: Sequence[str] = (),
) -> Condition:
    """RecipientsResolved: does every Application in scope have someone to notify? Unknown while the
    catalog cannot be read (apps with an annotation are still delivered by it)."""
    unresolved = sorted(key for key, item in resolutions.items() if item.source is RecipientSource.UNRESOLVED)
    notes = ""
    if findings:
        notes += f"; {len(findings)} catalog annotation(s) cannot work: {finding_message(findings[0])}"
    if truncated:
        notes += "; the catalog has more Application owners than one refresh reads, some were left out"
    if unavailable:
        return Condition(
            RECIPIENTS_RESOLVED,
            None,
            "CatalogUnavailable",
            f"The catalog's Application owners could not be read ({unavailable}): Applications keep the"
            f" recipients of their {ENTITY_REF_ANNOTATION} and of the last good read, if any{notes}",
        )
    if left_out:
        return Condition(
            RECIPIENTS_RESOLVED,
            False,
            "TooManyCatalogApps",
            f"{len(left_out)} Applications resolved by the catalog do not fit in the relay's entry"
            f" ({CATALOG_RECIPIENTS_BYTES // 1024} KiB of recipients), e.g. {left_out[0]}: their notifications"
            f" are unresolved; annotate them with {ENTITY_REF_ANNOTATION}, or split the Applications over"
            f" more bridges{notes}",
        )
    if unresolved:
        shown = ", ".join(unresolved[:NAMES_SHOWN])
        more = f" and {len(unresolved) - NAMES_SHOWN} more" if len(unresolved) > NAMES_SHOWN else ""
        return Condition(
            RECIPIENTS_RESOLVED,
            False,
            "Unresolved",
            f"{len(unresolved)} of {len(resolutions)} Applications have no recipient: {shown}{more}; annotate"
            f" them with {ENTITY_REF_ANNOTATION}, or give their entities {APP_NAME_ANNOTATION} or"
            f" {APP_SELECTOR_ANNOTATION} (see the Applications' Warning Events){notes}",
        )
    return Condition(
        RECIPIENTS_RESOLVED,
        True,
        "AllResolved",
        f"All {len(resolutions)} Applications have recipients, from their annotation or the catalog{notes}",
    )
