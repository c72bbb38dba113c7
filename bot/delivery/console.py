"""The console: alerts printed to a stream when no Telegram token is configured.

`ConsoleSender` is one more `Sender` (bot/delivery/sender.py), with the Telegram sender's
interface: it prints a message's text with each link's address spelled out.

`ConsoleReader` is the console's deliverer. The console has no chat, so it takes no part
in the outbox: it shows every alerted story once, in order, through a durable cursor
(bot/storage/cursors.py, named `CURSOR`). Each round reads a bounded batch of the stories
after the cursor, prints them in publication order, then moves the cursor to the batch's
last story (a compare-and-set: of two processes that printed the same batch, the loser
reads again). It is woken after a poll cycle that stored new stories, like the Telegram
deliverer, and also looks on its own timer (stories another process stored, e.g.
`poll-once`). A crash between printing and moving the cursor prints that batch again on
the next run, and only that batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TextIO

from sqlalchemy.engine import Engine
from telegram import InlineKeyboardMarkup

from bot.delivery.sender import Outcome, Sender, Sent
from bot.i18n import ENGLISH
from bot.pacing import backoff
from bot.storage import cursors
from bot.storage.stories import story_views
from bot.telegram.explain import why_line
from bot.telegram.render import html_to_text, render_alert

log = logging.getLogger(__name__)

CURSOR = "console"  # the console's row in story_cursor
CONSOLE_CHAT = 0  # the chat id handed to the sender, which has none


class ConsoleSender:
    """Prints each alert's text (links spelled out) instead of sending it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._count = 0

    async def send(
        self,
        chat_id: int,
        thread_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        buttons: InlineKeyboardMarkup | None = None,
        silent: bool = False,
        previews: bool = True,
    ) -> Outcome:
        self._count += 1
        rule = "─" * 60
        print(f"{rule}\n{html_to_text(text)}\n{rule}", file=self._stream, flush=True)
        return Sent(self._count)

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        buttons: InlineKeyboardMarkup | None = None,
        previews: bool = True,
    ) -> Outcome:
        return Sent(message_id)  # the console shows alerts once; coverage edits are not printed


class ConsoleReader:
    """Shows every alerted story once through `sender`, following the console's cursor."""

    def __init__(
        self,
        engine: Engine,
        sender: Sender,
        *,
        batch: int = 50,
        idle_poll: float = 2.0,
        name: str = CURSOR,
    ) -> None:
        self.engine, self.sender, self.name = engine, sender, name
        self.batch, self.idle_poll = batch, idle_poll
        self.shown = 0
        self._wake = asyncio.Event()

    async def start(self) -> int:
        """The cursor, created at the newest story when missing; its position."""
        return await asyncio.to_thread(cursors.start, self.engine, self.name)

    def wake(self) -> None:
        """New stories were stored: look now rather than at the next timer tick."""
        self._wake.set()

    async def run_once(self) -> int:
        """Print the next batch and move the cursor past it; how many stories it printed."""
        batch = await asyncio.to_thread(cursors.pending, self.engine, self.name, self.batch)
        if not batch.stories:
            return 0
        ids = [due.story_id for due in batch.stories]
        views = await asyncio.to_thread(story_views, self.engine, ids)
        printed = 0
        for due in sorted(batch.stories, key=lambda d: (d.published, d.story_id)):
            view = views.get(due.story_id)
            if view is None:  # deleted meanwhile (`prune`): nothing to show
                continue
            explain = why_line(view.topics, due.follows_title, ENGLISH)
            text = render_alert(view, v=ENGLISH, explain=explain)
            outcome = await self.sender.send(CONSOLE_CHAT, 0, text, previews=False)
            if not isinstance(outcome, Sent):
                log.warning("story %s not shown: %s", due.story_id, outcome)
            printed += 1
        self.shown += printed
        moved = await asyncio.to_thread(
            cursors.advance, self.engine, self.name, batch.position, batch.end
        )
        if not moved:
            log.info("another process moved the console's cursor; reading again")
        return printed

    async def run(self, stop: asyncio.Event) -> None:
        """Print until `stop` is set: when woken, on the timer, and at once while more wait."""
        failures = 0
        while not stop.is_set():
            try:
                full = await self.run_once() >= self.batch
                failures = 0
            except Exception as exc:  # the database is locked or gone: log, wait, go on
                failures += 1
                pause = backoff(failures + 1, base=self.idle_poll, cap=60.0)
                log.error("could not show alerts (%s: %s); retrying in %.0f s",
                          type(exc).__name__, str(exc)[:200], pause)  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=pause)
                continue
            if not full:
                await self._idle(stop)

    async def _idle(self, stop: asyncio.Event) -> None:
        waiter = asyncio.create_task(self._wake.wait())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait(
                {waiter, stopper}, timeout=self.idle_poll, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
            stopper.cancel()
        self._wake.clear()
