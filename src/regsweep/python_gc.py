"""Python's cyclic garbage collector, paused while a scan or a plan builds its data.

A scan, a mark and a plan allocate hundreds of thousands of containers (parsed manifests, the
sets and dicts of the reference graph) that all stay alive until they finish, and they hold no
reference cycles. The collector's passes over them find nothing to free and cost 5-10% of the
run (bench/RESULTS.md). Reference counting still frees everything else as before; the collector
runs again once the outermost paused call returns, and finds whatever cycles there were.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def collector_paused(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with the cyclic garbage collector off (if it was on)."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():
            return fn(*args, **kwargs)  # an outer call paused it, or the program did
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return run
