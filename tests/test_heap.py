"""The C heap's free pages handed back after a phase of many small blocks (regsweep.heap)."""

from __future__ import annotations

import platform
import sys

import pytest

from regsweep.heap import heap_trimmed, trim_heap

glibc = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim"
)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@glibc
def test_trim_heap_returns_free_pages_below_a_block_in_use() -> None:
    """Blocks of a kilobyte (glibc's heap, not Python's arenas or mmap) freed below one still
    in use stay resident until the heap is trimmed: what the mark leaves behind."""
    blocks = [bytearray(1000) for _ in range(60_000)]  # ~60 MB on the heap
    top = bytearray(1000)  # (in use, above them)
    held = _rss()
    del blocks
    freed = _rss()
    trim_heap()
    trimmed = _rss()
    assert held - freed < 20 << 20  # freed, but not returned
    assert freed - trimmed > 30 << 20  # returned
    del top


def test_heap_trimmed_returns_and_raises_as_the_function_does() -> None:
    @heap_trimmed
    def twice(x: int) -> int:
        return 2 * x

    @heap_trimmed
    def fails() -> None:
        raise ValueError("no")

    assert twice(21) == 42
    assert twice.__name__ == "twice"
    with pytest.raises(ValueError, match="no"):
        fails()
