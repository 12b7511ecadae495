"""Noise control in the relay: recovery, flap suppression, rate limits and digests, as one state machine.

Why a state machine over time and events, pure: what the relay sends depends on what it sent before and
on how much time has passed, and the promises (nothing lost, nothing sent twice, windows honoured) are
properties of these functions alone, tested over generated event sequences. The relay keeps a
`NoiseState`, calls `offer` for each notification Argo CD posts and `due` when `next_wakeup` comes, and
posts the `Send`s it gets back; it never reads a clock for a decision here (`now` is passed in).

The stages, for each recipient of an event (Alertmanager's pipeline idea: small stages, one concern each):
1. Recovery. An event that ends a problem (Healthy again, synced again) resolves the problem's notification
   in place (same scope): at once when the recipient has it, or as the last word of the pending update,
   summary line or digest line that still holds it. `HealthRecovered` is only a signal unless enabled.
2. Digest. A route with a digest collects its events per recipient into one notification per period.
3. Flap window. Per (app, event, recipient) the first event of a quiet period is sent at once; later
   ones within `min_interval` wait and are sent as one update of the same scope when the window ends,
   with how often it happened. Each send opens a new window, so sends of one scope are `min_interval`
   apart (the immediate resolution excepted).
4. Rate limit. Per recipient, at most `count` new notifications per window; more are held and sent as
   one summary when the window ends. Updates of a notification the recipient already has (the flap
   update, the resolution) are not new and never held, so nothing shown goes stale behind a limit.

Every event id an `offer` takes ends in exactly one `Send` per recipient (a notification, an update, a
resolution, a summary line or a digest line) or, for a recovery signal nobody needs, in `absorbed`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta, tzinfo
from types import MappingProxyType
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from argobridge.core import noisetext as text
from argobridge.core.backstage_limits import DESCRIPTION_CHARS, SHORT_FIELD_CHARS, fit_notification, truncate
from argobridge.core.noisetext import HEALTH_RECOVERED
from argobridge.core.spec import EventName, SpecError, parse_duration

DEFAULT_MIN_INTERVAL = timedelta(minutes=5)
DEDUP_HORIZON = timedelta(hours=1)
"""How long an event id is remembered: the relay may offer one stored notification again after a retry."""
BROADCAST = "broadcast"
"""The recipient key of a broadcast notification (no entity ref has no colon)."""
RECOVERED_BY: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        EventName.HEALTH_DEGRADED.value: frozenset({HEALTH_RECOVERED, EventName.DEPLOYED.value}),
        EventName.SYNC_FAILED.value: frozenset({EventName.SYNC_SUCCEEDED.value, EventName.DEPLOYED.value}),
    }
)
"""Which events end which problem: Deployed means synced and Healthy, so it ends both."""
COMPLETES: Mapping[str, str] = MappingProxyType(
    {
        EventName.DEPLOYED.value: EventName.SYNC_SUCCEEDED.value,
        EventName.SYNC_SUCCEEDED.value: EventName.DEPLOYED.value,
    }
)
"""One good sync is two events (synced, then synced and Healthy) that the engine posts a moment apart: the
second within the first's window updates the first's notification (Deployed's text wins), so a deploy is
one notification, not two as with the manual procedure."""
RECOVERY_ONLY = frozenset({HEALTH_RECOVERED})
"""Events that say nothing but "it is over": merged into the resolution when there is one to make."""
SEVERITY_ORDER = ("low", "normal", "high", "critical")
# A summary or digest keeps its description under Backstage's limit with room for the header; a longer
# one is split into parts, so every event is listed, never cut off.
LIST_BUDGET_CHARS = DESCRIPTION_CHARS - 1000
SUMMARY_TOPIC = "argobridge.summary"
DIGEST_TOPIC = "argobridge.digest"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class RateLimit:
    """At most `count` new notifications per recipient per `per` (a window opened by the first of them)."""

    count: int
    per: timedelta


DEFAULT_RATE_LIMIT = RateLimit(10, timedelta(minutes=10))
"""Ten new notifications in ten minutes is already more than anyone reads; a mass sync of forty apps then
gives a team ten notifications and one summary instead of forty. It only ever replaces two or more
notifications by one, so it never makes an install louder; the cost is that held ones arrive at the end
of the window."""


@dataclass(frozen=True)
class EveryDigest:
    """A digest every `every`, on multiples of it since the Unix epoch (hourly digests on the hour, UTC)."""

    every: timedelta

    @property
    def zone(self) -> tzinfo:
        """Times in the digest's text are UTC, like its schedule."""
        return UTC

    def next_at(self, now: datetime) -> datetime:
        """The first digest time strictly after `now`."""
        return _EPOCH + ((now - _EPOCH) // self.every + 1) * self.every


@dataclass(frozen=True)
class DailyDigest:
    """A digest every day at a wall-clock time of a time zone (zoneinfo: daylight saving is followed).

    A time skipped by a spring-forward is sent an hour later that day; a repeated one, at its first pass.
    """

    at: time
    zone: ZoneInfo

    def next_at(self, now: datetime) -> datetime:
        """The first digest time strictly after `now`."""
        day = now.astimezone(self.zone).date()
        for offset in (0, 1, 2):
            candidate = datetime.combine(day + timedelta(days=offset), self.at, tzinfo=self.zone).astimezone(UTC)
            if candidate > now:
                return candidate
        raise AssertionError("a day always has a next digest time")  # pragma: no cover


Digest = EveryDigest | DailyDigest


@dataclass(frozen=True)
class RoutePolicy:
    """A route's own noise settings: a digest instead of single notifications, and its own rate limit."""

    digest: Digest | None = None
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class NoisePolicy:
    """A bridge's noise settings, defaults chosen so a first install is quieter than the manual procedure.

    - `min_interval` (5 minutes): a flapping app gives one notification and one update per window, not
      one per transition; a first event is never delayed. `timedelta(0)` turns it off.
    - `resolve_recovered` (on): the degraded/failed notification says when it recovered; it updates the
      notification the recipient already has, so it adds nothing to their inbox.
    - `signal_only` ({HealthRecovered}): events seen only to resolve problems. Remove HealthRecovered to
      notify "healthy again" also when there was no open notification (opt-in: it fires on every rollout).
    - `rate_limit` (DEFAULT_RATE_LIMIT), per recipient; a route's own limit counts separately. None: off.
    - `routes`: per route name, a digest or a rate limit (no digest by default).
    """

    min_interval: timedelta = DEFAULT_MIN_INTERVAL
    resolve_recovered: bool = True
    signal_only: frozenset[str] = frozenset({HEALTH_RECOVERED})
    rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT
    routes: Mapping[str, RoutePolicy] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class AppEvent:
    """One notification as Argo CD posted it to the relay, with what noise control needs to know of it.

    `app` is `<namespace>/<name>`; `event` the event's name (SyncFailed, ..., HealthRecovered);
    `recipients` canonical entity refs, or BROADCAST; `route` the route that produced it, if any.
    """

    id: str
    app: str
    event: str
    recipients: tuple[str, ...]
    title: str
    scope: str
    description: str = ""
    severity: str = "normal"
    topic: str | None = None
    link: str | None = None
    icon: str | None = None
    route: str | None = None


_SCOPE = re.compile(r"^argocd/([^/]+)/([^/]+)/([A-Za-z]+)$")


def event_from_body(event_id: str, body: Mapping[str, Any], route: str | None = None) -> AppEvent | None:
    """An AppEvent from a Backstage create body as the templates build it (scope `argocd/<ns>/<app>/<event>`);
    None when the body is not one of ours (a cut scope, a hand-made body): the relay then sends it as it is."""
    payload = body.get("payload")
    recipients = body.get("recipients")
    if not isinstance(payload, Mapping) or not isinstance(recipients, Mapping):
        return None
    match = _SCOPE.match(str(payload.get("scope") or ""))
    if match is None or not isinstance(payload.get("title"), str):
        return None
    if recipients.get("type") == "broadcast":
        refs: tuple[str, ...] = (BROADCAST,)
    else:
        raw = recipients.get("entityRef")
        refs = (raw,) if isinstance(raw, str) else tuple(ref for ref in raw or () if isinstance(ref, str))

    def optional(key: str) -> str | None:
        value = payload.get(key)
        return value if isinstance(value, str) else None

    return AppEvent(
        id=event_id,
        app=f"{match.group(1)}/{match.group(2)}",
        event=match.group(3),
        recipients=refs,
        title=payload["title"],
        scope=payload["scope"],
        description=optional("description") or "",
        severity=optional("severity") or "normal",
        topic=optional("topic"),
        link=optional("link"),
        icon=optional("icon"),
        route=route,
    )


class SendKind:
    """What a Send is, for metrics and tests (plain strings: they end up in logs and labels)."""

    NOTIFY = "notify"  # the first of a quiet period: a new notification
    UPDATE = "update"  # the flap window's end: the same scope, with how often it happened
    RESOLUTION = "resolution"  # the problem is over: the same scope, saying so
    COMPLETION = "completion"  # the other half of one good sync (see COMPLETES): the first's scope, updated
    SUMMARY = "summary"  # what a rate limit held, one notification per recipient and window
    DIGEST = "digest"  # a route's digest, one notification per recipient and period


@dataclass(frozen=True)
class Tally:
    """Occurrences of one (app, event) gathered for one recipient: a pending update, a held or digest line."""

    latest: AppEvent
    ids: tuple[str, ...]
    occurrences: int
    first_at: datetime
    last_at: datetime
    recovered_at: datetime | None = None

    @classmethod
    def first(cls, event: AppEvent, now: datetime) -> Tally:
        """A tally of one occurrence."""
        return cls(event, (event.id,), 1, now, now)

    @property
    def key(self) -> tuple[str, str]:
        """(app, event): what one line of a list is about."""
        return self.latest.app, self.latest.event

    def occurred(self, event: AppEvent, now: datetime) -> Tally:
        """Another occurrence: the latest texts win, and the problem is not over any more."""
        return self.merged(Tally.first(event, now))

    def recovered(self, now: datetime, event_id: str | None) -> Tally:
        """The problem is over at `now`; `event_id` is the signal that said so, when this tally accounts for it."""
        ids = self.ids if event_id is None else (*self.ids, event_id)
        return replace(self, ids=ids, recovered_at=now)

    def merged(self, later: Tally) -> Tally:
        """Both tallies as one, the later one's texts and state winning."""
        return Tally(
            later.latest,
            (*self.ids, *later.ids),
            self.occurrences + later.occurrences,
            self.first_at,
            later.last_at,
            later.recovered_at,
        )

    @property
    def severity(self) -> str:
        """A problem that is over no longer weighs on a list's severity."""
        return "low" if self.recovered_at is not None else self.latest.severity


@dataclass(frozen=True)
class Send:
    """One POST to Backstage: recipients and payload, and the offered event ids it accounts for."""

    kind: str
    recipients: tuple[str, ...]
    scope: str
    title: str
    description: str
    severity: str
    accounts: tuple[str, ...]
    topic: str | None = None
    link: str | None = None
    icon: str | None = None
    lines: tuple[Tally, ...] = ()  # what a summary or digest lists, one line per (app, event)
    counted: bool = False  # counted against the recipients' rate limit (a new notification)

    def body(self) -> dict[str, Any]:
        """The Backstage create body, fitted to its limits."""
        if self.recipients == (BROADCAST,):
            recipients: dict[str, Any] = {"type": "broadcast"}
        else:
            refs = [ref for ref in self.recipients if ref != BROADCAST]
            recipients = {"type": "entity", "entityRef": refs[0] if len(refs) == 1 else refs}
        payload = {"title": self.title, "description": self.description, "severity": self.severity}
        payload["scope"] = self.scope
        for key, value in (("topic", self.topic), ("link", self.link), ("icon", self.icon)):
            if value is not None:
                payload[key] = value
        return fit_notification({"recipients": recipients, "payload": payload})


@dataclass(frozen=True)
class Thread:
    """One (app, event) for one recipient outside digests: its flap window and whether a problem is open."""

    last: AppEvent  # the latest occurrence sent (or handed to the rate limit)
    since: datetime  # the first occurrence of this episode (a quiet window ends an episode)
    occurrences: int
    window_until: datetime
    delivered: bool  # the recipient has this episode's notification: its updates are not new
    open: bool  # the recipient's notification shows a problem that has not been resolved
    pending: Tally | None = None


@dataclass(frozen=True)
class RateWindow:
    """One recipient's rate-limit window: opened by its first new notification, held lines for its end."""

    limit: RateLimit
    start: datetime
    sent: int
    held: tuple[Tally, ...] = ()

    @property
    def ends(self) -> datetime:
        """When the window closes and what it held is summarised."""
        return self.start + self.limit.per


@dataclass(frozen=True)
class DigestBatch:
    """One route's digest for one recipient: the lines gathered so far and when it goes."""

    due: datetime
    zone: tzinfo
    lines: tuple[Tally, ...] = ()


ThreadKey = tuple[str, str]  # (app, event)
RecipientKey = tuple[str, str]  # (route or "", recipient)


@dataclass(frozen=True)
class NoiseState:
    """Everything noise control remembers; replaced, never changed, by `offer` and `due`."""

    policy: NoisePolicy = field(default_factory=NoisePolicy)
    threads: Mapping[ThreadKey, Mapping[str, Thread]] = field(default_factory=lambda: MappingProxyType({}))
    windows: Mapping[RecipientKey, RateWindow] = field(default_factory=lambda: MappingProxyType({}))
    digests: Mapping[RecipientKey, DigestBatch] = field(default_factory=lambda: MappingProxyType({}))
    seen: Mapping[str, datetime] = field(default_factory=lambda: MappingProxyType({}))


class Decision(NamedTuple):
    """The next state, what to POST now, and the (event id, recipient) pairs that need no POST at all."""

    state: NoiseState
    sends: list[Send]
    absorbed: tuple[tuple[str, str], ...] = ()


def with_policy(state: NoiseState, policy: NoisePolicy) -> NoiseState:
    """New settings (a spec change): what is pending keeps its times; new events follow the new rules."""
    return replace(state, policy=policy)


class _Draft:
    """The state being decided: copies of the maps, made when first written, so the input stays as it was."""

    def __init__(self, state: NoiseState) -> None:
        self.policy = state.policy
        # Shallow copies (pointers only); a thread map is copied when one of its recipients changes.
        self.threads: dict[ThreadKey, Mapping[str, Thread]] = dict(state.threads)
        self.windows = dict(state.windows)
        self.digests = dict(state.digests)
        self.seen = dict(state.seen)
        self.sends: list[Send] = []
        self.absorbed: list[tuple[str, str]] = []

    def thread(self, app: str, event: str, recipient: str) -> Thread | None:
        return self.threads.get((app, event), {}).get(recipient)

    def set_thread(self, app: str, event: str, recipient: str, thread: Thread | None) -> None:
        threads = dict(self.threads.get((app, event), {}))
        if thread is None:
            threads.pop(recipient, None)
        else:
            threads[recipient] = thread
        if threads:
            self.threads[(app, event)] = MappingProxyType(threads)
        else:
            self.threads.pop((app, event), None)

    def decision(self) -> Decision:
        state = NoiseState(
            policy=self.policy,
            threads=MappingProxyType(self.threads),
            windows=MappingProxyType(self.windows),
            digests=MappingProxyType(self.digests),
            seen=MappingProxyType(self.seen),
        )
        return Decision(state, _grouped(self.sends), tuple(self.absorbed))


def _grouped(sends: Iterable[Send]) -> list[Send]:
    """One Send for recipients whose decisions came out the same (same text, same events): one POST."""
    groups: dict[Send, list[str]] = {}
    for send in sends:
        groups.setdefault(replace(send, recipients=()), []).extend(send.recipients)
    return [replace(key, recipients=tuple(dict.fromkeys(recipients))) for key, recipients in groups.items()]


def _scope(*parts: str) -> str:
    """A scope of our own; one longer than Backstage's 255 keeps its start and a hash of the whole."""
    whole = "/".join(parts)
    if len(whole) <= SHORT_FIELD_CHARS:
        return whole
    return f"{whole[:190]}~{hashlib.sha256(whole.encode()).hexdigest()[:32]}"


def _stamp(when: datetime) -> str:
    """A compact UTC time for scopes, so each summary and digest is a notification of its own."""
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _is_problem(event: str) -> bool:
    return event in RECOVERED_BY


def _rate_limit(policy: NoisePolicy, route: str | None) -> tuple[str, RateLimit | None]:
    """The limit an event counts against: its route's own (counted apart), else the bridge's."""
    own = policy.routes.get(route) if route else None
    if own is not None and own.rate_limit is not None and route is not None:
        return route, own.rate_limit
    return "", policy.rate_limit


def _single(kind: str, event: AppEvent, recipient: str, texts: tuple[str, str, str], tally: Tally) -> Send:
    """A notification about one (app, event) in its own scope; `texts` are (title, description, severity)."""
    title, description, severity = texts
    return Send(
        kind=kind,
        recipients=(recipient,),
        scope=event.scope,
        title=text.title(title),
        description=description,
        severity=severity,
        accounts=tally.ids,
        topic=event.topic,
        link=event.link,
        icon=event.icon,
    )


def _individual(draft: _Draft, send: Send, route: str | None, tally: Tally, now: datetime, exempt: bool) -> bool:
    """Hand one notification to its recipient's rate limit: sent now (True), or held for the window's summary."""
    (recipient,) = send.recipients
    key, limit = _rate_limit(draft.policy, route)
    if exempt or limit is None:
        draft.sends.append(send)
        return True
    window = draft.windows.get((key, recipient))
    if window is not None and now >= window.ends:
        _summarise(draft, key, recipient, window, now)  # `due` was late: the summary goes first
        window = None
    if window is None:
        window = RateWindow(limit, now, 0)
    if window.sent < window.limit.count:
        draft.windows[(key, recipient)] = replace(window, sent=window.sent + 1)
        draft.sends.append(replace(send, counted=True))
        return True
    draft.windows[(key, recipient)] = replace(window, held=_gathered(window.held, tally))
    return False


def _gathered(lines: tuple[Tally, ...], tally: Tally) -> tuple[Tally, ...]:
    """Lines with `tally` folded into the line of its (app, event), or added as a line of its own."""
    for index, line in enumerate(lines):
        if line.key == tally.key:
            return (*lines[:index], line.merged(tally), *lines[index + 1 :])
    return (*lines, tally)


def _recovered(lines: tuple[Tally, ...], key: ThreadKey, now: datetime, event_id: str | None) -> tuple[Tally, ...]:
    """Lines with the (app, problem) line marked as over (a line per key, so one id is taken once)."""
    return tuple(line.recovered(now, event_id) if line.key == key else line for line in lines)


def _notify(draft: _Draft, event: AppEvent, recipient: str, now: datetime) -> None:
    """An event that is news for this recipient: into a digest, a flap window, or out (through the limit)."""
    route = draft.policy.routes.get(event.route) if event.route else None
    if route is not None and route.digest is not None and event.route is not None:
        key = (event.route, recipient)
        batch = draft.digests.get(key) or DigestBatch(route.digest.next_at(now), route.digest.zone)
        draft.digests[key] = replace(batch, lines=_gathered(batch.lines, Tally.first(event, now)))
        return
    thread = draft.thread(event.app, event.event, recipient)
    if thread is not None and (thread.pending is not None or now < thread.window_until):
        pending = thread.pending.occurred(event, now) if thread.pending else Tally.first(event, now)
        draft.set_thread(
            event.app, event.event, recipient, replace(thread, pending=pending, occurrences=thread.occurrences + 1)
        )
        return
    tally = Tally.first(event, now)
    texts = (event.title, event.description, event.severity)
    sent = _individual(draft, _single(SendKind.NOTIFY, event, recipient, texts, tally), event.route, tally, now, False)
    still_open = thread is not None and thread.open
    draft.set_thread(
        event.app,
        event.event,
        recipient,
        Thread(
            last=event,
            since=now,
            occurrences=1,
            window_until=now + draft.policy.min_interval,
            delivered=sent,
            open=(sent and _is_problem(event.event)) or still_open,
        ),
    )


def _resolve(draft: _Draft, signal: AppEvent, problem: str, now: datetime, merge: bool) -> set[str]:
    """End `problem` of the signal's app wherever it is held, for every recipient; the recipients for whom
    the signal's id was accounted there (only when `merge`: the signal says nothing else)."""
    accounted: set[str] = set()
    wanted = set(signal.recipients) if merge else set()

    def take(recipient: str) -> str | None:
        if recipient in wanted and recipient not in accounted:
            accounted.add(recipient)
            return signal.id
        return None

    for recipient, thread in sorted(draft.threads.get((signal.app, problem), {}).items()):
        if thread.open:
            event_id = take(recipient)
            draft.sends.append(
                Send(
                    kind=SendKind.RESOLUTION,
                    recipients=(recipient,),
                    scope=thread.last.scope,
                    title=text.resolved_title(signal.app, problem),
                    description=text.resolved_description(
                        signal.app, problem, thread.since, now, thread.last.description
                    ),
                    severity="low",
                    accounts=() if event_id is None else (event_id,),
                    topic=thread.last.topic,
                    link=thread.last.link,
                    icon=thread.last.icon,
                )
            )
            thread = replace(thread, open=False)
        if thread.pending is not None:
            thread = replace(thread, pending=thread.pending.recovered(now, take(recipient)))
        draft.set_thread(signal.app, problem, recipient, thread)
    ended = (signal.app, problem)
    for key, window in sorted(draft.windows.items()):
        if any(line.key == ended for line in window.held):
            draft.windows[key] = replace(window, held=_recovered(window.held, ended, now, take(key[1])))
    for key, batch in sorted(draft.digests.items()):
        if any(line.key == ended for line in batch.lines):
            draft.digests[key] = replace(batch, lines=_recovered(batch.lines, ended, now, take(key[1])))
    return accounted


def offer(state: NoiseState, event: AppEvent, now: datetime) -> Decision:
    """Take one notification Argo CD posted at `now`: what to send at once, and the state to keep.

    Offering an id again (a retried post) within DEDUP_HORIZON changes nothing.
    """
    forget = state.seen.get(event.id)
    if forget is not None and now < forget:
        return Decision(state, [])
    draft = _Draft(state)
    draft.seen[event.id] = now + DEDUP_HORIZON
    merged: set[str] = set()
    if draft.policy.resolve_recovered:
        for problem, ended_by in RECOVERED_BY.items():
            if event.event in ended_by:
                merged |= _resolve(draft, event, problem, now, merge=event.event in RECOVERY_ONLY)
    for recipient in dict.fromkeys(event.recipients):
        if recipient in merged:
            continue
        if event.event in draft.policy.signal_only:
            draft.absorbed.append((event.id, recipient))
        elif not _completed(draft, event, recipient, now):
            _notify(draft, event, recipient, now)
    return draft.decision()


def _completed(draft: _Draft, event: AppEvent, recipient: str, now: datetime) -> bool:
    """Whether `event` completes a good sync the recipient was just told of (COMPLETES): then that
    notification is updated in place (Deployed's texts win) instead of a second one. Not in a digest
    (it lists both), not once the first has updates waiting (the window's update will tell), and never
    with flap suppression off (every event its own notification, as posted)."""
    other = COMPLETES.get(event.event)
    route = draft.policy.routes.get(event.route) if event.route else None
    if other is None or draft.policy.min_interval <= timedelta(0) or (route is not None and route.digest):
        return False
    thread = draft.thread(event.app, other, recipient)
    if thread is None or not thread.delivered or thread.pending is not None or now >= thread.window_until:
        return False
    deployed = event if event.event == EventName.DEPLOYED.value else thread.last
    shown = replace(deployed, scope=thread.last.scope)
    draft.sends.append(
        Send(
            kind=SendKind.COMPLETION,
            recipients=(recipient,),
            scope=shown.scope,
            title=text.title(shown.title),
            description=shown.description,
            severity=shown.severity,
            accounts=(event.id,),
            topic=shown.topic,
            link=shown.link,
            icon=shown.icon,
        )
    )
    draft.set_thread(event.app, other, recipient, replace(thread, last=shown))
    return True


def _summarise(draft: _Draft, key: str, recipient: str, window: RateWindow, now: datetime) -> None:
    """The held lines of an ended window as one summary (split only past Backstage's size)."""
    del draft.windows[(key, recipient)]
    if not window.held:
        return
    header = text.held_header(window.limit.count, window.limit.per, window.start, now)
    parts = _parts([((line,), _held_line(line, now)) for line in window.held], header)
    for number, (lines, description) in enumerate(parts, start=1):
        suffix = (f"part{number}",) if len(parts) > 1 else ()
        draft.sends.append(
            _list_send(
                SendKind.SUMMARY,
                recipient,
                _scope("argobridge", "summary", key or "bridge", recipient, _stamp(window.start), *suffix),
                text.held_title(sum(line.occurrences for line in lines), window.limit.count, window.limit.per),
                description,
                lines,
                SUMMARY_TOPIC,
            )
        )


def _line_words(line: Tally, now: datetime, zone: tzinfo) -> str:
    return text.line(
        line.latest.event, line.occurrences, line.first_at, line.last_at, line.recovered_at, line.severity, now, zone
    )


def _held_line(line: Tally, now: datetime) -> str:
    """A summary line names its app (a summary mixes apps) and links to it."""
    words = f"- {text.app_short_name(line.latest.app)}: {_line_words(line, now, UTC)}"
    return words + (f" {line.latest.link}" if line.latest.link else "")


def _list_send(
    kind: str, recipient: str, scope: str, title: str, description: str, lines: tuple[Tally, ...], topic: str
) -> Send:
    apps = {line.latest.app for line in lines}
    links = {line.latest.link for line in lines}
    severity = max((line.severity for line in lines), key=SEVERITY_ORDER.index, default="low")
    return Send(
        kind=kind,
        recipients=(recipient,),
        scope=scope,
        title=title,
        description=description,
        severity=severity if severity in SEVERITY_ORDER else "normal",
        accounts=tuple(event_id for line in lines for event_id in line.ids),
        topic=topic,
        link=next(iter(links)) if len(apps) == 1 and len(links) == 1 else None,
        lines=lines,
    )


def _parts(blocks: list[tuple[tuple[Tally, ...], str]], header: str) -> list[tuple[tuple[Tally, ...], str]]:
    """Blocks of lines packed into descriptions of at most LIST_BUDGET_CHARS; a block is never split."""
    parts: list[tuple[tuple[Tally, ...], str]] = []
    lines: list[Tally] = []
    texts: list[str] = [header]
    size = len(header)
    for block, words in blocks:
        words = truncate(words, LIST_BUDGET_CHARS // 4)
        if lines and size + 1 + len(words) > LIST_BUDGET_CHARS:
            parts.append((tuple(lines), "\n".join(texts)))
            lines, texts, size = [], [header], len(header)
        lines.extend(block)
        texts.append(words)
        size += 1 + len(words)
    if lines:
        parts.append((tuple(lines), "\n".join(texts)))
    return parts


def _digest(draft: _Draft, route: str, recipient: str, batch: DigestBatch, now: datetime) -> None:
    """One digest notification (split only past Backstage's size): per app its link once, then its events."""
    del draft.digests[(route, recipient)]
    by_app: dict[str, list[Tally]] = {}
    for line in sorted(batch.lines, key=lambda line: (line.latest.app, line.first_at, line.latest.event)):
        by_app.setdefault(line.latest.app, []).append(line)
    blocks: list[tuple[tuple[Tally, ...], str]] = []
    for app, app_lines in by_app.items():
        link = next((line.latest.link for line in reversed(app_lines) if line.latest.link), None)
        head = f"{text.app_short_name(app)} ({app.split('/', 1)[0]})" + (f": {link}" if link else "")
        words = [f"  - {_line_words(line, now, batch.zone)}" for line in app_lines]
        blocks.append((tuple(app_lines), "\n".join([head, *words])))
    header = f"Argo CD events since the last digest, by application (times in {batch.zone}):"
    parts = _parts(blocks, header)
    for number, (lines, description) in enumerate(parts, start=1):
        suffix = (f"part{number}",) if len(parts) > 1 else ()
        apps = len({line.latest.app for line in lines})
        draft.sends.append(
            _list_send(
                SendKind.DIGEST,
                recipient,
                _scope("argobridge", "digest", route, recipient, _stamp(batch.due), *suffix),
                text.digest_title(sum(line.occurrences for line in lines), apps, number, len(parts)),
                description,
                lines,
                DIGEST_TOPIC,
            )
        )


def _window_end(draft: _Draft, app: str, event: str, recipient: str, thread: Thread, now: datetime) -> None:
    """A flap window ended: one update with everything that waited, and a new window; or forget the thread."""
    pending = thread.pending
    if pending is None:
        if not thread.open:
            draft.set_thread(app, event, recipient, None)  # nothing to resolve later: a quiet app costs nothing
        return
    latest, recovered = pending.latest, pending.recovered_at
    title = text.repeated_title(
        text.resolved_title(app, event) if recovered else latest.title,
        thread.occurrences,
        thread.since,
        pending.last_at,
    )
    description = text.repeated_description(
        event, thread.occurrences, thread.since, pending.last_at, recovered, latest.description, now
    )
    severity = "low" if recovered else latest.severity
    update = _single(SendKind.UPDATE, latest, recipient, (title, description, severity), pending)
    sent = _individual(draft, update, latest.route, pending, now, thread.delivered)
    draft.set_thread(
        app,
        event,
        recipient,
        replace(
            thread,
            last=latest,
            window_until=now + draft.policy.min_interval,
            delivered=thread.delivered or sent,
            open=(_is_problem(event) and recovered is None) if sent else thread.open,
            pending=None,
        ),
    )


def due(state: NoiseState, now: datetime) -> Decision:
    """Everything whose time has come by `now`: summaries of ended windows, flap updates, digests."""
    draft = _Draft(state)
    for (key, recipient), window in sorted(state.windows.items()):
        if now >= window.ends:
            _summarise(draft, key, recipient, window, now)
    for (app, event), threads in sorted(state.threads.items()):
        for recipient in sorted(threads):
            thread = draft.thread(app, event, recipient)
            if thread is not None and now >= thread.window_until:
                _window_end(draft, app, event, recipient, thread, now)
    for (route, recipient), batch in sorted(state.digests.items()):
        if now >= batch.due:
            _digest(draft, route, recipient, batch, now)
    draft.seen = {event_id: forget for event_id, forget in draft.seen.items() if forget > now}
    return draft.decision()


def next_wakeup(state: NoiseState) -> datetime | None:
    """When `due` has something to do (None: nothing waits), so the relay sleeps instead of polling."""
    times = [thread.window_until for threads in state.threads.values() for thread in threads.values() if thread.pending]
    times += [window.ends for window in state.windows.values() if window.held]
    times += [batch.due for batch in state.digests.values()]
    return min(times, default=None)


def parse_rate_limit(raw: Any, path: str) -> RateLimit:
    """`{count: 10, per: 10m}` (count 1-1000, per 1m-1d), or SpecError naming the field."""
    if not isinstance(raw, Mapping) or set(raw) - {"count", "per"}:
        raise SpecError(f"{path} must be {{count: <notifications>, per: <duration>}}, e.g. {{count: 10, per: 10m}}")
    count = raw.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
        raise SpecError(f"{path}.count must be a whole number from 1 to 1000")
    per = parse_duration(raw.get("per", "10m"), f"{path}.per")
    if not 60 <= per <= 86400:
        raise SpecError(f"{path}.per must be from 1m to 24h")
    return RateLimit(count, timedelta(seconds=per))


def parse_digest(raw: Any, path: str) -> Digest:
    """`{every: 1h}` (5m-7d) or `{at: "09:00", timeZone: Europe/Paris}` (an IANA zone, UTC when omitted)."""
    if isinstance(raw, Mapping) and set(raw) == {"every"}:
        every = parse_duration(raw["every"], f"{path}.every")
        if not 300 <= every <= 7 * 86400:
            raise SpecError(f"{path}.every must be from 5m to 7d")
        return EveryDigest(timedelta(seconds=every))
    if isinstance(raw, Mapping) and "at" in raw and not set(raw) - {"at", "timeZone"}:
        clock = _CLOCK.match(str(raw["at"]))
        if clock is None:
            raise SpecError(f'{path}.at {raw["at"]!r} must be a time of day as HH:MM, e.g. "09:00"')
        zone_name = str(raw.get("timeZone", "UTC"))
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SpecError(f"{path}.timeZone {zone_name!r} is not an IANA time zone, e.g. Europe/Paris") from None
        return DailyDigest(time(int(clock.group(1)), int(clock.group(2))), zone)
    raise SpecError(f'{path} must be {{every: <duration>}} or {{at: "HH:MM", timeZone: <IANA zone>}}')


def run(state: NoiseState, offers: Iterable[tuple[AppEvent, datetime]], now: datetime) -> Decision:
    """A batch, as the relay takes it from its store: each event at the time it was received, with what came
    due before it first, then everything due by `now`. Times never go back (a late item counts at the
    latest time seen), so windows stay ordered whatever order the store hands them in."""
    sends: list[Send] = []
    absorbed: list[tuple[str, str]] = []
    latest: datetime | None = None

    def catch_up(state: NoiseState, at: datetime) -> NoiseState:
        # As the relay's timer would have: each wakeup at its own time (a backlog after a restart keeps
        # its windows), bounded so that no state can hold the loop.
        for _ in range(1000):
            wake = next_wakeup(state)
            if wake is None or wake > at:
                break
            state, more, gone = due(state, wake)
            sends.extend(more)
            absorbed.extend(gone)
        return state

    for event, when in offers:
        latest = when if latest is None or when > latest else latest
        state, more, gone = offer(catch_up(state, latest), event, latest)
        sends.extend(more)
        absorbed.extend(gone)
    end = now if latest is None or now > latest else latest
    state, more, gone = due(catch_up(state, end), end)  # also forgets ids past the dedup horizon
    return Decision(state, [*sends, *more], (*absorbed, *gone))
