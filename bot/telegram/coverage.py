"""Coverage edits: a sent alert is edited when more outlets report its story ("Also reported
by 4 outlets: …"), from the edit outbox of `bot.storage.alerts` (leased rows, a bounded
number of edits per alert, a settling time between them).

One `CoverageEditor` runs beside each process's deliverer. Each edit goes through the same
sender as alerts, so through the per-chat pacing and the send rate every replica shares.
An alert whose story gained only outlets it already names (a second copy from one outlet)
is settled without an edit; so is one Telegram says would not change (an edit repeated
after a crash). Flood control and network errors put the row back with no edit counted;
a message that cannot be edited any more is given up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from bot.delivery.sender import Gone, Rejected, RetryLater, Sender, Sent
from bot.i18n import Voice
from bot.storage import alerts
from bot.storage.alerts import EditJob, EditPolicy
from bot.storage.models import utcnow
from bot.storage.stories import story_views
from bot.telegram.explain import keyboard, why_line
from bot.telegram.render import outlets_of, render_alert

log = logging.getLogger(__name__)

RETRY_SECONDS = 30.0  # after a network error, before the row is tried again


class CoverageEditor:
    def __init__(
        self,
        engine: Engine,
        sender: Sender,
        *,
        owner: str,
        policy: EditPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        interval: float = 5.0,
    ) -> None:
        self.engine, self.sender, self.owner = engine, sender, owner
        self.policy = policy or EditPolicy()
        self._clock = clock
        self.interval = interval
        self.edited = 0  # edits Telegram made
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Edit what is due every `interval` seconds (or when woken) until `stop`."""
        while not stop.is_set():
            try:
                while await self.run_once():
                    pass
            except Exception as exc:  # the database: try again at the next round
                log.warning("coverage edits paused (%s: %s)", type(exc).__name__, exc)
            waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
            try:
                await asyncio.wait(
                    waiters, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim due edits and make them; how many rows were claimed."""
        jobs = await asyncio.to_thread(
            alerts.claim_edits, self.engine, owner=self.owner, now=self._clock(), policy=self.policy
        )
        for job in jobs:
            await self._edit(job)
        return len(jobs)

    async def _finish(
        self, job: EditJob, shown: int, *, edited: bool, give_up: bool = False
    ) -> None:
        await asyncio.to_thread(
            alerts.finish_edit,
            self.engine,
            job.delivery_id,
            owner=self.owner,
            outlets_shown=shown,
            edited=edited,
            now=self._clock(),
            policy=self.policy,
            give_up=give_up,
        )

    async def _edit(self, job: EditJob) -> None:
        views = await asyncio.to_thread(story_views, self.engine, [job.story_id])
        view = views.get(job.story_id)
        if view is None:
            await self._finish(job, job.outlets_shown, edited=False, give_up=True)
            return
        thread = await asyncio.to_thread(
            alerts.thread_of, self.engine, job.delivery_id, now=self._clock()
        )
        shown = len(view.also)
        if thread.muted:  # the chat muted the story (or its saga): no more edits
            await self._finish(job, shown, edited=False, give_up=True)
            return
        if outlets_of(view) <= outlets_of(view, job.outlets_shown):
            await self._finish(job, shown, edited=False)  # no outlet it does not name already
            return
        v = Voice(thread.language, thread.timezone)
        text = render_alert(view, v=v, explain=why_line(view.topics, thread.follows_title, v))
        outcome = await self.sender.edit(
            job.chat_id, job.message_id, text, buttons=keyboard(job.story_id, v),
            previews=job.previews,
        )  # fmt: skip
        if isinstance(outcome, Sent):  # unchanged: an edit made before a crash, not counted
            self.edited += 0 if outcome.unchanged else 1
            await self._finish(job, shown, edited=not outcome.unchanged)
        elif isinstance(outcome, Rejected | Gone):
            log.info("alert %s can no longer be edited (%s)", job.delivery_id, outcome.reason)
            await self._finish(job, shown, edited=False, give_up=True)
        else:
            wait = outcome.seconds if isinstance(outcome, RetryLater) else RETRY_SECONDS
            at = self._clock() + timedelta(seconds=wait)
            await asyncio.to_thread(
                alerts.release_edit, self.engine, job.delivery_id, owner=self.owner, at=at
            )
