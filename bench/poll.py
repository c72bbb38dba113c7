"""Poll-cycle benchmark (issues 2 and 10): prints two tables.

1. A first cycle over N feeds (default 1,000, all entries new) served by a loopback feed
   server that adds 100 ms to every response, then a next cycle with 1 % of the feeds
   changed: wall time, CPU time, peak memory (and what the process held before the cycle,
   the embedding model loaded), entries decided and stored per second (that stage alone),
   requests answered 304. Beside them, the same conditional GETs (same validators, same
   304s) sent by a bare `httpx` loop, and the way many bots poll: a sequential
   `feedparser.parse(url)` loop.
2. The cost per decided item with 1,000 and with 100,000 items already stored (the cycle's
   batches: one model call, one exact-key query and one item insert per batch).

The feed server runs in its own process so its CPU is not counted; each measured run is a
fresh process, so its peak RSS is its own. The schema is made in a process of its own first,
as `python -m bot db upgrade` or an earlier start makes it: a process that migrates holds
Alembic (13 MB) from then on.

    python bench/poll.py [--feeds 1000] [--latency 0.1] [--stored 1000,100000] [--skip-naive]
                         [--pairs 3]

The next cycle and the bare loop run `--pairs` times, alternately, each next cycle on a copy
of the database as the first cycle left it: on a shared machine one pair's CPU ratio moves
by ±0.1, so the table shows the pair with the median ratio and lists every ratio, and every
pair's two wall times.

CPU and peak RSS are the measured process's own: parsing runs in worker processes (forked
from a fork server, bot/feeds/bounded.py) whose CPU and memory are not counted here.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
FEEDS_DIR = REPO.parent / "shared" / "data" / "feeds"
HOSTS = 25
PER_DAY = 48  # stories and duplicates a day in the cost-per-item bench


# --- the feed server, in its own process ------------------------------------------------


def _bodies() -> list[bytes]:
    bodies = []
    for path in sorted(FEEDS_DIR.glob("*")):
        if path.name == "SOURCE.md":
            continue
        body = path.read_bytes()
        if b"<item" in body or b"<entry" in body:
            bodies.append(body)
    return bodies


def _with_new_entry(body: bytes, n: int) -> bytes:
    """The same feed with one new entry in front, as a feed looks after a new post."""
    if b"<entry" in body:
        tag = b"<entry"
        new = (
            f"<entry><id>urn:bench:{n}</id><title>Bench post {n}</title>"
            f'<link href="https://bench.example/{n}"/><updated>2026-11-24T10:00:00Z</updated>'
            f"<summary>Fresh text {n}</summary></entry>"
        ).encode()
    else:
        tag = b"<item"
        new = (
            f"<item><guid>urn:bench:{n}</guid><title>Bench post {n}</title>"
            f"<link>https://bench.example/{n}</link>"
            f"<pubDate>Tue, 24 Nov 2026 10:00:00 GMT</pubDate>"
            f"<description>Fresh text {n}</description></item>"
        ).encode()
    at = body.index(tag)
    return body[:at] + new + body[at:]


def _serve(conn: Connection, feeds: int, latency: float) -> None:
    from tests.servers.feed_server import FeedServer

    bodies = _bodies()
    # 25 loopback addresses stand in for 25 publishers, so the default per-host limit applies
    server = FeedServer(latency=latency, hosts=HOSTS).start()
    paths = [f"/feed/{i}.xml" for i in range(feeds)]
    for i, path in enumerate(paths):
        server.add(path, body=bodies[i % len(bodies)], etag=True)
    conn.send([server.url(p, host=i % HOSTS) for i, p in enumerate(paths)])
    while True:
        command, arg = conn.recv()
        if command == "change":
            for i in arg:
                server.set_body(paths[i], _with_new_entry(bodies[i % len(bodies)], i))
            conn.send(len(arg))
        elif command == "reset":
            server.reset_stats()
            conn.send(True)
        elif command == "stats":
            stats = server.stats()
            conn.send({"requests": stats.requests, "not_modified": stats.not_modified})
        else:
            server.stop()
            conn.send(True)
            return


# --- measured runs, each in a fresh process ---------------------------------------------


def _in_child(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    parent, child = mp.Pipe()

    def run() -> None:
        child.send(target(*args))

    proc = mp.Process(target=run)
    proc.start()
    result: dict[str, Any] = parent.recv()
    proc.join()
    return result


def _usage() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), ru.ru_utime + ru.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (its WAL included), over `target`."""
    import sqlite3

    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _config(tmp: Path, urls: list[str]) -> Path:
    lines = [f'seeds_dir = "{REPO / "seeds"}"']  # default limits: 50 in flight, 4 per host
    for i, url in enumerate(urls):
        lines += ["[[feeds]]", f'url = "{url}"', f'name = "feed {i}"']
    path = tmp / "bench.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cycle(config: Path, database_url: str) -> dict[str, Any]:
    import asyncio
    from collections.abc import Sequence
    from datetime import datetime

    from bot.pipeline import CycleReport, FeedResult, Pipeline
    from bot.settings import load_settings
    from bot.spool import EntrySpool
    from bot.storage.db import create_schema, make_engine

    settings = load_settings({"SAHEL_WATCH_CONFIG": str(config), "DATABASE_URL": database_url})
    engine = make_engine(database_url)
    create_schema(engine)
    stage: dict[str, float] = {}

    class Timed(Pipeline):
        """The pipeline, with its decide-and-store stage timed."""

        def _decide_and_store(
            self,
            started: datetime,
            results: Sequence[FeedResult],
            spool: EntrySpool | None = None,
            *,
            verdicts: bool = True,
        ) -> CycleReport:
            t0, c0 = _usage()
            try:
                return super()._decide_and_store(started, results, spool, verdicts=verdicts)
            finally:
                t1, c1 = _usage()
                stage.update(wall=t1 - t0, cpu=c1 - c0)

    async def go() -> dict[str, Any]:
        pipeline = Timed(settings, engine)
        base_mb = _peak_mb()  # the interpreter, the imports and the embedding model
        try:
            t0, c0 = _usage()
            # as `run` polls (counts, not every verdict), every feed due
            report = await pipeline.run_cycle(force=True, verdicts=False)
            t1, c1 = _usage()
        finally:
            await pipeline.aclose()
        decided = report.decisions
        return {
            "wall": t1 - t0,
            "cpu": c1 - c0,
            "peak_mb": _peak_mb(),
            "base_mb": base_mb,
            "entries": sum(decided.values()),
            "failed": report.feeds_failed,
            "stage_wall": stage.get("wall", 0.0),
            "stories": decided.get("new", 0) + decided.get("stale", 0),
        }

    return asyncio.run(go())


