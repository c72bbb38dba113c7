"""Stored stories read back for alerts and `/latest`, as plain views (sync, short sessions)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.storage.models import Feed, Item, Story
from bot.telegram.views import Source, StoryView


def outlet(name: str, url: str) -> str:
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
        rows = session.execute(
            sql_select(
                col(Item.story_id), col(Feed.name), col(Feed.url), col(Item.link), col(Item.outlet)
            )
            .join(Feed, col(Feed.id) == col(Item.feed_id))
            .where(col(Item.story_id).in_(story_ids), col(Item.decision) == "duplicate")
            .order_by(col(Item.first_seen), col(Item.id))
        ).all()
    also: dict[int, list[Source]] = {}
    for story_id, name, url, link, item_outlet in rows:
        if story_id is not None:  # the outlet's own name (Google News <source>), else the feed's
            also.setdefault(story_id, []).append(Source(item_outlet or outlet(name, url), link))
    return {
        s.id: StoryView(
            story_id=s.id,
            title=s.title,
            link=s.link,
            outlet=s.outlet or s.feed_name,
            published=s.published,
            seen=s.created_at,
            summary=s.summary,
            also=tuple(also.get(s.id, ())),
            topics=tuple(t for t in s.topics.split(",") if t),
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
