"""The poll cycle end to end over real HTTP (loopback feed server) and a real database."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.decide.embed import load_embedder
from bot.feeds.fetch import FetchOutcome, Validators
from bot.pipeline import CycleReport, FeedResult, Pipeline
from bot.records import Entry, Verdict
from bot.settings import Settings, load_settings
from bot.storage.db import create_schema, make_engine
from bot.storage.models import Delivery, Feed, Item, PollRun, Story, Subscriber
from tests.servers.bot_fixtures import wait_until
from tests.servers.feed_server import FeedServer
from tests.servers.feedgen import entity_bomb, rss

REPO = Path(__file__).resolve().parent.parent


def rfc822(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


NOW = datetime.now(UTC)

AIRSPACE = {
    "id": "t-airspace",
    "title": "Algeria shuts its airspace to flights from and to Mali",
    "summary": "<p>Algeria closed its airspace with immediate effect to all aircraft coming from "
    "or bound for Mali, the defence ministry said, citing repeated violations.</p>",
    "link": "https://wire.test/algeria-airspace?utm_source=rss",
    "published": rfc822(NOW - timedelta(hours=3)),
}
AIRSPACE_FR = {
    "id": "t-airspace-fr",
    "title": "L'Algérie ferme son espace aérien aux vols en provenance ou à destination du Mali",
    "summary": "Alger a annoncé la fermeture immédiate de son espace aérien à tous les aéronefs en "
    "provenance ou à destination du Mali, invoquant des violations répétées.",
    "link": "https://afrique.test/algerie-espace-aerien",
    "published": rfc822(NOW - timedelta(hours=2)),
}
SEED_REPRINT = {
    "id": "t-seed",
    "title": "Algeria says it shot down Malian drone near Tin Zaouatine",
    "summary": "Algeria's defence ministry said its air defence units shot down a Malian "
    "surveillance drone near Tin Zaouatine overnight from 31 March to 1 April, saying it had "
    "entered Algerian airspace by more than 2 km.",
    "link": "https://wire.test/drone",
    "published": rfc822(NOW - timedelta(hours=4)),
}
CRYPTO = {
    "id": "t-aes",
    "title": "Nonce-reuse bug in embedded crypto library undermines AES-GCM",
    "summary": "Researchers disclosed a flaw that reuses nonces in AES-GCM mode after a reboot.",
    "link": "https://tech.test/aes-gcm",
    "published": rfc822(NOW - timedelta(hours=1)),
}
OLD_SUMMIT = {
    "id": "t-old",
    "title": "AES summit in Bamako hands rotating presidency to Burkina Faso's Traore",
    "summary": "Heads of state of the Alliance of Sahel States, meeting in Bamako, handed the "
    "confederation's rotating presidency to Captain Ibrahim Traoré.",
    "link": "https://wire.test/summit",
    "published": rfc822(NOW - timedelta(days=5)),
}


def settings_for(
    tmp_path: Path,
    database_url: str,
    feeds: list[tuple[str, str]],
    limits: dict[str, Any] | None = None,
    **top: Any,
) -> Settings:
    lines = [f'seeds_dir = "{REPO / "seeds"}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in top.items()]
    lines += ["[limits]", "total_timeout = 3.0", "read_timeout = 2.0", "max_body_bytes = 2000000"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in (limits or {}).items()]
    for name, url in feeds:
        lines += ["[[feeds]]", f'url = "{url}"', f'name = "{name}"']
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_settings({"SAHEL_WATCH_CONFIG": str(path), "DATABASE_URL": database_url})


def cycle(settings: Settings, engine: Engine, *, force: bool = True) -> CycleReport:
    async def go() -> CycleReport:
        pipeline = Pipeline.create(settings, engine)
        try:
            return await pipeline.run_cycle(force=force)
        finally:
            await pipeline.aclose()

    return asyncio.run(go())


def decisions(report: CycleReport) -> dict[str, str]:
    return {v.entry.guid: v.decision for v in report.verdicts}


def count(engine: Engine, model: Any) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def feed_row(engine: Engine, name: str) -> Feed:
    with Session(engine) as session:
        return session.execute(select(Feed).where(Feed.name == name)).scalar_one()


def test_cycle_decides_stores_and_skips_unchanged_feeds(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    with Session(engine) as session:
        session.add(Subscriber(chat_id=111))
        session.add(Subscriber(chat_id=222))
        session.add(Subscriber(chat_id=333, active=False))
        session.commit()
    url = feed_server.add(
        "/wire.xml", body=rss([SEED_REPRINT, AIRSPACE, CRYPTO], title="wire"), etag=True
    )
    url_fr = feed_server.add("/fr.xml", body=rss([AIRSPACE_FR], title="fr"), etag=True)
    settings = settings_for(tmp_path, database_url, [("wire", url), ("afrique", url_fr)])

    first = cycle(settings, engine)
    assert decisions(first) == {
        "t-seed": "seed",
        "t-airspace": "new",
        "t-aes": "irrelevant",
        "t-airspace-fr": "duplicate",
    }
    by_guid = {v.entry.guid: v for v in first.verdicts}
    assert by_guid["t-airspace-fr"].story_id == by_guid["t-airspace"].story_id
    assert any("matched" in r for r in by_guid["t-airspace"].reasons)
    assert by_guid["t-airspace"].entry.link == "https://wire.test/algeria-airspace"
    # one story, and its outbox rows for the two active subscribers, written together
    assert count(engine, Story) == 1
    assert count(engine, Delivery) == 2
    assert count(engine, Item) == 4
    with Session(engine) as session:
        story = session.execute(select(Story)).scalar_one()
    source = "Algeria closed its airspace with immediate effect to all aircraft coming from or "
    assert story.summary.startswith(source)  # extractive: taken from the item, not invented
    assert story.title == AIRSPACE["title"] and story.feed_name == "wire"

    # nothing changed: conditional GET answers 304 and nothing is decided again
    second = cycle(settings, engine)
    assert second.verdicts == ()
    assert feed_server.stats().not_modified >= 2
    assert feed_row(engine, "wire").last_status == "not_modified"
    assert count(engine, Item) == 4

    # one new entry: only it is decided; the old ones are recognised by guid
    newer = dict(
        AIRSPACE,
        id="t-icj",
        title="Mali takes Algeria to the International Court of Justice over drone downing",
        link="https://wire.test/icj",
        summary="Mali said it had filed an application at the International Court of "
        "Justice in The Hague accusing Algeria of violating its sovereignty.",
        published=rfc822(NOW - timedelta(minutes=30)),
    )
    feed_server.set_body("/wire.xml", rss([SEED_REPRINT, AIRSPACE, CRYPTO, newer], title="wire"))
    third = cycle(settings, engine)
    assert decisions(third) == {
        "t-seed": "seen",
        "t-airspace": "seen",
        "t-aes": "seen",
        "t-icj": "new",
    }
    assert count(engine, Story) == 2
    assert count(engine, Delivery) == 4
    with Session(engine) as session:
        runs = session.execute(select(PollRun)).scalars().all()
    assert len(runs) == 3 and all(r.finished_at is not None for r in runs)


def test_a_cycle_reuses_each_hosts_connection(
    feed_server_factory: Callable[..., FeedServer],
    tmp_path: Path,
    database_url: str,
    engine: Engine,
) -> None:
    """12 hosts, 4 feeds each, one request per host at a time, 12 in flight: a feed goes
    on the connection its host's last answer left open, so 48 requests use 12 connections
    (the pool closed every idle connection past 10 in the pool: 48 connections)."""
    server = feed_server_factory(latency=0.02, hosts=12)
    feeds = [(f"f{n}", server.url(f"/f{n}.xml", host=n % 12)) for n in range(48)]
    for name, _url in feeds:
        server.add(f"/{name}.xml", body=rss([], title=name))
    limits = {"concurrency": 12, "per_host_concurrency": 1}
    report = cycle(settings_for(tmp_path, database_url, feeds, limits=limits), engine)

    stats = server.stats()
    assert report.feeds_polled == 48 and report.feeds_failed == 0
    assert stats.requests == 48 and stats.max_in_flight == 12
    assert set(stats.max_in_flight_by_host.values()) == {1}
    assert stats.connections == 12


def test_a_feed_waits_for_its_hosts_turn_without_holding_a_place(
    feed_server_factory: Callable[..., FeedServer],
    tmp_path: Path,
    database_url: str,
    engine: Engine,
) -> None:
    """Listed first, a host's many feeds take no more places than its host allows: with 4
    in flight and 2 per host, the other host's feeds start in the first round, not once
    the first host's feeds are all but done."""
    server = feed_server_factory(latency=0.1, hosts=2)
    feeds = [(f"a{n}", server.url(f"/a{n}.xml", host=0)) for n in range(12)]
    feeds += [(f"b{n}", server.url(f"/b{n}.xml", host=1)) for n in range(4)]
    for name, _url in feeds:
        server.add(f"/{name}.xml", body=rss([], title=name))
    limits = {"concurrency": 4, "per_host_concurrency": 2}
    report = cycle(settings_for(tmp_path, database_url, feeds, limits=limits), engine)

    assert report.feeds_polled == 16 and report.feeds_failed == 0
    first_round = server.requests()[:4]
    assert sorted(r.host for r in first_round) == ["127.0.0.1"] * 2 + ["127.0.0.2"] * 2
    assert server.stats().max_in_flight_by_host == {"127.0.0.1": 2, "127.0.0.2": 2}


