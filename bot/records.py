"""Plain immutable records that flow between the pipeline stages.

Nothing downstream of `bot.feeds.parse` sees a feedparser dict; nothing upstream of
`bot.store` sees a database row. Every string here that came from a feed is untrusted
plain text (no HTML), already bounded in size by the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Decision = Literal["new", "duplicate", "seed", "irrelevant", "stale", "seen"]


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One configured feed."""

    url: str
    name: str
    language: str = "en"


@dataclass(frozen=True, slots=True)
class Entry:
    """One feed entry after parsing and normalising."""

    feed_url: str
    feed_name: str
    guid: str
    title: str
    text: str
    link: str  # canonical: no utm_*/fbclid/fragment, lower-case host
    published: datetime | None  # timezone-aware UTC, or None when the feed gave none
    language: str
    outlet: str = ""  # the publisher's name when the feed gives one (`<source>`, aggregators)


@dataclass(frozen=True, slots=True)
class Seed:
    """A stored seed story: what subscribers already know."""

    id: str
    title: str
    language: str
    text: str
    summary: str = ""
    published: datetime | None = None
    events: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the pipeline decided about one entry, and why."""

    entry: Entry
    decision: Decision
    story_id: int | None = None
    reasons: tuple[str, ...] = field(default_factory=tuple)
    topics: tuple[str, ...] = ()  # categories the decision found (security, politics, …)
    summary: str = ""  # for a new or stale story: what the alert says
    fingerprint: str = ""  # what the item says, as stored (bot.decide.dedup.Fingerprint JSON)
    vector: bytes = b""  # what it means, as stored (bot.decide.embed, float16)
    follows: int | None = None  # for a new story: the earlier story of its saga, if any
