"""bot.feeds.bounded: parses in worker processes, within a CPU budget, stopped at shutdown."""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.errors import ParseError
from bot.feeds.bounded import WORKER_NAME, busy_workers, parse_bounded
from bot.feeds.fetch import Fetcher, Validators, make_client
from bot.feeds.parse import parse_feed
from bot.records import FeedSpec
from bot.settings import Limits
from tests.servers import feedgen
from tests.servers.bot_fixtures import wait_until
from tests.servers.feed_server import FeedServer

SPEC = FeedSpec(url="https://feeds.test/wire.xml", name="Wire", language="en")
XML = {"content-type": "application/xml"}
REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "feeds"


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie may never be reaped here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _workers() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.name == WORKER_NAME and p.pid}


async def _busy_worker() -> int:
    await wait_until(lambda: len(busy_workers()) == 1)
    (pid,) = busy_workers()
    return pid


async def test_the_child_gives_what_parse_feed_gives() -> None:
    body = feedgen.rss(
        [{"id": f"g{i}", "title": f"Story {i}", "link": f"https://w.test/{i}"} for i in range(30)]
    )
    bounded = await parse_bounded(body, XML, SPEC, max_entries=20, cpu_seconds=5)
    assert bounded == parse_feed(body, XML, SPEC, max_entries=20)
    assert len(bounded.entries) == 20 and bounded.warnings


async def test_a_parse_error_in_the_child_is_a_parse_error_here() -> None:
    with pytest.raises(ParseError, match="not a feed: got an HTML page"):
        await parse_bounded(b"<html><body>x</body></html>", XML, SPEC, max_entries=5, cpu_seconds=5)
    with pytest.raises(ParseError, match="more than 500 attributes"):
        await parse_bounded(feedgen.crowded_element(), XML, SPEC, max_entries=5, cpu_seconds=5)


@pytest.mark.timeout(60)
async def test_a_parse_over_its_cpu_budget_fails_with_that_reason() -> None:
    body = feedgen.slow_markup()  # about 5 s of CPU without a budget
    started = time.perf_counter()
    task = asyncio.create_task(parse_bounded(body, XML, SPEC, max_entries=5, cpu_seconds=1))
    worker = await _busy_worker()
    with pytest.raises(ParseError, match="CPU budget of 1 s"):
        await task
    assert time.perf_counter() - started < 1.0 * 4 + 5  # the CPU limit, not the wall backstop
    assert not _alive(worker) and busy_workers() == ()
    good = feedgen.rss([{"id": "after", "title": "Next parse, next worker"}])
    parsed = await parse_bounded(good, XML, SPEC, max_entries=5, cpu_seconds=5)
    assert [e.title for e in parsed.entries] == ["Next parse, next worker"]


async def test_a_worker_is_kept_warm_for_the_next_parse() -> None:
    good = feedgen.rss([{"id": "w", "title": "Warm"}])
    await parse_bounded(good, XML, SPEC, max_entries=5, cpu_seconds=5)
    idle = _workers()
    for _ in range(5):
        await parse_bounded(good, XML, SPEC, max_entries=5, cpu_seconds=5)
    assert idle and _workers() == idle  # no new process per parse


@pytest.mark.timeout(60)
async def test_other_parses_go_on_while_one_is_stuck() -> None:
    slow = asyncio.create_task(
        parse_bounded(feedgen.slow_markup(), XML, SPEC, max_entries=5, cpu_seconds=30)
    )
    await _busy_worker()
    good = feedgen.rss([{"id": "ok", "title": "Still parsed"}])
    parsed = await asyncio.wait_for(
        parse_bounded(good, XML, SPEC, max_entries=5, cpu_seconds=5), timeout=10
    )
    assert [e.title for e in parsed.entries] == ["Still parsed"]
    assert not slow.done()
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow


@pytest.mark.timeout(60)
async def test_cancelling_kills_the_child_at_once() -> None:
    task = asyncio.create_task(
        parse_bounded(feedgen.slow_markup(), XML, SPEC, max_entries=5, cpu_seconds=60)
    )
    pid = await _busy_worker()
    assert _alive(pid)
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - started < 1.0  # shutdown does not wait on the parse
    assert not _alive(pid) and busy_workers() == ()


