"""bot/scheduler.py: jobs survive the scheduler's shutdown, and stopping is one quiet line."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.scheduler import Jobs, build_scheduler
from tests.servers.bot_fixtures import wait_until


def test_shutdown_during_a_poll_logs_one_line_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGTERM's path in `bot.run`: the scheduler shuts down while a poll runs, the poll
    gets `settle`'s grace, then is cancelled."""
    started = asyncio.Event()

    async def poll() -> None:
        started.set()
        await asyncio.Event().wait()  # a cycle stuck on a slow feed

    async def housekeeping() -> None:
        return None

    async def scenario() -> tuple[bool, int]:
        jobs = Jobs()
        scheduler = build_scheduler(jobs, poll=poll, poll_interval=60, housekeeping=housekeeping)
        scheduler.start()
        await wait_until(started.is_set)
        scheduler.shutdown(wait=False)
        finished = await jobs.settle(0.2)
        return finished, jobs.running

    with caplog.at_level(logging.DEBUG):
        finished, running = asyncio.run(scenario())
    assert (finished, running) == (False, 0)
    assert [r.exc_info for r in caplog.records if r.exc_info] == []
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == []
    stops = [
        r.getMessage() for r in caplog.records if "stopped before it finished" in r.getMessage()
    ]
    assert stops == ["job poll stopped before it finished (shutting down)"]
