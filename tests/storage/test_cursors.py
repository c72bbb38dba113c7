"""bot/storage/cursors.py: a named reader's place in the alerted stories (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.storage import cursors
from bot.storage.models import Story
from tests.servers.bot_fixtures import insert_story

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def story(engine: Engine, title: str, *, alerted: bool = True, minutes: int = 0) -> int:
    return insert_story(
        engine, title=title, link=f"https://wire.test/{title}", alerted=alerted,
        published=T0 + timedelta(minutes=minutes), deliver=False,
    )  # fmt: skip


def test_a_new_cursor_starts_at_the_newest_story_and_shows_what_comes_after(
    engine: Engine,
) -> None:
    old = story(engine, "before")
    assert cursors.start(engine, "console") == old
    assert cursors.pending(engine, "console", 10).stories == ()
    new = story(engine, "after")
    story(engine, "stale", alerted=False)
    batch = cursors.pending(engine, "console", 10)
    assert batch.position == old
    assert [(s.story_id, s.title) for s in batch.stories] == [(new, "after")]
    assert batch.end == new
    assert cursors.start(engine, "console") == old  # started already: kept where it was


def test_a_cursor_on_an_empty_store_shows_every_story(engine: Engine) -> None:
    assert cursors.start(engine, "console") == 0
    ids = [story(engine, f"s{n}") for n in range(5)]
    assert [s.story_id for s in cursors.pending(engine, "console", 3).stories] == ids[:3]
    assert cursors.pending(engine, "console", 3).end == ids[2]


def test_advance_is_a_compare_and_set(engine: Engine) -> None:
    cursors.start(engine, "console")
    first, second = story(engine, "one"), story(engine, "two")
    batch = cursors.pending(engine, "console", 1)
    assert batch.end == first
    assert cursors.advance(engine, "console", batch.position, batch.end) is True
    assert cursors.advance(engine, "console", batch.position, batch.end) is False  # lost: moved
    again = cursors.pending(engine, "console", 10)
    assert (again.position, [s.story_id for s in again.stories]) == (first, [second])
    assert cursors.advance(engine, "other", 0, second) is False  # no such cursor


def test_drop_makes_the_next_start_fresh(engine: Engine) -> None:
    cursors.start(engine, "console")
    story(engine, "missed while the bot had a token")
    assert cursors.drop(engine, "console") is True
    assert cursors.drop(engine, "console") is False
    assert cursors.pending(engine, "console", 10).stories == ()  # no cursor: nothing to show
    latest = story(engine, "latest")
    assert cursors.start(engine, "console") == latest
    assert cursors.pending(engine, "console", 10).stories == ()


def test_a_follow_up_carries_the_title_it_follows_and_its_publication_time(
    engine: Engine,
) -> None:
    cursors.start(engine, "console")
    earlier = story(engine, "earlier", minutes=5)
    later = story(engine, "later", minutes=1)
    with Session(engine) as session:
        row = session.get(Story, later)
        assert row is not None
        row.follows_id = earlier
        session.add(row)
        session.commit()
    shown = {s.story_id: s for s in cursors.pending(engine, "console", 10).stories}
    assert shown[earlier].follows_title is None
    assert shown[later].follows_title == "earlier"
    assert shown[later].published == T0 + timedelta(minutes=1)
