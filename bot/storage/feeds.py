"""Feeds' rows in the poll cycle: configured feeds synced in, due feeds leased, health and
schedule written back after a fetch.

Every function takes an open `Session` and leaves committing to the caller.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from bot.feeds.fetch import FetchOutcome, Validators
from bot.feeds.schedule import Activity, Interval
from bot.feeds.textsafe import storable
from bot.records import FeedSpec
from bot.storage.db import is_postgres
from bot.storage.models import Feed


@dataclass(frozen=True, slots=True)
class FeedState:
    """What a poll needs to know about a feed."""

    id: int
    url: str
    name: str
    language: str
    validators: Validators
    consecutive_failures: int
    activity: Activity = field(default_factory=Activity)  # its pace so far (bot/feeds/schedule.py)
    ttl: float | None = None  # what its last parsed body declared
    update_period: float | None = None

    def spec(self) -> FeedSpec:
        return FeedSpec(url=self.url, name=self.name, language=self.language)


def sync_feeds(session: Session, specs: Sequence[FeedSpec]) -> None:
    """Make sure every configured feed has a row, with its current name and language.

    Replicas starting together insert the same rows: a row another one inserted first is
    left alone (ON CONFLICT DO NOTHING), not an error.
    """
    existing = {f.url: f for f in session.execute(select(Feed)).scalars()}
    missing = [
        {"url": spec.url, "name": spec.name, "language": spec.language}
        for spec in specs
        if spec.url not in existing
    ]
    if missing:
        dialect_insert = pg_insert if is_postgres(session) else sqlite_insert
        session.execute(
            dialect_insert(Feed).on_conflict_do_nothing(index_elements=[col(Feed.url)]), missing
        )
    for spec in specs:
        row = existing.get(spec.url)
        if row is not None and (row.name, row.language) != (spec.name, spec.language):
            row.name, row.language = spec.name, spec.language
            session.add(row)


def feed_ids(session: Session, urls: Sequence[str]) -> dict[str, int]:
    rows = session.execute(select(col(Feed.url), col(Feed.id)).where(col(Feed.url).in_(urls)))
    return {str(url): int(feed_id) for url, feed_id in rows}


def claim_due_feeds(
    session: Session,
    urls: Sequence[str],
    *,
    now: datetime,
    owner: str,
    lease: timedelta,
    force: bool = False,
    polled_before: datetime | None = None,
    reclaim_from: Collection[str] = (),
    due_by: datetime | None = None,
) -> list[FeedState]:
    """Lease the feeds among `urls` that are due and not leased by another replica.

    `due_by`: a feed whose next poll comes before then counts as due (default `now`).

    `polled_before`: a feed polled after that time (by any replica) is not due yet, so
    replicas whose cycles interleave poll each feed once per interval, not once each.
    `reclaim_from`: lease owners known to be dead, whose leases count as expired.
    `force` ignores backoff and `polled_before` (a manual `poll-once`) but never the lease
    of a live replica.
    """
    free = [col(Feed.lease_until).is_(None), col(Feed.lease_until) < now]
    if reclaim_from:
        free.append(col(Feed.lease_owner).in_(list(reclaim_from)))
    due = select(col(Feed.id)).where(col(Feed.url).in_(urls), or_(*free))
    if not force:
        due = due.where(
            or_(col(Feed.next_poll_at).is_(None), col(Feed.next_poll_at) <= (due_by or now))
        )
        if polled_before is not None:
            due = due.where(
                or_(col(Feed.last_polled_at).is_(None), col(Feed.last_polled_at) <= polled_before)
            )
    if is_postgres(session):
        due = due.with_for_update(skip_locked=True)
    ids = list(session.execute(due).scalars())
    if not ids:
        return []
    session.execute(
        update(Feed).where(col(Feed.id).in_(ids)).values(lease_owner=owner, lease_until=now + lease)
    )
    # plain rows, not ORM objects: a thousand feeds' objects cost more CPU than their query
    rows = session.execute(select(*_STATE_COLUMNS).where(col(Feed.id).in_(ids))).all()
    return [
        FeedState(
            id=f.id,
            url=f.url,
            name=f.name,
            language=f.language,
            validators=Validators(f.etag, f.last_modified, f.content_hash),
            consecutive_failures=f.consecutive_failures,
            activity=Activity(f.entry_gap_seconds, f.newest_entry_at, f.first_polled_at),
            ttl=f.ttl_seconds,
            update_period=f.update_period_seconds,
        )
        for f in rows
    ]


_STATE_COLUMNS = tuple(
    col(column)
    for column in (
        Feed.id,
        Feed.url,
        Feed.name,
        Feed.language,
        Feed.etag,
        Feed.last_modified,
        Feed.content_hash,
        Feed.consecutive_failures,
        Feed.entry_gap_seconds,
        Feed.newest_entry_at,
        Feed.first_polled_at,
        Feed.ttl_seconds,
        Feed.update_period_seconds,
    )
)


@dataclass(frozen=True, slots=True)
class PollPlan:
    """A feed's next poll, and what it was chosen from (bot/feeds/schedule.py)."""

    next_poll_at: datetime
    interval: Interval
    activity: Activity
    ttl: float | None
    update_period: float | None


