"""The ``regsweep`` command line (click), over the library."""

import contextlib
import ctypes
import os
import sys

# Arrow's allocator. A scan and a plan free large transient columns one after another; jemalloc
# (built into pyarrow's Linux wheels) hands freed memory back within a second and fragments
# less than the default, mimalloc: about 7% lower peak RSS at 2M and 10M objects, and no slower
# (bench/RESULTS.md). Where mimalloc is used, it is told to hand memory back at once, which
# lowers the peak of a million-blob plan by about a quarter. Set before anything loads
# pyarrow; an explicit setting in the environment wins.
if sys.platform == "linux":
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
# jemalloc keeps freed pages for reuse for a while (Arrow's build: a second, then a second more
# as "muzzy" pages that still count as resident). A scan frees batch-sized columns faster than
# that: a quarter of a second, and no muzzy stage, lowered the peak by 30-40 MiB on the
# benchmark stores at no measurable cost in time; a tenth of a second lowers the 1M-blob
# plan's by 5-10 MiB more, the filesystem bench and the 10M-object inventory plan within 1% of
# the time (bench/RESULTS.md). One arena instead of four
# per core: the listing's and the Parquet reader's threads reuse each other's freed pages
# (2M objects: 16-22 MiB lower peak; 10M objects and the filesystem bench: the same time).
# Blocks of 1 MiB or more (columns, not rows) from jemalloc's arena for huge allocations, which
# hands freed pages back at once: Arrow's build turns that arena off. The 1M-blob plan 413-425
# -> 404-405 MiB, the filesystem bench at the same speed, the 10M-object inventory plan 10%
# slower (43 s: its many large columns refaulted); handing back every freed page at once
# (dirty_decay_ms:0) is 390 MiB but 7% slower on the filesystem bench, and pyarrow's
# ``release_unused`` cannot do it at chosen moments instead: it asks jemalloc for a control
# that does not exist (pyarrow 26).
os.environ.setdefault(
    "JE_ARROW_MALLOC_CONF",
    "dirty_decay_ms:100,muzzy_decay_ms:0,narenas:1,oversize_threshold:1048576",
)
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")

# glibc's malloc (Python's large objects, the reading threads' buffers) raises its mmap threshold
# each time a large block is freed, up to 32 MiB, after which large blocks come from the heap
# and stay resident once freed, between live ones. A fixed threshold keeps every block of 128 KiB
# or more in its own mapping, returned when freed: a 1M-object filesystem store's peak 547 ->
# 485 MiB, its mark's and plan's 547 -> 440 MiB (bench/RESULTS.md). The environment's
# MALLOC_MMAP_THRESHOLD_ wins; other C libraries (musl) have no mallopt.
if sys.platform == "linux" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
