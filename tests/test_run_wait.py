"""`python -m bot run` when the database is not there yet, and how it stops: a child process,
a real PostgreSQL reached through a TCP proxy the test starts when it chooses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_ADMIN
from tests.servers.bot_process import BotProcess, write_config
from tests.servers.feed_server import FeedServer
from tests.servers.feedgen import rss
from tests.servers.pg_instance import free_port

pytestmark = pytest.mark.slow

DEAD_FEEDS = [("http://127.0.0.1:9/none.xml", "None", "en")]
PASSWORD = "db-Secret-4711"  # trust auth ignores it; it must never reach the logs


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`, from `start()` on (nothing listens before)."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def behind_proxy(pg_url: str) -> Iterator[tuple[str, TcpProxy]]:
    """A DATABASE_URL (with a password) on a free port, and the proxy that will serve it."""
    admin = make_url(PG_ADMIN)
    port = free_port()
    url = pg_url.replace(f"{admin.host}:{admin.port}", f"127.0.0.1:{port}", 1)
    url = url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
    proxy = TcpProxy(port, (admin.host or "127.0.0.1", admin.port or 5432))
    try:
        yield url, proxy
    finally:
        proxy.stop()


def health(folder: Path, config: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAHEL_WATCH_CONFIG": str(config), "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "bot", "health"],
        env=env, cwd=folder, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_run_waits_for_the_database_then_migrates_and_runs(
    tmp_path: Path, behind_proxy: tuple[str, TcpProxy]
) -> None:
    url, proxy = behind_proxy
    config = write_config(tmp_path, feeds=DEAD_FEEDS, poll_interval=60)
    with BotProcess(tmp_path, config, url) as bot:
        bot.wait_for("cannot reach the database", count=2)  # retried, not given up
        checked = health(tmp_path, config, url)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert checked.stdout.startswith("unhealthy: database does not answer")
        assert "Connection refused" in checked.stdout
        assert "running:" not in bot.output
        proxy.start()
        bot.wait_for("running: polling 1 feeds", timeout=60)
        assert "reached the database after" in bot.output
        assert proxy.connections > 0
        assert bot.stop() == 0
    lines = [line for line in bot.output.splitlines() if "cannot reach the database" in line]
    assert lines[0].endswith("retrying in 1 s"), lines[0]
    assert "Connection refused" in lines[0] and "127.0.0.1" in lines[0]
    assert PASSWORD not in bot.output and PASSWORD not in checked.stdout + checked.stderr
    assert "Traceback" not in bot.output and bot.output.rstrip().endswith("bot.run: stopped")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_waiting_for_the_database_stops_cleanly(
    tmp_path: Path, behind_proxy: tuple[str, TcpProxy], sig: signal.Signals
) -> None:
    url, _proxy = behind_proxy
    config = write_config(tmp_path, feeds=DEAD_FEEDS, poll_interval=60)
    with BotProcess(tmp_path, config, url) as bot:
        bot.wait_for("cannot reach the database")
        assert bot.stop(sig, timeout=30) == 0
    assert "Traceback" not in bot.output and "running:" not in bot.output
    assert bot.output.count("stopped") == 1 and PASSWORD not in bot.output


def test_a_bad_database_setting_is_not_retried(tmp_path: Path) -> None:
    config = write_config(tmp_path, feeds=DEAD_FEEDS)
    bot = BotProcess(tmp_path, config, "mysql://bob:hunter2@db.example/news").start()
    assert bot.process is not None
    assert bot.process.wait(timeout=60) == 2
    assert "unsupported database 'mysql'" in bot.output and "hunter2" not in bot.output
    assert "cannot reach the database" not in bot.output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigint_stops_as_cleanly_as_sigterm(
    tmp_path: Path, database_url: str, sig: signal.Signals
) -> None:
    config = write_config(tmp_path, feeds=DEAD_FEEDS, poll_interval=1)
    with BotProcess(tmp_path, config, database_url) as bot:
        bot.wait_for("running: polling")
        bot.wait_for("poll cycle:")  # a cycle has used the pool
        assert bot.stop(sig, timeout=30) == 0
    errors = bot.stderr_path.read_text(encoding="utf-8")
    assert "Traceback" not in errors and "Exception" not in errors, errors[-3000:]
    assert " ERROR " not in errors and errors.count("bot.run: stopped") == 1
    assert errors.rstrip().endswith("bot.run: stopped")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_start_stops_cleanly(
    tmp_path: Path, database_url: str, sig: signal.Signals
) -> None:
    """Sent while the embedding model loads, or the schema migrates: no run, exit 0."""
    config = write_config(tmp_path, feeds=DEAD_FEEDS, poll_interval=60)
    with BotProcess(tmp_path, config, database_url) as bot:
        bot.wait_for("starting")
        with contextlib.suppress(ProcessLookupError):
            bot.send_signal(sig)
        assert bot.process is not None and bot.process.wait(timeout=60) == 0
    assert "Traceback" not in bot.output and "running:" not in bot.output
    assert bot.output.count("bot.run: stopped") == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_whole_process_group_stops_cleanly(
    tmp_path: Path, feed_server: FeedServer, sig: signal.Signals
) -> None:
    """Ctrl-C in a terminal reaches the parse workers too: they leave it to the bot."""
    item = {"title": "Rain expected over the coast", "link": "https://wire.test/rain"}
    url = feed_server.add("/wire.xml", body=rss([item]), content_type="application/rss+xml")
    config = write_config(tmp_path, feeds=[(url, "Wire", "en")], poll_interval=60)
    database = f"sqlite:///{tmp_path / 'sahel.db'}"
    with BotProcess(tmp_path, config, database, session=True) as bot:
        bot.wait_for("poll cycle: 1 feeds polled, 0 failed")  # a parse worker waits, idle
        bot.signal_group(sig)
        assert bot.process is not None and bot.process.wait(timeout=30) == 0
    assert "Traceback" not in bot.output and "KeyboardInterrupt" not in bot.output, bot.output
    assert bot.output.rstrip().endswith("bot.run: stopped")
