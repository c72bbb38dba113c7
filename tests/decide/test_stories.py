from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from bot.decide.dedup import fingerprint
from bot.decide.embed import DIMENSIONS
from bot.decide.evidence import Probe, StoredItem
from bot.decide.stories import StoryIndex

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def axis(n: int) -> np.ndarray:
    v = np.zeros(DIMENSIONS, dtype=np.float32)
    v[n] = 1.0
    return v


def item(
    item_id: int, story: int, title: str, vec: np.ndarray | None, when: datetime
) -> StoredItem:
    return StoredItem(story, item_id, fingerprint(title, "", "en"), vec, when)


def probe(title: str, vec: np.ndarray) -> Probe:
    return Probe(fingerprint(title, "", "en"), vec, vec)


def stories(index: StoryIndex, p: Probe, when: datetime, limit: int = 64) -> dict[int, list[int]]:
    return {s: [i.item_id for i in items] for s, items in index.candidates(p, when, limit)}


def test_meaning_and_shared_keys_both_propose() -> None:
    index = StoryIndex(window_days=21)
    index.add(item(1, 10, "Wheat harvest in Kansas", axis(0), T0))
    index.add(item(2, 20, "Tillaberi attack kills soldiers", None, T0))  # no vector: keys only
    index.add(item(3, 30, "Unrelated", axis(5), T0))
    found = stories(index, probe("Soldiers killed near Tillaberi", axis(0)), T0, limit=1)
    assert found == {10: [1], 20: [2]}


def test_only_the_window_counts() -> None:
    index = StoryIndex(window_days=21)
    index.add(item(1, 10, "A", axis(0), T0))
    index.add(item(2, 11, "B", axis(0), T0 + timedelta(days=30)))
    assert set(stories(index, probe("C", axis(0)), T0 + timedelta(days=25))) == {11}
    assert set(stories(index, probe("C", axis(0)), T0 + timedelta(days=10))) == {10, 11}


def test_prune_forgets_what_left_two_windows_and_keeps_the_high_water_mark() -> None:
    index = StoryIndex(window_days=1)
    for n in range(100):  # past the first capacity, so the arrays grow
        index.add(item(n + 1, n, f"t{n}", axis(n % 7), T0 + timedelta(hours=n)))
    assert len(index) == 100
    index.add(item(5, 4, "t4", axis(0), T0))  # the same item again: ignored
    assert len(index) == 100
    index.prune(T0 + timedelta(hours=99))
    assert len(index) == 49  # published within 48 hours of the last
    assert index.last_item_id == 100
    assert set(stories(index, probe("x", axis(0)), T0 + timedelta(hours=99))) <= set(range(51, 100))


def test_rollback_forgets_what_was_added_since_the_mark() -> None:
    index = StoryIndex(window_days=21)
    index.add(item(1, 10, "Kept", axis(0), T0))
    mark = index.mark()
    index.add(item(2, 20, "Rolled back", axis(0), T0))
    index.add(item(3, 20, "Rolled back too", axis(1), T0))
    index.rollback(mark)
    assert len(index) == 1 and index.last_item_id == 1
    assert stories(index, probe("Rolled back", axis(0)), T0) == {10: [1]}
    index.add(item(2, 21, "Stored again", axis(0), T0))  # the same id, now really stored
    assert stories(index, probe("x", axis(0)), T0) == {10: [1], 21: [2]}
