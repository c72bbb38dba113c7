from __future__ import annotations

import platform

import pytest

from bot.memory import give_back_free_memory, limit_arenas

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")


def _resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@glibc
def test_freed_heap_pages_go_back_to_the_system() -> None:
    # 64 KiB blocks come from the heap (below glibc's mmap threshold); a small block kept
    # after each pins the heap's top, so freeing the large ones alone returns nothing
    large, kept = [], []
    for _ in range(1500):
        large.append(bytearray(64 * 1024))
        kept.append(bytearray(1024))  # above pymalloc's 512 bytes: from the heap too
    before = _resident_mb()
    del large
    freed_not_returned = _resident_mb()
    give_back_free_memory()
    after = _resident_mb()
    assert before - freed_not_returned < 20
    assert freed_not_returned - after > 60
    assert len(kept) == 1500


@glibc
def test_the_arena_limit_is_taken() -> None:
    assert limit_arenas() is True
