"""bot/delivery/console.py: the console shows every alerted story once, through its cursor,
on SQLite and PostgreSQL; no subscriber, no outbox row."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from telegram import InlineKeyboardMarkup

from bot.delivery.console import CURSOR, ConsoleReader, ConsoleSender
from bot.delivery.sender import Outcome
from bot.storage import cursors, stats
from bot.storage.models import Delivery, Subscriber
from tests.servers.bot_fixtures import insert_story, wait_until

T0 = datetime.now(UTC) - timedelta(hours=1)


def story(engine: Engine, title: str, *, minutes: int = 0, alerted: bool = True) -> int:
    return insert_story(
        engine, title=title, link=f"https://wire.test/{title.lower()}", alerted=alerted,
        published=T0 + timedelta(minutes=minutes),
    )  # fmt: skip


def shown(out: io.StringIO, *titles: str) -> list[str]:
    """The titles printed, in the order printed (each counted as often as printed)."""
    text = out.getvalue()
    found = [(text.find(t, start), t) for t in titles for start in _starts(text, t)]
    return [t for _, t in sorted(found)]


def _starts(text: str, title: str) -> list[int]:
    at, starts = text.find(title), []
    while at >= 0:
        starts.append(at)
        at = text.find(title, at + 1)
    return starts


async def test_each_alert_printed_once_in_publication_order_across_a_restart(
    engine: Engine,
) -> None:
    out = io.StringIO()
    reader = ConsoleReader(engine, ConsoleSender(out))
    await reader.start()
    story(engine, "Later", minutes=9)
    story(engine, "Earlier", minutes=1)
    story(engine, "Stale", alerted=False)
    assert await reader.run_once() == 2
    assert await reader.run_once() == 0
    assert shown(out, "Later", "Earlier", "Stale") == ["Earlier", "Later"]
    assert "Later <https://wire.test/later>" in out.getvalue()  # the link spelled out
    # a restart: a new process, the same database
    story(engine, "While stopped", minutes=20)
    again = ConsoleReader(engine, ConsoleSender(out))
    await again.start()
    assert await again.run_once() == 1
    assert shown(out, "Later", "Earlier", "While stopped") == ["Earlier", "Later", "While stopped"]
    with Session(engine) as session:  # the console is no subscriber and has no outbox rows
        assert session.exec(select(func.count()).select_from(Subscriber)).one() == 0
        assert session.exec(select(func.count()).select_from(Delivery)).one() == 0
    counted = stats.counts(engine)
    assert (counted.subscribers_active, counted.subscribers_inactive) == (0, 0)
    assert counted.deliveries == () and counted.stories_alerted == 3


async def test_a_first_console_shows_only_what_is_new(engine: Engine) -> None:
    story(engine, "Old news")
    out = io.StringIO()
    reader = ConsoleReader(engine, ConsoleSender(out))
    await reader.start()
    assert await reader.run_once() == 0
    story(engine, "Fresh news")
    assert await reader.run_once() == 1
    assert shown(out, "Old news", "Fresh news") == ["Fresh news"]


async def test_a_batch_is_bounded_and_the_rest_follows(engine: Engine) -> None:
    out = io.StringIO()
    reader = ConsoleReader(engine, ConsoleSender(out), batch=2)
    await reader.start()
    for n in range(5):
        story(engine, f"Item {n}", minutes=n)
    assert [await reader.run_once() for _ in range(4)] == [2, 2, 1, 0]
    assert shown(out, *(f"Item {n}" for n in range(5))) == [f"Item {n}" for n in range(5)]


class BrokenAfter(ConsoleSender):
    """Prints `good` alerts, then fails: a crash between printing and moving the cursor."""

    def __init__(self, stream: io.StringIO, good: int) -> None:
        super().__init__(stream)
        self.good = good

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
        if self.good <= 0:
            raise OSError("stdout closed")
        self.good -= 1
        return await super().send(chat_id, thread_id, text)


async def test_a_crash_mid_batch_reprints_at_most_that_batch(engine: Engine) -> None:
    out = io.StringIO()
    first = ConsoleReader(engine, BrokenAfter(out, good=3), batch=2)
    await first.start()
    for n in range(4):
        story(engine, f"Item {n}", minutes=n)
    assert await first.run_once() == 2
    with pytest.raises(OSError):
        await first.run_once()  # printed Item 2, then died before moving the cursor
    again = ConsoleReader(engine, ConsoleSender(out), batch=2)
    await again.start()
    assert await again.run_once() == 2
    titles = [f"Item {n}" for n in range(4)]
    assert shown(out, *titles) == ["Item 0", "Item 1", "Item 2", "Item 2", "Item 3"]


async def test_the_loop_prints_when_woken_and_on_its_timer_and_stops(engine: Engine) -> None:
    out = io.StringIO()
    reader = ConsoleReader(engine, ConsoleSender(out), idle_poll=0.2)
    await reader.start()
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    story(engine, "Woken")
    reader.wake()
    await wait_until(lambda: "Woken" in out.getvalue())
    story(engine, "On the timer")  # written by another process: nobody wakes this one
    await wait_until(lambda: "On the timer" in out.getvalue())
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert shown(out, "Woken", "On the timer") == ["Woken", "On the timer"]


async def test_a_dropped_cursor_shows_nothing_until_started_again(engine: Engine) -> None:
    out = io.StringIO()
    reader = ConsoleReader(engine, ConsoleSender(out))
    await reader.start()
    assert cursors.drop(engine, CURSOR) is True
    story(engine, "Sent to Telegram")
    assert await reader.run_once() == 0
    assert out.getvalue() == ""
