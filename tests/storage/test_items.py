"""bot/items.py where replicas meet: claiming feeds (spacing, dead owners) and syncing the
feed list from several processes. Real databases: SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.pipeline import CycleReport, FeedResult, Pipeline
from bot.records import Entry, FeedSpec
from bot.storage import feeds as feed_store
from bot.storage import items as item_store
from bot.storage.models import Delivery, Feed, Item, Story, Subscriber
from tests.test_pipeline import (
    POISON_MESSAGE,
    built,
    changed,
    count,
    refuse_poisoned_items,
    settings_for,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=300)
SPECS = [FeedSpec(url=f"http://feeds.test/{n}.xml", name=f"Feed {n}") for n in range(3)]
URLS = [s.url for s in SPECS]


def sync(engine: Engine) -> None:
    with Session(engine) as session:
        feed_store.sync_feeds(session, SPECS)
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
        claimed = feed_store.claim_due_feeds(
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
        assert feed_store.feed_lease_owners(session, URLS, now=soon) == ["dead"]
    assert claim(engine, "b", soon) == []
    assert claim(engine, "b", soon, reclaim_from=["someone-else"]) == []
    assert claim(engine, "b", soon, reclaim_from=["dead"]) == URLS
    with Session(engine) as session:
        assert feed_store.feed_lease_owners(session, URLS, now=soon) == ["b"]
        assert feed_store.feed_lease_owners(session, URLS, now=soon + LEASE * 2) == []
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
            story_id, _ = item_store.add_story(
                session, entry, summary=entry.text, alerted=True, now=NOW
            )
            row = item_store.item_values(
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
            item_id = item_store.insert_item(session, row)
            hit = item_store.find_exact(session, feed_id, entry, title_key, since=NOW)
            assert hit is not None and hit.item_id == item_id and hit.same_feed_guid
            other_feed = item_store.find_exact(session, feed_id + 1, entry, title_key, since=NOW)
            if entry.link:  # found by link or title from another feed, else not at all
                assert other_feed is not None and other_feed.item_id == item_id
            session.rollback()  # each example on an empty table

    store_it()


# --- the cycle writes in batches: one exact-key query, one item insert per batch ----------

SOMAIR = "Niger nationalises the Orano-run Somair uranium mine"
SOMAIR_TEXT = (
    "Niger's military government said it was nationalising Somair, the uranium mining "
    "company near Arlit operated by France's Orano."
)
FEED_URLS = [f"http://batch.test/{n}.xml" for n in range(3)]


def at(minutes: int) -> datetime:
    """Publication times that order a batch (the cycle decides the oldest first)."""
    return datetime.now(UTC) - timedelta(hours=2) + timedelta(minutes=minutes)


def cycle_of(
    tmp_path: Path,
    database_url: str,
    engine: Engine,
    entries: list[Entry],
    batch: int,
    *,
    pipeline: type[Pipeline] = Pipeline,
) -> tuple[CycleReport, list[str]]:
    """Decide and store `entries` as one cycle in batches of `batch`; also every SQL
    statement the decide-and-store stage sent to the database."""
    urls = sorted({e.feed_url for e in entries})
    settings = settings_for(tmp_path, database_url, [(f"feed {u[-5]}", u) for u in urls])
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    async def go() -> CycleReport:
        stage = pipeline(settings, engine, batch_size=batch)
        try:
            now = datetime.now(UTC)
            feeds = await asyncio.to_thread(stage._claim, now, True, 0.0)
            results = [
                FeedResult(f, changed(f.url), tuple(e for e in entries if e.feed_url == f.url))
                for f in feeds
            ]
            event.listen(engine, "before_cursor_execute", seen)
            try:
                return await asyncio.to_thread(stage._decide_and_store, now, results)
            finally:
                event.remove(engine, "before_cursor_execute", seen)
        finally:
            await stage.aclose()

    return asyncio.run(go()), statements


def item_inserts(statements: list[str]) -> int:
    return sum(s.lstrip().upper().startswith("INSERT INTO ITEM") for s in statements)


def exact_key_queries(statements: list[str]) -> int:
    return sum("UNION ALL" in s and "item.title_key" in s for s in statements)


def test_entries_of_one_batch_that_repeat_each_other_across_feeds(
    tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """Same link, same title and same guid as an earlier entry of the same batch, in other
    feeds: `duplicate` of its story or `seen`, never a second story; one exact-key query
    and one item insert per batch."""
    with Session(engine) as session:
        session.add(Subscriber(chat_id=1))
        session.add(Subscriber(chat_id=2))
        session.commit()
    a, b, c = FEED_URLS
    somair = "https://wire.test/somair"
    cooking = "https://food.test/stew"
    entries = [
        built(a, "a1", SOMAIR, text=SOMAIR_TEXT, link=somair, published=at(0)),
        built(a, "a2", "A stew for winter evenings", link=cooking, published=at(1)),
        built(
            b,
            "b1",
            "Uranium: Niamey takes over Somair",
            text=SOMAIR_TEXT,
            link=somair,
            published=at(2),
        ),
        built(c, "c1", SOMAIR, text=SOMAIR_TEXT, link="https://other.test/x", published=at(3)),
        built(b, "b2", "Winter stew, the easy way", link=cooking, published=at(4)),
        built(a, "a1", SOMAIR, text=SOMAIR_TEXT, link=somair, published=at(5)),  # same guid
        built(
            c,
            "c2",
            "Somair: the mine changes hands",
            text=SOMAIR_TEXT,
            link=somair,
            published=at(6),
        ),  # fmt: skip  (a later batch: found stored)
    ]
    report, statements = cycle_of(tmp_path, database_url, engine, entries, batch=6)
    got = [(v.entry.guid, v.decision) for v in report.verdicts]
    assert got == [
        ("a1", "new"),
        ("a2", "irrelevant"),
        ("b1", "duplicate"),
        ("c1", "duplicate"),
        ("b2", "seen"),
        ("a1", "seen"),
        ("c2", "duplicate"),
    ]
    story = report.verdicts[0].story_id
    assert story is not None and [v.story_id for v in report.verdicts] == [
        story,
        None,
        story,
        story,
        None,
        story,
        story,
    ]
    reasons = [v.reasons[0] for v in report.verdicts[2:]]
    with Session(engine) as session:
        ids = {str(g): int(i) for g, i in session.execute(select(col(Item.guid), col(Item.id)))}
    first, stew = f"item {ids['a1']}", f"item {ids['a2']}"
    assert reasons == [
        f"same link as {first}",
        f"same title as {first}",
        f"same link as {stew}",
        "already stored (same guid)",
        f"same link as {first}",
    ]
    assert count(engine, Story) == 1 and count(engine, Delivery) == 2
    assert count(engine, Item) == 6  # the repeated guid is not stored twice
    assert exact_key_queries(statements) == 2 and item_inserts(statements) == 2


def test_one_bad_row_costs_its_batch_the_single_insert_not_its_entries(
    tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """The database refuses one item of a batch: that batch is written again one entry at a
    time, each in its own savepoint; its other entries, from both feeds, are stored; the
    other batch keeps its single insert; only the bad row's feed records an error."""
    refuse_poisoned_items(engine)
    good, bad = FEED_URLS[:2]
    entries = [
        built(good, "g1", SOMAIR, text=SOMAIR_TEXT, link="https://wire.test/1", published=at(0)),
        built(bad, "b1", "Knitting for beginners", link="https://b.test/1", published=at(1)),
        built(good, "g2", "Gardening in the dry season", link="https://g.test/2", published=at(2)),
        built(bad, "b2", "A poisoned row about sailing", link="https://b.test/2", published=at(3)),
        built(good, "g3", "Bread without an oven", link="https://g.test/3", published=at(4)),
        built(bad, "b3", "Sailing in the rain", link="https://b.test/3", published=at(5)),
    ]
    report, statements = cycle_of(tmp_path, database_url, engine, entries, batch=3)
    assert report.error is None
    assert [v.entry.guid for v in report.verdicts] == ["g1", "b1", "g2", "g3", "b3"]
    assert report.verdicts[0].decision == "new" and count(engine, Story) == 1
    with Session(engine) as session:
        stored = session.execute(select(col(Item.guid)).order_by(col(Item.id))).scalars().all()
    assert stored == ["g1", "b1", "g2", "g3", "b3"]
    assert list(report.feed_errors) == ["feed 1"]
    assert POISON_MESSAGE in report.feed_errors["feed 1"]
    # batch 1: one insert; batch 2: one insert refused, then one per entry (b2 refused again)
    assert item_inserts(statements) == 1 + 1 + 3
    assert exact_key_queries(statements) == 2 + 3


