"""`python -m bot run`: the long-running process.

    scheduler ──► poll job (Pipeline.run_cycle: stories + outbox rows) ──► wakes the deliverer
              ├─► housekeeping job (renew delivery leases, recover interrupted deliveries)
              └─► digests job (fold due periods, send due digests: bot/delivery/digest.py)
    deliverer ──► drains the outbox to Telegram (in console mode: prints each alerted story,
                  bot/delivery/console.py)
    Telegram  ──► long polling (or webhook) for the chat commands, while this replica holds
                  the "telegram-updates" lease (bot/role.py)

Several replicas may share one PostgreSQL database. Each feed is polled by one replica per
interval (a lease on the feed row, and a feed polled less than `POLL_SPACING` of the
interval ago by any replica is not due); each delivery row is sent by the one replica that
claimed it (bot/outbox.py); only the holder of the updates lease reads Telegram updates,
and another replica takes over within 1.25 × `telegram.updates_lease_seconds` when it
dies. Every replica sends alerts.

With TELEGRAM_BOT_TOKEN unset, the bot runs in console mode: the console is one more
sender, not a subscriber. It prints every alerted story once, in order, following its
cursor (bot/storage/cursors.py); the outbox is left to Telegram. A run with a token drops
that cursor, so a later console run starts from what is new then.

While the database cannot be reached at start (PostgreSQL still starting), it waits: one
line per attempt with the reason, retried with backoff; `health` says the database does not
answer meanwhile. A setting that cannot work (a bad DATABASE_URL) is not retried.

SIGTERM or SIGINT stops it cleanly, at any stage (waiting for the database included): no
new poll or claim starts; a running poll cycle finishes (its transaction commits or rolls
back whole); in-flight sends get a few seconds to finish and be recorded, and whatever was
claimed but not sent goes back to pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TextIO

from sqlalchemy.engine import Engine
from telegram.error import NetworkError

from bot.decide.embed import ModelUnavailable, load_embedder
from bot.delivery.console import CURSOR, ConsoleReader, ConsoleSender
from bot.delivery.digest import DIGEST_SECONDS, DigestPolicy, Digests
from bot.delivery.ratelimit import forget_idle_chats
from bot.delivery.sender import Sender
from bot.delivery.worker import Deliverer, Policy
from bot.errors import SahelWatchError
from bot.logs import redact
from bot.metrics import OpsServer
from bot.owners import make_owner
from bot.pacing import backoff_delay
from bot.role import LeasedRole
from bot.scheduler import Jobs, build_scheduler
from bot.seeds import load_seeds
from bot.settings import Settings
from bot.storage import cursors
from bot.storage.db import create_schema, make_engine
from bot.storage.errors import StorageUnavailable
from bot.telegram.app import (
    App,
    build_application,
    sender_for,
    start_application,
    start_updates,
    stop_application,
    stop_updates,
    updates_watch,
)
from bot.telegram.updates import UPDATES_LEASE

log = logging.getLogger(__name__)

POLL_SETTLE_SECONDS = 8.0  # under the 10 s a container stop allows
# Telegram unreachable at start: the first retry after this many seconds, doubling up to the
# maximum (an outage of minutes is retried within seconds of its end, a long one each 5 min)
TELEGRAM_RETRY_BASE = 2.0
TELEGRAM_RETRY_MAX = 300.0
# The database unreachable at start: retried after 1, 2, 4 … s, then every 30 s
DATABASE_RETRY_BASE = 1.0
DATABASE_RETRY_MAX = 30.0
# A feed that any replica began polling within this part of the interval is not due yet:
# below the 90 % a replica's own cycles can come early (scheduler jitter is 0..10 %), above
# the 50 % at which two replicas with interleaved cycles could each poll it once.
POLL_SPACING = 0.75

CONSOLE_BANNER = (
    "Sahel Watch is running in console mode: TELEGRAM_BOT_TOKEN is not set, so every alert "
    "is printed here instead of being sent to Telegram. Set TELEGRAM_BOT_TOKEN to run the "
    "Telegram bot. Stop with Ctrl-C."
)


class TokenRefused(SahelWatchError):
    """The Bot API refused the token while the bot was running (already logged)."""


class Cycle(Protocol):
    async def run_cycle(self, *, spacing: float = ..., verdicts: bool = ...) -> object: ...

    async def aclose(self) -> None: ...


class _DropFloodNoise(logging.Filter):
    """AIORateLimiter logs every RetryAfter with a traceback; deliver.py handles and logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Rate limit hit after maximum")


