"""Parse benchmark (issue 7): what bounding the parse costs, and what it saves. Two tables.

1. The captured feeds (../shared/data/feeds): parsing each in a worker thread (as before),
   the linear pre-check alone (`xmlsafe`'s crowded-element scan), and `parse_bounded` (a
   child process per parse, forked from the fork server): total and per feed, one at a
   time and `os.cpu_count()` at a time.
2. Pathological bodies: feedparser on its own (no pre-check, no budget), `parse_feed`
   (pre-check), and `parse_bounded` (pre-check and CPU budget).

    python bench/parse.py [--budget 5] [--unguarded-max 20000]

`--unguarded-max`: the largest crowded element handed to feedparser unguarded (n² CPU:
40,000 attributes take about 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import feedparser

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.errors import ParseError  # noqa: E402
from bot.feeds import bounded as bounded_module  # noqa: E402
from bot.feeds.bounded import parse_bounded  # noqa: E402
from bot.feeds.parse import parse_feed  # noqa: E402
from bot.feeds.xmlsafe import _CROWDED_ELEMENT  # noqa: E402
from bot.records import FeedSpec  # noqa: E402
from tests.servers import feedgen  # noqa: E402

FEEDS_DIR = REPO.parent / "shared" / "data" / "feeds"
SPEC = FeedSpec(url="https://bench.test/feed", name="bench")
XML = {"content-type": "application/xml"}


def _outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except ParseError as exc:
        return f"ParseError: {exc}"[:60]
    return "parsed"


async def _each(bodies: list[bytes], one: Callable[[bytes], Awaitable[object]], width: int) -> None:
    slots = asyncio.Semaphore(width)

    async def run(body: bytes) -> None:
        async with slots:
            with contextlib.suppress(ParseError):
                await one(body)

    await asyncio.gather(*(run(b) for b in bodies))


def _timed(run: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of this process and its reaped children."""
    children = os.times()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    after = os.times()
    child_cpu = (after.children_user + after.children_system) - (
        children.children_user + children.children_system
    )
    return time.perf_counter() - wall, time.process_time() - cpu + child_cpu


def corpus_table(budget: int) -> None:
    paths = sorted(p for p in FEEDS_DIR.iterdir() if p.name != "SOURCE.md")
    bodies = [p.read_bytes() for p in paths]
    n, size = len(bodies), sum(len(b) for b in bodies)
    width = os.cpu_count() or 1

    def in_thread(body: bytes) -> Awaitable[object]:
        return asyncio.to_thread(parse_feed, body, XML, SPEC, max_entries=200)

    def bounded(body: bytes) -> Awaitable[object]:
        return parse_bounded(body, XML, SPEC, max_entries=200, cpu_seconds=budget)

    def fresh(body: bytes) -> Awaitable[object]:  # one process per parse: no worker kept
        bounded_module.MAX_JOBS = 1
        return bounded(body)

    def each(one: Callable[[bytes], Awaitable[object]], k: int) -> Callable[[], object]:
        return lambda: asyncio.run(_each(bodies, one, k))

    asyncio.run(_each(bodies[:3], bounded, 1))  # start the fork server outside the timing
    keep = bounded_module.MAX_JOBS
    rows = [
        ("pre-check only (crowded-element scan)", lambda: [_CROWDED_ELEMENT.search(b) for b in bodies]),  # noqa: E501
        ("parse in a thread, 1 at a time (before)", each(in_thread, 1)),
        (f"parse in a thread, {width} at a time", each(in_thread, width)),
        ("process per parse, 1 at a time", each(fresh, 1)),
        (f"process per parse, {width} at a time", each(fresh, width)),
        ("parse_bounded (warm workers), 1 at a time", each(bounded, 1)),
        (f"parse_bounded (warm workers), {width} at a time", each(bounded, width)),
    ]  # fmt: skip
    print(f"\n{n} captured feeds, {size / 1e6:.1f} MB, {width} CPUs, budget {budget} s\n")
    print(f"| {'how':<44} | {'wall s':>7} | {'CPU s':>6} | {'ms/feed':>8} |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 8}|{'-' * 10}|")
    walls = {}
    for label, run in rows:
        bounded_module.MAX_JOBS = keep
        wall, cpu = _timed(run)
        walls[label] = wall
        print(f"| {label:<44} | {wall:7.2f} | {cpu:6.2f} | {wall / n * 1000:8.2f} |")
    bounded_module.MAX_JOBS = keep
    before = walls["parse in a thread, 1 at a time (before)"]
    for label in ("process per parse, 1 at a time", "parse_bounded (warm workers), 1 at a time"):
        extra = (walls[label] - before) / n * 1000
        print(f"\n{label}: {extra:+.1f} ms per feed against the thread", end="")
    print("\n(CPU s counts this process only: workers are the fork server's children, so for")
    print(" the worker rows the wall time is the measure)")


def pathological_table(budget: int, unguarded_max: int) -> None:
    cases: list[tuple[str, bytes]] = [
        (f"element with {k:,} attributes", feedgen.crowded_element(k))
        for k in (10_000, 20_000, 40_000, 60_000, 400_000)
    ]
    cases.append(("400,000 unclosed elements", feedgen.slow_markup(400_000)))
    cases.append(("1,000,000 unclosed elements", feedgen.slow_markup(1_000_000)))
    print(f"\npathological bodies (budget {budget} s)\n")
    print(f"| {'body':<32} | {'KB':>6} | {'feedparser alone':>17} | {'parse_feed':>10} "
          f"| {'parse_bounded':>13} | {'parse_bounded says':<46} |")  # fmt: skip
    print(f"|{'-' * 34}|{'-' * 8}|{'-' * 19}|{'-' * 12}|{'-' * 15}|{'-' * 48}|")
    for label, body in cases:
        attributes = body.count(b'="v"')
        if attributes and attributes > unguarded_max:
            alone = "not run (n²)"
        else:
            wall, _ = _timed(lambda b=body: feedparser.parse(io.BytesIO(b), response_headers=XML))
            alone = f"{wall:.2f} s"
        if attributes or len(body) < 4_000_000:
            wall, _ = _timed(lambda b=body: _outcome(lambda: parse_feed(b, XML, SPEC)))
            guarded = f"{wall:.2f} s"
        else:
            guarded = "not run"
        said: list[str] = []

        def bounded(b: bytes = body, said: list[str] = said) -> None:
            async def run() -> None:
                try:
                    await parse_bounded(b, XML, SPEC, max_entries=200, cpu_seconds=budget)
                    said.append("parsed")
                except ParseError as exc:
                    said.append(str(exc))

            asyncio.run(run())

        wall, _ = _timed(bounded)
        print(
            f"| {label:<32} | {len(body) / 1024:6.0f} | {alone:>17} | {guarded:>10} "
            f"| {wall:11.2f} s | {said[0][:46]:<46} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=5, help="CPU seconds per parse")
    parser.add_argument("--unguarded-max", type=int, default=20_000)
    args = parser.parse_args()
    if not FEEDS_DIR.is_dir():
        sys.exit(f"{FEEDS_DIR} is not there")
    corpus_table(args.budget)
    pathological_table(args.budget, args.unguarded_max)


if __name__ == "__main__":
    main()
