"""A poll cycle's entries on disk, read back oldest first a batch at a time.

A cycle decides its entries once every feed has answered, oldest first across all feeds
(the first report of a development makes the story, later ones join it). Held in memory
until then, the entries made a cycle's memory grow with the number of feeds; spooled, the
cycle keeps one small sort key per entry and at most a batch of entries at once.

Entries are pickled into an unnamed temporary file (gone when closed, or when the process
ends). Only the process that wrote them reads them back.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import NamedTuple

from bot.records import Entry


class _Place(NamedTuple):
    published: datetime | None
    feed_id: int
    position: int  # within its feed: ties keep the feed's order
    offset: int
    size: int


class EntrySpool:
    """Entries by feed, written as feeds answer and read back in order, a batch at a time."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._places: list[_Place] = []
        self._end = 0

    def __len__(self) -> int:
        return len(self._places)

    def __enter__(self) -> EntrySpool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def add(self, feed_id: int, entries: Sequence[Entry]) -> None:
        for position, entry in enumerate(entries):
            data = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
            self._file.write(data)
            self._places.append(_Place(entry.published, feed_id, position, self._end, len(data)))
            self._end += len(data)

    def batches(
        self, size: int, when: Callable[[datetime | None], datetime]
    ) -> Iterator[list[tuple[int, Entry]]]:
        """(feed id, entry) pairs ordered by `when(published)`, then feed id and position,
        `size` at a time."""
        self._file.flush()
        order = sorted(self._places, key=lambda p: (when(p.published), p.feed_id, p.position))
        fd = self._file.fileno()
        for start in range(0, len(order), size):
            yield [
                (place.feed_id, pickle.loads(os.pread(fd, place.size, place.offset)))  # noqa: S301 - our own file
                for place in order[start : start + size]
            ]

    def close(self) -> None:
        self._file.close()
