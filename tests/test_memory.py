from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from bot.memory import limit_arenas

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

# In a fresh interpreter, so the heap holds no free space of earlier tests: 64 KiB blocks
# come from the heap (below glibc's mmap threshold) and a 1 KiB block kept after each (above
# pymalloc's 512 bytes: from the heap too) pins the heap's top, so freeing the large ones
# alone gives nothing back.
PROBE = """
import json
from bot.memory import give_back_free_memory

def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

large, kept = [], []
for _ in range(1500):
    large.append(bytearray(64 * 1024))
    kept.append(bytearray(1024))
before = resident_mb()
del large
freed = resident_mb()
give_back_free_memory()
print(json.dumps([before, freed, resident_mb(), len(kept)]))
"""


@glibc
def test_freed_heap_pages_go_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    before, freed, after, kept = json.loads(done.stdout)
    assert before - freed < 20  # free() alone: the pages stay with the process
    assert freed - after > 60  # malloc_trim: ~94 MB of freed blocks back to the system
    assert kept == 1500


@glibc
def test_the_arena_limit_is_taken() -> None:
    assert limit_arenas() is True
