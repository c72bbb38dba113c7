"""LeasedRole on a real database (SQLite and PostgreSQL): one player at a time, takeover
after the holder dies, at once after a clean stop, and the role stopped when the lease is
lost or cannot be confirmed. The role's start/stop are plain recorders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.owners import make_owner
from bot.role import LeasedRole
from bot.storage import leases
from bot.storage.db import make_engine
from bot.storage.models import Lease, utcnow
from bot.telegram.updates import UPDATES_LEASE, updates_problem

TTL = 1.0
NAME = "telegram-updates"


class Player:
    """Records when its role starts and stops."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []
        self.fail_start = False

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError("cannot start")
        self.events.append(("start", time.monotonic()))

    async def stop(self) -> None:
        self.events.append(("stop", time.monotonic()))

    @property
    def playing(self) -> bool:
        return bool(self.events) and self.events[-1][0] == "start"


def role(
    engine: Engine, owner: str, player: Player, dead: Callable[[str], bool] = lambda _: False
) -> LeasedRole:
    return LeasedRole(
        engine, NAME, owner, ttl=TTL, start=player.start, stop=player.stop, is_dead=dead
    )


def holder(engine: Engine) -> str | None:
    with Session(engine) as session:
        return leases.holder(session, NAME)


async def wait_for(check: Callable[[], bool], within: float) -> float:
    """Seconds until `check()` held."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > within:
            raise TimeoutError(f"not within {within} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - began


async def test_one_player_at_a_time_and_a_clean_stop_hands_over_at_once(engine: Engine) -> None:
    a, b = Player(), Player()
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(role(engine, "a", a).run(stop_a))
    task_b = asyncio.create_task(role(engine, "b", b).run(stop_b))
    await wait_for(lambda: a.playing or b.playing, within=2)
    both = 0
    for _ in range(100):  # 2 s, eight renewals
        both += a.playing and b.playing
        await asyncio.sleep(0.02)
    first, second, stop_first = (a, b, stop_a) if a.playing else (b, a, stop_b)
    assert both == 0 and first.playing and not second.playing
    assert [e for e, _ in first.events] == ["start"]  # renewed all along, never restarted
    assert holder(engine) == ("a" if first is a else "b")

    stop_first.set()
    await (task_a if first is a else task_b)
    stopped = first.events[-1][1]
    assert [e for e, _ in first.events] == ["start", "stop"]
    await wait_for(lambda: second.playing, within=TTL)
    took = second.events[0][1] - stopped
    assert took <= TTL / 4 + 0.2  # the next look after the release, not the lease's expiry
    (stop_b if first is a else stop_a).set()
    await asyncio.gather(task_a, task_b)
    assert holder(engine) is None  # released on the way out


async def test_takeover_after_the_holder_dies(engine: Engine) -> None:
    a, b = Player(), Player()
    assert await role(engine, "a", a).step()  # a takes the lease, then dies: no more renewals
    died = time.monotonic()
    stop = asyncio.Event()
    task = asyncio.create_task(role(engine, "b", b).run(stop))
    await wait_for(lambda: b.playing, within=3 * TTL)
    took = b.events[0][1] - died
    stop.set()
    await task
    assert TTL * 0.9 <= took <= TTL * 1.25 + 0.3, took  # expiry, then b's next look


async def test_a_dead_local_holder_is_replaced_at_once(engine: Engine) -> None:
    a, b = Player(), Player()
    assert await role(engine, "a", a).step()
    b_role = role(engine, "b", b, dead=lambda owner: owner == "a")
    assert await b_role.step()  # no waiting for the TTL
    assert holder(engine) == "b" and b.playing
    c_role = role(engine, "c", Player(), dead=lambda owner: owner == "a")
    assert not await c_role.step()  # b is alive: nothing to evict


async def test_a_holder_that_loses_the_lease_stops(engine: Engine) -> None:
    a = Player()
    a_role = role(engine, "a", a)
    assert await a_role.step() and a.playing
    with Session(engine) as session:  # another replica took it (e.g. a judged dead)
        assert leases.acquire(session, NAME, "b", timedelta(seconds=TTL), evict=["a"])
    assert not await a_role.step()
    assert [e for e, _ in a.events] == ["start", "stop"]
    await a_role.resign()
    assert holder(engine) == "b"  # resigning never frees someone else's lease


async def test_unconfirmed_lease_stops_the_role_before_it_can_expire(engine: Engine) -> None:
    a = Player()
    a_role = role(engine, "a", a)
    assert await a_role.step()
    confirmed = time.monotonic()
    a_role.engine = make_engine("postgresql://postgres@127.0.0.1:1/unreachable")
    try:
        assert await a_role.step() and a.playing  # one failed renewal: still trusted
        while await a_role.step():
            await asyncio.sleep(0.05)
        lost = time.monotonic() - confirmed
        assert TTL / 2 <= lost < TTL  # stopped before another replica could take over
        assert not a.playing
    finally:
        a_role.engine.dispose()


async def test_a_role_that_cannot_start_gives_the_lease_back(engine: Engine) -> None:
    a = Player()
    a.fail_start = True
    a_role = role(engine, "a", a)
    assert not await a_role.step()
    assert holder(engine) is None and not a_role.active
    a.fail_start = False
    assert await a_role.step() and a.playing


async def test_the_holder_reports_its_heartbeat_and_keeps_a_problem_on_record(
    engine: Engine,
) -> None:
    """What `health` reads: when the role last worked, and why it stopped (bot/telegram/updates)."""
    player = Player()
    seen = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    state: dict[str, Any] = {"seen": seen, "problem": None}
    holder_role = LeasedRole(
        engine, UPDATES_LEASE, make_owner(), ttl=TTL, start=player.start, stop=player.stop,
        report=lambda: (state["seen"], state["problem"]),
    )  # fmt: skip
    assert await holder_role.step()
    with Session(engine) as session:
        lease = session.get(Lease, UPDATES_LEASE)
        assert lease is not None and (lease.heartbeat_at, lease.problem) == (seen, None)
        now = seen + timedelta(seconds=0.5)
        assert updates_problem(session, lease_seconds=TTL, now=now) is None
        late = updates_problem(session, lease_seconds=TTL, now=seen + timedelta(seconds=5))
        assert late is not None and "getUpdates has not answered for 5 s" in late
    state["problem"] = "the Bot API refused the bot token on getUpdates (HTTP 401)"
    await holder_role.resign()
    with Session(engine) as session:
        lease = session.get(Lease, UPDATES_LEASE)
        assert lease is not None and lease.problem == state["problem"]  # kept, not released
        assert updates_problem(session, lease_seconds=TTL, now=utcnow()) == state["problem"]
