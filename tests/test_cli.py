"""The command line as an operator meets it: `python -m bot …` in a child process, with its own
environment, against the loopback feed server and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib.metadata import version
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.delivery.console import CURSOR
from bot.storage import cursors
from bot.storage.db import make_engine
from bot.storage.models import Delivery, Feed, Item, PollRun, Story, Subscriber
from tests.conftest import PG_ADMIN
from tests.servers.bot_api import BotApiServer, Limits
from tests.servers.bot_fixtures import insert_story, subscribe_chats
from tests.servers.bot_process import BotProcess, write_config
from tests.servers.feed_server import FeedServer
from tests.servers.feedgen import rss

REPO = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)
AIRSPACE = {
    "id": "cli-airspace",
    "title": "Algeria shuts its airspace to flights from and to Mali",
    "summary": "<p>Algeria closed its airspace with immediate effect to all aircraft coming from "
    "or bound for Mali, the defence ministry said, citing repeated violations.</p>",
    "link": "https://wire.test/algeria-airspace",
    "published": format_datetime(NOW - timedelta(hours=3), usegmt=True),
}


def sw(
    *args: str, cwd: Path, config: Path | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` with only the environment given here (and PATH)."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1"}
    if os.environ.get("PYTHONPATH"):  # the tree under test, when it is not the installed one
        base["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if config is not None:
        base["SAHEL_WATCH_CONFIG"] = str(config)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line a failing command printed on stderr (no traceback, nothing else)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, feeds=[("https://example.org/rss", "Example", "en")])


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("LOG_LEVEL", "LOUD", "not a log level"),
        ("DATABASE_URL", "mysql://bob:hunter2@db.example/news", "unsupported database 'mysql'"),
        ("DATABASE_URL", "not a url", "not a database URL"),
        ("METRICS_PORT", "ninety", "valid integer"),
        ("LOG_FORMAT", "xml", "'text' or 'json'"),
        ("TELEGRAM_API_URL", "api.telegram.org", "must start with http:// or https://"),
    ],
)
def test_a_bad_environment_variable_is_one_line_naming_it(
    tmp_path: Path, config: Path, var: str, value: str, says: str
) -> None:
    proc = sw("feeds", cwd=tmp_path, config=config, **{var: value})
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert line.startswith(f"sahel-watch: configuration error: environment variable {var}=")
    assert says in line
    assert str(config) not in line  # the file is not blamed for the environment
    assert "hunter2" not in line  # a password in a URL is never echoed
    assert not (tmp_path / "data").exists()


def test_a_missing_config_file_names_the_variable_and_the_folder(tmp_path: Path) -> None:
    proc = sw("feeds", cwd=tmp_path, config=tmp_path / "nowhere.toml")
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert f"{tmp_path / 'nowhere.toml'} (from SAHEL_WATCH_CONFIG): file not found" in line
    proc = sw("health", cwd=tmp_path)
    assert proc.returncode == 2
    assert "config/sahel-watch.toml (the default; set SAHEL_WATCH_CONFIG): file not found in " + (
        str(tmp_path)
    ) in one_line_error(proc)


def test_version_prints_the_installed_package_version(tmp_path: Path) -> None:
    proc = sw("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"sahel-watch {version('sahel-watch')}"


@pytest.mark.parametrize("command", ["feeds", "health"])
def test_read_only_commands_never_create_a_sqlite_database(
    tmp_path: Path, config: Path, command: str
) -> None:
    database = tmp_path / "state" / "sw.db"
    proc = sw(command, cwd=tmp_path, config=config, DATABASE_URL=f"sqlite:///{database}")
    assert not database.parent.exists()  # no file, not even its folder
    assert proc.returncode == 1
    text = proc.stdout + proc.stderr
    assert f"no database at {database} yet" in text
    assert "python -m bot db upgrade" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("command", ["feeds", "health"])
def test_read_only_commands_never_create_a_schema(
    tmp_path: Path, config: Path, pg_url: str, command: str
) -> None:
    proc = sw(command, cwd=tmp_path, config=config, DATABASE_URL=pg_url)
    assert proc.returncode == 1
    assert "has no schema yet" in proc.stdout + proc.stderr
    schema = pg_url.rsplit("search_path%3D", 1)[1]
    with psycopg.connect(PG_ADMIN) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchone()
    assert tables == (0,)


def test_seeds_and_a_sqlite_file_in_the_config_are_found_beside_it(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    url = feed_server.add("/wire.xml", body=rss([AIRSPACE], title="wire"))
    folder = tmp_path / "deploy"
    (folder / "stories").mkdir(parents=True)
    for seed in (REPO / "seeds").glob("*.toml"):
        (folder / "stories" / seed.name).write_bytes(seed.read_bytes())
    config = folder / "sw.toml"
    config.write_text(
        f'seeds_dir = "stories"\ndatabase_url = "sqlite:///state/sw.db"\n'
        f'[[feeds]]\nurl = "{url}"\nname = "wire"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = sw("poll-once", cwd=elsewhere, config=config)
    assert proc.returncode == 0, proc.stderr
    assert "new" in proc.stdout
    assert (folder / "state" / "sw.db").is_file()
    assert list(elsewhere.iterdir()) == []


def test_poll_once_queues_its_alerts_and_the_next_run_delivers_them(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    url = feed_server.add("/wire.xml", body=rss([AIRSPACE], title="wire"))
    config = write_config(tmp_path, feeds=[(url, "wire", "en")], poll_interval=3600)
    proc = sw("poll-once", cwd=tmp_path, config=config, DATABASE_URL=database_url)
    assert proc.returncode == 0, proc.stderr
    engine = make_engine(database_url)
    try:
        # the console is no subscriber: the alert waits after the console's cursor
        assert (count(engine, Subscriber), count(engine, Delivery)) == (0, 0)
        batch = cursors.pending(engine, CURSOR, 10)
        assert [s.title for s in batch.stories] == [AIRSPACE["title"]]
        with BotProcess(tmp_path, config, database_url) as bot:
            bot.wait_for(AIRSPACE["title"], timeout=60)
            wait_for_cursor(engine, lambda: not cursors.pending(engine, CURSOR, 10).stories)
            assert bot.stop() == 0
        assert bot.stdout().count(AIRSPACE["title"]) == 1
        with BotProcess(tmp_path, config, database_url, tag="again") as again:  # only the new
            insert_story(engine, title="Written while the console runs", deliver=False)
            again.wait_for("Written while the console runs")
            assert again.stop() == 0
        assert AIRSPACE["title"] not in again.stdout()
        assert (count(engine, Subscriber), count(engine, Delivery)) == (0, 0)
    finally:
        engine.dispose()


def wait_for_cursor(engine: Engine, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the console's cursor did not move")
        time.sleep(0.05)


def test_poll_once_with_a_token_ends_console_mode(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    url = feed_server.add("/wire.xml", body=rss([], title="wire"))
    config = write_config(tmp_path, feeds=[(url, "wire", "en")], poll_interval=3600)
    assert sw("poll-once", cwd=tmp_path, config=config, DATABASE_URL=database_url).returncode == 0
    engine = make_engine(database_url)
    try:
        assert cursors.start(engine, CURSOR) == 0  # poll-once started it
        proc = sw("poll-once", cwd=tmp_path, config=config, DATABASE_URL=database_url,
                  TELEGRAM_BOT_TOKEN="123:never-used")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert cursors.drop(engine, CURSOR) is False  # poll-once with a token dropped it
    finally:
        engine.dispose()


def test_dry_run_decides_against_what_is_stored_and_stores_nothing(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    url = feed_server.add("/wire.xml", body=rss([AIRSPACE], title="wire"))
    config = write_config(tmp_path, feeds=[(url, "wire", "en")])
    assert sw("poll-once", cwd=tmp_path, config=config, DATABASE_URL=database_url).returncode == 0
    later = dict(AIRSPACE, id="cli-airspace-2", link="https://other.test/airspace")
    feed_server.set_body("/wire.xml", rss([AIRSPACE, later], title="wire"))
    engine = make_engine(database_url)
    try:
        models = (Feed, Item, Story, Delivery, PollRun, Subscriber)
        before = {m.__name__: count(engine, m) for m in models}
        with Session(engine) as session:
            polled = session.execute(select(col(Feed.last_polled_at))).scalar_one()
        proc = sw("poll-once", "--dry-run", "--json", cwd=tmp_path, config=config,
                  DATABASE_URL=database_url)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        rows = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        decided = {row.split('"guid": "')[1].split('"')[0]: row for row in rows}
        assert '"decision": "seen"' in decided["cli-airspace"]  # it sees the stored item
        assert '"decision": "duplicate"' in decided["cli-airspace-2"]  # and the stored story
        assert {m.__name__: count(engine, m) for m in models} == before
        with Session(engine) as session:
            assert session.execute(select(col(Feed.last_polled_at))).scalar_one() == polled
    finally:
        engine.dispose()


def test_dry_run_without_a_database_creates_none(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add("/wire.xml", body=rss([AIRSPACE], title="wire"))
    config = write_config(tmp_path, feeds=[(url, "wire", "en")])
    database = tmp_path / "state" / "sw.db"
    proc = sw("poll-once", "--dry-run", cwd=tmp_path, config=config,
              DATABASE_URL=f"sqlite:///{database}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "deciding against an empty database" in proc.stderr
    assert "Algeria shuts its airspace" in proc.stdout and " new " in proc.stdout
    assert "dry run: nothing was stored or queued" in proc.stdout
    assert not database.parent.exists()


def closed_port() -> int:
    """A loopback port nobody listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_health_is_unhealthy_while_every_feed_fails(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    port = closed_port()
    dead = [(f"http://127.0.0.1:{port}/{name}.xml", name, "en") for name in ("alpha", "beta")]
    config = write_config(tmp_path, feeds=dead, poll_interval=600)
    env = {"DATABASE_URL": database_url}
    assert sw("poll-once", cwd=tmp_path, config=config, **env).returncode == 0
    proc = sw("health", cwd=tmp_path, config=config, **env)
    assert proc.returncode == 1
    assert proc.stdout.startswith("unhealthy: every feed failed its last poll (2 of 2 polled; ")
    assert "cannot connect" in proc.stdout and "`python -m bot feeds`" in proc.stdout

    url = feed_server.add("/wire.xml", body=rss([AIRSPACE], title="wire"))
    config = write_config(tmp_path, feeds=[*dead, (url, "wire", "en")], poll_interval=600)
    assert sw("poll-once", cwd=tmp_path, config=config, **env).returncode == 0
    proc = sw("health", cwd=tmp_path, config=config, **env)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.startswith("healthy: ")


def test_a_run_where_every_feed_fails_says_why_for_each_once(
    tmp_path: Path, database_url: str
) -> None:
    port = closed_port()
    dead = [(f"http://127.0.0.1:{port}/{name}.xml", name, "en") for name in ("alpha", "beta")]
    quick = "[limits]\nbackoff_base_seconds = 0.2\nbackoff_max_seconds = 0.5"  # retried soon
    config = write_config(tmp_path, feeds=dead, poll_interval=1, extra=quick)
    with BotProcess(tmp_path, config, database_url) as bot:
        bot.wait_for("every feed failed (2 of 2); `python -m bot feeds` shows each feed's health")
        for name in ("alpha", "beta"):
            line = f"feed '{name}' at http://127.0.0.1:{port}/{name}.xml: cannot connect"
            assert line in bot.output
        first = bot.output.count("poll cycle: 2 feeds polled, 2 failed")
        bot.wait_for("poll cycle: 2 feeds polled, 2 failed", count=first + 1)
        assert bot.stop() == 0
    assert bot.output.count("every feed failed") == 1  # said once, not every cycle
    assert bot.output.count(f"feed 'alpha' at http://127.0.0.1:{port}/alpha.xml") == 1


def test_run_retries_an_unreachable_telegram_polls_meanwhile_then_delivers(
    tmp_path: Path, feed_server: FeedServer, engine: Engine, database_url: str
) -> None:
    subscribe_chats(engine, [4242])
    url = feed_server.add("/wire.xml", body=rss([AIRSPACE], title="wire"))
    config = write_config(tmp_path, feeds=[(url, "wire", "en")], poll_interval=1)
    port = closed_port()
    api = BotApiServer(limits=Limits())  # Telegram, not reachable yet
    bot = BotProcess(tmp_path, config, database_url)
    bot.env.update(TELEGRAM_API_URL=f"http://127.0.0.1:{port}", TELEGRAM_BOT_TOKEN=api.token)
    with bot:
        bot.wait_for("cannot reach the Telegram Bot API", count=2)  # retried, not given up
        bot.wait_for("poll cycle: 1 feeds polled, 0 failed; 1 new")  # polling meanwhile
        api.start(port)
        try:
            bot.wait_for("reached the Telegram Bot API after", timeout=60)
            [alert] = api.wait_sent(4242, 1, timeout=30)  # queued while away, sent on arrival
            assert alert.plain.startswith(AIRSPACE["title"])
            assert bot.stop() == 0
        finally:
            api.stop()
    assert api.token not in bot.output and "Traceback" not in bot.output


def test_evaluate_prints_no_migration_chatter(tmp_path: Path, config: Path) -> None:
    """evaluate migrates a temporary database: alembic's INFO lines are not the operator's."""
    item = {
        "id": "quiet-1",
        "feed": "wire-en",
        "lang": "en",
        "title": "Niger opens a new border post with Algeria at Assamaka",
        "summary": "<p>The post handles trucks and travellers, officials said.</p>",
        "link": "https://wire.test/assamaka-post",
        "published": format_datetime(NOW - timedelta(hours=1), usegmt=True),
        "labels": {"relevant": True, "kind": "new_development"},
    }
    (tmp_path / "items.json").write_text(json.dumps([item]), encoding="utf-8")
    proc = sw("evaluate", "items.json", cwd=tmp_path, config=config, LOG_LEVEL="INFO")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("## items.json: 1 items")
    assert "Running upgrade" not in proc.stdout + proc.stderr, proc.stderr
    assert "alembic" not in proc.stderr, proc.stderr
