"""Drain the outbox: claim due deliveries, render, send, record the outcome.

One `Deliverer` per process. It keeps at most `policy.window` deliveries claimed (state
`sending`, leased to it); each becomes a task that renders the story (cached briefly),
waits its turn (per-chat pacing, then PTB's AIORateLimiter: 29/s overall, 19/min per
group, see bot/telegram/app.py) and sends. Outcomes (see `sender`):

    Sent        → sent, with Telegram's message id, committed at once
    RetryLater  → pending again after the time Telegram asked; not an attempt
    Moved       → the subscriber's chat id is updated and the message resent once
    Gone        → skipped, and the subscriber turned off (with its other pending rows)
    Rejected    → failed, with Telegram's reason; never retried
    Transient   → pending again after exponential backoff with jitter, then failed
                  after `max_attempts`

Exactly once, and its limit. A row is marked sent in its own transaction right after
Telegram answers, so a restart never repeats a recorded send. The ambiguity is a request
on the wire when the process dies (or a TimedOut): Telegram may have delivered it and we
cannot ask. Policy: at least once. Such rows return to pending (bot/outbox.py `recover`)
and are sent again, so the duplicate window is at most the number of requests in flight
at the moment of the crash, bounded by `window` and in practice by the rate: at 29
messages/s and ~50 ms per request, one or two (measured: 2 per SIGKILL in every trial of
`bench/fanout.py --kill`, and exactly the sends Telegram had accepted but the database had
not yet recorded; `tests/test_run_e2e.py` checks that equality). Rows claimed but still
waiting for the rate limiter were never sent and come back without a duplicate.

Shutdown (`stop`): no new claims; in-flight sends get `grace` seconds to finish and be
recorded; whatever has not finished by then is cancelled and released to pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from bot import metrics, outbox, subscriptions
from bot.models import utcnow
from bot.outbox import Claimed
from bot.telegram.queries import story_views
from bot.telegram.render import render_alert
from bot.telegram.sender import Gone, Moved, Outcome, Rejected, RetryLater, Sender, Sent, Transient
from bot.telegram.views import StoryView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_max: float = 600.0
    lease_seconds: float = 30.0
    window: int = 64  # most deliveries claimed at once by this process
    idle_poll: float = 1.0  # seconds between outbox checks when idle
    grace: float = 5.0  # seconds for in-flight sends at shutdown
    story_cache_seconds: float = 30.0


def backoff(
    attempts: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Delay before retry number `attempts` (1-based): base·2^(n-1), capped, full jitter ±50 %."""
    delay = min(cap, base * float(2 ** max(0, attempts - 1)))
    return delay * (0.5 + rand())


@dataclass
class Tally:
    sent: int = 0
    retried: int = 0
    rate_limited: int = 0
    failed: int = 0
    gone: int = 0
    migrated: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)