def plan_values(plan: PollPlan) -> dict[str, object]:
    """The feed row's schedule columns for `plan`."""
    return {
        "next_poll_at": plan.next_poll_at,
        "poll_seconds": plan.interval.seconds,
        "poll_reason": storable(plan.interval.reason[:200]),
        "entry_gap_seconds": plan.activity.mean_gap,
        "newest_entry_at": plan.activity.newest,
        "first_polled_at": plan.activity.since,
        "ttl_seconds": plan.ttl,
        "update_period_seconds": plan.update_period,
    }


def fetch_result_values(
    feed: FeedState,
    outcome: FetchOutcome,
    *,
    now: datetime,
    next_poll_at: datetime | None,
    error: str | None = None,
    polled_at: datetime | None = None,
    plan: PollPlan | None = None,
) -> dict[str, object]:
    """The feed row's new health after a fetch, with its lease released.

    `plan`, when given, is the next poll with its schedule columns (over `next_poll_at`).

    `error` overrides the outcome's (a body that fetched fine but did not parse); a failed
    feed keeps its old cache validators, so its entries are fetched again next time.
    `polled_at`: when the poll began (the claim), if not `now`.
    """
    values: dict[str, object] = {
        "id": feed.id,
        "last_polled_at": polled_at or now,
        "last_http_status": outcome.http_status,
        "next_poll_at": next_poll_at,
        "lease_owner": None,
        "lease_until": None,
    }
    if outcome.status == "failed" or error is not None:
        values["last_status"] = "error"
        values["last_error"] = storable((error or outcome.error or "failed")[:500])
        values["consecutive_failures"] = feed.consecutive_failures + 1
    else:
        values["last_status"] = "not_modified" if outcome.status == "not_modified" else "ok"
        values["last_error"] = None
        values["last_success_at"] = now
        values["consecutive_failures"] = 0
        values["etag"] = outcome.validators.etag
        values["last_modified"] = outcome.validators.last_modified
        values["content_hash"] = outcome.validators.content_hash
    if plan is not None:
        values.update(plan_values(plan))
    return values


def record_fetches(session: Session, rows: Sequence[dict[str, object]]) -> None:
    """Write many feeds' health at once (one executemany per shape of row)."""
    by_shape: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for row in rows:
        by_shape.setdefault(tuple(sorted(row)), []).append(row)
    for batch in by_shape.values():
        session.execute(update(Feed), batch)


def feed_lease_owners(session: Session, urls: Sequence[str], *, now: datetime) -> list[str]:
    """Who holds unexpired leases on the feeds among `urls` (to spot dead replicas)."""
    rows = session.execute(
        select(col(Feed.lease_owner))
        .where(col(Feed.url).in_(urls), col(Feed.lease_until) >= now)
        .distinct()
    ).scalars()
    return [owner for owner in rows if owner]


def release_feeds(session: Session, feed_ids: Iterable[int]) -> None:
    ids = list(feed_ids)
    if ids:
        session.execute(
            update(Feed).where(col(Feed.id).in_(ids)).values(lease_owner=None, lease_until=None)
        )
