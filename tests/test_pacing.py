"""bot/pacing.py: the one backoff and the one keyed lock that fetch and delivery share."""

from __future__ import annotations

import asyncio

from bot.pacing import KeyedGate, backoff, backoff_delay


def test_backoff_delay_doubles_and_is_capped() -> None:
    delays = [backoff_delay(n, base=60, maximum=3600, retry_after=None) for n in range(9)]
    assert delays == [0, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff_delay(10_000, base=60, maximum=3600, retry_after=None) == 3600


def test_backoff_delay_honours_retry_after_within_the_maximum() -> None:
    assert backoff_delay(1, base=60, maximum=3600, retry_after=600) == 600
    assert backoff_delay(5, base=60, maximum=3600, retry_after=10) == 960
    assert backoff_delay(0, base=60, maximum=3600, retry_after=30) == 30
    assert backoff_delay(1, base=60, maximum=3600, retry_after=86_400) == 3600


def test_backoff_grows_and_is_capped() -> None:
    delays = [backoff(n, base=2, cap=60, rand=lambda: 0.5) for n in range(1, 9)]
    assert delays == [2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff(3, base=2, cap=60, rand=lambda: 0.0) == 4.0


async def test_a_keyed_gate_admits_size_holders_per_key_and_forgets_idle_keys() -> None:
    gate: KeyedGate[str] = KeyedGate(2)
    inside: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    release = asyncio.Event()

    async def hold(key: str) -> None:
        async with gate.hold(key):
            inside[key] += 1
            most[key] = max(most[key], inside[key])
            await release.wait()
            inside[key] -= 1

    tasks = [asyncio.create_task(hold(key)) for key in "aaaab"]
    async with asyncio.timeout(5):
        while inside != {"a": 2, "b": 1}:  # two of a's four and b's one get in at once
            await asyncio.sleep(0)
    assert len(gate) == 2
    release.set()
    await asyncio.gather(*tasks)
    assert most == {"a": 2, "b": 1}
    assert len(gate) == 0  # nobody holds or waits: no key is kept


async def test_a_keyed_lock_serialises_one_key_in_arrival_order() -> None:
    gate: KeyedGate[int] = KeyedGate()
    order: list[tuple[str, int]] = []

    async def hold(n: int) -> None:
        async with gate.hold(7):
            order.append(("in", n))
            await asyncio.sleep(0)
            order.append(("out", n))

    await asyncio.gather(*(hold(n) for n in range(3)))
    assert order == [("in", 0), ("out", 0), ("in", 1), ("out", 1), ("in", 2), ("out", 2)]
    assert len(gate) == 0