class Deliverer:
    def __init__(
        self,
        engine: Engine,
        sender: Sender,
        *,
        owner: str,
        policy: Policy | None = None,
        console: bool = False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine, self.sender, self.owner = engine, sender, owner
        self.policy = policy or Policy()
        self.console = console
        self.tally = Tally()
        self._clock = clock
        self._wake = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], Claimed] = {}
        self._stories: dict[int, tuple[float, StoryView]] = {}

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def wake(self) -> None:
        """New deliveries were written: look now rather than at the next idle poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then finish or release what is claimed."""
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await self.fill()
                    failures = 0
                except Exception as exc:  # the database is locked or gone: log, wait, go on
                    failures += 1
                    pause = min(60.0, self.policy.idle_poll * 2**failures)
                    first_line = (str(exc).splitlines() or [""])[0][:200]
                    log.error("could not claim deliveries (%s: %s); retrying in %.0f s",
                              type(exc).__name__, first_line, pause)  # fmt: skip
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=pause)
                    continue
                await self._idle(stop)
        finally:
            await self.shutdown()

    async def fill(self) -> int:
        """Claim as many due rows as the window allows and start their sends."""
        room = self.policy.window - len(self._tasks)
        if room <= 0:
            return 0
        claimed = await asyncio.to_thread(
            outbox.claim,
            self.engine,
            owner=self.owner,
            limit=room,
            lease_seconds=self.policy.lease_seconds,
            console=self.console,
            now=self._clock(),
        )
        for job in claimed:
            task = asyncio.create_task(self._deliver(job), name=f"delivery-{job.delivery_id}")
            self._tasks[task] = job
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        if len(self._tasks) <= self.policy.window // 2:
            self._wake.set()  # room in the window: claim the next batch
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())

    async def _idle(self, stop: asyncio.Event) -> None:
        if len(self._tasks) >= self.policy.window or not self._wake.is_set():
            waiter = asyncio.create_task(self._wake.wait())
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait(
                    {waiter, stopper},
                    timeout=self.policy.idle_poll,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                waiter.cancel()
                stopper.cancel()
        self._wake.clear()

    async def drain(self, within: float = 60.0) -> None:
        """Deliver everything due now and wait for it (tests and benchmarks)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            started = await self.fill()
            if not started and not self._tasks:
                return
            if self._tasks:
                await asyncio.wait(
                    set(self._tasks),
                    timeout=max(0.0, deadline - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        raise TimeoutError("outbox not drained in time")

    async def shutdown(self) -> None:
        tasks = set(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=self.policy.grace)
        left = {t: job for t, job in self._tasks.items() if not t.done()}
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(set(left))
        ids = [job.delivery_id for job in left.values()]
        released = (
            await asyncio.to_thread(outbox.release, self.engine, ids, owner=self.owner)
            if ids
            else 0
        )
        if released:
            log.info("released %d unsent deliveries at shutdown", released)

    async def renew(self) -> int:
        """Extend the leases of the deliveries this process is working on."""
        ids = [job.delivery_id for job in self._tasks.values()]
        return await asyncio.to_thread(
            outbox.renew,
            self.engine,
            ids,
            owner=self.owner,
            lease_seconds=self.policy.lease_seconds,
        )

    async def recover(self) -> int:
        busy = [job.delivery_id for job in self._tasks.values()]
        count = await asyncio.to_thread(
            outbox.recover,
            self.engine,
            me=self.owner,
            busy=busy,
            max_attempts=self.policy.max_attempts,
            now=self._clock(),
        )
        if count:
            log.warning(
                "recovered %d deliveries interrupted mid-send (sent again: at least once)", count
            )
            self.wake()
        return count

    async def _story(self, story_id: int) -> StoryView | None:
        now = time.monotonic()
        cached = self._stories.get(story_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        views = await asyncio.to_thread(story_views, self.engine, [story_id])
        view = views.get(story_id)
        if view is not None:
            if len(self._stories) > 256:
                self._stories = {k: v for k, v in self._stories.items() if v[0] > now}
            self._stories[story_id] = (now + self.policy.story_cache_seconds, view)
        return view

    async def _deliver(self, job: Claimed) -> None:
        try:
            await self._deliver_one(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or the database: retry later rather than strand the row
            log.exception("delivery %s crashed", job.delivery_id)
            delay = backoff(
                job.attempts + 1, base=self.policy.backoff_base, cap=self.policy.backoff_max
            )
            await asyncio.to_thread(
                outbox.retry_later,
                self.engine,
                job.delivery_id,
                owner=self.owner,
                at=self._clock() + timedelta(seconds=delay),
                error=f"internal error: {type(exc).__name__}",
            )

    async def _deliver_one(self, job: Claimed) -> None:
        view = await self._story(job.story_id)
        if view is None:
            await asyncio.to_thread(
                outbox.mark_failed,
                self.engine,
                job.delivery_id,
                owner=self.owner,
                error="story not found",
            )
            return
        text = render_alert(view)
        outcome = await self.sender.send(job.chat_id, job.thread_id, text)
        if isinstance(outcome, Moved):
            self.tally.migrated += 1
            await asyncio.to_thread(
                subscriptions.migrate, self.engine, job.chat_id, outcome.new_chat_id
            )
            outcome = await self.sender.send(outcome.new_chat_id, job.thread_id, text)
            if isinstance(outcome, Moved):
                outcome = Transient(f"chat migrated twice (to {outcome.new_chat_id})")
        await asyncio.to_thread(self._record, job, outcome, view.seen)

    def _record(self, job: Claimed, outcome: Outcome, story_created: datetime) -> None:
        name = type(outcome).__name__
        self.tally.by_outcome[name] = self.tally.by_outcome.get(name, 0) + 1
        metrics.SENDS.labels(result=name.lower()).inc()
        now = self._clock()
        if isinstance(outcome, Sent):
            self.tally.sent += 1
            metrics.SEND_LATENCY.observe(max(0.0, (now - story_created).total_seconds()))
            outbox.mark_sent(self.engine, job.delivery_id, message_id=outcome.message_id, now=now)
        elif isinstance(outcome, RetryLater):
            self.tally.rate_limited += 1
            outbox.retry_later(
                self.engine,
                job.delivery_id,
                owner=self.owner,
                error=outcome.reason,
                at=now + timedelta(seconds=outcome.seconds),
                count_attempt=False,
            )
        elif isinstance(outcome, Gone):
            self.tally.gone += 1
            log.info("chat %s is gone (%s): subscriber turned off", job.chat_id, outcome.reason)
            outbox.mark_gone(
                self.engine,
                job.delivery_id,
                owner=self.owner,
                subscriber_id=job.subscriber_id,
                reason=outcome.reason,
            )
        elif isinstance(outcome, Rejected):
            self.tally.failed += 1
            log.warning("delivery %s rejected by Telegram: %s", job.delivery_id, outcome.reason)
            outbox.mark_failed(self.engine, job.delivery_id, owner=self.owner, error=outcome.reason)
        elif isinstance(outcome, Transient):
            attempts = job.attempts + 1
            if attempts >= self.policy.max_attempts:
                self.tally.failed += 1
                log.warning(
                    "delivery %s failed after %d attempts: %s",
                    job.delivery_id,
                    attempts,
                    outcome.reason,
                )
                outbox.mark_failed(
                    self.engine,
                    job.delivery_id,
                    owner=self.owner,
                    error=f"gave up after {attempts} attempts: {outcome.reason}",
                )
            else:
                self.tally.retried += 1
                delay = backoff(
                    attempts, base=self.policy.backoff_base, cap=self.policy.backoff_max
                )
                outbox.retry_later(
                    self.engine,
                    job.delivery_id,
                    owner=self.owner,
                    error=outcome.reason,
                    at=now + timedelta(seconds=delay),
                )
