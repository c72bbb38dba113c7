"""Telegram's send limits, shared by every replica through rows of the database.

    rate = SharedRate(engine, per_second=29, burst=4, gate=gate)
    await rate.take(chat_id)   # before each sendMessage: waits for this message's slot
    await rate.pause(7.0)      # after a 429: every replica waits out the retry_after

Each limit is a row of `send_rate` (bot/models.py) holding a GCRA, the leaky bucket
written as one number: `next_at`, the theoretical time of the next message. Taking a slot
is one upsert that moves `next_at` on by the limit's interval and returns it, so replicas
serialise on the row's lock (a row lock on PostgreSQL, the write lock on SQLite) and
never hand out the same slot. Times are the database's clock, so clock skew between hosts
does not matter.

- Overall (`telegram-overall`): `per_second`, and a message may go `burst - 1` intervals
  early, so a replica idle for a while starts at once.
- Per chat (`chat:<id>`): one message per `chat_interval` to a private chat, one per
  `group_interval` to a group (a negative chat id: 19 a minute, under Telegram's 20).
  A chat's slot is taken after the overall one, just before the wire; when another
  replica sent to that chat too recently, the message waits for the chat and then takes
  a new overall slot (the one it had is spent). A broadcast, one message per chat, never
  waits for a chat.

`paused_until` (on the overall row) is Telegram's flood wait: no slot is handed out before
it, and every answer carries it, so a replica hears of a 429 another replica got at its
next slot and closes its own `FloodGate` (bot/delivery/sender.py) for the rest of the
wait. Each process holds at most `ahead` overall slots not yet used, so slots are not
handed out far ahead of the sends (which would also reach Telegram during a pause
reported after them).

A database that cannot be reached raises (StorageError): the sender sends nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Float, cast, delete, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.delivery.sender import FloodGate
from bot.storage.models import SendRate

OVERALL = "telegram-overall"
CHAT_INTERVAL = 1.0  # seconds between two messages to one private chat (Bot FAQ: about 1/s)
GROUP_INTERVAL = 60 / 19  # seconds between two messages to one group (Bot FAQ: 20 a minute)


@dataclass(frozen=True, slots=True)
class Slot:
    wait: float  # seconds until this message may go
    paused_for: float  # seconds Telegram's flood control still asks everyone to wait


class SharedRate:
    def __init__(
        self,
        engine: Engine,
        *,
        per_second: float,
        burst: int = 1,
        gate: FloodGate | None = None,
        ahead: int = 4,
        chat_interval: float = CHAT_INTERVAL,
        group_interval: float = GROUP_INTERVAL,
    ) -> None:
        if per_second <= 0 or burst < 1 or ahead < 1:
            raise ValueError("per_second must be positive, burst and ahead at least 1")
        self.engine, self.gate = engine, gate
        self.interval = 1.0 / per_second
        self.early = (burst - 1) * self.interval  # how much earlier than next_at one may go
        self.chat_interval, self.group_interval = chat_interval, group_interval
        self._ahead = asyncio.Semaphore(ahead)
        self._postgres = engine.dialect.name == "postgresql"

    async def take(self, chat_id: int | None = None) -> None:
        """Wait for this message's slot, overall and in its chat (and for any flood wait,
        whoever got the 429)."""
        await self._take_overall()
        if chat_id is None:
            return
        every = self.group_interval if chat_id < 0 else self.chat_interval
        chat = await asyncio.to_thread(self.reserve, f"chat:{chat_id}", every)
        if chat.wait > 0:  # another replica wrote to this chat just now
            await asyncio.sleep(chat.wait)
            await self._take_overall()

    async def pause(self, seconds: float) -> None:
        """Telegram answered 429: nobody gets a slot for `seconds`."""
        await asyncio.to_thread(self.hold, seconds)

    async def _take_overall(self) -> None:
        async with self._ahead:
            slot = await asyncio.to_thread(self.reserve, OVERALL, self.interval, self.early)
            if slot.paused_for > 0 and self.gate is not None:
                self.gate.close_for(slot.paused_for)
            if slot.wait > 0:
                await asyncio.sleep(slot.wait)

    # -- the statements ----------------------------------------------------------------

    def reserve(self, name: str, interval: float, early: float = 0.0) -> Slot:
        """Take the next slot of limit `name`: one statement, whichever replica asks."""
        old, paused = _column("next_at"), _column("paused_until")
        now = self._now()
        slot = self._upsert(
            name,
            next_at=self._latest(old, now, paused) + interval,
            paused=paused,
            first=(now + interval, cast(0.0, Float)),
        )
        start = slot[0] - interval
        return Slot(max(0.0, max(start - early, slot[1]) - slot[2]), max(0.0, slot[1] - slot[2]))

    def hold(self, seconds: float) -> None:
        """Close the overall limit to everyone for `seconds` from now (or longer, if so)."""
        until = self._now() + seconds
        self._upsert(
            OVERALL,
            next_at=_column("next_at"),
            paused=self._latest(_column("paused_until"), until),
            first=(cast(0.0, Float), until),
        )

    def _now(self) -> ColumnElement[float]:
        return _database_now(self._postgres)

    def _latest(self, *values: ColumnElement[float]) -> ColumnElement[float]:
        return func.greatest(*values) if self._postgres else func.max(*values)

    def _upsert(
        self,
        name: str,
        *,
        next_at: ColumnElement[float],
        paused: ColumnElement[float],
        first: tuple[ColumnElement[float], ColumnElement[float]],
    ) -> tuple[float, float, float]:
        """Insert the row (`first`: its next_at and paused_until) or update it; what it
        holds afterwards, and the database's time: (next_at, paused_until, now)."""
        table = SendRate.__table__  # type: ignore[attr-defined]
        insert = postgresql.insert if self._postgres else sqlite.insert
        statement = (
            insert(table)
            .values(name=name, next_at=first[0], paused_until=first[1])
            .on_conflict_do_update(
                index_elements=[table.c.name], set_={"next_at": next_at, "paused_until": paused}
            )
            .returning(table.c.next_at, table.c.paused_until, self._now())
        )
        with Session(self.engine) as session:
            new_next, paused_until, now = session.execute(statement).one()
            session.commit()
        return float(new_next), float(paused_until), float(now)


def forget_idle_chats(engine: Engine, idle_seconds: float = 600.0) -> int:
    """Delete the rows of chats not written to for `idle_seconds` (housekeeping, bot/run.py):
    a row whose slot is that far past holds nothing back; one comes back with the next send."""
    now = _database_now(engine.dialect.name == "postgresql")
    table = SendRate.__table__  # type: ignore[attr-defined]
    with Session(engine) as session:
        result = session.execute(
            delete(table).where(table.c.name.like("chat:%"), table.c.next_at < now - idle_seconds)
        )
        session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


def _column(name: str) -> ColumnElement[float]:
    """The row's current value inside the upsert's UPDATE."""
    return literal_column(f"send_rate.{name}", Float)


def _database_now(postgres: bool) -> ColumnElement[float]:
    """The database's clock, in seconds since the epoch."""
    if postgres:
        return cast(func.extract("epoch", func.statement_timestamp()), Float)
    return (func.julianday("now") - 2440587.5) * 86400.0
