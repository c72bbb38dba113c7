"""SQLModel tables. Unique constraints, not code, are what keep a row from being stored twice.

Times are stored as naive UTC and handed back timezone-aware (`UTCDateTime`), the same on
SQLite and PostgreSQL. Telegram chat ids need 64 bits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, LargeBinary, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Store naive UTC, return aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


def _when(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, index=index, nullable=nullable)


class Feed(SQLModel, table=True):
    """A polled feed and its health; the HTTP cache validators live here."""

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(sa_column=Column(Text, unique=True, nullable=False))
    name: str = ""
    language: str = "en"
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    last_status: str = "never"  # never | ok | not_modified | error
    last_http_status: int | None = None
    last_error: str | None = None
    last_polled_at: datetime | None = _when()
    last_success_at: datetime | None = _when()
    consecutive_failures: int = 0
    next_poll_at: datetime | None = _when()
    lease_owner: str | None = None
    lease_until: datetime | None = _when()
    added_by_chat: int | None = Field(default=None, sa_type=BigInteger)
    # the poll schedule (bot/feeds/schedule.py): the pace the feed showed, and the result
    entry_gap_seconds: float | None = None  # mean gap between entries, weighted to the last
    newest_entry_at: datetime | None = _when()  # the latest publication date seen
    first_polled_at: datetime | None = _when()  # silence counts from here before any entry
    ttl_seconds: float | None = None  # <ttl>, from the last body parsed
    update_period_seconds: float | None = None  # sy:updatePeriod / sy:updateFrequency
    poll_seconds: float | None = None  # the interval chosen at the last poll
    poll_reason: str | None = Field(default=None, sa_type=Text)  # "about 3 entries a day"
    # config | chat | cli | removed (bot/feeds/catalog.py); config feeds come from the file
    source: str = Field(
        default="config", sa_type=Text, sa_column_kwargs={"server_default": "config"}
    )
    added_by: str | None = Field(default=None, sa_type=Text)  # who added it, in words
    added_at: datetime | None = _when()


class Story(SQLModel, table=True):
    """One development: the first item that reported it, plus everything that joined."""

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    title: str
    link: str
    feed_name: str
    language: str = "en"
    published: datetime | None = _when()
    summary: str = Field(default="", sa_type=Text)
    alerted: bool = True  # False for a stale story: stored for dedup, never sent
    topics: str = Field(default="", sa_type=Text)  # comma-separated decision categories
    # issue 9: the outlet that reported it (Google News <source>), else ""; the earlier story
    # it follows up (a related development of one saga: alerts reply to that story's alert)
    outlet: str = Field(default="", sa_type=Text, sa_column_kwargs={"server_default": ""})
    follows_id: int | None = None  # a story id (no foreign key: SQLite rebuilds would break)


class Item(SQLModel, table=True):
    """Every entry ever seen, with the decision taken on it."""

    __table_args__ = (UniqueConstraint("feed_id", "guid", name="uq_item_feed_guid"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feed.id", index=True)
    guid: str = Field(sa_type=Text)
    link: str = Field(sa_type=Text, index=True)
    title_key: str = Field(sa_type=Text, index=True)
    title: str = Field(sa_type=Text)
    text: str = Field(sa_type=Text)
    language: str = "en"
    published: datetime | None = _when()
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    decision: str = Field(index=True)
    story_id: int | None = Field(default=None, foreign_key="story.id", index=True)
    reasons: str = Field(default="[]", sa_type=Text)  # JSON list of strings
    fingerprint: str = Field(default="", sa_type=Text)  # bot.decide.dedup serialisation
    vector: bytes | None = Field(default=None, sa_type=LargeBinary)  # bot.decide.embed, float16
    outlet: str = Field(default="", sa_type=Text, sa_column_kwargs={"server_default": ""})


class Subscriber(SQLModel, table=True):
    """A chat (and forum topic, 0 for none) that receives alerts."""

    __table_args__ = (UniqueConstraint("chat_id", "thread_id", name="uq_subscriber_chat"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_type=BigInteger)
    thread_id: int = Field(default=0, sa_type=BigInteger)
    chat_type: str = "private"
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    deactivated_reason: str | None = None
    # --- the chat's choices (issue 9); the defaults are what a chat had before ----------
    language: str = Field(default="en", sa_column_kwargs={"server_default": "en"})  # en | fr
    language_chosen: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    timezone: str = Field(default="UTC", sa_column_kwargs={"server_default": "UTC"})  # IANA
    topics: str = Field(default="", sa_column_kwargs={"server_default": ""})  # keys; "" all
    delivery_mode: str = Field(  # instant | digest (every digest_hours) | daily (digest_at)
        default="instant", sa_column_kwargs={"server_default": "instant"}
    )
    digest_hours: int = Field(default=6, sa_column_kwargs={"server_default": "6"})
    digest_at: int = Field(default=480, sa_column_kwargs={"server_default": "480"})  # local min
    quiet_from: int | None = None  # local minutes after midnight; None: no quiet hours
    quiet_to: int | None = None
    silent: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    link_previews: bool = Field(default=True, sa_column_kwargs={"server_default": "1"})
    next_digest_at: datetime | None = _when()  # UTC; the digest job's next run for this chat


class Delivery(SQLModel, table=True):
    """The outbox: one row per (story, subscriber), written with the story."""

    __table_args__ = (
        UniqueConstraint("story_id", "subscriber_id", name="uq_delivery_story_subscriber"),
        Index("ix_delivery_state_next", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    story_id: int = Field(foreign_key="story.id")
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    state: str = "pending"  # pending | sending | sent | failed | skipped
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = _when()
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    last_error: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = _when()
    timeouts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # unanswered sends
    # --- issue 9 ---------------------------------------------------------------------------
    # held: waits for the chat's next digest (state "digested" once folded into digest_id)
    digest_id: int | None = Field(default=None, foreign_key="digest.id", index=True)
    reply_to: int | None = Field(default=None, sa_type=BigInteger)  # an earlier alert's message
    outlets_shown: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    edits: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # edits made


class Digest(SQLModel, table=True):
    """One digest for one chat: the stories of a period, delivered like an alert (an outbox
    row with a lease), split into parts of at most 4096 characters."""

    __table_args__ = (
        UniqueConstraint("subscriber_id", "period_end", name="uq_digest_subscriber_period"),
        Index("ix_digest_state_next", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    period_start: datetime = Field(sa_type=UTCDateTime)
    period_end: datetime = Field(sa_type=UTCDateTime)
    state: str = "pending"  # pending | sending | sent | failed
    parts_sent: int = 0  # parts already on the wire: a retry resumes after them
    # the parts as first rendered (a JSON list of Telegram HTML), so a retry resumes the same
    parts: str = Field(default="", sa_type=Text, sa_column_kwargs={"server_default": ""})
    attempts: int = 0
    # sends of the next part (number parts_sent + 1) Telegram did not answer: maybe delivered
    timeouts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = _when()
    last_error: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = _when()


class StoryMute(SQLModel, table=True):
    """A chat muted a story: none of its follow-ups or coverage edits reach that chat."""

    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True)
    story_id: int = Field(foreign_key="story.id", primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Feedback(SQLModel, table=True):
    """A reader's "Not news?" answer about an alerted story: evaluation data."""

    __table_args__ = (UniqueConstraint("story_id", "chat_id", name="uq_feedback_story_chat"),)

    id: int | None = Field(default=None, primary_key=True)
    story_id: int = Field(foreign_key="story.id", index=True)
    item_id: int | None = Field(default=None, foreign_key="item.id")
    chat_id: int = Field(sa_type=BigInteger)
    verdict: str  # irrelevant | known
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PollRun(SQLModel, table=True):
    """One poll cycle, for /status and `health`."""

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    finished_at: datetime | None = _when(index=True)
    feeds_polled: int = 0
    feeds_failed: int = 0
    entries: int = 0
    new_stories: int = 0
    error: str | None = None


class Lease(SQLModel, table=True):
    """A named role only one replica may hold at a time (e.g. reading Telegram updates)."""

    name: str = Field(primary_key=True)
    owner: str
    acquired_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    heartbeat_at: datetime | None = _when()  # the holder last saw its role working
    problem: str | None = None  # why the holder cannot play the role (e.g. token refused)


class SendRate(SQLModel, table=True):
    """A send rate shared by every replica (bot/delivery/ratelimit.py), in database-clock
    seconds since the epoch: when the next message may go, and until when Telegram's flood
    control asked everyone to wait."""

    __tablename__ = "send_rate"

    name: str = Field(primary_key=True)
    next_at: float = 0.0
    paused_until: float = 0.0


class StoryCursor(SQLModel, table=True):
    """How far a reader of every alerted story has got: the last story id it has shown. The
    console is one (bot/delivery/console.py); it has no chat, so no outbox rows."""

    __tablename__ = "story_cursor"

    name: str = Field(primary_key=True)
    position: int = Field(sa_type=BigInteger)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
