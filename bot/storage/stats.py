"""Read-only queries behind alerts and commands; they return plain views (sync, short sessions)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.records import FeedSpec
from bot.storage.models import Delivery, Feed, Item, PollRun, Story, Subscriber, utcnow
from bot.storage.subscribers import CONSOLE
from bot.telegram.views import FeedHealth, Source, StatsView, StatusView, StoryView

DAY = timedelta(hours=24)


def _outlet(name: str, url: str) -> str:
    """The feed's name; for a feed without one (its name is its URL), the URL's host only.

    A feed URL may carry an API key: it is never shown as a name.
    """
    if name and name != url:
        return name
    try:
        return urlsplit(url).hostname or "(unnamed feed)"
    except ValueError:
        return "(unnamed feed)"


def story_views(engine: Engine, story_ids: Sequence[int]) -> dict[int, StoryView]:
    """Each story with the other outlets that carried it ("also reported by"), oldest first."""
    if not story_ids:
        return {}
    with Session(engine) as session:
        stories = session.exec(select(Story).where(col(Story.id).in_(story_ids))).all()
        rows = session.exec(
            select(Item.story_id, Feed.name, Feed.url, Item.link)
            .join(Feed, col(Feed.id) == col(Item.feed_id))
            .where(col(Item.story_id).in_(story_ids), col(Item.decision) == "duplicate")
            .order_by(col(Item.first_seen), col(Item.id))
        ).all()
    also: dict[int, list[Source]] = {}
    for story_id, name, url, link in rows:
        if story_id is not None:
            also.setdefault(story_id, []).append(Source(_outlet(name, url), link))
    return {
        s.id: StoryView(
            story_id=s.id,
            title=s.title,
            link=s.link,
            outlet=s.feed_name,
            published=s.published,
            seen=s.created_at,
            summary=s.summary,
            also=tuple(also.get(s.id, ())),
        )
        for s in stories
        if s.id is not None
    }


def latest(engine: Engine, count: int) -> list[StoryView]:
    """The `count` most recent alerted stories, newest first."""
    with Session(engine) as session:
        ids = session.exec(
            select(Story.id)
            .where(col(Story.alerted).is_(True))
            .order_by(col(Story.created_at).desc(), col(Story.id).desc())
            .limit(count)
        ).all()
    views = story_views(engine, [i for i in ids if i is not None])
    return [views[i] for i in ids if i is not None and i in views]


def _last_poll(session: Session) -> datetime | None:
    return session.exec(select(func.max(PollRun.finished_at))).one()


def feed_health(engine: Engine, specs: Sequence[FeedSpec]) -> list[FeedHealth]:
    """Configured feeds, in config order, with their health from the last polls."""
    with Session(engine) as session:
        rows = {f.url: f for f in session.exec(select(Feed)).all()}
    out = []
    for spec in specs:
        row = rows.get(spec.url)
        out.append(
            FeedHealth(
                name=_outlet(spec.name, spec.url),
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
    now = now or utcnow()
    feeds = feed_health(engine, specs)
    with Session(engine) as session:
        subs = dict(
            session.exec(
                select(Subscriber.active, func.count())
                .where(Subscriber.chat_type != CONSOLE)
                .group_by(col(Subscriber.active))
            ).all()
        )
        stories_total = session.exec(select(func.count()).select_from(Story)).one()
        stories_day = session.exec(
            select(func.count()).select_from(Story).where(col(Story.created_at) >= now - DAY)
        ).one()
        states = session.exec(
            select(Delivery.state, func.count()).group_by(Delivery.state).order_by(Delivery.state)
        ).all()
        last_poll = _last_poll(session)
    return StatsView(
        subscribers_active=int(subs.get(True, 0)),
        subscribers_inactive=int(subs.get(False, 0)),
        stories_total=int(stories_total),
        stories_24h=int(stories_day),
        deliveries=tuple((state, int(n)) for state, n in states),
        feeds=tuple(feeds),
        last_poll=last_poll,
    )
