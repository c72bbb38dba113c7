"""Decision speed and memory: the real core (`bot.decide.core.decide`) on one core.

    python bench/decide.py [--entries N] [--relevant N]

Entries are decided as the poll cycle decides them: a cycle's entries prepared together (one
model call for those that name a watched term), then decided one by one.

Table 1, a realistic mix: 9 entries in 10 off topic (entries of the real captured feeds in
../shared/data/feeds, mostly technology and world news), 1 in 10 on topic (the labelled
relevant items, each given a fresh closing sentence so no cache helps), decided against a
story index of one window at 20 relevant items a day.

Table 2: on-topic entries only (model call, seed check, story search), with 1,000 and 100,000
stored items. Items are stored at the same rate in both (20 a day), so what grows is
history; the index holds what the pipeline loads into it: two windows back from now.

Table 3: model load time, and the resident memory of an idle `python -m bot run` (console
mode, no feeds due) with the model loaded.

CPU time is `process_time` with the process pinned to one CPU, so other load on the machine
counts little; the figures still move by about 10 % between runs on a busy 2-core host.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bot.decide.core import Context, build_context, decide, prepare
from bot.decide.dedup import fingerprint
from bot.decide.embed import load_embedder, unit_rows
from bot.decide.evidence import StoredItem
from bot.errors import ParseError
from bot.evaluate import load_labelled
from bot.feeds.parse import parse_feed
from bot.records import Entry, FeedSpec
from bot.seeds import load_seeds

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LABELLED = [SHARED / "labelled_items.json", ROOT / "tests" / "data" / "extra_items.json"]
PER_DAY = 20
CYCLE = 500  # entries decided per poll cycle (1,000 feeds with 1 % changed give about 170)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def off_topic_entries(limit: int) -> list[Entry]:
    out: list[Entry] = []
    for path in sorted((SHARED / "feeds").glob("benchmark_data__*")):
        body = path.read_bytes()
        try:
            parsed = parse_feed(body, {}, FeedSpec(f"https://{path.name}.test/", path.name))
        except ParseError:
            continue
        out.extend(parsed.entries)
        if len(out) >= limit:
            break
    return out[:limit]


def on_topic_entries(n: int) -> list[Entry]:
    relevant = [
        item.entry
        for path in LABELLED
        for item in load_labelled(path)
        if item.kind in ("new_development", "syndicated_duplicate", "seed_rewrite")
    ]
    return [
        dataclasses.replace(
            relevant[k % len(relevant)],
            guid=f"{relevant[k % len(relevant)].guid}-{k}",
            text=f"{relevant[k % len(relevant)].text} Report {k} from desk {k % 97}.",
            published=NOW - timedelta(hours=k % 48),
        )
        for k in range(n)
    ]


def fill(context: Context, stored: int, bases: Sequence[Entry]) -> None:
    """`stored` items at PER_DAY a day up to NOW, as the pipeline would have kept them."""
    rng = np.random.default_rng(7)
    base_prints = [fingerprint(e.title, e.text, e.language) for e in bases]
    base_vectors = context.embedder.encode([f"{e.title}. {e.text[:400]}" for e in bases])
    since = NOW - 2 * context.stories.window  # what `story_items_since` loads
    for k in range(stored):
        published = NOW - timedelta(days=k / PER_DAY)
        if published < since:
            continue  # in the database, never loaded into the index
        b = k % len(bases)
        noisy = base_vectors[b] + rng.normal(0, 0.15, base_vectors.shape[1]).astype(np.float32)
        vector = unit_rows(noisy[None, :])[0]
        context.stories.add(StoredItem(k // 3, k + 1, base_prints[b], vector, published))


def per_second(context: Context, entries: Sequence[Entry]) -> tuple[float, float]:
    """(decisions per CPU second, ms per decision), deciding as the poll cycle does: the
    cycle's entries prepared together (one model call), then decided one by one."""
    started = time.process_time()
    for start in range(0, len(entries), CYCLE):
        batch = entries[start : start + CYCLE]
        prepare(batch, context)
        for entry in batch:
            decide(entry, context)
    spent = time.process_time() - started
    return len(entries) / spent, 1000 * spent / len(entries)


def idle_run_rss() -> tuple[float, float]:
    """(seconds until `run` is up, resident MB once idle) of a console-mode `run`."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(
            f'seeds_dir = "{ROOT / "seeds"}"\npoll_interval = 3600\n'
            '[[feeds]]\nurl = "http://127.0.0.1:9/feed.xml"\nname = "unreachable"\n',
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "SAHEL_WATCH_CONFIG": str(config),
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
        }
        env.pop("TELEGRAM_BOT_TOKEN", None)
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        up = 0.0
        for line in proc.stdout:
            if "running: polling" in line:
                up = time.monotonic() - started
                break
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # let the first cycle (one refused fetch) settle
            time.sleep(0.5)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss_kb = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS"))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return up, rss_kb / 1024


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=3000, help="entries in the mix")
    parser.add_argument("--relevant", type=int, default=400, help="on-topic entries timed alone")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    random.seed(7)

    started = time.perf_counter()
    embedder = load_embedder()
    load_seconds = time.perf_counter() - started
    seeds = load_seeds(ROOT / "seeds")

    def context() -> Context:
        return build_context({}, seeds, embedder, now=NOW)

    on_topic = on_topic_entries(max(args.entries // 10, args.relevant))
    off = off_topic_entries(args.entries - args.entries // 10)
    mix = off + on_topic[: args.entries // 10]
    random.shuffle(mix)
    print("Table 1: decisions per second on one core, realistic mix\n")
    print("| entries | on topic | stored items | decisions/s | ms/decision |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    ctx = context()
    fill(ctx, 1_000, on_topic[:60])
    rate, ms = per_second(ctx, mix)
    print(f"| {len(mix)} | {args.entries // 10} | 1,000 | {rate:,.0f} | {ms:.2f} |")

    print("\nTable 2: on-topic entries (model, seed, story search), by size of the store\n")
    print("| stored items | in the index | entries | decisions/s | ms/decision |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for stored in (1_000, 100_000):
        ctx = context()
        fill(ctx, stored, on_topic[:60])
        rate, ms = per_second(ctx, on_topic[: args.relevant])
        print(f"| {stored:,} | {len(ctx.stories):,} | {args.relevant} | {rate:,.0f} | {ms:.2f} |")

    up, rss = idle_run_rss()
    print("\nTable 3: model and process\n")
    print("| model load s | `run` up after s | idle `run` resident MB |")
    print("| ---: | ---: | ---: |")
    print(f"| {load_seconds:.2f} | {up:.1f} | {rss:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
