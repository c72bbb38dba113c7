from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.health import check_health
from bot.models import PollRun, utcnow
from bot.settings import Settings, load_settings


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
