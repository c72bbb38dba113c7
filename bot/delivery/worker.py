"""Drain the outbox: claim due deliveries, render, send, record the outcome.

One `Deliverer` per process. It keeps at most `policy.window` deliveries claimed (state
`sending`, leased to it); each becomes a task that renders the story (cached briefly),
waits its turn (per-chat pacing; the overall and the chat's slot shared by every replica
through the database, bot/delivery/ratelimit.py; then PTB's AIORateLimiter: 29/s
overall, 19/min per group, see bot/telegram/app.py) and sends. Outcomes (see `sender`):

    Sent        → sent, with Telegram's message id, committed at once
    RetryLater  → pending again after the time Telegram asked; not an attempt
    Moved       → the subscriber moves to the new chat id (merged into the subscriber
                  already there, if any: then a story it has is not sent again) and the
                  message is resent once
    Gone        → skipped, and the subscriber turned off (with its other pending rows)
    Rejected    → failed, with Telegram's reason; never retried
    Unconfirmed → no answer within `telegram.send_timeout`: Telegram may have delivered
                  it. Sent again once (the row's `timeouts` count survives restarts), then
                  failed with that reason; both counted in sahelwatch_unconfirmed_sends_total
    Transient   → pending again after exponential backoff with jitter, then failed
                  after `max_attempts`

Exactly once, and its limit. A row is marked sent in its own transaction right after
Telegram answers, so a restart never repeats a recorded send. The ambiguity is a request
on the wire when the process dies: Telegram may have delivered it and we cannot ask.
Policy: at least once. Such rows return to pending (bot/outbox.py `recover`) and are sent
again, so the duplicate window is at most the number of requests in flight at the moment
of the crash, bounded by `window` and in practice by the rate: at 29 messages/s and
~50 ms per request, one or two (measured: 2 per SIGKILL in every trial of
`bench/fanout.py --kill`, and exactly the sends Telegram had accepted but the database had
not yet recorded; `tests/test_run_e2e.py` checks that equality). Rows claimed but still
waiting for the rate limiter were never sent and come back without a duplicate.

A database that cannot record an outcome (down, unreachable) stops the sending: the
outcome is held in memory, no new send starts, and the held outcomes are written again
with backoff until the database takes them; then sending resumes. A held row stays
"busy" for this process's `recover` and `renew`, so it is recorded as sent, not sent
again. Only a process that dies while holding outcomes, or a lease that passes to another
replica during a long outage, repeats those sends.

Shutdown (`stop`): no new claims; in-flight sends get `grace` seconds to finish and be
recorded; whatever has not finished by then is cancelled and released to pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from telegram import InlineKeyboardMarkup

from bot import metrics
from bot.delivery.record import Held, Recorder
from bot.delivery.sender import (
    Gone,
    Moved,
    Outcome,
    RetryLater,
    Sender,
    Sent,
    Transient,
    Unconfirmed,
)
from bot.i18n import Voice
from bot.pacing import backoff
from bot.storage import alerts, outbox, subscribers
from bot.storage.errors import StorageError
from bot.storage.models import utcnow
from bot.storage.outbox import Claimed
from bot.storage.stories import story_views
from bot.telegram.coverage import CoverageEditor
from bot.telegram.explain import keyboard, why_line
from bot.telegram.render import render_alert
from bot.telegram.views import StoryView

log = logging.getLogger(__name__)

FOLLOW_UP_WAIT = 2.0  # seconds: a follow-up whose story's alert is on its way tries again


@dataclass(frozen=True)
class Policy:
    max_attempts: int = 8
    max_unconfirmed: int = 2  # sends without an answer before a row fails: one retry
    backoff_base: float = 2.0
    backoff_max: float = 600.0
    lease_seconds: float = 30.0
    window: int = 64  # most deliveries claimed at once by this process
    idle_poll: float = 1.0  # seconds between outbox checks when idle
    grace: float = 5.0  # seconds for in-flight sends at shutdown
    story_cache_seconds: float = 30.0
    record_retry_max: float = 10.0  # longest wait between tries to record held outcomes


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"


@dataclass
class Tally:
    sent: int = 0
    retried: int = 0
    rate_limited: int = 0
    failed: int = 0
    gone: int = 0
    migrated: int = 0
    merged: int = 0  # rows dropped because the migrated-to chat had the story already
    unconfirmed: int = 0
    held: int = 0  # outcomes the database could not record at once
    by_outcome: dict[str, int] = field(default_factory=dict)


class Deliverer:
    def __init__(
        self,
        engine: Engine,
        sender: Sender,
        *,
        owner: str,
        policy: Policy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine, self.sender, self.owner = engine, sender, owner
        self.policy = policy or Policy()
        self.tally = Tally()
        self._clock = clock
        self._wake = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], Claimed] = {}
        # per chat, the send claimed last: a chat's alerts go out in the order claimed
        self._last_turn: dict[int, asyncio.Future[None]] = {}
        self._turns: dict[int, tuple[asyncio.Future[None] | None, asyncio.Future[None]]] = {}
        self._stories: dict[int, tuple[float, StoryView]] = {}
        self._held: dict[int, Held] = {}  # outcomes not yet recorded, by delivery id
        self._recording = asyncio.Event()  # set while the database records outcomes
        self._recording.set()
        self._flusher: asyncio.Task[None] | None = None
        self._writing: set[asyncio.Future[None]] = set()
        self._recorder = Recorder(engine, owner, self.policy, self.tally, self._retry_delay)
        # alerts sent by this process, (story, subscriber) -> message id: a follow-up claimed
        # with its story replies to it before the database has recorded it
        self._sent_here: dict[tuple[int, int], int] = {}
        # coverage edits of the alerts sent (bot/telegram/coverage.py)
        self.editor = CoverageEditor(engine, sender, owner=owner, clock=clock)

    def _retry_delay(self, attempts: int) -> float:
        return backoff(attempts, base=self.policy.backoff_base, cap=self.policy.backoff_max)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def held(self) -> int:
        """Outcomes waiting for the database; while any wait, no send starts."""
        return len(self._held)

    def wake(self) -> None:
        """New deliveries were written: look now rather than at the next idle poll."""
        self._wake.set()
        if self.editor is not None:
            self.editor.wake()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then finish or release what is claimed."""
        failures = 0
        editing = (
            asyncio.create_task(self.editor.run(stop), name="coverage-edits")
            if self.editor is not None
            else None
        )
        try:
            while not stop.is_set():
                try:
                    await self.fill()
                    failures = 0
                except Exception as exc:  # the database is locked or gone: log, wait, go on
                    failures += 1
                    pause = backoff(failures + 1, base=self.policy.idle_poll, cap=60.0)
                    log.error("could not claim deliveries (%s); retrying in %.0f s",
                              _first_line(exc), pause)  # fmt: skip
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=pause)
                    continue
                await self._idle(stop)
        finally:
            if editing is not None:
                await asyncio.wait({editing}, timeout=self.policy.grace)
                editing.cancel()
            await self.shutdown()

    async def fill(self) -> int:
        """Claim as many due rows as the window allows and start their sends."""
        room = self.policy.window - len(self._tasks)
        if room <= 0 or not self._recording.is_set():
            return 0
        claimed = await asyncio.to_thread(
            outbox.claim,
            self.engine,
            owner=self.owner,
            limit=room,
            lease_seconds=self.policy.lease_seconds,
            now=self._clock(),
        )
        loop = asyncio.get_running_loop()
        for job in claimed:  # in publication order (outbox.claim): each chat's turns in line
            mine: asyncio.Future[None] = loop.create_future()
            self._turns[job.delivery_id] = (self._last_turn.get(job.chat_id), mine)
            self._last_turn[job.chat_id] = mine
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
            if not started and not self._tasks and not self._held:
                return
            waiting = set(self._tasks) | ({self._flusher} if self._flusher else set())
            if waiting:
                await asyncio.wait(
                    waiting,
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
        if self._writing:
            await asyncio.wait(set(self._writing))
        await self._stop_flusher()
        ids = [job.delivery_id for job in left.values() if job.delivery_id not in self._held]
        try:
            released = (
                await asyncio.to_thread(outbox.release, self.engine, ids, owner=self.owner)
                if ids
                else 0
            )
        except Exception as exc:
            log.warning("could not release %d unsent deliveries (%s); their leases expire",
                        len(ids), _first_line(exc))  # fmt: skip
            released = 0
        if released:
            log.info("released %d unsent deliveries at shutdown", released)

    async def _stop_flusher(self) -> None:
        """At shutdown: one last try to record held outcomes, else say what will repeat."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._held and not await self._write_held():
            log.error(
                "%d sends could not be recorded before shutdown; they will be sent again",
                len(self._held),
            )

    def _busy(self) -> list[int]:
        return [job.delivery_id for job in self._tasks.values()] + list(self._held)

    async def renew(self) -> int:
        """Extend the leases of the deliveries this process is working on (or holds)."""
        return await asyncio.to_thread(
            outbox.renew,
            self.engine,
            self._busy(),
            owner=self.owner,
            lease_seconds=self.policy.lease_seconds,
        )

    async def recover(self) -> int:
        count = await asyncio.to_thread(
            outbox.recover,
            self.engine,
            me=self.owner,
            busy=self._busy(),
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

    async def _my_turn(self, job: Claimed) -> None:
        """Wait until the chat's send claimed before this one has been answered."""
        before = self._turns.get(job.delivery_id, (None, None))[0]
        if before is not None and not before.done():
            await asyncio.shield(before)

    def _turn_done(self, job: Claimed) -> None:
        _, mine = self._turns.pop(job.delivery_id, (None, None))
        if mine is None:
            return
        if not mine.done():
            mine.set_result(None)
        if self._last_turn.get(job.chat_id) is mine:
            del self._last_turn[job.chat_id]

    async def _deliver(self, job: Claimed) -> None:
        try:
            await self._deliver_one(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or the database: retry later rather than strand the row
            log.error("delivery %s crashed (%s)", job.delivery_id, _first_line(exc))
            log.debug("delivery %s crashed", job.delivery_id, exc_info=True)
            delay = backoff(
                job.attempts + 1, base=self.policy.backoff_base, cap=self.policy.backoff_max
            )
            try:
                await asyncio.to_thread(
                    outbox.retry_later,
                    self.engine,
                    job.delivery_id,
                    owner=self.owner,
                    at=self._clock() + timedelta(seconds=delay),
                    error=f"internal error: {type(exc).__name__}",
                )
            except Exception:  # the database is gone: the lease expires, the row comes back
                log.warning("delivery %s left to its lease", job.delivery_id)
        finally:
            self._turn_done(job)

    async def _send(
        self,
        job: Claimed,
        chat_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        buttons: InlineKeyboardMarkup | None = None,
    ) -> Outcome:
        await self._recording.wait()  # no send starts while outcomes wait for the database
        return await self.sender.send(
            chat_id,
            job.thread_id,
            text,
            silent=job.silent,
            previews=job.previews,
            reply_to=reply_to,
            buttons=buttons,
        )

    def _reply_to(self, job: Claimed, thread: alerts.Thread) -> tuple[int | None, bool]:
        """The alert a follow-up replies to, and whether to wait for that alert: one still on
        its way is replied to once this process has sent it; one another process is sending
        is waited for while the follow-up is young (`alerts.FOLLOW_WAIT`), then let go."""
        if thread.wait_for is None:
            return thread.reply_to, False
        here = self._sent_here.get((thread.wait_for, job.subscriber_id))
        return here, here is None and thread.young

    def _remember(self, job: Claimed, outcome: Outcome) -> None:
        if isinstance(outcome, Sent):
            if len(self._sent_here) > 10_000:
                self._sent_here.clear()
            self._sent_here[(job.story_id, job.subscriber_id)] = outcome.message_id

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
        thread = await asyncio.to_thread(
            alerts.thread_of, self.engine, job.delivery_id, now=self._clock()
        )
        v = Voice(thread.language, thread.timezone)
        text = render_alert(view, v=v, explain=why_line(view.topics, thread.follows_title, v))
        buttons = keyboard(view.story_id, v)
        await self._my_turn(job)
        reply_to, wait = self._reply_to(job, thread)
        if wait:  # the alert it follows up is on its way: send this one after it, as a reply
            await asyncio.to_thread(
                outbox.retry_later,
                self.engine,
                job.delivery_id,
                owner=self.owner,
                at=self._clock() + timedelta(seconds=FOLLOW_UP_WAIT),
                error=f"waits for the alert of story {thread.wait_for}",
                count_attempt=False,
            )
            return
        outcome = await self._send(job, job.chat_id, text, reply_to=reply_to, buttons=buttons)
        if isinstance(outcome, Moved):
            self.tally.migrated += 1
            await asyncio.to_thread(
                subscribers.migrate, self.engine, job.chat_id, outcome.new_chat_id
            )
            state = await asyncio.to_thread(outbox.state_of, self.engine, job.delivery_id)
            if state != "sending":  # merged: the new chat's subscriber has this story
                self.tally.merged += 1
                log.info("delivery %s merged into chat %s", job.delivery_id, outcome.new_chat_id)
                return
            reply_to = None  # the earlier alert went to the old chat
            outcome = await self._send(job, outcome.new_chat_id, text, buttons=buttons)
            if isinstance(outcome, Moved):
                outcome = Transient(f"chat migrated twice (to {outcome.new_chat_id})")
        self._remember(job, outcome)  # before the chat's next alert takes its turn
        self._turn_done(job)
        self._count(job, outcome, view.seen)
        # Telegram has answered: the outcome is written even if shutdown cancels this task
        held = Held(job, outcome, self._clock(), outlets=len(view.also), reply_to=reply_to)
        writing = asyncio.ensure_future(self._record(held))
        self._writing.add(writing)
        writing.add_done_callback(self._writing.discard)
        await asyncio.shield(writing)

    async def _record(self, result: Held) -> None:
        """Write an outcome; if the database cannot, hold it and stop sending until it can."""
        if self._recording.is_set():
            try:
                await asyncio.to_thread(self._recorder.write, result)
                return
            except StorageError as exc:  # anything else is a bug: the row's lease expires
                log.error("cannot record sends (%s); no send starts until the database "
                          "records them", _first_line(exc))  # fmt: skip
        self._held[result.job.delivery_id] = result
        self.tally.held += 1
        metrics.HELD_RESULTS.inc()
        if self._recording.is_set():
            self._recording.clear()
            self._flusher = asyncio.create_task(self._flush(), name="record-held")

    async def _flush(self) -> None:
        """Write held outcomes with backoff until the database takes them all; then resume."""
        tries = 0
        while not await self._write_held():
            tries += 1
            await asyncio.sleep(
                backoff(tries, base=self.policy.idle_poll, cap=self.policy.record_retry_max)
            )
        log.info("the database records sends again; sending resumes")
        self._recording.set()
        self._flusher = None
        self.wake()

    async def _write_held(self) -> bool:
        for delivery_id, result in list(self._held.items()):
            try:
                await asyncio.to_thread(self._recorder.write, result)
            except StorageError:
                return False
            del self._held[delivery_id]
        return True

    def _count(self, job: Claimed, outcome: Outcome, story_created: datetime) -> None:
        name = type(outcome).__name__
        self.tally.by_outcome[name] = self.tally.by_outcome.get(name, 0) + 1
        metrics.SENDS.labels(result=name.lower()).inc()
        if isinstance(outcome, Sent):
            self.tally.sent += 1
            latency = (self._clock() - story_created).total_seconds()
            metrics.SEND_LATENCY.observe(max(0.0, latency))
        elif isinstance(outcome, RetryLater):
            self.tally.rate_limited += 1
        elif isinstance(outcome, Gone):
            self.tally.gone += 1
        elif isinstance(outcome, Unconfirmed):
            self.tally.unconfirmed += 1
            last = job.timeouts + 1 >= self.policy.max_unconfirmed
            metrics.UNCONFIRMED_SENDS.labels(then="failed" if last else "retried").inc()
