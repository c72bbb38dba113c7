"""The stories an item may belong to: an in-memory index of the window's stored items.

Candidates come two ways, so that neither words nor meaning alone can hide a story: the
`max_candidates` items nearest in meaning (one matrix product over the window's vectors), and
the `max_candidates` items sharing the most discriminative features (`dedup.index_keys`:
actors, places, acts, names, numbers). Only items published within `window_days` of the item
count. The pipeline fills the index from the database at start and after each cycle with what
was stored since (`add`); `prune` drops what has left the window, so the index holds a few
weeks of relevant items whatever the size of the store.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from bot.decide.dedup import index_keys
from bot.decide.embed import DIMENSIONS
from bot.decide.evidence import Probe, StoredItem


def _seconds(when: datetime) -> float:
    """Seconds since the epoch; a naive time (as SQLite gives them back) is UTC."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


class StoryIndex:
    def __init__(self, *, window_days: float) -> None:
        self.window = timedelta(days=window_days)
        self.last_item_id = 0  # the highest item id added: the pipeline loads what is newer
        self._reset()

    def _reset(self) -> None:
        self._items: list[StoredItem] = []
        self._ids: set[int] = set()
        self._vectors: npt.NDArray[np.float32] = np.zeros((64, DIMENSIONS), dtype=np.float32)
        self._has_vector: npt.NDArray[np.bool_] = np.zeros(64, dtype=bool)
        self._times: npt.NDArray[np.float64] = np.zeros(64, dtype=np.float64)
        self._keys: defaultdict[str, list[int]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: StoredItem) -> None:
        if item.item_id in self._ids:
            return
        n = len(self._items)
        if n == self._vectors.shape[0]:
            self._grow(2 * n)
        self._items.append(item)
        self._ids.add(item.item_id)
        if item.vector is not None:
            self._vectors[n] = item.vector
            self._has_vector[n] = True
        self._times[n] = _seconds(item.published)
        for key in index_keys(item.fingerprint):
            self._keys[key].append(n)
        self.last_item_id = max(self.last_item_id, item.item_id)

    def mark(self) -> tuple[int, int]:
        """A point to come back to with `rollback` (items are only ever appended)."""
        return len(self._items), self.last_item_id

    def rollback(self, mark: tuple[int, int]) -> None:
        """Forget what was added since `mark`: the transaction that stored it rolled back."""
        size, last = mark
        if size >= len(self._items):
            return
        keep = self._items[:size]
        self._reset()
        for item in keep:
            self.add(item)
        self.last_item_id = last

    def prune(self, now: datetime) -> None:
        """Forget items published more than two windows before `now`."""
        cutoff = _seconds(now - 2 * self.window)
        keep = [item for n, item in enumerate(self._items) if self._times[n] >= cutoff]
        if len(keep) == len(self._items):
            return
        self._reset()
        for item in keep:
            self.add(item)

    def candidates(
        self, probe: Probe, when: datetime, limit: int
    ) -> Iterator[tuple[int, list[StoredItem]]]:
        """(story id, its items among the candidates), for the stories near `probe`."""
        n = len(self._items)
        if n == 0:
            return
        t = _seconds(when)
        span = self.window.total_seconds()
        near_in_time = np.abs(self._times[:n] - t) <= span
        chosen: set[int] = set()
        with_vector = near_in_time & self._has_vector[:n]
        if with_vector.any():
            positions = np.flatnonzero(with_vector)
            sims = self._vectors[positions] @ probe.vector
            top = positions[np.argsort(-sims)[:limit]]
            chosen.update(int(p) for p in top)
        shared: Counter[int] = Counter()
        for key in index_keys(probe.fingerprint):
            for p in self._keys.get(key, ()):
                if near_in_time[p]:
                    shared[p] += 1
        chosen.update(p for p, _c in shared.most_common(limit))
        stories: defaultdict[int, list[StoredItem]] = defaultdict(list)
        for p in sorted(chosen):
            item = self._items[p]
            stories[item.story_id].append(item)
        yield from stories.items()

    def _grow(self, size: int) -> None:
        vectors = np.zeros((size, DIMENSIONS), dtype=np.float32)
        vectors[: self._vectors.shape[0]] = self._vectors
        has = np.zeros(size, dtype=bool)
        has[: self._has_vector.shape[0]] = self._has_vector
        times = np.zeros(size, dtype=np.float64)
        times[: self._times.shape[0]] = self._times
        self._vectors, self._has_vector, self._times = vectors, has, times
