"""`python -m bot db backup PATH` (bot/backup.py): a consistent copy of a SQLite file that the
bot keeps writing while the copy is made; no overwrite; one-line errors; pg_dump explained."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from bot.backup import BackupError, backup
from tests.servers.bot_process import BotProcess, write_config
from tests.servers.feed_server import FeedServer
from tests.servers.feedgen import rss
from tests.test_cli import sw

BATCH = 5  # the writer adds this many feeds per transaction

# A second process writing through the bot's own engine (WAL, busy timeout) until killed:
# BATCH feeds per transaction, as fast as it can.
WRITER = """
import sys
from sqlmodel import Session
from bot.storage.db import make_engine
from bot.storage.models import Feed

engine = make_engine(sys.argv[1])
n = 0
while True:
    with Session(engine) as session:
        session.add_all(
            Feed(url=f"https://writer.test/{n}/{i}", name="x" * 400) for i in range(BATCH)
        )
        session.commit()
    n += 1
""".replace("BATCH", str(BATCH))


def _rows(path: Path, table: str = "feed") -> int:
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        (count,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(count)
    finally:
        connection.close()


def _stored_items(path: Path) -> int:
    """Items in the bot's file; 0 before the bot has made it and its schema."""
    try:
        return _rows(path, "item") if path.exists() else 0
    except sqlite3.OperationalError:  # no such table yet
        return 0


def _check_copy(path: Path) -> None:
    """A whole database on its own: no -wal beside it needed, passes SQLite's own check."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        connection.close()
    assert not path.with_name(path.name + "-wal").exists()


def _head_revision() -> str | None:
    from bot.storage.db import head_revision

    return head_revision()


@pytest.fixture
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config file in a folder of its own (each test's folder holds only what it makes)."""
    feeds = [("http://127.0.0.1:9/unused.xml", "Unused", "en")]  # never polled here
    return write_config(tmp_path_factory.mktemp("config"), feeds=feeds)


@pytest.fixture
def bot_database(tmp_path: Path) -> str:
    from bot.storage.db import create_schema, make_engine

    url = f"sqlite:///{tmp_path / 'bot.db'}"
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    return url


