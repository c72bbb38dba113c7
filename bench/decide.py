"""Decision speed: match + fingerprint + judge, and how the cost grows with the store.

    python bench/decide.py [--items N]

Table 1: items decided per second of CPU time on one core (the process is pinned to one CPU
and timed with process_time, so other load on the machine does not count), each item
a fresh text (so no cache helps), judged against 64 candidates, as the pipeline does.
Table 2: cost per decided item with 1,000 and with 100,000 stored items in an in-memory
stand-in for the ItemKey index (key -> items sorted by publication time; a window query is
a bisect, as the (key, published) index makes it in the database). Both stores grow at the
same rate (20 relevant items a day), so the 21-day window holds as many items in both: what
grows is history, which must not cost anything.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import random
import sys
import time
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import EXTRA, LABELLED, ROOT, Labelled, load_items

from bot.dedup import Candidate, Fingerprint, SeedPrint, fingerprint, index_keys, judge, seed_print
from bot.match import Matcher, compile_rules, load_rules
from bot.seeds import load_seeds

WINDOW = timedelta(days=21).total_seconds()
PER_DAY = 20
EPOCH = datetime(2025, 1, 1, tzinfo=UTC).timestamp()


def fresh(items: Sequence[Labelled], n: int) -> list[tuple[str, str, str]]:
    """`n` distinct items: the labelled ones with a different closing sentence each time."""
    out = []
    for k in range(n):
        it = items[k % len(items)]
        out.append((it.title, f"{it.text} Report {k} filed by desk {k % 97}.", it.lang))
    return out


@dataclass
class Store:
    """key -> (publication times, item ids), both in time order; fingerprints as JSON text."""

    times: dict[str, array[float]]
    ids: dict[str, array[int]]
    prints: list[str]
    published: list[float]

    def candidates(self, fp: Fingerprint, when: float, limit: int = 64) -> list[Candidate]:
        shared: Counter[int] = Counter()
        for key in index_keys(fp):
            times = self.times.get(key)
            if times is None:
                continue
            lo, hi = bisect_left(times, when - WINDOW), bisect_right(times, when + WINDOW)
            shared.update(self.ids[key][lo:hi])
        top = sorted(shared.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [
            Candidate(
                story_id=i,
                item_id=i,
                fingerprint=Fingerprint.from_json(self.prints[i]),
                published=datetime.fromtimestamp(self.published[i], UTC),
            )
            for i, _n in top
        ]


def build_store(size: int, bases: Sequence[Fingerprint], seed: int = 7) -> Store:
    """`size` stored items, 20 a day, each a perturbed copy of a real item's fingerprint."""
    rng = random.Random(seed)
    times: dict[str, array[float]] = {}
    ids: dict[str, array[int]] = {}
    prints: list[str] = []
    published: list[float] = []
    for i in range(size):
        base = bases[rng.randrange(len(bases))].features
        kept = [f for f in base if rng.random() < 0.8]
        extra = [(f"n:x{rng.randrange(50_000)}", 2.0, rng.randrange(3)) for _ in range(3)]
        extra.append((f"num:{rng.randrange(10, 100_000)}", 1.5, 2))
        fp = Fingerprint(language="en", features=tuple(sorted({*kept, *extra})))
        when = EPOCH + i * 86_400 / PER_DAY
        for key in index_keys(fp):
            times.setdefault(key, array("d")).append(when)
            ids.setdefault(key, array("q")).append(i)
        prints.append(fp.to_json())
        published.append(when)
    return Store(times, ids, prints, published)


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Seconds per call, best of three runs of `repeat` calls."""
    best = float("inf")
    for _ in range(3):
        gc.collect()
        start = time.process_time()
        for _ in range(repeat):
            fn()
        best = min(best, (time.process_time() - start) / repeat)
    return best


def throughput(
    items: list[tuple[str, str, str]],
    matcher: Matcher,
    seeds: Sequence[SeedPrint],
    pool: Sequence[Candidate],
) -> tuple[float, float, int]:
    """(items/s for match+fingerprint+judge, items/s for match alone, relevant count)."""
    gc.collect()
    start = time.process_time()
    relevant = 0
    for title, text, lang in items:
        if matcher.match(title, text, lang).relevant:
            relevant += 1
        judge(fingerprint(title, text, lang), seeds, pool)
    full = len(items) / (time.process_time() - start)
    again = fresh_suffix(items)
    start = time.process_time()
    for title, text, lang in again:
        matcher.match(title, text, lang)
    alone = len(items) / (time.process_time() - start)
    return full, alone, relevant


def fresh_suffix(items: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [(t, x + " Updated.", lang) for t, x, lang in items]


def measure(
    store: Store, probes: Sequence[tuple[str, str, str]], seeds: Sequence[SeedPrint]
) -> tuple[float, float, float, float]:
    """Seconds per item to fingerprint, to fetch candidates, to judge; mean candidates."""
    now = store.published[-1]
    fps = [fingerprint(t, x, lang) for t, x, lang in probes]
    cands = [store.candidates(fp, now) for fp in fps]
    counter = itertools.count()

    def one_fp() -> None:
        t, x, lang = probes[next(counter) % len(probes)]
        fingerprint(t + " ", x, lang)  # a new title each call: no cache

    def one_lookup() -> None:
        store.candidates(fps[next(counter) % len(fps)], now)

    def one_judge() -> None:
        n = next(counter) % len(fps)
        judge(fps[n], seeds, cands[n])

    mean = sum(map(len, cands)) / len(cands)
    return (
        timed(one_fp, len(probes)),
        timed(one_lookup, len(probes)),
        timed(one_judge, len(probes)),
        mean,
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5_000, help="items decided in table 1")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    labelled = load_items(LABELLED) + load_items(EXTRA)
    matcher = compile_rules(load_rules(None))
    seeds = [seed_print(s) for s in load_seeds(ROOT / "seeds")]
    bases = [
        fingerprint(it.title, it.text, it.lang)
        for it in labelled
        if it.kind in ("new_development", "syndicated_duplicate", "seed_rewrite")
    ]
    pool = [Candidate(k, k, bases[k % len(bases)], datetime.now(UTC)) for k in range(64)]

    items = fresh(labelled, args.items)
    full, alone, relevant = throughput(items, matcher, seeds, pool)
    print(f"## Decisions on one core ({len(items)} distinct items, {relevant} relevant)\n")
    print("| stage | items/s | µs/item |")
    print("| --- | ---: | ---: |")
    print(f"| match alone | {alone:,.0f} | {1e6 / alone:.0f} |")
    print(f"| match + fingerprint + judge (64 candidates) | {full:,.0f} | {1e6 / full:.0f} |")

    print("\n## Cost per decided item against the store (in-memory ItemKey stand-in)\n")
    print(
        "| stored items | history (days) | fingerprint µs | candidates (lookup + from_json) µs "
        "| judge µs | total µs | candidates |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    probes = fresh(labelled, 400)
    totals = []
    for size in (1_000, 100_000):
        t_fp, t_lookup, t_judge, mean = measure(build_store(size, bases), probes, seeds)
        total = t_fp + t_lookup + t_judge
        totals.append(total)
        print(
            f"| {size:,} | {size // PER_DAY:,} | {t_fp * 1e6:.0f} | {t_lookup * 1e6:.0f} | "
            f"{t_judge * 1e6:.0f} | {total * 1e6:.0f} | {mean:.0f} |"
        )
    print(f"\n100,000 / 1,000 cost ratio: {totals[1] / totals[0]:.2f} (target <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
