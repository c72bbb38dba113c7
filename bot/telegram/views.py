"""Plain read-only records the Telegram side renders: built by `bot.storage.stats`, shown by
`render` and `replies`. Feed strings in them are untrusted plain text, not yet escaped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Source:
    """Another outlet that carried the same development."""

    name: str
    link: str


@dataclass(frozen=True, slots=True)
class StoryView:
    """What an alert shows about one story."""

    story_id: int
    title: str
    link: str
    outlet: str
    published: datetime | None
    seen: datetime
    summary: str
    also: tuple[Source, ...] = ()
    topics: tuple[str, ...] = ()  # the decision's categories (Story.topics)


@dataclass(frozen=True, slots=True)
class FeedHealth:
    name: str
    url: str
    language: str
    status: str  # never | ok | not_modified | error
    consecutive_failures: int
    last_success: datetime | None
    last_error: str | None
    last_polled: datetime | None = None

    @property
    def failing(self) -> bool:
        return self.status == "error" or self.consecutive_failures > 0


@dataclass(frozen=True, slots=True)
class StatusView:
    """/status for one chat."""

    subscribed: bool
    last_poll: datetime | None
    feeds_ok: int
    feeds_failing: int
    feeds_waiting: int  # configured, not polled yet
    stories_24h: int
    alerts_24h: int  # delivered to this chat


@dataclass(frozen=True, slots=True)
class StatsView:
    """/stats for admins."""

    subscribers_active: int
    subscribers_inactive: int
    stories_total: int
    stories_24h: int
    deliveries: tuple[tuple[str, int], ...]  # (state, count)
    feeds: tuple[FeedHealth, ...]
    last_poll: datetime | None