class _DropTokenNoise(logging.Filter):
    """PTB logs a refused token on getUpdates with a traceback; run.py says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Invalid token" not in record.getMessage()


def quiet_libraries() -> None:
    """Per-request and per-job chatter off: httpx logs URLs (with the token), APScheduler
    logs every run, and the rate limiter logs every 429 that deliver.py already handles."""
    for name in ("httpx", "httpcore", "apscheduler.executors", "apscheduler.scheduler"):
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    limiter = logging.getLogger("telegram.ext.AIORateLimiter")
    if not any(isinstance(f, _DropFloodNoise) for f in limiter.filters):
        limiter.addFilter(_DropFloodNoise())
    loop = logging.getLogger("telegram.ext")  # PTB names its retry loop's logger so
    if not any(isinstance(f, _DropTokenNoise) for f in loop.filters):
        loop.addFilter(_DropTokenNoise())


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def seed_lines(settings: Settings) -> tuple[str, ...]:
    return tuple(seed.title for seed in load_seeds(Path(settings.seeds_dir)))


def _pipeline(settings: Settings, engine: Engine, owner: str) -> Cycle:
    from bot.pipeline import Pipeline  # the ingestion half loads only when the bot runs

    return Pipeline.create(settings, engine, owner=owner)


async def run(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    out: TextIO | None = None,
    policy: Policy | None = None,
) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT), then shut down cleanly."""
    stop = stop or asyncio.Event()
    out = out or sys.stdout
    quiet_libraries()
    # SIGTERM and SIGINT set `stop` from here on (not asyncio.run's SIGINT, which cancels the
    # task wherever it is, a database call in a thread included): every stage below honours it
    with _signals(stop):
        log.info("starting")
        await asyncio.to_thread(load_embedder)  # no model, no decisions: fail before anything
        engine = make_engine(settings.database_url)
        try:
            if await _migrate(engine, stop):
                await _serve(settings, engine, stop, out, policy)
            else:
                log.info("stopped")
        finally:
            engine.dispose()


