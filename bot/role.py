"""A role only one replica plays at a time, held through a database lease (bot/leases.py).

    role = LeasedRole(engine, "telegram-updates", owner, ttl=45, start=..., stop=...)
    await role.run(until)       # until `until` is set; then stops the role, frees the lease

Every `ttl / 4` seconds the holder renews the lease and the other replicas check whether
it is free. Taking the lease calls `start`; losing it calls `stop`. Lost means: another
replica holds it now, or the database has not confirmed our lease for `ttl / 2` (it is
down or unreachable), which stops the role well before the lease can pass to someone
else. A holder killed without clean-up stops renewing, so another replica takes over at
most `ttl + ttl / 4` later; at once when the dead holder was a process of this host
(`bot.owners.owner_is_dead`, the same test the outbox uses). A clean stop releases the
lease, so the next replica to look takes over without waiting for it to expire.

With `report`, the holder also writes into its lease row, at every renewal, when it last
saw the role working and what stops it, if anything (`heartbeat_at`, `problem`: see
bot/telegram/updates.py); a holder with a problem keeps its row at `resign` instead of
releasing it, so `python -m bot health` can still say why.

Time comes from each replica's clock: skew between hosts shifts a takeover by the skew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.owners import owner_is_dead
from bot.storage import leases
from bot.storage.errors import StorageError
from bot.storage.models import utcnow

log = logging.getLogger(__name__)

Toggle = Callable[[], Awaitable[None]]
Report = Callable[[], tuple[datetime | None, str | None]]  # (last seen working, problem)

CHECKS_PER_TTL = 4  # renew (or look for a free lease) this many times per lease period
TRUST_FRACTION = 0.5  # without a confirmed renewal for this part of the TTL, stop the role


class LeasedRole:
    def __init__(
        self,
        engine: Engine,
        name: str,
        owner: str,
        *,
        ttl: float,
        start: Toggle,
        stop: Toggle,
        is_dead: Callable[[str], bool] | None = None,
        report: Report | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.engine, self.name, self.owner, self.ttl = engine, name, owner, ttl
        self._start, self._stop = start, stop
        self._report = report
        self._is_dead = is_dead or (lambda other: owner_is_dead(other, me=owner))
        self._confirmed: float | None = None  # time.monotonic() of the last confirmed lease
        self._db_down = False
        self.active = False

    @property
    def interval(self) -> float:
        return self.ttl / CHECKS_PER_TTL

    async def run(self, until: asyncio.Event) -> None:
        """Play the role whenever the lease is ours, until `until` is set."""
        try:
            while not until.is_set():
                await self.step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(until.wait(), timeout=self.interval)
        finally:
            await self.resign()

    async def step(self) -> bool:
        """Renew or take the lease, then start or stop the role to match; True if playing."""
        try:
            held = await asyncio.to_thread(self._claim)
        except Exception as exc:  # the database is down or unreachable: trust the lease a while
            if not self._db_down:
                log.warning("%s: cannot check the lease (%s)", self.name, type(exc).__name__)
            self._db_down = True
            held = self.active and self._trusted()
        else:
            self._db_down = False
            if held:
                self._confirmed = time.monotonic()
        if held and not self.active:
            await self._take()
        elif not held and self.active:
            log.warning("%s: lease lost or not confirmed; this replica stops the role", self.name)
            self.active = False
            await self._stop_quietly()
        return self.active

    async def resign(self) -> None:
        """Stop the role (if playing) and release the lease."""
        if self.active:
            self.active = False
            await self._stop_quietly()
        try:
            await asyncio.to_thread(self._leave)
        except StorageError:
            log.warning("%s: could not release the lease; it expires on its own", self.name)

    # -- internals ---------------------------------------------------------------------

    def _trusted(self) -> bool:
        limit = self.ttl * TRUST_FRACTION
        return self._confirmed is not None and time.monotonic() - self._confirmed < limit

    def _claim(self) -> bool:
        with Session(self.engine) as session:
            current = leases.holder(session, self.name)
            evict: list[str] = []
            if current is not None and current != self.owner:
                if not self._is_dead(current):
                    return False  # alive and unexpired: nothing to try
                evict.append(current)
            ttl = timedelta(seconds=self.ttl)
            held = leases.acquire(session, self.name, self.owner, ttl, evict=evict)
            if held and self._report is not None:
                seen, problem = self._report()
                leases.beat(session, self.name, self.owner, at=seen or utcnow(), problem=problem)
            return held

    def _leave(self) -> None:
        """Release the lease, unless there is a problem to report: then leave it on record."""
        problem = self._report()[1] if self._report is not None else None
        if problem is None:
            self._release()
            return
        with Session(self.engine) as session:
            leases.beat(session, self.name, self.owner, at=utcnow(), problem=problem)

    def _release(self) -> None:
        with Session(self.engine) as session:
            leases.release(session, self.name, self.owner)

    async def _take(self) -> None:
        try:
            await self._start()
        except Exception as exc:  # e.g. Telegram unreachable: another replica may do better
            reason = (str(exc).splitlines() or [""])[0][:200]
            log.warning("%s: could not start (%s: %s); giving the lease back",
                        self.name, type(exc).__name__, reason)  # fmt: skip
            log.debug("%s: start failed", self.name, exc_info=True)
            with contextlib.suppress(StorageError):
                await asyncio.to_thread(self._release)
            return
        self.active = True
        log.info("%s: this replica holds the role", self.name)

    async def _stop_quietly(self) -> None:
        try:
            await self._stop()
        except Exception:
            log.warning("%s: did not stop cleanly", self.name, exc_info=True)
