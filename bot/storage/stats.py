"""The counts and feed health that `/status`, `/stats`, `/metrics` and the `feeds` command
show, each computed here and nowhere else (sync, short sessions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.delivery.choices import Choices, quiet_until
from bot.records import FeedSpec
from bot.storage.models import Delivery, Digest, Feed, PollRun, Story, Subscriber, utcnow
from bot.storage.stories import outlet
from bot.telegram.views import FeedHealth, StatsView, StatusView

DAY = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Counts:
    """What is stored, counted: `/stats` shows it, `/metrics` exports it."""

    subscribers_active: int
    subscribers_inactive: int
    stories_alerted: int
    stories_not_alerted: int
    stories_24h: int  # created in the last 24 hours, alerted or not
    deliveries: tuple[tuple[str, int], ...]  # (state, count), by state
    last_poll: datetime | None

    @property
    def stories_total(self) -> int:
        return self.stories_alerted + self.stories_not_alerted


def subscriber_counts(session: Session) -> tuple[int, int]:
    """(active, inactive) subscribers."""
    rows = session.exec(
        select(Subscriber.active, func.count()).group_by(col(Subscriber.active))
    ).all()
    by_state = {bool(active): int(n) for active, n in rows}
    return by_state.get(True, 0), by_state.get(False, 0)


def delivery_counts(session: Session) -> dict[str, int]:
    """Delivery rows by state, in state order."""
    rows = session.exec(
        select(Delivery.state, func.count()).group_by(Delivery.state).order_by(Delivery.state)
    ).all()
    return {state: int(n) for state, n in rows}


def counts(engine: Engine, *, now: datetime | None = None) -> Counts:
    now = now or utcnow()
    with Session(engine) as session:
        active, inactive = subscriber_counts(session)
        by_alerted = {
            bool(alerted): int(n)
            for alerted, n in session.exec(
                select(Story.alerted, func.count()).group_by(col(Story.alerted))
            ).all()
        }
        stories_day = session.exec(
            select(func.count()).select_from(Story).where(col(Story.created_at) >= now - DAY)
        ).one()
        deliveries = delivery_counts(session)
        last_poll = _last_poll(session)
    return Counts(
        subscribers_active=active,
        subscribers_inactive=inactive,
        stories_alerted=by_alerted.get(True, 0),
        stories_not_alerted=by_alerted.get(False, 0),
        stories_24h=int(stories_day),
        deliveries=tuple(deliveries.items()),
        last_poll=last_poll,
    )


def feed_rows(engine: Engine, urls: Sequence[str]) -> dict[str, Feed]:
    """The stored rows of the feeds among `urls`, by URL (a feed never polled has none)."""
    with Session(engine) as session:
        rows = session.exec(select(Feed).where(col(Feed.url).in_(list(urls)))).all()
    return {f.url: f for f in rows}


def _last_poll(session: Session) -> datetime | None:
    return session.exec(select(func.max(PollRun.finished_at))).one()


def feed_health(engine: Engine, specs: Sequence[FeedSpec]) -> list[FeedHealth]:
    """Configured feeds, in config order, with their health from the last polls."""
    rows = feed_rows(engine, [spec.url for spec in specs])
    out = []
    for spec in specs:
        row = rows.get(spec.url)
        out.append(
            FeedHealth(
                name=outlet(spec.name, spec.url),
                url=spec.url,
                language=spec.language,
                status=row.last_status if row else "never",
                consecutive_failures=row.consecutive_failures if row else 0,
                last_success=row.last_success_at if row else None,
                last_polled=row.last_polled_at if row else None,
                last_error=row.last_error if row else None,
            )
        )
    return out


def status_view(
    engine: Engine,
    specs: Sequence[FeedSpec],
    *,
    chat_id: int,
    thread_id: int,
    now: datetime | None = None,
) -> StatusView:
    now = now or utcnow()
    feeds = feed_health(engine, specs)
    with Session(engine) as session:
        subscribed = session.exec(
            select(func.count())
            .select_from(Subscriber)
            .where(
                Subscriber.chat_id == chat_id,
                Subscriber.thread_id == thread_id,
                col(Subscriber.active).is_(True),
            )
        ).one()
        stories = session.exec(
            select(func.count())
            .select_from(Story)
            .where(col(Story.alerted).is_(True), col(Story.created_at) >= now - DAY)
        ).one()
        alerts = session.exec(
            select(func.count())
            .select_from(Delivery)
            .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
            .where(
                Subscriber.chat_id == chat_id,
                col(Delivery.state) == "sent",
                col(Delivery.sent_at) >= now - DAY,
            )
        ).one()
        last_poll = _last_poll(session)
    return StatusView(
        subscribed=bool(subscribed),
        last_poll=last_poll,
        feeds_ok=sum(1 for f in feeds if f.status != "never" and not f.failing),
        feeds_failing=sum(1 for f in feeds if f.failing),
        feeds_waiting=sum(1 for f in feeds if f.status == "never"),
        stories_24h=int(stories),
        alerts_24h=int(alerts),
    )


def stats_view(
    engine: Engine, specs: Sequence[FeedSpec], *, now: datetime | None = None
) -> StatsView:
    counted = counts(engine, now=now)
    return StatsView(
        subscribers_active=counted.subscribers_active,
        subscribers_inactive=counted.subscribers_inactive,
        stories_total=counted.stories_total,
        stories_24h=counted.stories_24h,
        deliveries=counted.deliveries,
        feeds=tuple(feed_health(engine, specs)),
        last_poll=counted.last_poll,
    )


@dataclass(frozen=True, slots=True)
class DigestCounts:
    """Digests and the alerts waiting for one (or for quiet hours), counted: `/metrics`."""

    digests: tuple[tuple[str, int], ...]  # (state, count), by state
    parts_sent: int  # digest messages on the wire, all digests
    held_for_digest: int  # alerts held for their chat's next digest
    held_for_quiet_hours: int  # alerts of chats in their quiet hours now, waiting for the end


def digest_counts(engine: Engine, *, now: datetime | None = None) -> DigestCounts:
    now = now or utcnow()
    with Session(engine) as session:
        by_state = session.exec(
            select(Digest.state, func.count()).group_by(Digest.state).order_by(Digest.state)
        ).all()
        parts = session.exec(select(func.coalesce(func.sum(Digest.parts_sent), 0))).one()
        held = session.exec(
            select(func.count()).select_from(Delivery).where(col(Delivery.state) == "held")
        ).one()
        quiet = session.exec(  # pending alerts by the quiet hours of their chat
            select(Subscriber.quiet_from, Subscriber.quiet_to, Subscriber.timezone, func.count())
            .join(Delivery, col(Delivery.subscriber_id) == col(Subscriber.id))
            .where(
                col(Delivery.state) == "pending",
                col(Subscriber.active).is_(True),
                col(Subscriber.quiet_from).is_not(None),
                col(Subscriber.quiet_to).is_not(None),
            )
            .group_by(
                col(Subscriber.quiet_from), col(Subscriber.quiet_to), col(Subscriber.timezone)
            )
        ).all()
    waiting = sum(
        int(n)
        for start, end, zone, n in quiet
        if quiet_until(Choices(timezone=zone, quiet_from=start, quiet_to=end), now) is not None
    )
    return DigestCounts(
        digests=tuple((state, int(n)) for state, n in by_state),
        parts_sent=int(parts),
        held_for_digest=int(held),
        held_for_quiet_hours=waiting,
    )
