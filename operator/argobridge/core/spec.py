"""The `BackstageBridge` spec as typed data, with every default applied in memory only.

Defaults live here and never travel back into the object: a GitOps pipeline that applied a short spec
must not see the operator "fill it in" as drift.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from argobridge.core.catalogmatch import DEFAULT_ENTITY_REF_FROM, EntityRefFrom
from argobridge.core.labels import KEY_HINT, VALUE_HINT, label_key_problem, label_value_problem
from argobridge.core.placeholders import PlaceholderError, parse_placeholders

if TYPE_CHECKING:
    from argobridge.core.routes import Route

GROUP = "argobridge.io"
VERSION = "v1alpha1"
PLURAL = "backstagebridges"
KIND = "BackstageBridge"

DEFAULT_NOTIFICATIONS_PATH = "/api/notifications/notifications"
DEFAULT_SECRET_NAME = "argocd-notifications-secret"
DEFAULT_TOKEN_KEY = "backstage-token"
DEFAULT_SERVICE_NAME = "backstage"
NOTIFICATIONS_CONFIGMAP = "argocd-notifications-cm"
DEFAULT_NOTIFICATIONS_CONFIGURATION = "default-notifications-configuration"
DEFAULT_EVENT_WINDOW_MINUTES = 10
DEFAULT_MIRROR_KEY = "current"
DEFAULT_MIRROR_PREVIOUS_KEY = "previous"
DEFAULT_GRACE_SECONDS = 600.0
MAX_SELECTOR_LABELS = 16
# spec.delivery bounds (RELAY_CONTRACT.md): long enough to outlast a weekend outage of Backstage, short
# enough that a queue cannot grow for ever; one attempt at most a minute so a hung Backstage is noticed.
DEFAULT_RETRY_FOR_SECONDS = 86400.0
MIN_RETRY_FOR_SECONDS = 60.0
MAX_RETRY_FOR_SECONDS = 7 * 86400.0
DEFAULT_ATTEMPT_TIMEOUT_SECONDS = 10.0
DEFAULT_MIN_INTERVAL_SECONDS = 300.0  # the flap window: at most one notification per app and event in 5 minutes
MIN_ATTEMPT_TIMEOUT_SECONDS = 1.0
MAX_ATTEMPT_TIMEOUT_SECONDS = 60.0
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")
_MIRROR_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

# Argo CD reads `$key` from its Secret only when the key matches [\w-]+, and a service name may not
# contain dots; the CRD schema enforces the same patterns, this re-check guards the offline `render`.
_SECRET_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SERVICE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Host: DNS labels that are never empty, or a bracketed IPv6 address; no user info (the CRD says the same).
_URL = re.compile(
    r"^https?://([A-Za-z0-9]([-A-Za-z0-9_]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9_]{0,61}[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[^\s?#]*)?\Z"
)
# Topics and icons reach the template only as quoted literals; the CRD's rules keep them readable.
TOPIC = re.compile(r"[A-Za-z0-9._:/-]+")
MAX_TOPIC = 255
MAX_ICON = 64
MAX_TEXTS = {"title": 1024, "description": 4096}
_NAMESPACE_GLOB = re.compile(r"[a-z0-9*?.-]+")
MAX_APPLICATION_NAMESPACES = 64


class SpecError(ValueError):
    """A spec the schema let through but that cannot work; the message names the field and the fix."""


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Flavor(StrEnum):
    AUTO = "Auto"
    ARGOCD = "ArgoCD"
    OPENSHIFT_GITOPS = "OpenShiftGitOps"


class SubscriptionMode(StrEnum):
    GLOBAL = "Global"
    ANNOTATIONS = "Annotations"
    MANUAL = "Manual"


class DeliveryMode(StrEnum):
    RELAY = "Relay"
    DIRECT = "Direct"


class TokenDeletionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class EventName(StrEnum):
    SYNC_SUCCEEDED = "SyncSucceeded"
    SYNC_FAILED = "SyncFailed"
    HEALTH_DEGRADED = "HealthDegraded"
    DEPLOYED = "Deployed"
    SYNC_RUNNING = "SyncRunning"
    SYNC_STATUS_UNKNOWN = "SyncStatusUnknown"
    HEALTH_MISSING = "HealthMissing"
    CREATED = "Created"
    DELETED = "Deleted"
    HEALTH_RECOVERED = "HealthRecovered"


@dataclass(frozen=True)
class EventSpec:
    """One application event that becomes a Backstage notification."""

    event: EventName
    severity: Severity
    topic: str
    title: str | None = None  # placeholder text; None: the catalog's title
    description: str | None = None
    icon: str | None = None


@dataclass(frozen=True)
class MirrorSpec:
    """Where Backstage reads the token: a Secret with the current and the previous value."""

    namespace: str
    name: str
    key: str = DEFAULT_MIRROR_KEY
    previous_key: str = DEFAULT_MIRROR_PREVIOUS_KEY
    restart_deployment: str | None = None


@dataclass(frozen=True)
class CaBundleRef:
    """A PEM CA bundle in a Secret of the bridge's namespace, trusted by the probe."""

    secret_name: str
    key: str = "ca.crt"


