"""Poll many feeds in lanes that stay with their host.

A cycle hands its feeds to `lanes` lanes (the overall concurrency), each polling one feed
at a time. A lane that has polled a feed goes on with the next feed of the same origin
(scheme, host and port), so its request finds the connection the last answer left open in
the client's pool. Taken in list order instead, the next feed was mostly for another host:
the pool closed an idle connection to open a new one, one connection per request (for
HTTPS a TLS handshake each), and 1,000 feeds on 25 hosts cost 1,000 connects and closes.

A lane whose origin has no feed left takes the next origin in turn that has fewer than
`per_key` lanes (the per-host concurrency); when none has, the lane ends, since the lanes
already on those origins poll what is left. So no lane holds a place while it waits for a
host's turn that a feed of another host could use (a list that starts with one host's many
feeds no longer fills every place with them).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
R = TypeVar("R")


def origin(url: str) -> str:
    """`scheme://host:port` of `url`, lower-case: what one pooled connection can serve."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2].lower()}"


async def in_lanes(
    items: Sequence[T],
    key: Callable[[T], str],
    work: Callable[[T], Awaitable[R]],
    *,
    lanes: int,
    per_key: int,
) -> list[R]:
    """`work(item)` for every item, at most `lanes` at once and `per_key` lanes on one key;
    the results in the order of `items`. A lane stays with its key while it has items."""
    waiting: dict[str, deque[int]] = {}
    for index, item in enumerate(items):
        waiting.setdefault(key(item), deque()).append(index)
    turns = deque(waiting)  # keys in turn, for lanes that change key
    on: Counter[str] = Counter()  # lanes on each key
    done: dict[int, R] = {}

    def next_key() -> str | None:
        for _ in range(len(turns)):
            candidate = turns[0]
            if candidate not in waiting:  # no item left
                turns.popleft()
                continue
            turns.rotate(-1)
            if on[candidate] < per_key:
                return candidate
        return None

    async def lane() -> None:
        mine: str | None = None
        try:
            while True:
                k = mine if mine in waiting else next_key()
                if k is None:
                    return
                if k != mine:
                    if mine is not None:
                        on[mine] -= 1
                    on[k] += 1
                    mine = k
                queue = waiting[k]
                index = queue.popleft()
                if not queue:
                    del waiting[k]
                done[index] = await work(items[index])
        finally:
            if mine is not None:
                on[mine] -= 1

    await asyncio.gather(*(lane() for _ in range(min(max(1, lanes), len(items)))))
    return [done[index] for index in range(len(items))]
