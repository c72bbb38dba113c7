"""Database side of the poll cycle: feed state, exact-key lookups, the dedup index, the outbox.

Every function takes an open `Session` and leaves committing to the caller, so a whole
cycle's decisions land in one transaction or not at all. Rows go in and plain records come
out; nothing here decides anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, literal, or_, select, text, update
from sqlmodel import Session, col

from bot.dedup import Candidate, Fingerprint
from bot.feeds.fetch import FetchOutcome, Validators
from bot.feeds.normalise import canonical_url
from bot.models import Delivery, Feed, Item, ItemKey, PollRun, Story, Subscriber
from bot.records import Entry, FeedSpec

# Taken for the duration of a cycle's decision transaction on PostgreSQL, so that two
# replicas never decide near-duplicates of each other at the same moment.
DECIDE_LOCK_KEY = 0x5A4E1_0001


@dataclass(frozen=True, slots=True)
class FeedState:
    """What a poll needs to know about a feed."""

    id: int
    url: str
    name: str
    language: str
    validators: Validators
    consecutive_failures: int

    def spec(self) -> FeedSpec:
        return FeedSpec(url=self.url, name=self.name, language=self.language)


@dataclass(frozen=True, slots=True)
class ExactHit:
    """An earlier item sharing a guid, canonical link or title with the entry."""

    item_id: int
    story_id: int | None
    decision: str
    same_feed_guid: bool
    key: str  # "guid" | "link" | "title"


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def sync_feeds(session: Session, specs: Sequence[FeedSpec]) -> None:
    """Make sure every configured feed has a row, with its current name and language."""
    existing = {f.url: f for f in session.execute(select(Feed)).scalars()}
    for spec in specs:
        row = existing.get(spec.url)
        if row is None:
            session.add(Feed(url=spec.url, name=spec.name, language=spec.language))
        elif (row.name, row.language) != (spec.name, spec.language):
            row.name, row.language = spec.name, spec.language
            session.add(row)


def claim_due_feeds(
    session: Session,
    urls: Sequence[str],
    *,
    now: datetime,
    owner: str,
    lease: timedelta,
    force: bool = False,
) -> list[FeedState]:
    """Lease the feeds among `urls` that are due and not leased by another replica.

    `force` ignores backoff (a manual `poll-once`) but never another replica's lease.
    """
    due = select(col(Feed.id)).where(col(Feed.url).in_(urls))
    due = due.where(or_(col(Feed.lease_until).is_(None), col(Feed.lease_until) < now))
    if not force:
        due = due.where(or_(col(Feed.next_poll_at).is_(None), col(Feed.next_poll_at) <= now))
    if is_postgres(session):
        due = due.with_for_update(skip_locked=True)
    ids = list(session.execute(due).scalars())
    if not ids:
        return []
    session.execute(
        update(Feed).where(col(Feed.id).in_(ids)).values(lease_owner=owner, lease_until=now + lease)
    )
    rows = session.execute(select(Feed).where(col(Feed.id).in_(ids))).scalars()
    return [
        FeedState(
            id=f.id or 0,
            url=f.url,
            name=f.name,
            language=f.language,
            validators=Validators(f.etag, f.last_modified, f.content_hash),
            consecutive_failures=f.consecutive_failures,
        )
        for f in rows
    ]


def fetch_result_values(
    feed: FeedState,
    outcome: FetchOutcome,
    *,
    now: datetime,
    next_poll_at: datetime | None,
    error: str | None = None,
) -> dict[str, object]:
    """The feed row's new health after a fetch, with its lease released.

    `error` overrides the outcome's (a body that fetched fine but did not parse); a failed
    feed keeps its old cache validators, so its entries are fetched again next time.
    """
    values: dict[str, object] = {
        "id": feed.id,
        "last_polled_at": now,
        "last_http_status": outcome.http_status,
        "next_poll_at": next_poll_at,
        "lease_owner": None,
        "lease_until": None,
    }
    if outcome.status == "failed" or error is not None:
        values["last_status"] = "error"
        values["last_error"] = (error or outcome.error or "failed")[:500]
        values["consecutive_failures"] = feed.consecutive_failures + 1
    else:
        values["last_status"] = "not_modified" if outcome.status == "not_modified" else "ok"
        values["last_error"] = None
        values["last_success_at"] = now
        values["consecutive_failures"] = 0
        values["etag"] = outcome.validators.etag
        values["last_modified"] = outcome.validators.last_modified
        values["content_hash"] = outcome.validators.content_hash
    return values


def record_fetches(session: Session, rows: Sequence[dict[str, object]]) -> None:
    """Write many feeds' health at once (one executemany per shape of row)."""
    by_shape: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for row in rows:
        by_shape.setdefault(tuple(sorted(row)), []).append(row)
    for batch in by_shape.values():
        session.execute(update(Feed), batch)


def release_feeds(session: Session, feed_ids: Iterable[int]) -> None:
    ids = list(feed_ids)
    if ids:
        session.execute(
            update(Feed).where(col(Feed.id).in_(ids)).values(lease_owner=None, lease_until=None)
        )


def lock_for_decisions(session: Session) -> None:
    """Serialise deciding across replicas (a no-op on SQLite, which has one writer anyway)."""
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": DECIDE_LOCK_KEY})


