"""`python -m bot health`: is the database answering and is polling on time?"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from bot.db import make_engine
from bot.models import PollRun, utcnow
from bot.settings import Settings


def check_health(settings: Settings) -> tuple[bool, str]:
    """(healthy, one line saying why)."""
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            last = session.execute(
                select(col(PollRun.finished_at))
                .where(col(PollRun.finished_at).is_not(None))
                .order_by(col(PollRun.finished_at).desc())
                .limit(1)
            ).scalar_one_or_none()
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        return False, f"unhealthy: database does not answer ({type(cause).__name__})"
    finally:
        engine.dispose()
    if last is None:
        return False, "unhealthy: no poll cycle has finished yet"
    age = utcnow() - last
    allowed = timedelta(seconds=3 * settings.poll_interval)
    if age > allowed:
        return False, (
            f"unhealthy: last poll cycle finished {age.total_seconds():.0f} s ago "
            f"(more than 3 x poll_interval = {allowed.total_seconds():.0f} s)"
        )
    return True, f"healthy: last poll cycle finished {age.total_seconds():.0f} s ago"
