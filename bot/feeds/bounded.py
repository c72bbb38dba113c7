"""Parse a feed within a CPU budget, in a child process that can be stopped.

feedparser is pure Python on hostile input: a body the size cap lets through can still
cost minutes of CPU, and a thread cannot be stopped. So each parse runs in a child
process forked from multiprocessing's fork server (which has the parser imported: a fork
costs a few milliseconds, see `bench/parse.py`). The child sets its own limits before it
reads the body:

* `RLIMIT_CPU` = the budget: the kernel sends SIGXCPU when the child has used it, and
  SIGKILL one second later if it is still running. No other process is slowed down or
  judged by the wall clock, so a busy machine does not fail good feeds.
* `RLIMIT_AS` = `MEMORY_BYTES`: a parse that would take more fails instead of swapping.

The parent awaits the child's answer on a pipe without blocking the event loop or a
thread; if it is cancelled (shutdown), or the child outlives a generous wall-clock
backstop, the child is killed at once. If the bot itself dies (even by SIGKILL), the child
notices through a pidfd of the bot (Linux 5.3+) and exits; elsewhere its CPU limit still
ends it. At most `os.cpu_count()` parses run at once per event loop.

`xmlsafe` refuses the pathological markup it knows (crowded elements) before feedparser
sees it; the budget is for what nobody foresaw.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import select
import signal
import threading
import weakref
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

from bot.errors import ParseError
from bot.feeds.parse import ParsedFeed, parse_feed
from bot.records import FeedSpec

MEMORY_BYTES = 2 * 1024**3  # address space: the interpreter maps ~0.3 GB; parses need less
# The child only uses CPU, so its wall time is close to its CPU time unless the machine is
# overloaded; past this many times the budget (plus the fork) it is killed anyway.
WALL_FACTOR = 4.0
WALL_SLACK_SECONDS = 5.0

_CONTEXT = multiprocessing.get_context("forkserver")
# "__main__": the fork server imports the main module once, so children need not.
_CONTEXT.set_forkserver_preload(["__main__", "bot.feeds.parse"])
_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _exit_with(bot: int) -> None:
    """End this process as soon as the bot process `bot` has ended.

    The fork server outlives the bot while any child runs (each child holds its "alive"
    pipe), so neither the parent nor the fork server can be watched: the bot itself is.
    """
    try:
        pidfd = os.pidfd_open(bot)
    except ProcessLookupError:  # already gone
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd here: the CPU limit still ends the child
        return

    def watch() -> None:
        select.select([pidfd], [], [])  # readable once the bot has exited
        os._exit(1)

    threading.Thread(target=watch, name="bot-watch", daemon=True).start()


def _child(
    bot: int,
    conn: Connection,
    body: bytes,
    headers: dict[str, str],
    spec: FeedSpec,
    max_entries: int,
    cpu_seconds: int,
) -> None:
    """In the child: limit this process, parse, send back the feed or the error text."""
    _exit_with(bot)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    answer: tuple[str, Any]
    try:
        answer = ("ok", parse_feed(body, headers, spec, max_entries=max_entries))
    except ParseError as exc:
        answer = ("error", str(exc))
    except MemoryError:
        answer = ("error", f"parse needed more than {MEMORY_BYTES // 1024**2} MB")
    conn.send(answer)
    conn.close()


def _slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _SLOTS.get(loop)
    if slots is None:
        slots = _SLOTS[loop] = asyncio.Semaphore(os.cpu_count() or 1)
    return slots


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


async def parse_bounded(
    body: bytes,
    headers: Mapping[str, str],
    spec: FeedSpec,
    *,
    max_entries: int,
    cpu_seconds: int,
) -> ParsedFeed:
    """`parse_feed` in a child process limited to `cpu_seconds` of CPU; `ParseError` else."""
    async with _slots():
        receiver, sender = _CONTEXT.Pipe(duplex=False)
        process = _CONTEXT.Process(
            target=_child,
            args=(os.getpid(), sender, body, dict(headers), spec, max_entries, cpu_seconds),
            name="sahel-watch-parse",
            daemon=True,
        )
        try:
            process.start()
            sender.close()  # the child holds the only writing end: EOF when it dies
            wall = cpu_seconds * WALL_FACTOR + WALL_SLACK_SECONDS
            try:
                async with asyncio.timeout(wall):
                    await _readable(receiver)
            except TimeoutError:
                raise ParseError(f"parse took more than {wall:.0f} s (killed)") from None
            try:
                answer = await asyncio.to_thread(receiver.recv)
            except EOFError:
                await asyncio.to_thread(process.join, 1.0)
                raise ParseError(_why_it_died(process.exitcode, cpu_seconds)) from None
        finally:  # answered, failed or cancelled: the child is gone before this returns
            sender.close()
            if process.pid is not None:
                if process.is_alive():
                    process.kill()
                process.join()  # it has answered or been killed: returns at once
                process.close()
            receiver.close()
    kind, value = answer
    if kind == "error":
        raise ParseError(str(value))
    if not isinstance(value, ParsedFeed):
        raise ParseError("parser process sent something unexpected")
    return value
