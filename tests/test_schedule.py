"""bot.feeds.schedule: the pure rule, and the poll cycle writing it over real HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.feeds.parse import parse_feed
from bot.feeds.schedule import (
    Activity,
    Bounds,
    Interval,
    Signals,
    next_interval,
    observe,
    ttl_seconds,
    update_period_seconds,
)
from bot.pipeline import Pipeline
from bot.records import FeedSpec
from bot.storage import feeds as feed_store
from bot.storage.models import Feed
from tests.servers.feed_server import FeedServer
from tests.servers.feedgen import rss
from tests.test_pipeline import cycle, feed_row, rfc822, settings_for

NOW = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)
HOUR, DAY = 3600.0, 86400.0
BOUNDS = Bounds(minimum=300, maximum=6 * HOUR, backoff_base=60, backoff_max=6 * HOUR)


def interval(**signals: object) -> Interval:
    return next_interval(Signals(**signals), BOUNDS, now=NOW)  # type: ignore[arg-type]


def recent(gap: float, *, quiet: float = 60.0) -> Activity:
    return Activity(mean_gap=gap, newest=NOW - timedelta(seconds=quiet))


# -- each signal ------------------------------------------------------------------------


def test_the_publication_rate_sets_a_twenty_fourth_of_the_gap() -> None:
    assert interval(activity=recent(DAY)) == Interval(3600, "about 1 entry a day")
    assert interval(activity=recent(DAY / 3)) == Interval(1200, "about 3 entries a day")
    assert interval(activity=recent(2 * DAY)) == Interval(7200, "about 4 entries a week")


def test_an_active_feed_stays_at_poll_interval() -> None:
    assert interval(activity=recent(HOUR)) == Interval(300, "about 24 entries a day")
    assert interval(activity=recent(600)) == Interval(300, "about 144 entries a day")


def test_a_quiet_feed_counts_its_silence() -> None:
    # an hourly feed silent for two days: the silence over three is its gap (16 h)
    quiet = interval(activity=recent(HOUR, quiet=2 * DAY))
    assert quiet == Interval(2400, "no entry for 2 days")
    # silent for less than three gaps: its rate still rules
    assert interval(activity=recent(HOUR, quiet=2.5 * HOUR)).reason == "about 24 entries a day"
    # one old entry and no gap yet
    lone = interval(activity=Activity(newest=NOW - timedelta(days=30)))
    assert lone == Interval(6 * HOUR, "no entry for 30 days; at most 6 h")
    # never a dated entry: the silence counts from the first poll, once it says more
    empty = interval(activity=Activity(since=NOW - timedelta(days=1)))
    assert empty == Interval(1200, "no entry for 24 h")
    assert interval(activity=Activity(since=NOW - timedelta(hours=5))).reason == (
        "no dated entries yet"
    )
    one = Activity(newest=NOW - timedelta(hours=1))
    assert interval(activity=one) == Interval(300, "only one dated entry yet")


def test_the_declared_period_counts_only_before_any_observation() -> None:
    assert interval(update_period=DAY) == Interval(3600, "sy:updatePeriod every 24 h")
    assert interval(update_period=DAY, activity=recent(HOUR)).seconds == 300  # observed wins
    assert interval() == Interval(300, "no dated entries yet")


def test_ttl_and_http_freshness_are_floors() -> None:
    fast = recent(600)
    assert interval(activity=fast, ttl=5400) == Interval(5400, "ttl 90 min")
    assert interval(activity=fast, max_age=7200) == Interval(7200, "Cache-Control max-age 2 h")
    assert interval(activity=fast, expires_in=2700) == Interval(2700, "Expires 45 min")
    # a floor below the rate's interval, or below poll_interval, changes nothing
    assert interval(activity=recent(DAY), ttl=1800) == Interval(3600, "about 1 entry a day")
    assert interval(activity=fast, ttl=60, max_age=0) == Interval(300, "about 144 entries a day")


# -- precedence and bounds --------------------------------------------------------------


def test_the_largest_floor_wins() -> None:
    both = interval(activity=recent(600), ttl=3600, max_age=5400, expires_in=4000)
    assert both == Interval(5400, "Cache-Control max-age 90 min")
    assert interval(ttl=7200, max_age=3600).reason == "ttl 2 h"


def test_the_bounds_hold() -> None:
    assert interval(activity=recent(90 * DAY)) == Interval(
        6 * HOUR, "about 1 entry every 90 days; at most 6 h"
    )
    assert interval(ttl=2 * DAY) == Interval(6 * HOUR, "ttl 2 days; at most 6 h")
    # a maximum below poll_interval: poll_interval
    narrow = Bounds(minimum=300, maximum=60, backoff_base=60, backoff_max=HOUR)
    assert next_interval(Signals(activity=recent(DAY)), narrow, now=NOW).seconds == 300


def test_failures_back_off_whatever_the_feed_said() -> None:
    said = {"activity": recent(DAY), "ttl": 5400.0, "max_age": 7200.0}
    assert interval(failures=1, **said) == Interval(60, "backing off after 1 failure")
    assert interval(failures=3, **said) == Interval(240, "backing off after 3 failures")
    assert interval(failures=20) == Interval(6 * HOUR, "backing off after 20 failures")
    told = interval(failures=1, retry_after=600.0)
    assert told == Interval(600, "backing off after 1 failure (Retry-After 10 min)")
    assert interval(retry_after=900.0) == Interval(900, "Retry-After 15 min")


@given(
    gap=st.none() | st.floats(0, 1e9),
    quiet=st.none() | st.floats(0, 1e9),
    hints=st.lists(st.none() | st.floats(0, 1e9), min_size=4, max_size=4),
)
def test_a_healthy_feed_always_lies_within_the_bounds(
    gap: float | None, quiet: float | None, hints: list[float | None]
) -> None:
    newest = None if quiet is None else NOW - timedelta(seconds=quiet)
    ttl, period, fresh, expires = hints
    signals = Signals(Activity(gap, newest), ttl, period, fresh, expires)
    result = next_interval(signals, BOUNDS, now=NOW)
    assert BOUNDS.minimum <= result.seconds <= BOUNDS.maximum and result.reason


# -- what the feed shows ----------------------------------------------------------------


def at(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def test_observe_starts_from_the_span_of_the_first_body() -> None:
    first = observe(Activity(), [at(1), at(31), at(7), at(13), at(19), at(25)], now=NOW)
    assert first == Activity(mean_gap=6 * HOUR, newest=at(1), since=NOW)
    # one dated entry: the newest is known, the gap is not
    assert observe(Activity(), [at(2)], now=NOW) == Activity(None, at(2), since=NOW)
    # none: only when the feed was first polled, from which its silence counts
    assert observe(Activity(), [], now=NOW) == Activity(since=NOW)


def test_observe_weighs_each_new_gap() -> None:
    before = Activity(mean_gap=6 * HOUR, newest=at(10), since=at(100))
    after = observe(before, [at(12), at(10), at(8), at(6)], now=NOW)  # two new: gaps 2 h, 2 h
    expected = 6 * HOUR + 0.2 * (2 * HOUR - 6 * HOUR)
    expected += 0.2 * (2 * HOUR - expected)
    assert after.newest == at(6) and after.since == at(100) and after.mean_gap is not None
    assert abs(after.mean_gap - expected) < 1e-6
    # nothing newer than the newest seen, or only dates in the future: nothing learnt
    assert observe(before, [at(11), at(30)], now=NOW) == before
    assert observe(before, [NOW + timedelta(hours=2)], now=NOW) == before
    # a second dated entry after a lone one gives the first gap
    lone = Activity(None, at(5), at(9))
    assert observe(lone, [at(2)], now=NOW) == Activity(3 * HOUR, at(2), at(9))


def test_declared_hints_are_read_as_seconds() -> None:
    assert ttl_seconds("60") == 3600 and ttl_seconds(" 1.5 ") == 90
    assert ttl_seconds("soon") is None and ttl_seconds("0") is None and ttl_seconds(None) is None
    assert ttl_seconds("-5") is None and ttl_seconds("inf") is None
    assert update_period_seconds("hourly", "1") == HOUR
    assert update_period_seconds("daily", "2") == DAY / 2
    assert update_period_seconds(None, "4") == DAY / 4  # the period defaults to daily
    assert update_period_seconds("Weekly", None) == 7 * DAY
    assert update_period_seconds("fortnightly", "1") is None
    assert update_period_seconds("daily", "0") is None and update_period_seconds(None, None) is None


def test_the_parser_reads_the_declared_pace() -> None:
    body = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel>
<title>t</title><ttl>45</ttl><sy:updatePeriod>daily</sy:updatePeriod>
<sy:updateFrequency>2</sy:updateFrequency><item><title>a</title></item></channel></rss>"""
    headers, spec = {"content-type": "application/rss+xml"}, FeedSpec("https://t/", "t")
    parsed = parse_feed(body, headers, spec)
    assert (parsed.ttl, parsed.update_period) == (2700.0, DAY / 2)
    plain = parse_feed(rss([]), headers, spec)
    assert (plain.ttl, plain.update_period) == (None, None)