async def _migrate(engine: Engine, stop: asyncio.Event) -> bool:
    """Bring the schema up to date; while the database cannot be reached (a compose stack
    whose database starts after the bot), retry with the one backoff, a line per attempt.
    False when `stop` came first. Any other database error raises at once."""
    url = engine.url
    where = url.render_as_string(hide_password=True)
    secrets = (url.password,) if isinstance(url.password, str) else ()
    failures = 0
    while not stop.is_set():
        try:
            await asyncio.to_thread(create_schema, engine)
            if failures:
                log.info("reached the database after %d failed attempt(s)", failures)
            return not stop.is_set()
        except StorageUnavailable as exc:
            failures += 1
            delay = backoff_delay(
                failures, base=DATABASE_RETRY_BASE, maximum=DATABASE_RETRY_MAX, retry_after=None
            )
            log.warning(
                "cannot reach the database at %s (%s); retrying in %.0f s",
                where,
                redact(str(exc), secrets),
                delay,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
    return False


async def _serve(
    settings: Settings, engine: Engine, stop: asyncio.Event, out: TextIO, policy: Policy | None
) -> None:
    seeds = seed_lines(settings)
    owner = make_owner()
    policy = policy or Policy(max_attempts=settings.telegram.max_send_attempts)
    # console mode: the console's reader, its cursor started before the first poll
    consoles = [] if settings.telegram_bot_token else [ConsoleReader(engine, ConsoleSender(out))]
    for console in consoles:
        await console.start()
    pipeline = _pipeline(settings, engine, owner)
    deliverers: list[Deliverer] = []  # one, once there is somewhere to send to
    digest_senders: list[Digests] = []  # likewise

    async def poll() -> None:
        # counts, not every entry's verdict: the cycle's memory stays flat whatever its size
        spacing = settings.poll_interval * POLL_SPACING
        report = await pipeline.run_cycle(spacing=spacing, verdicts=False)
        if getattr(report, "new_story_ids", None):
            for deliverer in deliverers:
                deliverer.wake()
            for console in consoles:
                console.wake()

    async def housekeeping() -> None:
        for deliverer in deliverers:
            await deliverer.renew()
            await deliverer.recover()
        for digester in digest_senders:
            await digester.renew()
            await digester.recover()
        await asyncio.to_thread(forget_idle_chats, engine)  # send_rate rows of quiet chats

    async def digests() -> None:
        for digester in digest_senders:
            await digester.run_once()

    jobs = Jobs()
    scheduler = build_scheduler(
        jobs,
        poll=poll,
        poll_interval=settings.poll_interval,
        housekeeping=housekeeping,
        digests=digests,
        digest_interval=DIGEST_SECONDS,
    )
    ops = _start_ops(settings, engine)
    # polling starts at once: alerts wait in the outbox while Telegram cannot be reached
    scheduler.start()
    application: App | None = None
    stop_delivery, stop_roles = asyncio.Event(), asyncio.Event()
    drain: asyncio.Task[None] | None = None
    reading: asyncio.Task[None] | None = None
    refused: list[str] = []
    try:
        sender: Sender
        if consoles:
            print(CONSOLE_BANNER, file=out, flush=True)
            log.info("console mode: no TELEGRAM_BOT_TOKEN")
            drain = asyncio.create_task(consoles[0].run(stop_delivery), name="console")
        else:
            application = build_application(settings, engine, seeds=seeds)
            if not await _connect(application, settings, stop):
                return  # stopped before Telegram answered
            await asyncio.to_thread(cursors.drop, engine, CURSOR)  # console mode has ended
            sender = sender_for(application)
            deliverer = Deliverer(engine, sender, owner=owner, policy=policy)
            await deliverer.recover()  # rows a dead local process left mid-send: pending again
            deliverers.append(deliverer)
            digest_policy = DigestPolicy(max_unconfirmed=policy.max_unconfirmed)  # one rule
            digester = Digests(engine, sender, owner=owner, policy=digest_policy)
            await digester.recover()  # digests a dead local process left mid-send
            digest_senders.append(digester)
            drain = asyncio.create_task(deliverer.run(stop_delivery), name="deliverer")
        reader = _updates_role(settings, engine, owner, application)
        reading = asyncio.create_task(reader.run(stop_roles), name="updates") if reader else None
        log.info(
            "running: polling %d feeds every %g s", len(settings.feeds), settings.poll_interval
        )
        refused = _stop_when_refused(application, stop)
        await stop.wait()
    finally:
        log.info("stopping")
        scheduler.shutdown(wait=False)
        stop_roles.set()  # stops reading updates, then frees the lease for another replica
        await asyncio.gather(_finish(reading), jobs.settle(POLL_SETTLE_SECONDS))
        stop_delivery.set()
        if drain is not None:
            await drain
        if application is not None:
            await _close_quietly(application)
        await pipeline.aclose()
        if ops is not None:
            ops.stop()
        log.info("stopped")
    if refused:
        raise TokenRefused(refused[0])


async def _connect(application: App, settings: Settings, stop: asyncio.Event) -> bool:
    """Start the Bot API client; while Telegram cannot be reached, retry with backoff (the
    one backoff, bot/feeds/fetch.py). False when `stop` came first. A refused token raises
    at once (`ConfigError` from start_application)."""
    failures = 0
    while True:
        try:
            await start_application(application, settings, updates=False)
            if failures:
                log.info("reached the Telegram Bot API after %d failed attempt(s)", failures)
            return True
        except NetworkError as exc:
            failures += 1
            delay = backoff_delay(
                failures, base=TELEGRAM_RETRY_BASE, maximum=TELEGRAM_RETRY_MAX, retry_after=None
            )
            log.warning(
                "cannot reach the Telegram Bot API at %s (%s); retrying in %.0f s, polling "
                "meanwhile",
                settings.telegram_api_url,
                exc.message,
                delay,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            return False


def _stop_when_refused(application: App | None, stop: asyncio.Event) -> list[str]:
    """A refused token ends the run (exit 1): log it once, stop; the reason lands in the list."""
    refused: list[str] = []
    if application is None:
        return refused

    def on_refused(reason: str) -> None:
        log.error("%s; stopping", reason)
        refused.append(reason)
        stop.set()

    updates_watch(application).on_refused = on_refused
    return refused


def _updates_role(
    settings: Settings, engine: Engine, owner: str, application: App | None
) -> LeasedRole | None:
    """Reading Telegram updates, a role for one replica at a time (none in console mode)."""
    if application is None:
        return None

    async def start() -> None:
        await start_updates(application, settings)

    async def stop() -> None:
        await stop_updates(application)

    watch = updates_watch(application)
    ttl = settings.telegram.updates_lease_seconds
    return LeasedRole(
        engine, UPDATES_LEASE, owner, ttl=ttl, start=start, stop=stop,
        report=lambda: (watch.last_ok, watch.refused),
    )  # fmt: skip


async def _finish(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    try:
        await task
    except Exception:
        log.warning("Telegram updates did not stop cleanly", exc_info=True)


async def _close_quietly(application: App) -> None:
    try:
        await stop_application(application)
    except Exception:
        log.warning("Telegram client did not shut down cleanly", exc_info=True)


def _start_ops(settings: Settings, engine: Engine) -> OpsServer | None:
    if not settings.ops.metrics_port:
        return None
    from bot.health import check_health

    return OpsServer(
        settings.ops.metrics_host, settings.ops.metrics_port, engine, lambda: check_health(settings)
    )


def main_run(settings: Settings) -> int:
    """`python -m bot run`: 0 after a clean stop; 1 if Telegram refuses the token while
    running, or the embedding model cannot be loaded. An unreachable Telegram is retried."""
    try:
        asyncio.run(run(settings))
    except ModelUnavailable as exc:
        print(f"sahel-watch: {exc}", file=sys.stderr)
        return 1
    except TokenRefused:
        return 1
    return 0