def test_broken_feeds_do_not_stop_the_cycle(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    good = feed_server.add("/good.xml", body=rss([AIRSPACE], title="good"))
    feeds = [
        ("good", good),
        ("missing", feed_server.add("/404", status=404, body=b"no")),
        ("broken", feed_server.add("/500", status=500, body=b"oops")),
        ("limited", feed_server.add("/429", status=429, headers={"Retry-After": "600"})),
        (
            "html",
            feed_server.add(
                "/html", body=b"<html><body><p>Hello</p></body></html>", content_type="text/html"
            ),
        ),
        ("bomb", feed_server.add("/bomb", body=entity_bomb())),
        ("huge", feed_server.add("/huge", size=50_000_000)),
        ("endless", feed_server.add("/endless", endless=True, chunk_interval=0.05)),
        ("loop", feed_server.add("/loop", redirect_to="/loop", status=302)),
    ]
    settings = settings_for(tmp_path, database_url, feeds)
    report = cycle(settings, engine)
    assert decisions(report)["t-airspace"] == "new"
    # the entity bomb is defused before parsing: its one entry is harmless and bounded
    bombed = [v for v in report.verdicts if v.entry.feed_name == "bomb"]
    assert [v.decision for v in bombed] == ["irrelevant"]
    assert bombed[0].entry.title.startswith("&big;") and len(bombed[0].entry.title) <= 1000
    assert len(report.verdicts) == 2
    assert set(report.feed_errors) == {
        "missing",
        "broken",
        "limited",
        "html",
        "huge",
        "endless",
        "loop",
    }
    for name in ("good", "bomb"):
        row = feed_row(engine, name)
        assert row.last_status == "ok" and row.consecutive_failures == 0, name
    for name in ("missing", "broken", "limited", "html", "huge", "endless", "loop"):
        row = feed_row(engine, name)
        assert row.last_status == "error" and row.last_error, name
        assert row.consecutive_failures == 1
        assert row.next_poll_at is not None and row.next_poll_at > NOW
    assert "404" in (feed_row(engine, "missing").last_error or "")
    # Retry-After wins over the first backoff step
    limited = feed_row(engine, "limited")
    assert limited.next_poll_at is not None
    assert limited.next_poll_at - (limited.last_polled_at or NOW) >= timedelta(seconds=590)

    # a scheduled (not forced) cycle skips the feeds that are backing off, and the good one,
    # polled a moment ago, until its interval has passed (tests/test_schedule.py)
    feed_server.reset_stats()
    cycle(settings, engine, force=False)
    assert feed_server.hits("/404") == 0 and feed_server.hits("/good.xml") == 0


def test_stale_entries_are_stored_but_never_alert(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    with Session(engine) as session:
        session.add(Subscriber(chat_id=1))
        session.commit()
    old_dup = dict(
        OLD_SUMMIT,
        id="t-old-fr",
        link="https://afrique.test/sommet",
        title="Sommet de l'AES à Bamako : Ibrahim Traoré prend la présidence",
        summary="Réunis à Bamako, les chefs d'État de l'Alliance des États du Sahel "
        "ont confié la présidence tournante au capitaine Ibrahim Traoré.",
        published=rfc822(NOW - timedelta(days=4)),
    )
    url = feed_server.add("/f.xml", body=rss([OLD_SUMMIT, old_dup, AIRSPACE], title="f"))
    settings = settings_for(tmp_path, database_url, [("f", url)], max_age_hours=48)
    report = cycle(settings, engine)
    got = decisions(report)
    assert got["t-old"] == "stale"
    assert got["t-old-fr"] == "duplicate"  # indexed: the old story's copy joins it
    assert got["t-airspace"] == "new"
    with Session(engine) as session:
        stories = session.execute(select(Story).order_by(Story.id)).scalars().all()
        assert [s.alerted for s in stories] == [False, True]
        assert count(engine, Delivery) == 1
        stale = session.execute(select(Item).where(Item.decision == "stale")).scalar_one()
        assert stale.story_id == stories[0].id and stale.vector  # kept for the story index


def test_locked_database_keeps_nothing_half_written_and_retries(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    db_file = tmp_path / "locked.db"
    database_url = f"sqlite:///{db_file}"
    engine = make_engine(database_url)
    create_schema(engine)
    url = feed_server.add("/f.xml", body=rss([AIRSPACE, SEED_REPRINT], title="f"), etag=True)
    settings = settings_for(tmp_path, database_url, [("f", url)])
    blocker = sqlite3.connect(db_file, timeout=0.1)

    async def scenario() -> tuple[CycleReport, int, int, CycleReport]:
        pipeline = Pipeline.create(settings, engine)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                locked = await pipeline.run_cycle(force=True)
            finally:
                blocker.rollback()
            stories, items = count(engine, Story), count(engine, Item)
            # the feed's validators were not kept, so the next cycle gets the body again
            return locked, stories, items, await pipeline.run_cycle(force=True)
        finally:
            await pipeline.aclose()

    try:
        locked, stories, items, again = asyncio.run(scenario())
    finally:
        blocker.close()
    assert locked.error is not None and "database is locked" in locked.error
    assert (stories, items) == (0, 0)
    assert again.error is None
    assert decisions(again) == {"t-airspace": "new", "t-seed": "seed"}
    assert count(engine, Story) == 1
    engine.dispose()


def test_database_gone_is_a_clear_error(feed_server: FeedServer, tmp_path: Path) -> None:
    url = feed_server.add("/f.xml", body=rss([AIRSPACE], title="f"))
    settings = settings_for(tmp_path, "postgresql://postgres@127.0.0.1:1/none", [("f", url)])
    env = {
        **os.environ,
        "SAHEL_WATCH_CONFIG": settings.config_path,
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "poll-once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "database" in proc.stderr.lower()


@pytest.mark.slow
def test_poll_once_and_feeds_commands(
    feed_server: FeedServer, tmp_path: Path, database_url: str
) -> None:
    url = feed_server.add("/f.xml", body=rss([AIRSPACE, CRYPTO], title="f"))
    bad = feed_server.add("/bad", status=500, body=b"x")
    settings = settings_for(tmp_path, database_url, [("wire", url), ("bad feed", bad)])
    env = {**os.environ, "SAHEL_WATCH_CONFIG": settings.config_path, "DATABASE_URL": database_url}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    table = subprocess.run(
        [sys.executable, "-m", "bot", "poll-once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert table.returncode == 0, table.stderr
    assert "decision" in table.stdout and "new" in table.stdout and "irrelevant" in table.stdout
    assert "failed: bad feed: HTTP 500" in table.stdout
    health = subprocess.run(
        [sys.executable, "-m", "bot", "feeds"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert health.returncode == 0, health.stderr
    lines = {line.split("  ")[0].strip(): line for line in health.stdout.splitlines()[2:]}
    assert "ok (200)" in lines["wire"]
    assert "error (500)" in lines["bad feed"] and "HTTP 500" in lines["bad feed"]


def test_entries_without_links_are_not_duplicates_of_each_other(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    body = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>no links</title>
<item><guid isPermaLink="false">a1</guid><title>{AIRSPACE["title"]}</title>
<description>{AIRSPACE["summary"].replace("<", "&lt;")}</description>
<pubDate>{AIRSPACE["published"]}</pubDate></item>
<item><guid isPermaLink="false">a2</guid>
<title>Niger nationalises Orano-run Somair uranium mine</title>
<description>Niger's military government said it was nationalising Somair, the uranium mining
company near Arlit operated by France's Orano.</description>
<pubDate>{AIRSPACE_FR["published"]}</pubDate></item>
</channel></rss>""".encode()
    url = feed_server.add("/nolinks.xml", body=body)
    settings = settings_for(tmp_path, database_url, [("nolinks", url)])
    report = cycle(settings, engine)
    assert decisions(report) == {"a1": "new", "a2": "new"}
    assert {v.entry.link for v in report.verdicts} == {""}  # no link: not the feed's URL


def test_replica_cycles_share_feeds_and_reclaim_a_dead_replicas_lease(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """Spacing keeps a second replica off feeds just polled; a dead local owner's lease is
    taken over at once, a live one's never."""
    urls = [feed_server.add(f"/r{n}.xml", body=rss([], title=f"r{n}")) for n in range(2)]
    settings = settings_for(tmp_path, database_url, [(f"r{n}", u) for n, u in enumerate(urls)])
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    async def scenario() -> list[int]:
        one, two = Pipeline.create(settings, engine), Pipeline.create(settings, engine)
        host, namespace, _, _ = one.owner.split("|")
        try:
            polled = [(await one.run_cycle(spacing=60)).feeds_polled]
            polled.append((await two.run_cycle(spacing=60)).feeds_polled)  # polled just now
            polled.append((await two.run_cycle(force=True)).feeds_polled)  # no spacing
            for url, pid in zip(urls, (exited.stdout.strip(), alive.pid), strict=True):
                with Session(engine) as session:
                    feed = session.execute(select(Feed).where(col(Feed.url) == url)).scalar_one()
                    feed.lease_owner = f"{host}|{namespace}|{pid}|crashed"
                    feed.lease_until = datetime.now(UTC) + timedelta(hours=1)
                    session.add(feed)
                    session.commit()
            polled.append((await one.run_cycle(force=True)).feeds_polled)  # the dead one's
            return polled
        finally:
            await one.aclose()
            await two.aclose()

    try:
        assert asyncio.run(scenario()) == [2, 0, 2, 1]
    finally:
        alive.kill()
        alive.wait()
    assert feed_server.hits("/r0.xml") == 3 and feed_server.hits("/r1.xml") == 2


def test_a_redirect_to_a_metadata_address_fails_the_feed_with_the_reason(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    good = feed_server.add("/good.xml", body=rss([AIRSPACE], title="good"))
    sneaky = feed_server.add("/sneaky", redirect_to="http://169.254.169.254/latest/meta-data/")
    settings = settings_for(tmp_path, database_url, [("good", good), ("sneaky", sneaky)])
    report = cycle(settings, engine)
    assert decisions(report) == {"t-airspace": "new"}
    reason = "refused address 169.254.169.254 (cloud metadata or link-local)"
    assert report.feed_errors == {"sneaky": reason}
    row = feed_row(engine, "sneaky")
    assert row.last_status == "error" and row.last_error == reason
    assert feed_row(engine, "good").last_status == "ok"


# --- fault isolation: one feed or one entry never stops the others ------------------------

POISON_MESSAGE = "poisoned row refused"


def refuse_poisoned_items(engine: Engine) -> None:
    """A trigger that makes the database itself refuse an item whose title says "poison"."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION '{POISON_MESSAGE}'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON item FOR EACH ROW "
                "WHEN (strpos(NEW.title, 'poison') > 0) EXECUTE FUNCTION refuse_poison()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON item WHEN instr(NEW.title, 'poison') > 0 "
                f"BEGIN SELECT RAISE(ABORT, '{POISON_MESSAGE}'); END"
            )


class BuggyStage(Pipeline):
    """A pipeline whose store stage raises (not a database error) on one entry, after its
    story and delivery rows were written: the kind of bug a hostile entry finds."""

    def _record(
        self, session: Session, feed_id: int, verdict: Verdict, tkey: str, now: datetime
    ) -> None:
        if verdict.entry.guid == "t-boom":
            raise UnicodeEncodeError("utf-8", verdict.entry.title, 0, 1, "surrogates not allowed")
        super()._record(session, feed_id, verdict, tkey, now)


def hostile_rss() -> bytes:
    """Entries that broke whole cycles on PostgreSQL: a guid of 999 emoji, a 1,900-character
    CJK link, an emoji as two surrogate references, a 3,000-digit token, a NUL reference."""
    items = [
        ("😀" * 999, "Emoji guid item about cooking", "https://hostile.test/emoji"),
        ("cjk", "CJK link item about gardening", "https://hostile.test/" + "中" * 1900),
        ("pair", "Surrogate pair &#55357;&#56832; item", "https://hostile.test/pair"),
        ("long", "Token " + "7" * 3000, "https://hostile.test/long"),
        ("nul&#0;guid", "NUL guid item about sailing", "https://hostile.test/nul"),
        ("poison", "A poisoned entry about knitting", "https://hostile.test/poison"),
    ]
    body = "".join(
        f"<item><guid isPermaLink='false'>{guid}</guid><title>{title}</title>"
        f"<link>{link}</link><description>Nothing to see.</description></item>"
        for guid, title, link in items
    )
    document = "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
    document += f"<title>hostile</title>{body}</channel></rss>"
    return document.encode("utf-8")


def leased(engine: Engine) -> list[str]:
    with Session(engine) as session:
        rows = session.execute(select(Feed.name).where(col(Feed.lease_owner).is_not(None)))
        return list(rows.scalars())


def test_hostile_entries_stay_in_their_feed(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """A row the database refuses and a stage that raises each fail their own feed; the good
    feed is stored and alerted in the same cycle; leases are free; `feeds` shows why."""
    with Session(engine) as session:
        session.add(Subscriber(chat_id=7))
        session.commit()
    refuse_poisoned_items(engine)
    buggy_item = {
        "id": "t-boom",
        "title": "Niger nationalises Orano-run Somair uranium mine",
        "summary": "Niger's military government said it was nationalising Somair, the uranium "
        "mining company near Arlit operated by France's Orano.",
        "link": "https://wire.test/somair",
        "published": rfc822(NOW - timedelta(hours=2)),
    }
    feeds = [
        ("good", feed_server.add("/good.xml", body=rss([AIRSPACE], title="good"))),
        ("hostile", feed_server.add("/hostile.xml", body=hostile_rss())),
        ("buggy", feed_server.add("/buggy.xml", body=rss([buggy_item, SEED_REPRINT]))),
    ]
    settings = settings_for(tmp_path, database_url, feeds)

    async def two_cycles() -> tuple[CycleReport, CycleReport]:
        pipeline = BuggyStage(settings, engine)
        try:
            first = await pipeline.run_cycle(force=True)
            with Session(engine) as session:  # the good feed's interval has passed
                due = update(Feed).where(col(Feed.name) == "good").values(next_poll_at=NOW)
                session.execute(due)
                session.commit()
            return first, await pipeline.run_cycle()
        finally:
            await pipeline.aclose()

    first, second = asyncio.run(two_cycles())
    assert first.error is None
    got = decisions(first)
    assert got["t-airspace"] == "new" and got["t-seed"] == "seed"
    assert "t-boom" not in got and "poison" not in got
    # every other hostile entry was stored, keys bounded
    assert sum(v.entry.feed_name == "hostile" for v in first.verdicts) == 5
    # the good feed's alert, for the one subscriber; the buggy entry's story and delivery
    # rows were rolled back with it
    assert count(engine, Delivery) == 1 and count(engine, Story) == 1
    assert sorted(first.feed_errors) == ["buggy", "hostile"]
    assert POISON_MESSAGE in first.feed_errors["hostile"]
    assert "UnicodeEncodeError" in first.feed_errors["buggy"]
    assert leased(engine) == []
    for name in ("hostile", "buggy"):
        row = feed_row(engine, name)
        assert row.last_status == "error" and row.consecutive_failures == 1, name
        assert row.next_poll_at is not None and row.next_poll_at > datetime.now(UTC), name
        assert row.etag is None and row.content_hash is None, name  # fetched again next time
    assert feed_row(engine, "good").last_status == "ok"
    # the next cycle polls again: the good feed is due, the failed ones back off
    assert second.error is None and second.feeds_polled == 1
    assert feed_server.hits("/good.xml") == 2 and feed_server.hits("/hostile.xml") == 1

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
    assert "error (200)" in lines["hostile"] and "entry 'poison' not stored" in lines["hostile"]
    assert "error (200)" in lines["buggy"] and "UnicodeEncodeError" in lines["buggy"]
    assert "ok (200)" in lines["good"]


def built(feed_url: str, guid: str, title: str, **fields: Any) -> Entry:
    values: dict[str, Any] = {
        "feed_url": feed_url,
        "feed_name": "built",
        "guid": guid,
        "title": title,
        "text": fields.pop("text", "Nothing here decides anything."),
        "link": fields.pop("link", f"https://built.test/{len(guid)}-{len(title)}"),
        "published": fields.pop("published", datetime.now(UTC) - timedelta(hours=1)),
        "language": "en",
    }
    return Entry(**(values | fields))


def test_the_store_takes_any_entry_whatever_the_parser_let_through(
    tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """Entries built here (not parsed) reach the decide-and-store stage directly: NUL, lone
    surrogates, oversized keys and a date in year 9999 are stored beside a good entry, and
    found again by their exact keys."""
    good_url, bad_url = "http://feeds.test/good.xml", "http://feeds.test/bad.xml"
    settings = settings_for(tmp_path, database_url, [("good", good_url), ("bad", bad_url)])
    with Session(engine) as session:
        session.add(Subscriber(chat_id=9))
        session.commit()
    airspace = "Algeria closed its airspace to all flights from and to Mali, the ministry said."
    hostile = [
        built(bad_url, "nul\x00guid", "Cooking with \x00 NUL", link="https://b.test/\x00x"),
        built(bad_url, "lone\ud800", "A lone half \udc00 of an emoji"),
        built(bad_url, "😀" * 999, "Emoji guid about gardening"),
        built(bad_url, "cjk", "CJK link about sailing", link="https://b.test/" + "中" * 1900),
        built(bad_url, "token", "Token " + "x" * 3000, text="Code " + "y" * 3000),
        built(
            bad_url,
            "digits",
            "Algeria shuts its airspace to Mali, code " + "7" * 3000,
            text=airspace + " Reference " + "9" * 3000 + ".",
            published=datetime(9999, 12, 31, tzinfo=UTC),
        ),
    ]
    good = built(
        good_url,
        "good",
        "Niger nationalises the Orano-run Somair uranium mine",
        text="Niger's military government said it was nationalising Somair, the uranium "
        "mining company near Arlit operated by France's Orano.",
    )

    def decide_and_store(entries_by_feed: dict[str, list[Entry]]) -> CycleReport:
        async def go() -> CycleReport:
            pipeline = Pipeline.create(settings, engine)
            try:
                now = datetime.now(UTC)
                feeds = await asyncio.to_thread(pipeline._claim, now, True, 0.0)
                assert sorted(f.url for f in feeds) == sorted(entries_by_feed)
                results = [
                    FeedResult(f, changed(f.url), entries=tuple(entries_by_feed[f.url]))
                    for f in feeds
                ]
                return await asyncio.to_thread(pipeline._decide_and_store, now, results)
            finally:
                await pipeline.aclose()

        return asyncio.run(go())

    first = decide_and_store({good_url: [good], bad_url: hostile})
    assert first.feed_errors == {}
    got = {v.entry.title[:20]: v.decision for v in first.verdicts}
    assert len(got) == 7 and got["Niger nationalises t"] == "new"
    assert got["Algeria shuts its ai"] == "new"  # undated: a year-9999 date is not trusted
    assert count(engine, Delivery) == 2
    with Session(engine) as session:
        items = session.execute(select(Item)).scalars().all()
        assert all("\x00" not in i.title + i.guid + i.link + i.text for i in items)
        dated = {i.guid: i.published for i in items}
        keys = [i.title_key for i in items] + [i.guid for i in items] + [i.link for i in items]
    assert dated["digits"] is None
    assert dated["sha256:" + hashlib.sha256(("😀" * 999).encode()).hexdigest()]
    assert max(len(k.encode()) for k in keys) <= 2000
    # the same entries again: every one is recognised by its (bounded) guid
    again = decide_and_store({good_url: [good], bad_url: hostile})
    assert {v.decision for v in again.verdicts} == {"seen"} and len(again.verdicts) == 7
    assert count(engine, Item) == 7


def changed(url: str) -> FetchOutcome:
    return FetchOutcome(
        url=url,
        status="changed",
        body=b"",
        headers={},
        http_status=200,
        validators=Validators(None, None, None),
        error=None,
        retry_after=None,
        elapsed=0.0,
    )


def test_leases_are_released_when_a_cycle_is_cancelled(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """Shutdown cancels a cycle stuck on a slow feed: the feeds are free at once."""
    feeds = [
        ("endless", feed_server.add("/endless", endless=True, chunk_interval=0.05)),
        ("good", feed_server.add("/good.xml", body=rss([AIRSPACE]))),
    ]
    settings = settings_for(tmp_path, database_url, feeds)

    async def scenario() -> list[str]:
        pipeline = Pipeline.create(settings, engine)
        try:
            task = asyncio.create_task(pipeline.run_cycle(force=True))
            await wait_until(lambda: feed_server.hits("/endless") >= 1)
            held = leased(engine)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return held
        finally:
            await pipeline.aclose()

    assert sorted(asyncio.run(scenario())) == ["endless", "good"]
    assert leased(engine) == []


def test_a_failed_cycle_leaves_nothing_behind(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """The database refuses the cycle's last write, after a story was decided: nothing of the
    cycle stays, in the database or in the pipeline's memory, and the next cycle alerts it."""
    with Session(engine) as session:
        session.add(Subscriber(chat_id=5))
        session.commit()
    url = feed_server.add("/f.xml", body=rss([AIRSPACE], title="f"))
    settings = settings_for(tmp_path, database_url, [("f", url)])
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE UPDATE OF last_status ON feed "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE UPDATE OF last_status ON feed "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )

    async def scenario() -> tuple[CycleReport, CycleReport]:
        pipeline = Pipeline.create(settings, engine)
        try:
            failed = await pipeline.run_cycle(force=True)
            with engine.begin() as conn:
                on_pg = conn.dialect.name == "postgresql"
                conn.exec_driver_sql("DROP TRIGGER refuse" + (" ON feed" if on_pg else ""))
            return failed, await pipeline.run_cycle(force=True)
        finally:
            await pipeline.aclose()

    failed, again = asyncio.run(scenario())
    assert failed.error is not None and "disk full" in failed.error
    assert again.error is None and decisions(again) == {"t-airspace": "new"}
    assert count(engine, Story) == 1 and count(engine, Delivery) == 1
    with Session(engine) as session:
        runs = session.execute(select(PollRun).order_by(col(PollRun.id))).scalars().all()
    assert [r.error is not None for r in runs] == [True, False]


def test_what_lives_as_long_as_the_process_is_left_out_of_full_collections(
    tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """A built pipeline freezes what the process holds (gc.freeze), the embedding model among
    it, so the cycles' collections no longer walk it."""
    settings = settings_for(tmp_path, database_url, [("f", "http://127.0.0.1:9/f.xml")])
    pipeline = Pipeline.create(settings, engine)
    asyncio.run(pipeline.aclose())
    assert gc.get_freeze_count() > 0
    embedder = load_embedder()
    assert not any(o is embedder for o in gc.get_objects())


def test_a_cycle_asked_for_counts_keeps_no_verdicts(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """`run`'s cycles report each decision's count, not every entry's verdict, so their memory
    does not grow with their entries; what they store is the same."""
    url = feed_server.add("/wire.xml", body=rss([SEED_REPRINT, AIRSPACE, CRYPTO], title="wire"))
    settings = settings_for(tmp_path, database_url, [("wire", url)])

    async def go() -> CycleReport:
        pipeline = Pipeline.create(settings, engine)
        try:
            return await pipeline.run_cycle(force=True, verdicts=False)
        finally:
            await pipeline.aclose()

    report = asyncio.run(go())
    assert report.verdicts == ()
    assert report.decisions == {"seed": 1, "new": 1, "irrelevant": 1}
    assert len(report.new_story_ids) == 1
    assert count(engine, Item) == 3 and count(engine, Story) == 1
    with Session(engine) as session:
        run = session.execute(select(PollRun)).scalar_one()
    assert (run.entries, run.new_stories) == (3, 1)


def test_a_feed_that_fails_to_parse_keeps_no_body_for_the_rest_of_the_cycle(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """The cycle holds every feed's result until it stores them: a result that kept its body
    made a cycle over 1,000 unparseable feeds hold 186 MB of bodies."""
    page = b"<html><body>" + b"<p>not a feed</p>" * 10_000 + b"</body></html>"
    url = feed_server.add("/page", body=page, content_type="text/html")
    settings = settings_for(tmp_path, database_url, [("page", url)])
    held: list[FeedResult] = []

    class Watching(Pipeline):
        def _decide_and_store(self, started: Any, results: Any, *args: Any, **kw: Any) -> Any:
            held.extend(results)
            return super()._decide_and_store(started, results, *args, **kw)

    async def go() -> CycleReport:
        pipeline = Watching(settings, engine)
        try:
            return await pipeline.run_cycle(force=True)
        finally:
            await pipeline.aclose()

    report = asyncio.run(go())
    assert set(report.feed_errors) == {"page"}
    (result,) = held
    assert result.error and result.outcome.status == "changed"
    assert result.outcome.body is None
