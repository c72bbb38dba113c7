"""bot/spool.py: a cycle's entries on disk, read back oldest first, a batch at a time."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

from bot.records import Entry
from bot.spool import EntrySpool

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def entry(guid: str, published: datetime | None) -> Entry:
    return Entry(
        feed_url="http://feeds.test/x.xml",
        feed_name="x",
        guid=guid,
        title=f"Title {guid} \ud800 \x00",  # any string the parser let through comes back
        text="é" * 5_000,
        link=f"https://x.test/{guid}",
        published=published,
        language="fr",
    )


def test_entries_come_back_whole_oldest_first_in_batches_of_the_size_asked() -> None:
    hour = timedelta(hours=1)
    late = entry("late", NOW - hour)
    with EntrySpool() as spool:
        spool.add(2, [late, entry("undated", None), entry("old", NOW - 5 * hour)])
        spool.add(1, [entry("same-time", NOW - hour), entry("undated-1", None)])
        spool.add(3, [])
        assert len(spool) == 5
        batches = list(spool.batches(2, lambda published: published or NOW))
    assert [[(feed, e.guid) for feed, e in batch] for batch in batches] == [
        [(2, "old"), (1, "same-time")],  # a tie goes to the lower feed id, then feed order
        [(2, "late"), (1, "undated-1")],
        [(2, "undated")],
    ]
    assert batches[1][0][1] == late  # every field, the odd strings included


def test_what_stays_in_memory_is_a_few_machine_integers_an_entry() -> None:
    """Per spooled entry, memory keeps its index (five 8-byte integers), not the entry nor a
    tuple of objects, so a cycle's memory hardly grows with its entries."""
    entries = [entry(f"g{i}", NOW - timedelta(minutes=i)) for i in range(2_000)]
    with EntrySpool() as warm:  # a str keeps its UTF-8 form once encoded: not the spool's
        warm.add(0, entries)
    with EntrySpool() as spool:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for feed_id in range(10):
                spool.add(feed_id, entries)
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(spool) == 20_000
        assert held / len(spool) < 64
        first = next(spool.batches(3, lambda published: published or NOW))
    assert [(feed, e.guid) for feed, e in first] == [(0, "g1999"), (1, "g1999"), (2, "g1999")]
