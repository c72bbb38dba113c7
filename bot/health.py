"""`python -m bot health` and `/healthz`: is the bot doing its job?

Each check looks at the database and answers None (fine) or the reason it is not; the
first reason found is the answer. Unhealthy when:

* the embedding model's package or weights are missing (the bot would not start);
* the database does not answer;
* no poll cycle has finished, or the last one failed, or the last one finished more than
  3 × `poll_interval` ago;
* every configured feed that has been polled failed its last poll (nothing is coming in);
* a configured feed has been due for more than 3 × `poll_interval` without being polled
  (cycles that finish but poll nothing, e.g. behind stuck leases, are not healthy);
* this replica holds the Telegram updates role but getUpdates has not answered for a
  lease period, or the Bot API refused the token (bot/telegram/updates.py).

A feed is due from its `next_poll_at` (backoff), else one interval after its last poll,
else (never polled) from the first poll cycle ever started. Add a check by appending a
function to `CHECKS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.decide.embed import model_problem
from bot.settings import Settings
from bot.storage.db import NoDatabase, open_existing
from bot.storage.errors import StorageError
from bot.storage.models import Feed, PollRun, utcnow
from bot.telegram.updates import updates_problem

LATE_INTERVALS = 3


@dataclass(frozen=True, slots=True)
class Probe:
    """What a check may look at."""

    session: Session
    settings: Settings
    now: datetime

    @property
    def allowed(self) -> timedelta:
        return timedelta(seconds=LATE_INTERVALS * self.settings.poll_interval)

    def limit_text(self) -> str:
        return f"{LATE_INTERVALS} x poll_interval = {self.allowed.total_seconds():.0f} s"


Check = Callable[[Probe], str | None]


def last_cycle(probe: Probe) -> str | None:
    """The last finished poll cycle succeeded, within 3 poll intervals."""
    last = probe.session.execute(
        select(col(PollRun.finished_at), col(PollRun.error))
        .where(col(PollRun.finished_at).is_not(None))
        .order_by(col(PollRun.finished_at).desc(), col(PollRun.id).desc())
        .limit(1)
    ).first()
    if last is None:
        return "no poll cycle has finished yet"
    finished, error = last
    if error:
        return f"last poll cycle failed: {error}"
    age = probe.now - finished
    if age > probe.allowed:
        return (
            f"last poll cycle finished {age.total_seconds():.0f} s ago "
            f"(more than {probe.limit_text()})"
        )
    return None


def due_feeds_polled(probe: Probe) -> str | None:
    """No configured feed has waited, due, for more than 3 poll intervals."""
    urls = [spec.url for spec in probe.settings.feed_specs()]
    if not urls:
        return None
    first_run = probe.session.execute(select(func.min(col(PollRun.started_at)))).scalar()
    interval = timedelta(seconds=probe.settings.poll_interval)
    overdue: list[tuple[timedelta, str]] = []
    rows = probe.session.execute(
        select(col(Feed.name), col(Feed.last_polled_at), col(Feed.next_poll_at)).where(
            col(Feed.url).in_(urls)
        )
    )
    for name, last_polled, next_poll in rows:
        due = next_poll or (last_polled + interval if last_polled else first_run)
        if due is not None and probe.now - due > probe.allowed:
            overdue.append((probe.now - due, name))
    if not overdue:
        return None
    waited, name = max(overdue)
    return (
        f"{len(overdue)} of {len(urls)} feeds due but not polled for more than "
        f"{probe.limit_text()} (longest: {name!r}, due {waited.total_seconds():.0f} s ago)"
    )


def some_feed_answers(probe: Probe) -> str | None:
    """Not every polled feed failed its last poll (it says which, and one reason)."""
    urls = [spec.url for spec in probe.settings.feed_specs()]
    rows = probe.session.execute(
        select(col(Feed.name), col(Feed.consecutive_failures), col(Feed.last_error))
        .where(col(Feed.url).in_(urls), col(Feed.last_polled_at).is_not(None))
        .order_by(col(Feed.last_polled_at).desc())
    ).all()
    if not rows or any(failures == 0 for _name, failures, _error in rows):
        return None
    name, _failures, error = rows[0]
    return (
        f"every feed failed its last poll ({len(rows)} of {len(rows)} polled; "
        f"{name!r}: {error or 'no reason recorded'}); `python -m bot feeds` lists each"
    )


def receiving_updates(probe: Probe) -> str | None:
    """The updates role, when this replica holds it, receives updates; the token is good."""
    ttl = probe.settings.telegram.updates_lease_seconds
    return updates_problem(probe.session, lease_seconds=ttl, now=probe.now)


def model_in_place(probe: Probe) -> str | None:
    """The embedding model's package and weights are installed (without loading them)."""
    return model_problem()


CHECKS: list[Check] = [
    model_in_place,
    last_cycle,
    some_feed_answers,
    due_feeds_polled,
    receiving_updates,
]


def check_health(settings: Settings, *, now: datetime | None = None) -> tuple[bool, str]:
    """(healthy, one line saying why)."""
    try:
        engine = open_existing(settings.database_url)  # reads only: creates no database
    except NoDatabase as exc:
        return False, f"unhealthy: {exc}"
    except StorageError as exc:
        return False, no_answer(exc)
    try:
        with Session(engine) as session:
            probe = Probe(session, settings, now or utcnow())
            for check in CHECKS:
                reason = check(probe)
                if reason is not None:
                    return False, f"unhealthy: {reason}"
            return True, healthy_line(probe)
    except StorageError as exc:
        return False, no_answer(exc)
    finally:
        engine.dispose()


def no_answer(exc: StorageError) -> str:
    """The driver's error kind and first line ("Connection refused"); libpq names no password."""
    return f"unhealthy: database does not answer ({exc})"


def healthy_line(probe: Probe) -> str:
    finished = probe.session.execute(select(func.max(col(PollRun.finished_at)))).scalar()
    age = (probe.now - finished).total_seconds() if finished else 0.0
    return f"healthy: last poll cycle finished {age:.0f} s ago"