def _migrate(database_url: str) -> dict[str, Any]:
    """The schema made beforehand, as `python -m bot db upgrade` or an earlier start does:
    a process that migrates also holds Alembic (13 MB) from then on."""
    from bot.storage.db import create_schema, make_engine

    engine = make_engine(database_url)
    create_schema(engine)
    engine.dispose()
    return {}


def _model_only() -> dict[str, Any]:
    """What the interpreter, the imports and the loaded embedding model hold, no cycle."""
    from bot.decide.embed import load_embedder
    from bot.pipeline import Pipeline  # noqa: F401 - the same imports as a cycle's process

    imports_mb = _peak_mb()
    embedder = load_embedder()
    embedder.encode(["warm-up sentence"])
    return {"imports_mb": imports_mb, "model_mb": _peak_mb()}


def _validators(database_url: str) -> dict[str, str]:
    """Each feed's stored ETag, as the cycle will send it."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT url, etag FROM feed WHERE etag IS NOT NULL")).all()
    engine.dispose()
    return {str(url): str(etag) for url, etag in rows}


def _bare_httpx(etags: dict[str, str]) -> dict[str, Any]:
    """The same conditional GETs, nothing else: a bare `httpx` loop, 50 in flight."""
    import asyncio

    import httpx

    async def go() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        gate = asyncio.Semaphore(50)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def get(url: str, etag: str) -> int:
                async with gate:
                    response = await client.get(url, headers={"If-None-Match": etag})
                    return response.status_code

            t0, c0 = _usage()
            codes = await asyncio.gather(*(get(u, e) for u, e in etags.items()))
            t1, c1 = _usage()
        return {
            "wall": t1 - t0,
            "cpu": c1 - c0,
            "peak_mb": _peak_mb(),
            "entries": 0,
            "failed": sum(c not in (200, 304) for c in codes),
        }

    return asyncio.run(go())


def _naive(urls: list[str]) -> dict[str, Any]:
    import feedparser

    base_mb = _peak_mb()
    t0, c0 = _usage()
    entries = 0
    for url in urls:
        entries += len(feedparser.parse(url).entries)
    t1, c1 = _usage()
    return {
        "wall": t1 - t0,
        "cpu": c1 - c0,
        "peak_mb": _peak_mb(),
        "base_mb": base_mb,
        "entries": entries,
        "failed": 0,
    }


# --- table 2: cost per decided item --------------------------------------------------------


def _vocabulary() -> dict[str, list[str]]:
    """Plain English phrases of the project's lexicon, by kind: the words real items use."""
    import tomllib

    lexicon = tomllib.loads((REPO / "bot" / "decide" / "lexicon.toml").read_text("utf-8"))
    words: dict[str, list[str]] = {}
    for concept in lexicon["concepts"].values():
        for phrase in concept.get("en", []) + concept.get("any", []):
            if phrase.replace(" ", "").isalpha():
                words.setdefault(concept.get("k", ""), []).append(phrase)
                break
    return words