def test_statements_per_batch_do_not_grow_with_its_entries(
    tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """A batch of 10 entries and one of 60 send the same number of SQL statements (counted
    on the real engine), and the model is asked about one batch at a time."""

    def irrelevant(n: int, feed: int) -> list[Entry]:
        url = FEED_URLS[feed]
        return [
            built(
                url,
                f"e{i}",
                f"Recipe {feed}-{i}: a winter stew",
                link=f"https://f.test/{feed}/{i}",
                published=at(i),
            )
            for i in range(n)
        ]

    small, small_statements = cycle_of(tmp_path, database_url, engine, irrelevant(10, 0), 10)
    large, large_statements = cycle_of(tmp_path, database_url, engine, irrelevant(60, 1), 60)
    assert len(small.verdicts) == 10 and len(large.verdicts) == 60
    assert {v.decision for v in small.verdicts + large.verdicts} == {"irrelevant"}
    assert len(large_statements) == len(small_statements) <= 10
    assert item_inserts(large_statements) == 1 and exact_key_queries(large_statements) == 1
    # three batches of 20: three times the batch's statements, no more
    prepared: list[int] = []

    class Counting(Pipeline):
        def _prepare(self, entries: Sequence[Entry]) -> None:
            prepared.append(len(entries))
            super()._prepare(entries)

    batched, statements = cycle_of(
        tmp_path, database_url, engine, irrelevant(60, 2), 20, pipeline=Counting
    )
    assert len(batched.verdicts) == 60 and prepared == [20, 20, 20]
    assert item_inserts(statements) == 3 and exact_key_queries(statements) == 3
    # a batch: savepoint, exact keys, item ids, insert, release
    assert len(statements) - len(large_statements) == 2 * 5
