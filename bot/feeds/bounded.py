"""Parse a feed within a CPU budget, in a worker process that can be stopped.

feedparser is pure Python on hostile input: a body the size cap lets through can still
cost minutes of CPU, and a thread cannot be stopped. So parses run in worker processes
forked from multiprocessing's fork server (which has the parser imported). A worker is
kept for the next parse (a warm worker adds about 0.5 ms a parse; a fresh process per
parse added 20-60 ms on the same machine, see `bench/parse.py`) and replaced after
`MAX_JOBS` parses, since a process's heap only grows. At most `max(2, os.cpu_count())`
parses run at once per event loop, and as many workers wait idle.

Limits, set by the worker on itself:

* CPU: before each parse, `RLIMIT_CPU`'s soft limit is set to the CPU time used so far
  plus the budget (rounded up to a whole second). Past it the kernel sends SIGXCPU, whose
  default action ends the worker whatever it is doing; the parse fails with "parse used
  more than its CPU budget" and the next parse gets a new worker. Only CPU time counts, so
  a busy machine does not fail good feeds.
* Memory: `RLIMIT_AS` = `MEMORY_BYTES`; a parse that needs more fails.
* Lifetime: a worker exits when the bot does, even killed by SIGKILL: it reads EOF on its
  pipe when idle, and while busy a thread watches a pidfd of the bot (Linux 5.3+;
  elsewhere the CPU limit still ends it). No core files.

The fork server is a fresh interpreter that imports the parser (and the main module) before
it forks anything, and a process that asks it for a worker waits until it has: 0.1-0.35 s
with the event loop blocked, if the first parse starts it. `start_fork_server` starts it
ahead (the pipeline does when it is built), so it gets ready while nothing waits for it.

The caller awaits the answer on the pipe without blocking the event loop; if it is
cancelled (shutdown), or the worker outlives a generous wall-clock backstop, the worker
is killed at once, so shutdown never waits on a parse.

`xmlsafe` refuses the pathological markup it knows (crowded elements) before feedparser
sees it; the budget is for what nobody foresaw.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import resource
import select
import signal
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bot.errors import ParseError
from bot.feeds.parse import ParsedFeed, parse_feed
from bot.records import FeedSpec

MEMORY_BYTES = 2 * 1024**3  # address space: the interpreter maps ~0.3 GB; parses need less
MAX_JOBS = 200  # parses per worker before it is replaced
# A worker only uses CPU, so its wall time is close to its CPU time unless the machine is
# overloaded; past this many times the budget (plus slack) it is killed anyway.
WALL_FACTOR = 4.0
WALL_SLACK_SECONDS = 5.0
WORKER_NAME = "sahel-watch-parse"

_CONTEXT = multiprocessing.get_context("forkserver")
# "__main__": the fork server imports the main module once, so workers need not.
_CONTEXT.set_forkserver_preload(["__main__", "bot.feeds.parse"])
_WIDTH = max(2, os.cpu_count() or 1)
_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


# -- in the worker ----------------------------------------------------------------------


def _exit_with(bot: int) -> None:
    """End this process as soon as the bot process `bot` has ended.

    The fork server outlives the bot while any worker runs (each holds its "alive" pipe),
    so neither the parent nor the fork server can be watched: the bot itself is.
    """
    try:
        pidfd = os.pidfd_open(bot)
    except ProcessLookupError:  # already gone
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd here: the CPU limit still ends a parse
        return

    def watch() -> None:
        select.select([pidfd], [], [])  # readable once the bot has exited
        os._exit(1)

    threading.Thread(target=watch, name="bot-watch", daemon=True).start()


def _serve(bot: int, conn: Connection) -> None:
    """The worker: parse each job sent on `conn` within its CPU budget, until EOF."""
    # Ctrl-C in a terminal signals the whole process group: the bot decides when a parse
    # stops (it closes the pipe, or kills the worker), not a KeyboardInterrupt in here
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with(bot)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    while True:
        try:
            body, headers, spec, max_entries, cpu_seconds = conn.recv()
        except EOFError:  # the bot closed the pipe or is gone
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = math.ceil(usage.ru_utime + usage.ru_stime + cpu_seconds)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        answer: tuple[str, Any]
        try:
            answer = ("ok", parse_feed(body, headers, spec, max_entries=max_entries))
        except ParseError as exc:
            answer = ("error", str(exc))
        except MemoryError:
            answer = ("error", f"parse needed more than {MEMORY_BYTES // 1024**2} MB")
        conn.send(answer)


# -- in the bot -------------------------------------------------------------------------


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection
    jobs: int = 0

    @classmethod
    def start(cls) -> _Worker:
        ours, theirs = _CONTEXT.Pipe()
        process = _CONTEXT.Process(
            target=_serve, args=(os.getpid(), theirs), name=WORKER_NAME, daemon=True
        )
        try:
            process.start()
        finally:
            theirs.close()
        return cls(process, ours)

    def stop(self) -> None:
        """Kill the worker if it runs, reap it and close the pipe (quick: after SIGKILL)."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.process.close()
        self.conn.close()


