"""APScheduler wiring: the poll cycle, housekeeping and digests as interval jobs in the
running loop.

Every job runs at most once at a time (`max_instances=1`), late runs are merged
(`coalesce`), and the poll interval gets a little jitter so replicas and feeds do not beat
in step. Job bodies run as shielded tasks (`Jobs`): shutting the scheduler down does not
cancel a poll cycle half-way; `Jobs.settle()` waits for it to finish, and cancels what is
still running after its deadline with one log line (no traceback: stopping is not a fault).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

JobBody = Callable[[], Awaitable[None]]

HOUSEKEEPING_SECONDS = 10.0

log = logging.getLogger(__name__)


def poll_jitter(interval: float) -> float:
    """Up to 10 % of the interval, at most 30 s."""
    return min(interval * 0.1, 30.0)


class _SkipNotice(logging.Filter):
    """A poll still running when the next one is due is the design, not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


class Jobs:
    """Runs job bodies as tasks that survive the scheduler's cancellation at shutdown."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def guard(self, body: JobBody, name: str) -> JobBody:
        async def job() -> None:
            task = asyncio.create_task(self._safely(body, name), name=name)
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            # the scheduler cancels this at shutdown: the body goes on until `settle`
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

        job.__name__ = name
        return job

    @staticmethod
    async def _safely(body: JobBody, name: str) -> None:
        try:
            await body()
        except asyncio.CancelledError:
            log.info("job %s stopped before it finished (shutting down)", name)
            raise
        except Exception:
            log.exception("job %s failed; it runs again next time", name)

    @property
    def running(self) -> int:
        return len(self._running)

    async def settle(self, within: float) -> bool:
        """Wait for running bodies; cancel what is left after `within` s. True if all finished."""
        if not self._running:
            return True
        _, pending = await asyncio.wait(set(self._running), timeout=within)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return not pending


def build_scheduler(
    jobs: Jobs,
    *,
    poll: JobBody,
    poll_interval: float,
    housekeeping: JobBody,
    housekeeping_interval: float = HOUSEKEEPING_SECONDS,
    digests: JobBody | None = None,
    digest_interval: float = 30.0,
) -> AsyncIOScheduler:
    """A scheduler (not started) whose first poll and housekeeping run at once."""
    aps_log = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _SkipNotice) for f in aps_log.filters):
        aps_log.addFilter(_SkipNotice())
    scheduler = AsyncIOScheduler(timezone=UTC)
    now = datetime.now(UTC)
    scheduler.add_job(
        jobs.guard(poll, "poll"),
        IntervalTrigger(seconds=poll_interval, jitter=poll_jitter(poll_interval), timezone=UTC),
        id="poll",
        name="poll feeds",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(poll_interval)),
        next_run_time=now,
    )
    scheduler.add_job(
        jobs.guard(housekeeping, "housekeeping"),
        IntervalTrigger(seconds=housekeeping_interval, timezone=UTC),
        id="housekeeping",
        name="renew leases, recover interrupted deliveries",
        max_instances=1,
        coalesce=True,
        next_run_time=now,
    )
    if digests is not None:  # fold due periods, send due digests (bot/delivery/digest.py)
        scheduler.add_job(
            jobs.guard(digests, "digests"),
            IntervalTrigger(seconds=digest_interval, timezone=UTC),
            id="digests",
            name="fold and send due digests",
            max_instances=1,
            coalesce=True,
            next_run_time=now,
        )
    return scheduler
