"""bot/store.py where replicas meet: claiming feeds (spacing, dead owners) and syncing the
feed list from several processes. Real databases: SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot import store
from bot.models import Feed
from bot.records import Entry, FeedSpec

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=300)
SPECS = [FeedSpec(url=f"http://feeds.test/{n}.xml", name=f"Feed {n}") for n in range(3)]
URLS = [s.url for s in SPECS]


def sync(engine: Engine) -> None:
    with Session(engine) as session:
        store.sync_feeds(session, SPECS)
        session.commit()


def claim(
    engine: Engine,
    owner: str,
    now: datetime,
    *,
    force: bool = False,
    polled_before: datetime | None = None,
    reclaim_from: Collection[str] = (),
) -> list[str]:
    with Session(engine) as session:
        claimed = store.claim_due_feeds(
            session,
            URLS,
            now=now,
            owner=owner,
            lease=LEASE,
            force=force,
            polled_before=polled_before,
            reclaim_from=reclaim_from,
        )
        session.commit()
    return sorted(f.url for f in claimed)


def finish(engine: Engine, urls: list[str], polled_at: datetime) -> None:
    """What a cycle's record does: lease released, the poll's start kept."""
    with Session(engine) as session:
        session.execute(
            update(Feed)
            .where(col(Feed.url).in_(urls))
            .values(lease_owner=None, lease_until=None, last_polled_at=polled_at)
        )
        session.commit()


def test_sync_feeds_racing_another_replica_keeps_one_row_each(engine: Engine) -> None:
    """Replica 2 inserts the feeds between replica 1's read of the list and its insert."""
    raced: list[bool] = []

    def other_replica_inserts(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not raced and statement.lstrip().upper().startswith("SELECT") and "feed" in statement:
            raced.append(True)
            sync(engine)  # another connection, committed before replica 1 goes on

    event.listen(engine, "after_cursor_execute", other_replica_inserts)
    try:
        sync(engine)
    finally:
        event.remove(engine, "after_cursor_execute", other_replica_inserts)
    assert raced
    with Session(engine) as session:
        urls = session.execute(select(col(Feed.url)).order_by(col(Feed.url))).scalars().all()
    assert urls == URLS  # one row per feed, and no IntegrityError


def test_a_feed_polled_recently_by_any_replica_is_not_due(engine: Engine) -> None:
    sync(engine)
    assert claim(engine, "a", NOW) == URLS
    finish(engine, URLS, NOW)
    spacing = timedelta(seconds=45)  # 75 % of a 60 s interval
    early = NOW + timedelta(seconds=30)
    assert claim(engine, "b", early, polled_before=early - spacing) == []
    assert claim(engine, "b", early) == URLS  # without spacing: due again (one replica, tests)
    finish(engine, URLS[:1], early)
    later = NOW + timedelta(seconds=50)
    assert claim(engine, "a", later, polled_before=later - spacing) == []  # the rest leased
    finish(engine, URLS[1:], early)
    much_later = early + timedelta(seconds=50)
    assert claim(engine, "a", much_later, polled_before=much_later - spacing) == URLS
    finish(engine, URLS, much_later)
    # a forced poll (poll-once) ignores spacing, never a live lease
    assert claim(engine, "c", much_later, force=True, polled_before=much_later) == URLS
    assert claim(engine, "d", much_later, force=True) == []


def test_leases_of_dead_owners_are_taken_over_live_ones_never(engine: Engine) -> None:
    sync(engine)
    assert claim(engine, "dead", NOW) == URLS
    soon = NOW + timedelta(seconds=5)
    with Session(engine) as session:
        assert store.feed_lease_owners(session, URLS, now=soon) == ["dead"]
    assert claim(engine, "b", soon) == []
    assert claim(engine, "b", soon, reclaim_from=["someone-else"]) == []
    assert claim(engine, "b", soon, reclaim_from=["dead"]) == URLS
    with Session(engine) as session:
        assert store.feed_lease_owners(session, URLS, now=soon) == ["b"]
        assert store.feed_lease_owners(session, URLS, now=soon + LEASE * 2) == []
    assert claim(engine, "c", soon, reclaim_from=["dead"]) == []  # b is not dead


# --- any entry can be stored, and found again by its exact keys ----------------------------

ANY_CHAR = st.characters(blacklist_categories=())  # surrogates and NUL included


def _huge(draw_text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Short arbitrary text, or such text repeated into thousands of characters."""
    return st.one_of(
        draw_text,
        st.builds(lambda s, n: s * n, draw_text.filter(bool), st.integers(100, 3_000)),
    )


ANY_TEXT = _huge(st.text(ANY_CHAR, max_size=12))
ENTRIES = st.builds(
    Entry,
    feed_url=st.just("http://feeds.test/0.xml"),
    feed_name=ANY_TEXT,
    guid=ANY_TEXT,
    title=ANY_TEXT,
    text=ANY_TEXT,
    link=ANY_TEXT,
    published=st.none() | st.datetimes(timezones=st.just(UTC)),
    language=st.sampled_from(["en", "fr"]) | st.text(ANY_CHAR, max_size=3),
)


def test_any_entry_is_stored_and_found_again(engine: Engine) -> None:
    sync(engine)
    with Session(engine) as session:
        feed_id = session.execute(select(Feed.id).where(Feed.url == URLS[0])).scalar_one()

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(entry=ENTRIES, title_key=ANY_TEXT, vector=st.binary(max_size=1024))
    def store_it(entry: Entry, title_key: str, vector: bytes) -> None:
        with Session(engine) as session:
            story_id, _ = store.add_story(session, entry, summary=entry.text, alerted=True, now=NOW)
            item_id = store.add_item(
                session,
                feed_id=feed_id,
                entry=entry,
                title_key=title_key,
                decision="new",
                reasons=(entry.title,),
                story_id=story_id,
                fingerprint="",
                now=NOW,
                vector=vector,
            )
            hit = store.find_exact(session, feed_id, entry, title_key, since=NOW)
            assert hit is not None and hit.item_id == item_id and hit.same_feed_guid
            other_feed = store.find_exact(session, feed_id + 1, entry, title_key, since=NOW)
            if entry.link:  # found by link or title from another feed, else not at all
                assert other_feed is not None and other_feed.item_id == item_id
            session.rollback()  # each example on an empty table

    store_it()