_IDLE: list[_Worker] = []  # warm workers, shared by every event loop
_BUSY: dict[int, _Worker] = {}  # by pid


def start_fork_server() -> None:
    """Start the fork server if it is not running, without waiting for it to be ready."""
    forkserver.ensure_running()


def busy_workers() -> tuple[int, ...]:
    """Process ids of the workers parsing right now (for tests and diagnostics)."""
    return tuple(_BUSY)


def _slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _SLOTS.get(loop)
    if slots is None:
        slots = _SLOTS[loop] = asyncio.Semaphore(_WIDTH)
    return slots


def _take() -> _Worker:
    while _IDLE:
        worker = _IDLE.pop()
        if worker.process.is_alive():
            return worker
        worker.stop()
    return _Worker.start()


async def _readable(conn: Connection) -> None:
    """Wait until `conn` has data or is closed by the other end."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _why_it_died(exitcode: int | None, cpu_seconds: int) -> str:
    if exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"parse used more than its CPU budget of {cpu_seconds} s"
    return f"parser process ended without an answer (exit {exitcode})"


async def _ask(worker: _Worker, job: tuple[Any, ...], cpu_seconds: int) -> tuple[str, Any]:
    """Send one job and wait for the answer; `ParseError` if the worker dies or hangs."""
    wall = cpu_seconds * WALL_FACTOR + WALL_SLACK_SECONDS
    try:
        # Both block the loop only for the copy (milliseconds for megabytes): an idle
        # worker is reading, and a worker that became readable is writing its answer.
        # Not in a thread: a cancelled thread could go on reading or writing a closed fd.
        worker.conn.send(job)
        async with asyncio.timeout(wall):
            await _readable(worker.conn)
        answer: tuple[str, Any] = worker.conn.recv()
    except TimeoutError:
        raise ParseError(f"parse took more than {wall:.0f} s (stopped)") from None
    except (EOFError, BrokenPipeError, ConnectionResetError):
        await asyncio.to_thread(worker.process.join, 1.0)
        raise ParseError(_why_it_died(worker.process.exitcode, cpu_seconds)) from None
    return answer


async def parse_bounded(
    body: bytes,
    headers: Mapping[str, str],
    spec: FeedSpec,
    *,
    max_entries: int,
    cpu_seconds: int,
) -> ParsedFeed:
    """`parse_feed` in a worker process limited to `cpu_seconds` of CPU; `ParseError` else."""
    async with _slots():
        worker = _take()
        pid = worker.process.pid or 0
        _BUSY[pid] = worker
        answered = False
        try:
            job = (body, dict(headers), spec, max_entries, cpu_seconds)
            kind, value = await _ask(worker, job, cpu_seconds)
            answered = True
        finally:  # answered: back to the idle list; else (failed, cancelled) killed now
            del _BUSY[pid]
            worker.jobs += 1
            if answered and worker.jobs < MAX_JOBS and len(_IDLE) < _WIDTH:
                _IDLE.append(worker)
            else:
                worker.stop()
    if kind == "error":
        raise ParseError(str(value))
    if not isinstance(value, ParsedFeed):
        raise ParseError("parser process sent something unexpected")
    return value
