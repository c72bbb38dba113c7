"""Poll runs: one row per cycle, what `health` and `/status` read the last poll from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col

from bot.feeds.textsafe import storable
from bot.storage.models import PollRun


def start_run(session: Session, now: datetime) -> int:
    run = PollRun(started_at=now)
    session.add(run)
    session.flush()
    assert run.id is not None
    return run.id


def finish_run(
    session: Session,
    run_id: int,
    *,
    now: datetime,
    feeds_polled: int,
    feeds_failed: int,
    entries: int,
    new_stories: int,
    error: str | None = None,
) -> None:
    session.execute(
        update(PollRun)
        .where(col(PollRun.id) == run_id)
        .values(
            finished_at=now,
            feeds_polled=feeds_polled,
            feeds_failed=feeds_failed,
            entries=entries,
            new_stories=new_stories,
            error=error,
        )
    )


def record_failed_run(session: Session, started: datetime, *, now: datetime, error: str) -> None:
    """A poll cycle that failed as a whole (what `health` reports until one succeeds)."""
    run_id = start_run(session, started)
    finish_run(
        session,
        run_id,
        now=now,
        feeds_polled=0,
        feeds_failed=0,
        entries=0,
        new_stories=0,
        error=storable(error),
    )
