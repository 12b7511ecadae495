"""The words of the notifications noise control writes itself: recovered, flapping, held back, digest.

Kept apart from the decisions (`noisecontrol`) so the state machine reads as rules and these as copy.
Every text is short, says what happened and when, and fits Backstage's limits (titles are cut to 255
characters by `backstage_limits`; descriptions are kept well under its 16,000 by the callers' budget).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from argobridge.core.backstage_limits import SHORT_FIELD_CHARS, truncate
from argobridge.core.events import CATALOG
from argobridge.core.spec import EventName

HEALTH_RECOVERED = "HealthRecovered"
"""An Application's health became Healthy again: the signal that resolves a degraded notification."""

# What the open notification becomes once its problem is over.
RECOVERED_WORDS = {
    EventName.HEALTH_DEGRADED.value: "healthy again",
    EventName.SYNC_FAILED.value: "synced again",
}
EXCERPT_CHARS = 300


def event_label(event: str) -> str:
    """The catalog's few words for an event ("health degraded"); unknown names as they are."""
    try:
        return CATALOG[EventName(event)].label
    except (KeyError, ValueError):
        return "health recovered" if event == HEALTH_RECOVERED else event


def app_short_name(app: str) -> str:
    """`namespace/name` -> `name`: what people call the Application."""
    return app.rsplit("/", 1)[-1]


def moment(when: datetime, now: datetime, zone: tzinfo = UTC) -> str:
    """A time as people read it: `10:02 UTC`, with the date when it is not the day of `now`."""
    local, today = when.astimezone(zone), now.astimezone(zone)
    shape = "%H:%M %Z" if local.date() == today.date() else "%Y-%m-%d %H:%M %Z"
    return local.strftime(shape)


def span(delta: timedelta) -> str:
    """A duration in the largest sensible units: `under a minute`, `7 minutes`, `2 hours 5 minutes`."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} minute{'s' * (minutes != 1)}"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} hour{'s' * (hours != 1)}" + (f" {rest} minute{'s' * (rest != 1)}" if rest else "")
    return f"{hours // 24} days"


def times(count: int) -> str:
    """`once`, `twice`, `4 times`."""
    return "once" if count == 1 else "twice" if count == 2 else f"{count} times"


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first line of a text, cut with a marker: enough to recognise a message, never a wall."""
    first = text.strip().split("\n", 1)[0]
    return truncate(first, limit)


def title(text: str) -> str:
    """Any title, cut to what Backstage stores."""
    return truncate(text, SHORT_FIELD_CHARS)


def resolved_title(app: str, event: str) -> str:
    """`shop: healthy again`."""
    return title(f"{app_short_name(app)}: {RECOVERED_WORDS.get(event, 'recovered')}")


def resolved_description(app: str, event: str, since: datetime, recovered_at: datetime, last: str) -> str:
    """When the problem began and ended, and what the last report of it said."""
    ended = RECOVERED_WORDS.get(event, "recovered")
    text = (
        f"Resolved: {app_short_name(app)} was reported {event_label(event)} at {moment(since, recovered_at)} and is"
        f" {ended} since {moment(recovered_at, recovered_at)} (after {span(recovered_at - since)})."
    )
    return text + (f"\nLast report: {excerpt(last)}" if last.strip() else "")


def repeated_title(latest_title: str, count: int, since: datetime, last: datetime) -> str:
    """`shop: health degraded (4 times in 6 minutes)`; once recovered, `shop: healthy again (...)`."""
    story = f"{times(count)} in {span(last - since)}" if count > 1 else "once"
    return title(f"{latest_title} ({story})")


def repeated_description(
    event: str, count: int, since: datetime, last: datetime, recovered_at: datetime | None, latest: str, now: datetime
) -> str:
    """How often it happened since when; whether it is over; the latest report."""
    text = f"{event_label(event).capitalize()} {times(count)} since {moment(since, now)}"
    text += f", last at {moment(last, now)}." if count > 1 else "."
    if recovered_at is not None:
        text += f" {RECOVERED_WORDS.get(event, 'Recovered').capitalize()} since {moment(recovered_at, now)}."
    return text + (f"\nLatest: {excerpt(latest)}" if latest.strip() else "")


def held_title(count: int, limit: int, per: timedelta) -> str:
    """`14 Argo CD notifications held back (limit: 10 per 10 minutes)`."""
    noun = "notification" if count == 1 else "notifications"
    return title(f"{count} Argo CD {noun} held back (limit: {limit} per {span(per)})")


def held_header(limit: int, per: timedelta, start: datetime, now: datetime) -> str:
    return (
        f"More than {limit} notifications came for you in the {span(per)} from {moment(start, now)}; those beyond"
        " the limit are listed here instead of one notification each:"
    )


def digest_title(events: int, apps: int, part: int, parts: int) -> str:
    """`Argo CD digest: 7 events in 3 applications` (and `, part 2 of 3` when split)."""
    text = f"Argo CD digest: {events} event{'s' * (events != 1)} in {apps} application{'s' * (apps != 1)}"
    return title(text + (f", part {part} of {parts}" if parts > 1 else ""))


def line(
    event: str,
    count: int,
    first: datetime,
    last: datetime,
    recovered: datetime | None,
    severity: str,
    now: datetime,
    zone: tzinfo,
) -> str:
    """One event of a summary or digest: `health degraded 3 times, 09:12 CET to 09:18 CET, healthy again
    09:20 CET (high)`."""
    when = moment(first, now, zone) if count == 1 else f"{moment(first, now, zone)} to {moment(last, now, zone)}"
    text = f"{event_label(event)}{'' if count == 1 else ' ' + times(count)}, {when}"
    if recovered is not None:
        text += f", {RECOVERED_WORDS.get(event, 'recovered')} {moment(recovered, now, zone)}"
    return f"{text} ({severity})"
