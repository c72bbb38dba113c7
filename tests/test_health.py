from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.health import check_health
from bot.pipeline import CycleReport, Pipeline
from bot.settings import Settings, load_settings
from bot.storage.models import Feed, PollRun, utcnow
from tests.servers.feed_server import FeedServer
from tests.servers.feedgen import rss

REPO = Path(__file__).resolve().parent.parent


def settings_for(tmp_path: Path, database_url: str) -> Settings:
    path = tmp_path / "c.toml"
    path.write_text('poll_interval = 60\n[[feeds]]\nurl = "https://x.test/rss"\n')
    return load_settings({"SAHEL_WATCH_CONFIG": str(path), "DATABASE_URL": database_url})


def add_run(engine: Engine, finished_ago: timedelta | None) -> None:
    now = utcnow()
    with Session(engine) as session:
        finished = None if finished_ago is None else now - finished_ago
        session.add(PollRun(started_at=now - timedelta(hours=1), finished_at=finished))
        session.commit()


def test_no_cycle_yet_is_unhealthy(tmp_path: Path, database_url: str, engine: Engine) -> None:
    ok, message = check_health(settings_for(tmp_path, database_url))
    assert not ok and "no poll cycle" in message


def test_recent_cycle_is_healthy(tmp_path: Path, database_url: str, engine: Engine) -> None:
    add_run(engine, timedelta(seconds=100))  # within 3 x 60 s
    add_run(engine, None)  # a cycle under way does not count against it
    ok, message = check_health(settings_for(tmp_path, database_url))
    assert ok, message


def test_late_cycle_is_unhealthy(tmp_path: Path, database_url: str, engine: Engine) -> None:
    add_run(engine, timedelta(seconds=200))
    ok, message = check_health(settings_for(tmp_path, database_url))
    assert not ok and "3 x poll_interval = 180 s" in message


def test_health_command_exit_codes(tmp_path: Path, database_url: str, engine: Engine) -> None:
    settings = settings_for(tmp_path, database_url)
    env = {**os.environ, "SAHEL_WATCH_CONFIG": settings.config_path, "DATABASE_URL": database_url}

    def health() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "health"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    sick = health()
    assert sick.returncode == 1 and len(sick.stdout.strip().splitlines()) == 1
    add_run(engine, timedelta(seconds=5))
    well = health()
    assert well.returncode == 0 and well.stdout.startswith("healthy")
    env["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/none"
    gone = health()
    assert gone.returncode == 1 and "database does not answer" in gone.stdout
    assert "Traceback" not in gone.stderr


# --- the truth about polling, from real cycles over real HTTP ------------------------------


def pipeline_settings(tmp_path: Path, database_url: str, url: str) -> Settings:
    path = tmp_path / "p.toml"
    path.write_text(
        f'poll_interval = 60\nseeds_dir = "{REPO / "seeds"}"\n'
        f'[[feeds]]\nurl = "{url}"\nname = "wire"\n'
    )
    return load_settings({"SAHEL_WATCH_CONFIG": str(path), "DATABASE_URL": database_url})


def run_cycles(settings: Settings, engine: Engine, n: int, owner: str) -> list[CycleReport]:
    async def go() -> list[CycleReport]:
        pipeline = Pipeline.create(settings, engine, owner=owner)
        try:
            # forced: each cycle polls the feed, interval or not (leases still hold)
            return [await pipeline.run_cycle(force=True) for _ in range(n)]
        finally:
            await pipeline.aclose()

    return asyncio.run(go())


def test_cycles_that_poll_nothing_are_not_healthy(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """Cycles keep finishing, but the only feed is held by a lease nobody releases: after 3
    intervals without a poll, health says so, though the last cycle finished just now."""
    url = feed_server.add("/f.xml", body=rss([], title="f"))
    settings = pipeline_settings(tmp_path, database_url, url)
    assert run_cycles(settings, engine, 1, "me")[0].feeds_polled == 1
    assert check_health(settings)[0]
    stuck_since = utcnow() - timedelta(minutes=5)
    with Session(engine) as session:
        session.execute(
            update(Feed).values(
                last_polled_at=stuck_since,
                next_poll_at=stuck_since + timedelta(seconds=60),  # its interval
                lease_owner="another replica",
                lease_until=utcnow() + timedelta(hours=1),
            )
        )
        session.commit()
    reports = run_cycles(settings, engine, 2, "me")
    assert [(r.error, r.feeds_polled) for r in reports] == [(None, 0), (None, 0)]
    ok, message = check_health(settings)
    assert not ok
    assert message.startswith("unhealthy: 1 of 1 feeds due but not polled for more than")
    assert "'wire'" in message and "3 x poll_interval = 180 s" in message
    # the lease expires, the next cycle polls the feed: healthy again
    with Session(engine) as session:
        session.execute(update(Feed).values(lease_until=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert run_cycles(settings, engine, 1, "me")[0].feeds_polled == 1
    ok, message = check_health(settings)
    assert ok and message.startswith("healthy: last poll cycle finished")


def test_a_failed_last_cycle_is_not_healthy(
    feed_server: FeedServer, tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """The database refuses to record the feeds' health (a trigger), so the cycle fails as a
    whole: its run is recorded as failed, health is red with the reason, the lease is free,
    and the next good cycle makes health green again."""
    url = feed_server.add("/f.xml", body=rss([], title="f"))
    settings = pipeline_settings(tmp_path, database_url, url)
    assert run_cycles(settings, engine, 1, "me")[0].error is None
    assert check_health(settings)[0]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk quota exceeded'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE UPDATE OF last_status ON feed "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE UPDATE OF last_status ON feed "
                "BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END"
            )
    failed = run_cycles(settings, engine, 1, "me")[0]
    assert failed.error is not None and "disk quota exceeded" in failed.error
    ok, message = check_health(settings)
    assert not ok
    assert message.startswith("unhealthy: last poll cycle failed: database error:")
    assert "disk quota exceeded" in message and len(message.splitlines()) == 1
    with Session(engine) as session:
        assert session.execute(select(Feed.lease_owner)).scalar_one() is None
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER refuse" + (" ON feed" if conn.dialect.name == "postgresql" else "")
        )
    assert run_cycles(settings, engine, 1, "me")[0].error is None
    assert check_health(settings)[0]
