"""Waiting, shared by fetching and delivery: the one backoff and the one keyed lock.

`backoff_delay` is deterministic (a feed's next poll after failures, Telegram's retry
after a transient error); `backoff` adds full jitter for loops many replicas run at once.
`KeyedGate` holds a semaphore per key (a feed's host, a Telegram chat), made on demand and
dropped when nobody holds or waits for it, so the map stays as small as the work in flight.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


def backoff_delay(
    consecutive_failures: int, *, base: float, maximum: float, retry_after: float | None
) -> float:
    """Seconds to wait before the next try: base·2^(n-1), at least Retry-After, at most maximum.

    Deterministic (the caller adds jitter if it wants some); 0 when nothing failed.
    """
    if consecutive_failures <= 0 and retry_after is None:
        return 0.0
    delay = 0.0
    if consecutive_failures > 0:
        delay = base * 2.0 ** min(consecutive_failures - 1, 60)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(0.0, min(delay, maximum))


def backoff(
    attempts: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Delay before retry number `attempts` (1-based): `backoff_delay`, full jitter ±50 %."""
    return backoff_delay(attempts, base=base, maximum=cap, retry_after=None) * (0.5 + rand())


class KeyedGate(Generic[K]):
    """At most `size` holders per key at once (`size` 1: a lock per key)."""

    def __init__(self, size: int = 1) -> None:
        self._size = size
        self._gates: dict[K, tuple[asyncio.Semaphore, int]] = {}

    def __len__(self) -> int:
        """Keys held or waited for now."""
        return len(self._gates)

    @asynccontextmanager
    async def hold(self, key: K) -> AsyncIterator[None]:
        sem, users = self._gates.get(key) or (asyncio.Semaphore(self._size), 0)
        self._gates[key] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._gates[key]
            if users <= 1:
                del self._gates[key]
            else:
                self._gates[key] = (sem, users - 1)