@pytest.fixture
def writer(bot_database: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", WRITER, bot_database])
    yield process
    process.kill()
    process.wait(timeout=10)


def _wait_rows(path: Path, at_least: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (count := _rows(path)) < at_least:
        assert time.monotonic() < deadline, f"the writer stored {count} rows, not {at_least}"
        time.sleep(0.05)
    return count


def test_copies_whole_transactions_while_the_bot_writes(
    bot_database: str, writer: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    source = tmp_path / "bot.db"
    seen = _wait_rows(source, 2000)
    copies = []
    for n in range(5):
        result = backup(bot_database, tmp_path / f"copy-{n}.db")
        copies.append(result.destination)
        assert result.schema_revision == _head_revision()
        assert result.size_bytes == result.destination.stat().st_size
    assert writer.poll() is None, "the writer died"
    after = _rows(source)
    counts = []
    for path in copies:
        _check_copy(path)
        count = _rows(path)
        assert count % BATCH == 0, f"{path.name} holds part of a transaction ({count} rows)"
        counts.append(count)
    # each copy holds what was committed before it began, and the bot went on meanwhile
    assert seen <= counts[0] and counts == sorted(counts) and counts[-1] <= after
    assert after > seen
    # only the copies were left in the folder: no partial file
    assert sorted(p.name for p in tmp_path.glob("*copy*")) == [p.name for p in copies]


def test_command_backs_up_a_running_bot(tmp_path: Path) -> None:
    """`run` polls a feed into its SQLite file; the command copies it, the bot goes on."""
    stories = [
        {
            "id": f"backup-{n}",
            "title": f"Mali and Niger open a joint border post number {n}",
            "summary": "Officials of the Alliance of Sahel States opened a border post.",
            "link": f"https://wire.test/post-{n}",
        }
        for n in range(3)
    ]
    database = tmp_path / "data" / "bot.db"
    database_url = f"sqlite:///{database}"
    with FeedServer() as feeds:
        url = feeds.add("/wire.xml", body=rss(stories, title="Wire"))
        config = write_config(tmp_path, feeds=[(url, "Wire", "en")], poll_interval=1)
        with BotProcess(tmp_path, config, database_url) as bot:
            deadline = time.monotonic() + 90
            while _stored_items(database) < len(stories):
                assert time.monotonic() < deadline, bot.output[-3000:]
                assert bot.process is not None and bot.process.poll() is None, bot.output
                time.sleep(0.1)
            runs_before = _rows(database, "pollrun")
            done = sw(
                "db",
                "backup",
                str(tmp_path / "backup.db"),
                cwd=tmp_path,
                config=config,
                DATABASE_URL=database_url,
            )
            assert done.returncode == 0, done.stderr
            # the bot keeps polling after the copy: a new cycle is recorded
            deadline = time.monotonic() + 30
            while _rows(database, "pollrun") <= runs_before + 1:
                assert time.monotonic() < deadline, bot.output[-3000:]
                time.sleep(0.1)
            assert bot.stop() == 0
    copy = tmp_path / "backup.db"
    assert done.stdout.startswith(f"backed up {database} to {copy}: ")
    assert f"schema {_head_revision()}" in done.stdout
    _check_copy(copy)
    assert _rows(copy, "item") == len(stories)
    from bot.storage.db import make_engine
    from bot.storage.models import Item

    engine = make_engine(f"sqlite:///{copy}", create_folder=False)
    with Session(engine) as session:
        links = session.execute(select(Item.link)).scalars().all()
        assert sorted(links) == sorted(s["link"] for s in stories)
        assert session.execute(select(func.count()).select_from(Item)).scalar_one() == 3
    engine.dispose()


def test_refuses_to_overwrite(bot_database: str, tmp_path: Path, config: Path) -> None:
    target = tmp_path / "precious.db"
    target.write_bytes(b"an older backup")
    done = sw("db", "backup", str(target), cwd=tmp_path, config=config, DATABASE_URL=bot_database)
    assert done.returncode == 1
    assert done.stderr == (
        f"sahel-watch: {target} already exists; a backup never overwrites a file\n"
    )
    assert target.read_bytes() == b"an older backup"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bot.db", "precious.db"]


def test_backup_into_a_name_taken_meanwhile_keeps_the_other_file(
    bot_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is checked first, then taken atomically: a file that appears between the two
    (another backup finishing, say) stays as it was."""
    import bot.backup as module

    target = tmp_path / "copy.db"
    real_copy = module._copy

    def copy_then_someone_writes(source: Path, partial: Path) -> str | None:
        revision = real_copy(source, partial)
        target.write_bytes(b"someone else's file")
        return revision

    monkeypatch.setattr(module, "_copy", copy_then_someone_writes)
    with pytest.raises(BackupError, match="already exists"):
        backup(bot_database, target)
    assert target.read_bytes() == b"someone else's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bot.db", "copy.db"]


def test_missing_database_is_not_created(tmp_path: Path, config: Path) -> None:
    source = tmp_path / "nowhere" / "bot.db"
    done = sw(
        "db",
        "backup",
        str(tmp_path / "copy.db"),
        cwd=tmp_path,
        config=config,
        DATABASE_URL=f"sqlite:///{source}",
    )
    assert done.returncode == 1
    assert done.stderr == f"sahel-watch: no database at {source}: nothing to back up\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_folder(bot_database: str, tmp_path: Path, config: Path) -> None:
    target = tmp_path / "no-such-folder" / "copy.db"
    done = sw("db", "backup", str(target), cwd=tmp_path, config=config, DATABASE_URL=bot_database)
    assert done.returncode == 1
    assert done.stderr == f"sahel-watch: folder {target.parent} does not exist\n"


def test_folder_not_writable(bot_database: str, tmp_path: Path, config: Path) -> None:
    # sysfs refuses new files even to root
    done = sw(
        "db", "backup", "/sys/sw-copy.db", cwd=tmp_path, config=config, DATABASE_URL=bot_database
    )
    assert done.returncode == 1
    assert done.stderr == "sahel-watch: cannot write in /sys: Permission denied\n"


def test_not_a_database(tmp_path: Path, config: Path) -> None:
    source = tmp_path / "notes.db"
    source.write_text("not a database, only notes\n" * 100)
    done = sw(
        "db",
        "backup",
        str(tmp_path / "copy.db"),
        cwd=tmp_path,
        config=config,
        DATABASE_URL=f"sqlite:///{source}",
    )
    assert done.returncode == 1
    assert done.stderr == (f"sahel-watch: cannot back up {source}: file is not a database\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_postgresql_explains_pg_dump(tmp_path: Path, config: Path) -> None:
    """One line, exit 2, the password left out; nothing is connected to or written."""
    url = "postgresql://sahel:s3cret-pw@db.example:5432/sahel_watch"
    done = sw("db", "backup", "/backups/sw.dump", cwd=tmp_path, config=config, DATABASE_URL=url)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "pg_dump --format=custom --file=/backups/sw.dump " in done.stderr
    assert "--dbname=postgresql://sahel@db.example:5432/sahel_watch " in done.stderr
    assert "s3cret-pw" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
