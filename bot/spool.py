"""A poll cycle's entries on disk, read back oldest first a batch at a time.

A cycle decides its entries once every feed has answered, oldest first across all feeds
(the first report of a development makes the story, later ones join it). Held in memory
until then, the entries made a cycle's memory grow with the number of feeds; spooled, the
cycle keeps five machine integers per entry (its index: 40 bytes in arrays, not a tuple of
objects, which cost ~400 bytes an entry with its sort key) and at most a batch of entries.

Entries are pickled into an unnamed temporary file (gone when closed, or when the process
ends). Only the process that wrote them reads them back.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from bot.records import Entry

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_UNDATED = -(2**63)  # no publication date


def _micros(when: datetime | None) -> int:
    return _UNDATED if when is None else (when - _EPOCH) // _MICROSECOND


def _datetime(micros: int) -> datetime | None:
    return None if micros == _UNDATED else _EPOCH + micros * _MICROSECOND


class EntrySpool:
    """Entries by feed, written as feeds answer and read back in order, a batch at a time."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._published = array("q")  # microseconds since the epoch, or _UNDATED
        self._feed_ids = array("q")
        self._positions = array("q")  # within its feed: ties keep the feed's order
        self._offsets = array("q")
        self._sizes = array("q")
        self._end = 0

    def __len__(self) -> int:
        return len(self._offsets)

    def __enter__(self) -> EntrySpool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def add(self, feed_id: int, entries: Sequence[Entry]) -> None:
        for position, entry in enumerate(entries):
            data = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
            self._file.write(data)
            self._published.append(_micros(entry.published))
            self._feed_ids.append(feed_id)
            self._positions.append(position)
            self._offsets.append(self._end)
            self._sizes.append(len(data))
            self._end += len(data)

    def batches(
        self, size: int, when: Callable[[datetime | None], datetime]
    ) -> Iterator[list[tuple[int, Entry]]]:
        """(feed id, entry) pairs ordered by `when(published)`, then feed id and position,
        `size` at a time."""
        self._file.flush()
        count = len(self)
        if not count:
            return
        keys = np.fromiter(
            (_micros(when(_datetime(p))) for p in self._published), dtype=np.int64, count=count
        )
        feeds = np.frombuffer(self._feed_ids, dtype=np.int64)
        positions = np.frombuffer(self._positions, dtype=np.int64)
        order = np.lexsort((positions, feeds, keys))  # by key, then feed id, then position
        fd = self._file.fileno()
        for start in range(0, count, size):
            yield [
                (
                    self._feed_ids[i],
                    pickle.loads(os.pread(fd, self._sizes[i], self._offsets[i])),  # noqa: S301 - our own file
                )
                for i in order[start : start + size].tolist()
            ]

    def close(self) -> None:
        self._file.close()
