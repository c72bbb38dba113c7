"""bot.feeds.lanes: feeds polled in lanes that stay with their host, within the limits."""

from __future__ import annotations

import asyncio
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.feeds.lanes import in_lanes, origin


class Recorder:
    """A `work` that records who ran what, and the most at once overall and per key."""

    def __init__(self) -> None:
        self.now: Counter[str] = Counter()
        self.peak = 0
        self.peak_by_key: Counter[str] = Counter()
        self.runs: list[tuple[int, str]] = []  # (lane, key), in the order they started
        self.lane_of: dict[asyncio.Task[object] | None, int] = {}

    async def __call__(self, item: tuple[str, int]) -> int:
        key, n = item
        task = asyncio.current_task()
        lane = self.lane_of.setdefault(task, len(self.lane_of))
        self.runs.append((lane, key))
        self.now[key] += 1
        self.peak = max(self.peak, self.now.total())
        self.peak_by_key[key] = max(self.peak_by_key[key], self.now[key])
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.now[key] -= 1
        return n


def test_origin_is_what_one_connection_serves() -> None:
    assert origin("https://User:pw@Example.ORG:8443/a/b?x=1") == "https://example.org:8443"
    assert origin("HTTP://example.org/feed") == "http://example.org"
    assert origin("http://[::1/") == "http://[::1/"  # unreadable: the URL is its own key


async def test_a_lane_stays_with_its_host_and_the_results_keep_the_order() -> None:
    items = [(f"h{n % 3}", n) for n in range(12)]  # 3 hosts, 4 items each, interleaved
    work = Recorder()
    results = await in_lanes(items, lambda i: i[0], work, lanes=3, per_key=2)

    assert results == list(range(12))
    assert work.peak == 3
    keys_by_lane: dict[int, set[str]] = {}
    for lane, key in work.runs:
        keys_by_lane.setdefault(lane, set()).add(key)
    assert sorted(map(sorted, keys_by_lane.values())) == [["h0"], ["h1"], ["h2"]]


async def test_a_host_listed_first_takes_no_more_lanes_than_it_may() -> None:
    items = [("a", n) for n in range(8)] + [("b", n) for n in range(8, 10)]
    work = Recorder()
    results = await in_lanes(items, lambda i: i[0], work, lanes=4, per_key=2)

    assert results == list(range(10))
    assert [key for _lane, key in work.runs[:4]] == ["a", "b", "a", "b"]
    assert work.peak_by_key == {"a": 2, "b": 2}


async def test_nothing_to_poll() -> None:
    work = Recorder()
    assert await in_lanes([], lambda i: i[0], work, lanes=4, per_key=2) == []


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.sampled_from("abcde"), max_size=40),
    lanes=st.integers(1, 8),
    per_key=st.integers(1, 4),
)
def test_every_item_runs_once_within_the_limits(keys: list[str], lanes: int, per_key: int) -> None:
    items = [(key, n) for n, key in enumerate(keys)]
    work = Recorder()
    results = asyncio.run(in_lanes(items, lambda i: i[0], work, lanes=lanes, per_key=per_key))

    assert results == list(range(len(items)))
    assert len(work.runs) == len(items)
    assert work.peak <= lanes and all(p <= per_key for p in work.peak_by_key.values())