@dataclass(frozen=True)
class DeliverySpec:
    """`spec.delivery`: the mode asked for (None: the operator's default) and the relay's retry bounds."""

    mode: DeliveryMode | None = None
    retry_for_seconds: float = DEFAULT_RETRY_FOR_SECONDS
    attempt_timeout_seconds: float = DEFAULT_ATTEMPT_TIMEOUT_SECONDS
    # Noise control (Relay mode; core/noisecontrol.py): the flap window, resolving recovered problems in
    # place, and a per-recipient rate limit as {count, per} seconds (None: no limit unless a route sets one).
    min_interval_seconds: float = DEFAULT_MIN_INTERVAL_SECONDS
    resolve_recovered: bool = True
    rate_limit: tuple[int, float] | None = None


@dataclass(frozen=True)
class BridgeSpec:
    """Everything the operator needs from `spec`, defaults resolved."""

    backstage_url: str
    notifications_path: str = DEFAULT_NOTIFICATIONS_PATH
    flavor: Flavor = Flavor.AUTO
    argocd_url: str | None = None
    service_name: str = DEFAULT_SERVICE_NAME
    secret_name: str = DEFAULT_SECRET_NAME
    token_key: str = DEFAULT_TOKEN_KEY
    token_deletion_policy: TokenDeletionPolicy = TokenDeletionPolicy.RETAIN
    events: tuple[EventSpec, ...] = field(default_factory=tuple)
    subscription_mode: SubscriptionMode = SubscriptionMode.GLOBAL
    subscription_selector: tuple[tuple[str, str], ...] = ()
    application_namespaces: tuple[str, ...] = ()
    event_window_minutes: int = DEFAULT_EVENT_WINDOW_MINUTES
    notifications_configuration: str = DEFAULT_NOTIFICATIONS_CONFIGURATION
    notifications_path_explicit: bool = False
    ca_bundle: CaBundleRef | None = None
    insecure_skip_verify: bool = False
    mirror: MirrorSpec | None = None
    rotation_interval_seconds: float | None = None
    rotation_grace_seconds: float = DEFAULT_GRACE_SECONDS
    routes: tuple[Route, ...] = ()
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    # Where Applications' recipients come from (the catalog only in Relay mode), and the Argo CD
    # instance name Backstage's entities use in `argocd/instance-name` (None: entities are not narrowed).
    entity_ref_from: EntityRefFrom = DEFAULT_ENTITY_REF_FROM
    catalog_instance: str | None = None

    @property
    def webhook_url(self) -> str:
        """The create endpoint: base URL and path joined with exactly one slash."""
        return self.backstage_url.rstrip("/") + "/" + self.notifications_path.lstrip("/")


DEFAULT_SEVERITIES: Mapping[EventName, Severity] = {
    EventName.SYNC_FAILED: Severity.HIGH,
    EventName.HEALTH_DEGRADED: Severity.HIGH,
    EventName.DEPLOYED: Severity.LOW,
    EventName.SYNC_SUCCEEDED: Severity.LOW,
    EventName.SYNC_RUNNING: Severity.LOW,
    EventName.SYNC_STATUS_UNKNOWN: Severity.NORMAL,
    EventName.HEALTH_MISSING: Severity.NORMAL,
    EventName.CREATED: Severity.LOW,
    EventName.DELETED: Severity.NORMAL,
    EventName.HEALTH_RECOVERED: Severity.LOW,
}

# Enabled when `spec.events` is not given; the others are opt-in.
DEFAULT_EVENTS = (EventName.SYNC_FAILED, EventName.HEALTH_DEGRADED, EventName.DEPLOYED, EventName.SYNC_SUCCEEDED)