@pytest.mark.timeout(60)
async def test_hostile_feeds_over_http_fail_alone(feed_server: FeedServer) -> None:
    """Fetched over real HTTP: the crowded and the slow feed fail with their reasons while
    the hostile-text feed and a good feed parse, all at once."""
    urls = {
        "crowded": feed_server.add("/crowded.xml", feedgen.crowded_element()),
        "slow": feed_server.add("/slow.xml", feedgen.slow_markup()),
        "hostile": feed_server.add("/hostile.xml", feedgen.hostile_rss()),
        "good": feed_server.add("/good.xml", feedgen.rss([{"id": "g", "title": "Good"}])),
    }
    limits = Limits(total_timeout=10.0, parse_cpu_seconds=1)
    async with make_client(limits) as client:
        fetcher = Fetcher(client, limits)

        async def fetch_and_parse(url: str) -> str:
            outcome = await fetcher.fetch(url, Validators())
            assert outcome.body is not None, outcome.error
            try:
                parsed = await parse_bounded(
                    outcome.body,
                    outcome.headers,
                    SPEC,
                    max_entries=limits.max_entries_per_feed,
                    cpu_seconds=limits.parse_cpu_seconds,
                )
            except ParseError as exc:
                return f"error: {exc}"
            return " | ".join(f"{e.title} <{e.link}>" for e in parsed.entries)

        results = dict(
            zip(
                urls,
                await asyncio.gather(*(fetch_and_parse(u) for u in urls.values())),
                strict=True,
            )
        )
    assert results["crowded"] == "error: refused: an element with more than 500 attributes"
    assert results["slow"] == "error: parse used more than its CPU budget of 1 s"
    assert results["good"] == "Good <>"
    assert results["hostile"].startswith(
        "Drone 😀 down over Kidal <https://hostile.test/surrogates>"
    )
    assert (
        "CJK link <> | Script link <> | A plain good entry <https://hostile.test/good>"
        in (results["hostile"])
    )


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/feeds is not there")
async def test_real_feeds_give_the_same_entries_bounded() -> None:
    paths = sorted(p for p in REAL.iterdir() if p.name != "SOURCE.md")[:12]
    for path in paths:
        body = path.read_bytes()
        try:
            expected: object = parse_feed(body, XML, SPEC)
        except ParseError as exc:
            expected = str(exc)
        try:
            got: object = await parse_bounded(body, XML, SPEC, max_entries=200, cpu_seconds=5)
        except ParseError as exc:
            got = str(exc)
        assert got == expected, path.name


_FORK_SERVER_SCRIPT = """
import asyncio, os
from pathlib import Path
from bot.feeds.bounded import parse_bounded, start_fork_server
from bot.records import FeedSpec
from tests.servers import feedgen

def fork_servers():
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"multiprocessing.forkserver" in cmdline:
            found.append(int(stat.parent.name))
    return found

print(fork_servers(), flush=True)
start_fork_server()
before = fork_servers()
spec = FeedSpec(url="https://x.test/", name="x")
body = feedgen.rss([{"id": "g", "title": "Story", "link": "https://x.test/1"}])
parsed = asyncio.run(parse_bounded(body, {}, spec, max_entries=5, cpu_seconds=5))
print(before, len(parsed.entries), fork_servers() == before, flush=True)
"""


@pytest.mark.timeout(60)
def test_the_fork_server_starts_before_the_first_parse() -> None:
    """Started ahead (the pipeline does it when it is built), the fork server imports the
    parser while nothing waits for it; the first parse then forks its worker from it."""
    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", _FORK_SERVER_SCRIPT],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    ).stdout.splitlines()
    assert out[0] == "[]"  # none before
    servers, entries, same = out[1].rsplit(" ", 2)
    assert len(servers.strip("[]").split(",")) == 1 and servers != "[]"
    assert (entries, same) == ("1", "True")


_ORPHAN_SCRIPT = """
import asyncio
from bot.feeds.bounded import busy_workers, parse_bounded
from tests.servers import feedgen

async def main():
    task = asyncio.create_task(parse_bounded(
        feedgen.slow_markup(2_000_000), {}, feedgen_spec, max_entries=5, cpu_seconds=120))
    while not busy_workers():
        await asyncio.sleep(0.02)
    print(busy_workers()[0], flush=True)
    await task

from bot.records import FeedSpec
feedgen_spec = FeedSpec(url="https://x.test/", name="x")
asyncio.run(main())
"""


@pytest.mark.timeout(60)
async def test_a_parse_child_dies_with_a_killed_bot() -> None:
    """SIGKILL of the bot leaves no parser running (it would burn its whole budget)."""
    repo = Path(__file__).resolve().parent.parent
    with subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT], cwd=repo, stdout=subprocess.PIPE
    ) as bot:
        assert bot.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(bot.stdout.readline), timeout=30)
        child = int(line)
        assert _alive(child)
        bot.kill()
        bot.wait()
        await wait_until(lambda: not _alive(child), within=5)  # it had ~25 s of CPU to go