def _synthetic(i: int, rng: random.Random, words: dict[str, list[str]]) -> tuple[str, str]:
    actors = words["country"] + words["capital"] + words["bloc"] + words["person"] + words["org"]
    actor, place = rng.choice(actors).title(), rng.choice(words["place"]).title()
    events = rng.sample(words["event"], 2)
    topic = rng.choice(words["topic"])
    n = rng.randint(2, 5000)
    title = f"{actor} {events[0]} near {place}"
    text = (
        f"{actor} reported {events[0]} and {events[1]} near {place} on day {i}, officials "
        f"said. About {n} people were affected by the {topic}, according to sources in "
        f"{rng.choice(words['place']).title()}."
    )
    return title, text


def _decide_cost(stored: int, to_decide: int) -> dict[str, Any]:
    from datetime import timedelta

    from sqlalchemy import insert
    from sqlmodel import Session

    from bot.decide.dedup import fingerprint, title_key
    from bot.feeds.fetch import Validators
    from bot.pipeline import Pipeline
    from bot.records import Entry
    from bot.settings import load_settings
    from bot.storage.db import create_schema, make_engine
    from bot.storage.feeds import FeedState
    from bot.storage.models import Feed, Item, Story, utcnow

    tmp = Path(tempfile.mkdtemp(prefix="sw-bench-"))
    config = tmp / "c.toml"
    config.write_text(
        f'seeds_dir = "{REPO / "seeds"}"\nmax_age_hours = 0\n'
        '[[feeds]]\nurl = "http://127.0.0.1:9/x"\nname = "bench"\n'
    )
    url = f"sqlite:///{tmp}/bench.db"
    settings = load_settings({"SAHEL_WATCH_CONFIG": str(config), "DATABASE_URL": url})
    engine = make_engine(url)
    create_schema(engine)
    pipeline = Pipeline(settings, engine, client=None)
    rng = random.Random(7)
    words = _vocabulary()
    now = utcnow()
    with Session(engine) as session:
        feed_id = session.execute(
            insert(Feed).values(url="http://127.0.0.1:9/y", name="y").returning(Feed.id)
        ).scalar_one()
        stories, items = [], []
        for i in range(stored):
            title, text = _synthetic(i, rng, words)
            fp = fingerprint(title, text, "en")
            # 48 indexed (on-topic) items a day, so both stores hold ~1,000 in the window
            when = now - timedelta(days=i / PER_DAY, minutes=rng.randint(0, 60))
            stories.append(
                {
                    "id": i + 1,
                    "title": title,
                    "link": f"https://s.example/{i}",
                    "feed_name": "y",
                    "created_at": when,
                    "summary": "",
                    "alerted": True,
                    "language": "en",
                }
            )
            items.append(
                {
                    "id": i + 1,
                    "feed_id": feed_id,
                    "guid": f"g{i}",
                    "link": f"https://s.example/{i}",
                    "title_key": title_key(title) + str(i),
                    "title": title,
                    "text": text,
                    "language": "en",
                    "published": when,
                    "first_seen": when,
                    "decision": "new",
                    "story_id": i + 1,
                    "reasons": "[]",
                    "fingerprint": fp.to_json(),
                }
            )
        for table, rows in ((Story, stories), (Item, items)):
            for start in range(0, len(rows), 20_000):
                session.execute(insert(table), rows[start : start + 20_000])
        session.commit()
    entries = []
    for j in range(to_decide):
        title, text = _synthetic(stored + j, rng, words)
        entries.append(
            Entry(
                feed_url="http://127.0.0.1:9/x",
                feed_name="bench",
                guid=f"new{j}",
                title=title,
                text=text,
                link=f"https://n.example/{j}",
                published=now,
                language="en",
            )
        )
    with Session(engine) as session:
        bench_feed = session.execute(
            Feed.__table__.select().where(Feed.url == "http://127.0.0.1:9/x")  # type: ignore[attr-defined]
        ).one()
        feed = FeedState(
            bench_feed.id, bench_feed.url, "bench", "en", Validators(None, None, None), 0
        )
        t0, c0 = _usage()
        decisions: dict[str, int] = {}
        size = pipeline.batch_size  # as a cycle does: its batches, one after the other
        for start in range(0, len(entries), size):
            batch = [(feed, entry) for entry in entries[start : start + size]]
            for verdict in pipeline._decide_batch(session, batch, now, {}):
                decisions[verdict.decision] = decisions.get(verdict.decision, 0) + 1
        session.commit()
        t1, c1 = _usage()
    store_size = stored
    engine.dispose()
    return {
        "stored": store_size,
        "decided": to_decide,
        "wall": t1 - t0,
        "cpu": c1 - c0,
        "decisions": decisions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--stored", default="1000,100000")
    parser.add_argument("--decide", type=int, default=2000)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--pairs", type=int, default=3, help="next cycle + bare loop runs")
    parser.add_argument("--skip-cycle", action="store_true", help="only the second table")
    args = parser.parse_args()
    mp.set_start_method("fork")

    if not args.skip_cycle:
        _cycle_table(args)
    _decide_table(args)


def _cycle_table(args: argparse.Namespace) -> None:
    parent, child = mp.Pipe()
    server = mp.Process(target=_serve, args=(child, args.feeds, args.latency), daemon=True)
    server.start()
    urls: list[str] = parent.recv()
    tmp = Path(tempfile.mkdtemp(prefix="sw-poll-"))
    config = _config(tmp, urls)
    db = f"sqlite:///{tmp}/poll.db"

    print(
        f"# poll cycle: {args.feeds} feeds, +{args.latency * 1000:.0f} ms per response, "
        f"{args.changed:.0%} changed since the last cycle (python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores)"
    )
    _in_child(_migrate, db)
    first = _in_child(_cycle, config, db)
    changed = random.Random(1).sample(range(args.feeds), max(1, int(args.feeds * args.changed)))
    parent.send(("change", changed))
    parent.recv()
    parent.send(("reset", None))
    parent.recv()
    etags = _validators(db)  # the validators the next cycle sends
    after_first = tmp / "after-first.db"
    _copy_sqlite(tmp / "poll.db", after_first)
    pairs = []
    for _ in range(max(1, args.pairs)):
        _copy_sqlite(after_first, tmp / "poll.db")
        second = _in_child(_cycle, config, db)
        parent.send(("stats", None))
        second_stats = parent.recv()
        parent.send(("reset", None))
        parent.recv()
        bare = _in_child(_bare_httpx, {u: etags[u] for u in urls if u in etags})
        parent.send(("stats", None))
        bare_stats = parent.recv()
        parent.send(("reset", None))
        parent.recv()
        pairs.append((second["cpu"] / bare["cpu"], second, second_stats, bare, bare_stats))
    pairs.sort(key=lambda pair: pair[0])
    ratios = ", ".join(f"{pair[0]:.2f}" for pair in pairs)
    walls = ", ".join(f"{pair[1]['wall']:.2f}/{pair[3]['wall']:.2f}" for pair in pairs)
    _ratio, second, second_stats, bare, bare_stats = pairs[len(pairs) // 2]
    model = _in_child(_model_only)
    rows = [
        ("Sahel Watch, first cycle (all new)", first, None),
        ("Sahel Watch, next cycle (1% changed)", second, second_stats),
        ("bare httpx loop, the same requests", bare, bare_stats),
    ]
    if not args.skip_naive:
        parent.send(("reset", None))
        parent.recv()
        naive = _in_child(_naive, urls)
        parent.send(("stats", None))
        rows.append(("sequential feedparser.parse(url) loop", naive, parent.recv()))
    parent.send(("stop", None))
    parent.recv()

    print(
        f"| {'run':38} | {'wall s':>6} | {'CPU s':>6} | {'peak RSS MB':>11} | "
        f"{'before MB':>9} | {'entries':>7} | {'stored/s':>8} | {'304s':>5} | {'requests':>8} |"
    )
    print(
        f"|{'-' * 40}|{'-' * 8}|{'-' * 8}|{'-' * 13}|{'-' * 11}|{'-' * 9}|{'-' * 10}|"
        f"{'-' * 7}|{'-' * 10}|"
    )
    for name, r, stats in rows:
        n304 = str(stats["not_modified"]) if stats else "-"
        nreq = str(stats["requests"]) if stats else "-"
        before = f"{r['base_mb']:.0f}" if "base_mb" in r else "-"
        rate = f"{r['entries'] / r['stage_wall']:.0f}" if r.get("stage_wall") else "-"
        print(
            f"| {name:38} | {r['wall']:6.2f} | {r['cpu']:6.2f} | {r['peak_mb']:11.0f} | "
            f"{before:>9} | {r['entries']:7d} | {rate:>8} | {n304:>5} | {nreq:>8} |"
        )
    print(
        f"before MB: peak RSS before the cycle (interpreter, imports, embedding model). "
        f"Alone: {model['imports_mb']:.0f} MB after the imports, {model['model_mb']:.0f} MB "
        f"with the model loaded, so the model costs {model['model_mb'] - model['imports_mb']:.0f}"
        f" MB and the first cycle {first['peak_mb'] - first['base_mb']:.0f} MB on top.\n"
        f"stored/s: entries decided and stored per second of the decide-and-store stage "
        f"({first['entries']} entries in {first['stage_wall']:.1f} s, {first['stories']} stories)."
        f"\nnext cycle / bare httpx CPU: {second['cpu'] / bare['cpu']:.2f}x, the median of "
        f"{len(pairs)} pairs ({ratios}; goal <= 1.2x); next cycle wall {second['wall']:.2f} s, "
        f"bare loop {bare['wall']:.2f} s (goal < 3 s); every pair, next cycle/bare loop wall s: "
        f"{walls}.\n"
    )


def _decide_table(args: argparse.Namespace) -> None:
    print(
        f"# cost per decided item (model + match + fingerprint + index lookup + judge + store, "
        f"SQLite, in the cycle's batches), {args.decide} new items"
    )
    print(
        f"| {'stored items':>12} | {'µs/item wall':>12} | {'µs/item CPU':>11} | "
        f"{'items/s':>8} | decisions |"
    )
    print(f"|{'-' * 14}|{'-' * 14}|{'-' * 13}|{'-' * 10}|{'-' * 11}|")
    costs = []
    for stored in (int(s) for s in args.stored.split(",")):
        r = _in_child(_decide_cost, stored, args.decide)
        per = r["wall"] / r["decided"] * 1e6
        costs.append(per)
        print(
            f"| {stored:12,d} | {per:12.0f} | {r['cpu'] / r['decided'] * 1e6:11.0f} | "
            f"{r['decided'] / r['wall']:8.0f} | {r['decisions']} |"
        )
    if len(costs) > 1:
        print(f"ratio largest/smallest store: {costs[-1] / costs[0]:.2f}x")


if __name__ == "__main__":
    main()