DEFAULT_TOPICS: Mapping[EventName, str] = {
    EventName.SYNC_SUCCEEDED: "argocd.sync.succeeded",
    EventName.SYNC_FAILED: "argocd.sync.failed",
    EventName.HEALTH_DEGRADED: "argocd.health.degraded",
    EventName.DEPLOYED: "argocd.deployed",
    EventName.SYNC_RUNNING: "argocd.sync.running",
    EventName.SYNC_STATUS_UNKNOWN: "argocd.sync.unknown",
    EventName.HEALTH_MISSING: "argocd.health.missing",
    EventName.CREATED: "argocd.app.created",
    EventName.DELETED: "argocd.app.deleted",
    EventName.HEALTH_RECOVERED: "argocd.health.recovered",
}


def _section(spec: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = spec.get(name) or {}
    if not isinstance(value, Mapping):
        raise SpecError(f"spec.{name} must be an object")
    return value


def _enum(enum: type[StrEnum], value: Any, path: str, default: StrEnum) -> Any:
    if value is None:
        return default
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise SpecError(f"{path} is {value!r}; use one of: {allowed}") from None


def _text(item: Mapping[str, Any], key: str, path: str) -> str | None:
    """Optional placeholder text, checked here so a typo is reported before anything is rendered."""
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError(f"{path}.{key} must be a string")
    if len(value) > MAX_TEXTS[key]:
        raise SpecError(f"{path}.{key} is {len(value)} characters long; keep it to {MAX_TEXTS[key]}")
    try:
        parse_placeholders(value)
    except PlaceholderError as error:
        raise SpecError(f"{path}.{key} {error}") from None
    return value


def checked_word(value: Any, path: str, pattern: re.Pattern[str], limit: int) -> str:
    """A topic or icon: the CRD's pattern and length, checked again for files no apiserver validated."""
    if not isinstance(value, str) or len(value) > limit or not pattern.fullmatch(value):
        raise SpecError(f"{path} {value!r} must be 1 to {limit} letters, digits and . _ : / -")
    return value


def _events(raw: Any) -> tuple[EventSpec, ...]:
    if raw is None:
        return tuple(EventSpec(name, DEFAULT_SEVERITIES[name], DEFAULT_TOPICS[name]) for name in DEFAULT_EVENTS)
    if not isinstance(raw, list):
        raise SpecError("spec.events must be a list of {event, severity, topic}")
    seen: set[EventName] = set()
    events: list[EventSpec] = []
    for index, item in enumerate(raw):
        path = f"spec.events[{index}]"
        if not isinstance(item, Mapping):
            raise SpecError(f"{path} must be an object with an `event` field")
        name = _enum(EventName, item.get("event"), f"{path}.event", EventName.SYNC_FAILED)
        if item.get("event") is None:
            raise SpecError(f"{path}.event is required")
        if name in seen:
            raise SpecError(f"{path}.event {name.value} is listed twice; keep one entry per event")
        seen.add(name)
        severity = _enum(Severity, item.get("severity"), f"{path}.severity", DEFAULT_SEVERITIES[name])
        topic = item.get("topic")
        topic = DEFAULT_TOPICS[name] if topic is None else checked_word(topic, f"{path}.topic", TOPIC, MAX_TOPIC)
        title, description = _text(item, "title", path), _text(item, "description", path)
        icon = item.get("icon")
        icon = None if icon is None else checked_word(icon, f"{path}.icon", TOPIC, MAX_ICON)
        events.append(EventSpec(name, severity, topic, title, description, icon))
    return tuple(events)


def parse_duration(value: Any, path: str) -> float:
    """Seconds from a duration such as 90s, 10m, 24h or 30d (one unit, whole numbers)."""
    match = _DURATION.match(str(value))
    if not match or int(match.group(1)) <= 0:
        raise SpecError(f"{path} {value!r} is not a duration; write a whole number and a unit: 90s, 10m, 24h or 30d")
    return float(int(match.group(1)) * _DURATION_UNITS[match.group(2)])


def _bounded_duration(raw: Mapping[str, Any], key: str, default: float, low: float, high: float, hint: str) -> float:
    """One duration of spec.delivery, within the contract's bounds (the schema checks only its form)."""
    value = raw.get(key)
    if value is None:
        return default
    path = f"spec.delivery.{key}"
    seconds = parse_duration(value, path)
    if not low <= seconds <= high:
        raise SpecError(f"{path} {value!r} is out of range; use {hint}")
    return seconds


def _min_interval(raw: Mapping[str, Any]) -> float:
    """`spec.delivery.minInterval`: 0s turns flap suppression off, else 1s to 1h (default 5m)."""
    value = raw.get("minInterval")
    if value is None:
        return DEFAULT_MIN_INTERVAL_SECONDS
    if str(value) in ("0", "0s", "0m"):
        return 0.0
    return _bounded_duration(raw, "minInterval", DEFAULT_MIN_INTERVAL_SECONDS, 1, 3600, "0s (off) or 1s to 1h, e.g. 5m")


def parse_rate_limit_pair(raw: Any, path: str) -> tuple[int, float]:
    """`{count: 10, per: 10m}` as (count, seconds), or SpecError naming the field (rules: core/noisecontrol)."""
    from argobridge.core.noisecontrol import parse_rate_limit

    limit = parse_rate_limit(raw, path)
    return limit.count, limit.per.total_seconds()


def parse_delivery(raw: Mapping[str, Any]) -> DeliverySpec:
    """`spec.delivery`, with the mode left None when not given: the operator decides (core/deliveryplan.py)."""
    mode = raw.get("mode")
    rate_limit = raw.get("rateLimit")
    return DeliverySpec(
        min_interval_seconds=_min_interval(raw),
        resolve_recovered=flag(raw, "resolveRecovered", "spec.delivery") if "resolveRecovered" in raw else True,
        rate_limit=None if rate_limit is None else parse_rate_limit_pair(rate_limit, "spec.delivery.rateLimit"),
        mode=None if mode is None else _enum(DeliveryMode, mode, "spec.delivery.mode", DeliveryMode.RELAY),
        retry_for_seconds=_bounded_duration(
            raw,
            "retryFor",
            DEFAULT_RETRY_FOR_SECONDS,
            MIN_RETRY_FOR_SECONDS,
            MAX_RETRY_FOR_SECONDS,
            "from 1m to 7d, e.g. 90m, 24h or 3d",
        ),
        attempt_timeout_seconds=_bounded_duration(
            raw,
            "attemptTimeout",
            DEFAULT_ATTEMPT_TIMEOUT_SECONDS,
            MIN_ATTEMPT_TIMEOUT_SECONDS,
            MAX_ATTEMPT_TIMEOUT_SECONDS,
            "from 1s to 60s, e.g. 10s",
        ),
    )


def _mirror(token: Mapping[str, Any], namespace: str) -> MirrorSpec | None:
    raw = token.get("mirror")
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not raw.get("name"):
        raise SpecError("spec.token.mirror.name is required: the Secret Backstage reads its static tokens from")
    values = {
        "namespace": str(raw.get("namespace") or namespace),
        "name": str(raw["name"]),
        "key": str(raw.get("key") or DEFAULT_MIRROR_KEY),
        "previous_key": str(raw.get("previousKey") or DEFAULT_MIRROR_PREVIOUS_KEY),
    }
    for field_name in ("namespace", "name"):
        if not _DNS_NAME.match(values[field_name]):
            raise SpecError(f"spec.token.mirror.{field_name} {values[field_name]!r} is not a valid Kubernetes name")
    for field_name in ("key", "previous_key"):
        if not _MIRROR_KEY.match(values[field_name]):
            raise SpecError(f"spec.token.mirror key {values[field_name]!r} may hold only letters, digits, -, _ and .")
    if values["key"] == values["previous_key"]:
        raise SpecError(
            "spec.token.mirror.key and previousKey must differ: Backstage needs both values during rotation"
        )
    argocd_secret = str(token.get("secretName") or DEFAULT_SECRET_NAME)
    if values["namespace"] == namespace and values["name"] in (argocd_secret, f"{argocd_secret}-argobridge"):
        raise SpecError(
            f"spec.token.mirror.name {values['name']!r} is Argo CD's own Secret (or ArgoBridge's copy of it):"
            " the mirror is the Secret Backstage reads; name another one, e.g. argocd-notifications-token"
        )
    restart = raw.get("restartDeployment")
    if restart is not None and not _DNS_NAME.match(str(restart)):
        raise SpecError(f"spec.token.mirror.restartDeployment {restart!r} is not a valid Deployment name")
    return MirrorSpec(**values, restart_deployment=str(restart) if restart else None)


def _ca_bundle(backstage: Mapping[str, Any]) -> CaBundleRef | None:
    raw = backstage.get("caBundle")
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not raw.get("secretName"):
        raise SpecError(
            "spec.backstage.caBundle.secretName is required: a Secret in this namespace holding PEM certificates"
        )
    return CaBundleRef(secret_name=str(raw["secretName"]), key=str(raw.get("key") or "ca.crt"))


def _refuse_secret_reference(value: str, path: str) -> None:
    """Refuse `$` in a value rendered into the webhook service: Argo CD replaces `$name` there with key `name`
    of its Secret, so `https://x.example/$slack-token` would send another service's credential to that host."""
    if "$" in value:
        raise SpecError(
            f"{path} must not contain $: Argo CD replaces $name in its webhook service with the value of key name"
            f" of {DEFAULT_SECRET_NAME}; remove the $"
        )


def flag(section: Mapping[str, Any], key: str, path: str) -> bool:
    """A boolean field; a string such as "false" is refused, not read as true."""
    value = section.get(key, False)
    if not isinstance(value, bool):
        raise SpecError(f"{path}.{key} {value!r} must be true or false (unquoted in YAML)")
    return value


def _application_namespaces(raw: Any) -> tuple[str, ...]:
    """Namespaces or globs of Applications, by the CRD's rule (`--application-namespaces` style)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_APPLICATION_NAMESPACES:
        raise SpecError(f"spec.argocd.applicationNamespaces must be a list of at most {MAX_APPLICATION_NAMESPACES}")
    for item in raw:
        if not isinstance(item, str) or len(item) > 253 or not _NAMESPACE_GLOB.fullmatch(item):
            raise SpecError(
                f"spec.argocd.applicationNamespaces: {item!r} is not a namespace or a glob of a-z, 0-9, -, ., * and ?"
            )
    return tuple(raw)


def _object_name(value: Any, path: str) -> str:
    if not isinstance(value, str) or len(value) > 253 or not _DNS_NAME.fullmatch(value):
        raise SpecError(f"{path} {value!r} is not a valid Kubernetes object name")
    return value


def _selector(raw: Any) -> tuple[tuple[str, str], ...]:
    """`spec.subscriptions.selector.matchLabels` as sorted pairs, each key and value checked by Kubernetes' rules.

    The engine joins them into one `labels.Parse` selector: a bad key or value would make it refuse the
    whole configuration, and a `,` or `=` inside a value would widen the selector without a word.
    """
    path = "spec.subscriptions.selector.matchLabels"
    if not raw:
        return ()
    labels = raw.get("matchLabels") if isinstance(raw, Mapping) else None
    if not isinstance(labels, Mapping) or set(raw) - {"matchLabels"}:
        raise SpecError("spec.subscriptions.selector supports matchLabels only, e.g. {matchLabels: {team: a}}")
    if len(labels) > MAX_SELECTOR_LABELS:
        raise SpecError(f"{path} has {len(labels)} labels; keep at most {MAX_SELECTOR_LABELS}")
    for key, value in labels.items():
        if problem := label_key_problem(key):
            raise SpecError(f"{path}: key {key!r} {problem}; {KEY_HINT}")
        if problem := label_value_problem(value):
            raise SpecError(f"{path}: value {value!r} of key {key!r} {problem}; {VALUE_HINT}")
    return tuple(sorted((str(key), str(value)) for key, value in labels.items()))


def _catalog_instance(subscriptions: Mapping[str, Any]) -> str | None:
    """`spec.subscriptions.catalogInstanceName`: the name Backstage's Argo CD config gives this instance."""
    value = subscriptions.get("catalogInstanceName")
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 253 or any(c.isspace() or c in ",/" for c in value):
        raise SpecError(
            f"spec.subscriptions.catalogInstanceName {value!r} must be the instance name of Backstage's Argo CD"
            " config (argocd.appLocatorMethods[].instances[].name), 1 to 253 characters without spaces, / or ,"
        )
    return value


def parse_bridge_spec(spec: Mapping[str, Any], namespace: str = "default") -> BridgeSpec:
    """Turn a raw `spec` into a `BridgeSpec`, or raise `SpecError` naming the field and the fix."""
    backstage = _section(spec, "backstage")
    argocd = _section(spec, "argocd")
    token = _section(spec, "token")
    subscriptions = _section(spec, "subscriptions")

    url = backstage.get("url")
    if not url:
        raise SpecError("spec.backstage.url is required: the base URL of Backstage, e.g. https://backstage.example.com")
    _refuse_secret_reference(str(url), "spec.backstage.url")
    if not _URL.match(str(url)):
        raise SpecError(
            f"spec.backstage.url {url!r} is not an http(s) URL without query or fragment whose host is a DNS name"
            " with no empty label (no `..`), an IPv4 address or a bracketed IPv6 address, e.g. https://backstage.example.com"
        )
    argocd_url = argocd.get("url")
    if argocd_url is not None and not _URL.match(str(argocd_url)):
        raise SpecError(f"spec.argocd.url {argocd_url!r} is not an http(s) URL without query or fragment")
    path = str(backstage.get("notificationsPath") or DEFAULT_NOTIFICATIONS_PATH)
    if not path.startswith("/") or any(c.isspace() for c in path):
        raise SpecError(f"spec.backstage.notificationsPath {path!r} must start with / and contain no spaces")
    _refuse_secret_reference(path, "spec.backstage.notificationsPath")
    secret_name = str(token.get("secretName") or DEFAULT_SECRET_NAME)
    if secret_name != DEFAULT_SECRET_NAME:
        raise SpecError(
            f"spec.token.secretName must be {DEFAULT_SECRET_NAME}, the only Secret Argo CD's notifications"
            " controller reads; remove the field or set it to that name"
        )

    key = str(token.get("key") or DEFAULT_TOKEN_KEY)
    if len(key) > 253 or not _SECRET_KEY.fullmatch(key):
        raise SpecError(f"spec.token.key {key!r} may hold only letters, digits, - and _ (Argo CD's $key rule)")
    service = str(argocd.get("serviceName") or DEFAULT_SERVICE_NAME)
    if len(service) > 63 or not _SERVICE_NAME.fullmatch(service):
        raise SpecError(
            f"spec.argocd.serviceName {service!r} must be up to 63 lowercase letters, digits and -, no dots"
        )

    window = spec.get("eventWindowMinutes", DEFAULT_EVENT_WINDOW_MINUTES)
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 10080:
        raise SpecError(f"spec.eventWindowMinutes {window!r} must be a whole number of minutes from 1 to 10080")
    selector = _selector(subscriptions.get("selector"))

    rotation = token.get("rotation") or {}
    if not isinstance(rotation, Mapping):
        raise SpecError("spec.token.rotation must be an object with interval and gracePeriod")
    mirror = _mirror(token, namespace)
    interval = (
        parse_duration(rotation["interval"], "spec.token.rotation.interval") if rotation.get("interval") else None
    )
    if interval is not None and mirror is None:
        raise SpecError(
            "spec.token.rotation.interval needs spec.token.mirror: without the Secret Backstage reads, a new token"
            " cannot be published to Backstage before Argo CD uses it"
        )
    grace = rotation.get("gracePeriod")
    events = _events(spec.get("events"))
    from argobridge.core.routes import parse_routes

    return BridgeSpec(
        notifications_path_explicit=backstage.get("notificationsPath") is not None,
        ca_bundle=_ca_bundle(backstage),
        insecure_skip_verify=flag(backstage, "insecureSkipVerify", "spec.backstage"),
        mirror=mirror,
        rotation_interval_seconds=interval,
        rotation_grace_seconds=parse_duration(grace, "spec.token.rotation.gracePeriod")
        if grace
        else DEFAULT_GRACE_SECONDS,
        backstage_url=str(url).rstrip("/"),
        notifications_path=path,
        flavor=_enum(Flavor, argocd.get("flavor"), "spec.argocd.flavor", Flavor.AUTO),
        argocd_url=str(argocd_url).rstrip("/") if argocd_url else None,
        service_name=service,
        secret_name=secret_name,
        token_key=key,
        token_deletion_policy=_enum(
            TokenDeletionPolicy,
            token.get("deletionPolicy"),
            "spec.token.deletionPolicy",
            TokenDeletionPolicy.RETAIN,
        ),
        events=events,
        routes=parse_routes(spec.get("routes"), events),
        delivery=parse_delivery(_section(spec, "delivery")),
        subscription_mode=_enum(
            SubscriptionMode, subscriptions.get("mode"), "spec.subscriptions.mode", SubscriptionMode.GLOBAL
        ),
        subscription_selector=selector,
        entity_ref_from=_enum(
            EntityRefFrom,
            subscriptions.get("entityRefFrom"),
            "spec.subscriptions.entityRefFrom",
            DEFAULT_ENTITY_REF_FROM,
        ),
        catalog_instance=_catalog_instance(subscriptions),
        event_window_minutes=window,
        application_namespaces=_application_namespaces(argocd.get("applicationNamespaces")),
        notifications_configuration=_object_name(
            argocd.get("notificationsConfiguration") or DEFAULT_NOTIFICATIONS_CONFIGURATION,
            "spec.argocd.notificationsConfiguration",
        ),
    )