def find_exact(
    session: Session, feed_id: int, entry: Entry, title_key: str, *, since: datetime
) -> ExactHit | None:
    """An earlier item with the same guid in this feed, or the same link or title anywhere.

    Titles only count within the dedup window: a generic headline recurs over the years.
    Among link and title matches, an item that belongs to a story wins.
    """
    same_guid = session.execute(
        select(col(Item.id), col(Item.story_id), col(Item.decision))
        .where(col(Item.feed_id) == feed_id, col(Item.guid) == entry.guid)
        .limit(1)
    ).first()
    if same_guid is not None:
        return ExactHit(int(same_guid[0]), same_guid[1], str(same_guid[2]), True, "guid")
    conditions = []
    if entry.link != canonical_url(entry.feed_url):  # no link of its own: not a key
        conditions.append(col(Item.link) == entry.link)
    if title_key:
        conditions.append((col(Item.title_key) == title_key) & (col(Item.first_seen) >= since))
    if not conditions:
        return None
    row = session.execute(
        select(col(Item.id), col(Item.story_id), col(Item.decision), col(Item.link))
        .where(or_(*conditions))
        .order_by(col(Item.story_id).is_(None), col(Item.id))
        .limit(1)
    ).first()
    if row is None:
        return None
    key = "link" if row[3] == entry.link else "title"
    return ExactHit(int(row[0]), row[1], str(row[2]), False, key)


def find_candidates(
    session: Session,
    keys: Iterable[str],
    *,
    low: datetime,
    high: datetime,
    limit: int,
) -> list[Candidate]:
    """Items of stories that share the most index keys with an entry, inside a time window."""
    key_list = sorted(keys)
    if not key_list:
        return []
    shared = func.count().label("shared")
    best = (
        select(col(ItemKey.item_id), col(ItemKey.story_id), col(ItemKey.published), shared)
        .where(col(ItemKey.key).in_(key_list))
        .where(col(ItemKey.published) >= low, col(ItemKey.published) <= high)
        .group_by(col(ItemKey.item_id), col(ItemKey.story_id), col(ItemKey.published))
        .order_by(shared.desc(), col(ItemKey.item_id).desc())
        .limit(limit)
    ).subquery()
    rows = session.execute(
        select(best.c.item_id, best.c.story_id, best.c.published, col(Item.fingerprint)).join(
            Item, col(Item.id) == best.c.item_id
        )
    ).all()
    return [
        Candidate(
            story_id=int(story_id),
            item_id=int(item_id),
            fingerprint=Fingerprint.from_json(fp),
            published=published,
        )
        for item_id, story_id, published, fp in rows
    ]


def add_item(
    session: Session,
    *,
    feed_id: int,
    entry: Entry,
    title_key: str,
    decision: str,
    reasons: Sequence[str],
    story_id: int | None,
    fingerprint: str,
    now: datetime,
) -> int:
    item = Item(
        feed_id=feed_id,
        guid=entry.guid,
        link=entry.link,
        title_key=title_key,
        title=entry.title,
        text=entry.text,
        language=entry.language,
        published=entry.published,
        first_seen=now,
        decision=decision,
        story_id=story_id,
        reasons=json.dumps(list(reasons), ensure_ascii=False),
        fingerprint=fingerprint,
    )
    session.add(item)
    session.flush()
    assert item.id is not None
    return item.id


def index_item(
    session: Session, item_id: int, story_id: int, keys: Iterable[str], published: datetime
) -> None:
    rows = [
        {"key": k, "item_id": item_id, "story_id": story_id, "published": published}
        for k in sorted(set(keys))
    ]
    if rows:
        session.execute(insert(ItemKey), rows)


def add_story(
    session: Session,
    entry: Entry,
    *,
    summary: str,
    alerted: bool,
    now: datetime,
) -> tuple[int, int]:
    """A new story and, when it alerts, one pending delivery per active subscriber.

    Both are written in the caller's transaction: the outbox. Returns (story id, deliveries).
    """
    story = Story(
        created_at=now,
        title=entry.title,
        link=entry.link,
        feed_name=entry.feed_name,
        language=entry.language,
        published=entry.published,
        summary=summary,
        alerted=alerted,
    )
    session.add(story)
    session.flush()
    assert story.id is not None
    if not alerted:
        return story.id, 0
    subscribers = select(
        literal(story.id),
        col(Subscriber.id),
        literal("pending"),
        literal(0),
        literal(now, Delivery.__table__.c.next_attempt_at.type),  # type: ignore[attr-defined]
        literal(now, Delivery.__table__.c.created_at.type),  # type: ignore[attr-defined]
    ).where(col(Subscriber.active).is_(True))
    result = session.execute(
        insert(Delivery).from_select(
            ["story_id", "subscriber_id", "state", "attempts", "next_attempt_at", "created_at"],
            subscribers,
        )
    )
    return story.id, max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def start_run(session: Session, now: datetime) -> int:
    run = PollRun(started_at=now)
    session.add(run)
    session.flush()
    assert run.id is not None
    return run.id


def finish_run(
    session: Session,
    run_id: int,
    *,
    now: datetime,
    feeds_polled: int,
    feeds_failed: int,
    entries: int,
    new_stories: int,
    error: str | None = None,
) -> None:
    session.execute(
        update(PollRun)
        .where(col(PollRun.id) == run_id)
        .values(
            finished_at=now,
            feeds_polled=feeds_polled,
            feeds_failed=feeds_failed,
            entries=entries,
            new_stories=new_stories,
            error=error,
        )
    )
