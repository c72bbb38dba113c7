"""A simulated day of polling 1,000 feeds: the adaptive schedule against a fixed interval.

    .venv/bin/python bench/schedule.py [--feeds 1000] [--median-hours 24] [--spread 1.0]

Each feed publishes at its own pace, and every poll goes through the real schedule
(`bot.feeds.schedule.observe` and `next_interval`) and the real claim rule of a scheduled
cycle (a feed is due when its next poll falls before a quarter interval ahead and it was not
polled in the last three quarters, as `run` passes `spacing`). Nothing is fetched: the
"body" a poll sees is the feed's last `BODY_ENTRIES` entries published by then.

How the feeds were chosen. The mean gap between a feed's entries is log-normal: log10 of
the gap in hours is normal with mean log10(`--median-hours`) and deviation `--spread`
(decades). With the defaults (median one day, one decade) about 8 % of feeds publish hourly
or more often, half daily or more rarely, 16 % less than weekly: a watch list of wires and
national outlets among regional and specialist ones. For scale: the 202 captured real feeds
in ../shared/data/feeds (mostly personal and company blogs) have a median gap of about 40
days and a spread of 1.2 decades (try `--median-hours 960 --spread 1.2`). Publication is a
Poisson process whose rate follows the day (twice as busy at the busiest hour as on average,
half at night, the peak hour varying by feed over six hours). Each feed has a week of history
before the measured day, as a bot that has been running has.

Baseline: today's fixed interval, every feed polled at every 5-minute cycle. The cycles of
both come every 300 s plus APScheduler's jitter (0 to 10 %). Delay: from an entry's
publication to the first poll that sees it.
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.feeds.schedule import Activity, Bounds, Signals, next_interval, observe
from bot.settings import Limits

POLL = 300.0  # poll_interval: the fixed interval of today
MAX_POLL = 6 * 3600.0  # max_poll_interval's default
SPACING = 0.75  # bot/run.py POLL_SPACING
JITTER = 0.1  # bot/scheduler.py poll_jitter: up to 10 % of the interval
BODY_ENTRIES = 20  # entries a feed body holds
DAY = 86_400.0
HISTORY_DAYS = 7
TAIL = MAX_POLL + 2 * POLL  # simulated past the day so that its last entries are found
DIURNAL = 0.5  # the rate swings ±50 % around its mean over the day
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
CLASSES = (
    ("hourly or more often", 0.0, 3_600.0),
    ("1 h to 1 day", 3_600.0, DAY),
    ("1 day to 1 week", DAY, 7 * DAY),
    ("rarer than weekly", 7 * DAY, math.inf),
)


@dataclass(slots=True)
class Tally:
    feeds: int = 0
    entries: int = 0
    fixed_requests: int = 0
    adaptive_requests: int = 0
    fixed_delays: list[float] = field(default_factory=list)
    adaptive_delays: list[float] = field(default_factory=list)


def publications(rng: random.Random, gap: float, start: float, end: float) -> list[float]:
    """Publication times of a Poisson process of mean gap `gap`, its rate following the day."""
    peak = rng.uniform(11, 17) * 3600.0
    top = (1 + DIURNAL) / gap
    times, t = [], start
    while True:
        t += rng.expovariate(top)
        if t >= end:
            return times
        rate = (1 + DIURNAL * math.cos(2 * math.pi * (t - peak) / DAY)) / gap
        if rng.random() * top < rate:
            times.append(t)


def cycle_times(rng: random.Random, end: float) -> list[float]:
    """Cycles every POLL seconds, each delayed by up to JITTER of it (APScheduler's jitter)."""
    return [k * POLL + rng.uniform(0, JITTER * POLL) for k in range(int(end // POLL) + 1)]


def at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def simulate(
    pubs: list[float], cycles: list[float], day: tuple[float, float], tally: Tally
) -> list[str]:
    """Poll one feed through the real schedule; add its requests and delays to `tally`."""
    limits = Limits()  # failures do not happen here; the backoff's defaults for completeness
    bounds = Bounds(POLL, MAX_POLL, limits.backoff_base_seconds, limits.backoff_max_seconds)
    activity = Activity()
    reasons = []
    next_poll, last_poll = 0.0, -math.inf
    index = 0
    while True:
        earliest = max(next_poll - (1 - SPACING) * POLL, last_poll + SPACING * POLL)
        index = bisect.bisect_left(cycles, earliest, lo=index)
        if index >= len(cycles):
            return reasons
        now = cycles[index]
        seen = bisect.bisect_right(pubs, now)
        for published in pubs[bisect.bisect_right(pubs, last_poll) : seen]:
            if day[0] <= published < day[1]:
                tally.adaptive_delays.append(now - published)
        if day[0] <= now < day[1]:
            tally.adaptive_requests += 1
        body = [at(p) for p in pubs[max(0, seen - BODY_ENTRIES) : seen]]
        activity = observe(activity, body, now=at(now))
        interval = next_interval(Signals(activity=activity), bounds, now=at(now))
        if day[0] <= now < day[1]:
            reasons.append(interval.reason)
        last_poll, next_poll = now, now + interval.seconds


def fixed(pubs: list[float], cycles: list[float], day: tuple[float, float], tally: Tally) -> None:
    """Today: every cycle polls every feed."""
    tally.fixed_requests += sum(1 for c in cycles if day[0] <= c < day[1])
    for published in pubs:
        if day[0] <= published < day[1]:
            tally.fixed_delays.append(cycles[bisect.bisect_left(cycles, published)] - published)
            tally.entries += 1


def add(target: Tally, one: Tally) -> None:
    target.feeds += one.feeds
    target.entries += one.entries
    target.fixed_requests += one.fixed_requests
    target.adaptive_requests += one.adaptive_requests
    target.fixed_delays += one.fixed_delays
    target.adaptive_delays += one.adaptive_delays


def quantile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(name: str, t: Tally) -> str:
    saved = t.fixed_requests / t.adaptive_requests if t.adaptive_requests else math.inf
    mean_f = statistics.fmean(t.fixed_delays) if t.fixed_delays else math.nan
    mean_a = statistics.fmean(t.adaptive_delays) if t.adaptive_delays else math.nan
    return (
        f"| {name} | {t.feeds} | {t.entries} | {t.fixed_requests:,} | {t.adaptive_requests:,} | "
        f"{saved:.1f}x | {mean_f / 60:.1f} / {quantile(t.fixed_delays, 0.95) / 60:.1f} | "
        f"{mean_a / 60:.1f} / {quantile(t.adaptive_delays, 0.95) / 60:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--median-hours", type=float, default=24.0)
    parser.add_argument("--spread", type=float, default=1.0, help="decades (log10 deviation)")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    day = (HISTORY_DAYS * DAY, (HISTORY_DAYS + 1) * DAY)
    cycles = cycle_times(rng, day[1] + TAIL)
    tallies = {name: Tally() for name, _, _ in CLASSES}
    total = Tally()
    reasons: dict[str, int] = {}
    started = time.perf_counter()
    for _ in range(args.feeds):
        gap = 3600.0 * 10 ** rng.gauss(math.log10(args.median_hours), args.spread)
        # history from before the bot started: the first body is full, as a real feed's is
        pubs = publications(rng, gap, -min((BODY_ENTRIES + 5) * gap, 5 * 365 * DAY), day[1] + TAIL)
        one = Tally(feeds=1)
        fixed(pubs, cycles, day, one)
        for reason in simulate(pubs, cycles, day, one):
            kind = "rate" if reason.startswith("about") else reason.split(" ")[0]
            reasons[kind] = reasons.get(kind, 0) + 1
        cls = next(tallies[n] for n, low, high in CLASSES if low <= gap < high)
        for target in (cls, total):
            add(target, one)
    took = time.perf_counter() - started
    print(
        f"{args.feeds} feeds, mean gap log-normal (median {args.median_hours:g} h, "
        f"spread {args.spread:g} decades), one day after {HISTORY_DAYS} days of history; "
        f"poll_interval {POLL:.0f} s, max_poll_interval {MAX_POLL / 3600:.0f} h ({took:.1f} s)\n"
    )
    print(
        "| feeds publishing | feeds | entries that day | requests, fixed 5 min | "
        "requests, adaptive | fewer | delay fixed, mean / p95 (min) | "
        "delay adaptive, mean / p95 (min) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, _, _ in CLASSES:
        print(row(name, tallies[name]))
    print(row("all", total))
    print(
        "\nreasons of the day's intervals:",
        ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())),
    )


if __name__ == "__main__":
    main()
