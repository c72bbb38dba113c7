"""What a chat's choices do to one alert, and when its quiet hours end and its digests fall
due: pure functions over the chat's settings (`Choices`, read from its Subscriber row).

    triage(choices, story, now, muted) → Send | Hold | Defer(until) | Skip(reason)

    Skip   the story's reader topics do not meet the chat's topics (bot/topics.py), or the
           chat muted the story (or one it follows up)
    Hold   the chat reads digests: the alert waits for the next one (state "held")
    Defer  quiet hours: the alert waits until they end, then goes out
    Send   now, silently or not, with or without a link preview

Times of day are the chat's local minutes after midnight in its IANA time zone; what is
returned is UTC. A local time that a daylight-saving change skips or repeats is read the way
`zoneinfo` reads it (fold 0).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot import topics

INSTANT = "instant"
DIGEST = "digest"  # every `digest_hours`, at local midnight and each multiple after it
DAILY = "daily"  # once a day at `digest_at`
MODES = (INSTANT, DIGEST, DAILY)
DAY = 24 * 60
MAX_FOLLOWS = 8  # how far up a saga a mute reaches


@dataclass(frozen=True, slots=True)
class Choices:
    """A chat's delivery settings (the columns of its Subscriber row)."""

    timezone: str = "UTC"
    topics: str = ""  # comma-separated reader topic keys; "" for all
    delivery_mode: str = INSTANT
    digest_hours: int = 6
    digest_at: int = 480
    quiet_from: int | None = None
    quiet_to: int | None = None
    silent: bool = False
    link_previews: bool = True

    @property
    def digests(self) -> bool:
        return self.delivery_mode in (DIGEST, DAILY)


@dataclass(frozen=True, slots=True)
class StoryFacts:
    """What triage needs to know of a story."""

    story_id: int
    topics: str  # the decision categories, comma-separated (Story.topics)
    follows_id: int | None = None


@dataclass(frozen=True, slots=True)
class Send:
    silent: bool
    previews: bool


@dataclass(frozen=True, slots=True)
class Hold:
    pass


@dataclass(frozen=True, slots=True)
class Defer:
    until: datetime


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


Triage = Send | Hold | Defer | Skip


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The chat's time zone; UTC for a name this system does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def wanted(choices: Choices, categories: str) -> bool:
    """Does a story of these decision categories meet the chat's topics? ("" = all; a story
    of no known topic reaches every chat)"""
    return topics.wanted(choices.topics, categories)


def is_muted(story: StoryFacts, muted: Collection[int], follows: Mapping[int, int | None]) -> bool:
    """The story, or one it follows up (up `MAX_FOLLOWS` steps of `follows`), is muted."""
    if not muted:
        return False
    current: int | None = story.story_id
    parent: int | None = story.follows_id
    for _ in range(MAX_FOLLOWS):
        if current is None:
            return False
        if current in muted:
            return True
        current, parent = parent, follows.get(parent) if parent is not None else None
    return False


def _local(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(tz)


def _at(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """Local `day` at `minutes` after midnight, as UTC."""
    hour, minute = divmod(minutes % DAY, 60)
    return datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)


def quiet_until(choices: Choices, now: datetime) -> datetime | None:
    """When the chat's quiet hours end, if `now` is inside them; else None."""
    start, end = choices.quiet_from, choices.quiet_to
    if start is None or end is None or start % DAY == end % DAY:
        return None
    start, end = start % DAY, end % DAY
    tz = zone(choices.timezone)
    local = _local(now, tz)
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return None
    day = local.date() if minute < end else local.date() + timedelta(days=1)
    until = _at(day, end, tz)
    return until if until > now else now + timedelta(minutes=1)


def next_digest(choices: Choices, after: datetime) -> datetime:
    """The chat's first digest time strictly after `after` (UTC)."""
    tz = zone(choices.timezone)
    local = _local(after, tz)
    if choices.delivery_mode == DAILY:
        slots = [choices.digest_at % DAY]
    else:
        every = max(1, min(24, choices.digest_hours)) * 60
        slots = list(range(0, DAY, every))
    for offset in range(3):
        day = local.date() + timedelta(days=offset)
        for minutes in slots:
            moment = _at(day, minutes, tz)
            if moment > after:
                return moment
    raise AssertionError("unreachable: a day always has a slot")


def previous_digest(choices: Choices, at: datetime) -> datetime:
    """The digest time before `at`: where the period ending at `at` began."""
    hours = 24 if choices.delivery_mode == DAILY else max(1, min(24, choices.digest_hours))
    return at - timedelta(hours=hours)


def triage(
    choices: Choices,
    story: StoryFacts,
    now: datetime,
    *,
    muted: Collection[int] = (),
    follows: Mapping[int, int | None] | None = None,
) -> Triage:
    """What to do with one alert for this chat, now."""
    if is_muted(story, muted, follows or {}):
        return Skip("muted by the chat")
    if not wanted(choices, story.topics):
        return Skip("not among the chat's topics")
    if choices.digests:
        return Hold()
    until = quiet_until(choices, now)
    if until is not None:
        return Defer(until)
    return Send(silent=choices.silent, previews=choices.link_previews)
