"""Telegram's overall send limit, shared by every replica through one database row.

    rate = SharedRate(engine, per_second=29, burst=4, gate=gate)
    await rate.take()          # before each sendMessage: waits for this message's slot
    await rate.pause(7.0)      # after a 429: every replica waits out the retry_after

The row (`send_rate`, bot/models.py) is a GCRA, the leaky bucket written as one number:
`next_at`, the theoretical time of the next message. Taking a slot is one upsert that
moves `next_at` on by 1/rate and returns it, so replicas serialise on the row's lock (a
row lock on PostgreSQL, the write lock on SQLite) and never hand out the same slot; a
message may go `burst - 1` intervals early, so a replica idle for a while starts at once.
Times are the database's clock, so clock skew between hosts does not matter.

`paused_until` is Telegram's flood wait: no slot is handed out before it, and every
answer carries it, so a replica hears of a 429 another replica got at its next slot and
closes its own `FloodGate` (bot/telegram/sender.py) for the rest of the wait. Each
process holds at most `ahead` slots not yet used, so slots are not handed out far ahead
of the sends (which would also reach Telegram during a pause reported after them).

A database that cannot be reached raises (SQLAlchemyError): the sender sends nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Float, cast, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.models import SendRate
from bot.telegram.sender import FloodGate

OVERALL = "telegram-overall"


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
        name: str = OVERALL,
    ) -> None:
        if per_second <= 0 or burst < 1 or ahead < 1:
            raise ValueError("per_second must be positive, burst and ahead at least 1")
        self.engine, self.name, self.gate = engine, name, gate
        self.interval = 1.0 / per_second
        self.early = (burst - 1) * self.interval  # how much earlier than next_at one may go
        self._ahead = asyncio.Semaphore(ahead)
        self._postgres = engine.dialect.name == "postgresql"

    async def take(self) -> None:
        """Wait for this message's slot (and for any flood wait, whoever got the 429)."""
        async with self._ahead:
            slot = await asyncio.to_thread(self.reserve)
            if slot.paused_for > 0 and self.gate is not None:
                self.gate.close_for(slot.paused_for)
            if slot.wait > 0:
                await asyncio.sleep(slot.wait)

    async def pause(self, seconds: float) -> None:
        """Telegram answered 429: nobody gets a slot for `seconds`."""
        await asyncio.to_thread(self.hold, seconds)

    # -- the statements ----------------------------------------------------------------

    def _now(self) -> ColumnElement[float]:
        if self._postgres:
            epoch = func.extract("epoch", func.statement_timestamp())
            return cast(epoch, Float)
        return (func.julianday("now") - 2440587.5) * 86400.0

    def _latest(self, *values: ColumnElement[float]) -> ColumnElement[float]:
        return func.greatest(*values) if self._postgres else func.max(*values)

    def _upsert(
        self,
        next_at: ColumnElement[float],
        paused: ColumnElement[float],
        first_next: ColumnElement[float],
        first_paused: ColumnElement[float],
    ) -> Slot:
        table = SendRate.__table__  # type: ignore[attr-defined]
        insert = postgresql.insert if self._postgres else sqlite.insert
        now = self._now()
        statement = (
            insert(table)
            .values(name=self.name, next_at=first_next, paused_until=first_paused)
            .on_conflict_do_update(
                index_elements=[table.c.name], set_={"next_at": next_at, "paused_until": paused}
            )
            .returning(table.c.next_at, table.c.paused_until, now.label("now"))
        )
        with Session(self.engine) as session:
            new_next, paused_until, at = session.execute(statement).one()
            session.commit()
        start = float(new_next) - self.interval
        wait = max(start - self.early, float(paused_until)) - float(at)
        return Slot(max(0.0, wait), max(0.0, float(paused_until) - float(at)))

    def reserve(self) -> Slot:
        """Take the next slot: one statement, whichever replica asks."""
        old = literal_column("send_rate.next_at", Float)
        paused = literal_column("send_rate.paused_until", Float)
        now = self._now()
        return self._upsert(
            self._latest(old, now, paused) + self.interval,
            paused,
            now + self.interval,
            cast(0.0, Float),
        )

    def hold(self, seconds: float) -> Slot:
        """Close the row to everyone for `seconds` from now (kept if already longer)."""
        old = literal_column("send_rate.next_at", Float)
        paused = literal_column("send_rate.paused_until", Float)
        until = self._now() + seconds
        return self._upsert(old, self._latest(paused, until), cast(0.0, Float), until)
