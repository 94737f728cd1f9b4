"""glibc's heap: the memory a phase of many small blocks freed, handed back when it ends.

The mark builds per-repository containers and small numpy arrays (thousands of each, under
glibc's mmap threshold, so on its heap) and frees nearly all of them when it returns. glibc
gives back only the free space at the heap's top, and a few blocks still in use above the rest
keep it: ~60 MiB of a 72 MiB heap stayed free but resident through the plan on a store of
7,100 repositories. ``malloc_trim`` also returns the free pages inside the heap (17 ms there,
40 MiB less RSS; bench/RESULTS.md). Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def trim_heap() -> None:
    """Return the C heap's free pages to the system, where the C library can (glibc)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def heap_trimmed(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn``, then ``trim_heap`` (once its locals are gone), whether or not it failed."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            trim_heap()

    return run