# -- over real HTTP, on SQLite and PostgreSQL ---------------------------------------------


def dated(name: str, hours_ago: list[float]) -> list[dict[str, str]]:
    now = datetime.now(UTC)
    return [
        {
            "id": f"{name}-{n}",
            "title": f"Football results round {n} for the {name} league",
            "summary": "Scores and tables.",
            "link": f"https://{name}.test/{n}",
            "published": rfc822(now - timedelta(hours=h)),
        }
        for n, h in enumerate(hours_ago)
    ]


def with_ttl(body: bytes, minutes: int) -> bytes:
    return body.replace(b"<channel>", f"<channel><ttl>{minutes}</ttl>".encode(), 1)


def waits(engine: Engine, name: str) -> tuple[timedelta, str | None]:
    row = feed_row(engine, name)
    assert row.next_poll_at is not None and row.last_polled_at is not None
    return row.next_poll_at - row.last_polled_at, row.poll_reason


def test_a_poll_cycle_stores_each_feeds_next_poll_and_why(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    quick = rss(dated("quick", [0.1 * n + 0.05 for n in range(10)]))  # every 6 minutes
    daily = rss(dated("daily", [24 * n + 1 for n in range(5)]))  # one a day
    feeds = [
        ("quick", feed_server.add("/quick.xml", body=quick)),
        ("daily", feed_server.add("/daily.xml", body=daily)),
        ("ttl", feed_server.add("/ttl.xml", body=with_ttl(quick, 90), etag=True)),
        (
            "cached",
            feed_server.add(
                "/cached.xml", body=quick, etag=True, headers={"Cache-Control": "max-age=7200"}
            ),
        ),
        ("missing", feed_server.add("/missing.xml", status=404)),
        ("empty", feed_server.add("/empty.xml", body=rss([]))),
    ]
    settings = settings_for(tmp_path, database_url, feeds, poll_interval=300)
    cycle(settings, engine)
    assert waits(engine, "quick") == (timedelta(seconds=300), "about 240 entries a day")
    assert waits(engine, "daily") == (timedelta(hours=1), "about 1 entry a day")
    assert waits(engine, "ttl") == (timedelta(minutes=90), "ttl 90 min")
    assert waits(engine, "cached") == (timedelta(hours=2), "Cache-Control max-age 2 h")
    assert feed_row(engine, "missing").poll_reason == "backing off after 1 failure"
    assert waits(engine, "empty") == (timedelta(seconds=300), "no dated entries yet")
    empty = feed_row(engine, "empty")
    assert empty.first_polled_at == empty.last_polled_at and empty.newest_entry_at is None
    daily_row = feed_row(engine, "daily")
    assert daily_row.entry_gap_seconds == DAY and daily_row.newest_entry_at is not None

    # answered 304 next time: the stored <ttl> and the 304's Cache-Control still count
    feed_server.reset_stats()
    cycle(settings, engine)
    assert feed_server.stats().not_modified == 2
    assert waits(engine, "ttl") == (timedelta(minutes=90), "ttl 90 min")
    assert waits(engine, "cached") == (timedelta(hours=2), "Cache-Control max-age 2 h")
    assert waits(engine, "missing")[1] == "backing off after 2 failures"

    # a scheduled cycle right after polls none of them: none is due yet
    feed_server.reset_stats()
    cycle(settings, engine, force=False)
    assert feed_server.stats().requests == 0

    # `python -m bot feeds` shows each feed's interval and why
    env = {**os.environ, "SAHEL_WATCH_CONFIG": settings.config_path, "DATABASE_URL": database_url}
    shown = subprocess.run(
        [sys.executable, "-m", "bot", "feeds"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    lines = {line.split("  ")[0].strip(): line for line in shown.stdout.splitlines()[2:]}
    assert "interval (why)" in shown.stdout.splitlines()[0]
    assert "  5 min (about 240 entries a day)" in lines["quick"]
    assert "  60 min (about 1 entry a day)" in lines["daily"]
    assert "  90 min (ttl 90 min)" in lines["ttl"]
    assert "  2 h (Cache-Control max-age 2 h)" in lines["cached"]
    assert "  2 min (backing off after 2 failures)" in lines["missing"]


def test_a_scheduled_cycle_takes_feeds_due_within_a_quarter_interval(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    body = rss(dated("quick", [0.1, 0.2]))
    feeds = [(name, feed_server.add(f"/{name}.xml", body=body)) for name in ("soon", "later")]
    settings = settings_for(tmp_path, database_url, feeds, poll_interval=300)
    now = datetime.now(UTC)
    with Session(engine) as session:
        feed_store.sync_feeds(session, settings.feed_specs())
        for name, ahead in (("soon", 60), ("later", 120)):
            session.execute(
                update(Feed)
                .where(col(Feed.name) == name)
                .values(
                    last_polled_at=now - timedelta(hours=1),
                    next_poll_at=now + timedelta(seconds=ahead),
                )
            )
        session.commit()

    async def scheduled() -> None:  # as `run` calls it: spacing 3/4 of the interval
        pipeline = Pipeline.create(settings, engine)
        try:
            await pipeline.run_cycle(spacing=225)
        finally:
            await pipeline.aclose()

    asyncio.run(scheduled())
    assert feed_server.hits("/soon.xml") == 1 and feed_server.hits("/later.xml") == 0
