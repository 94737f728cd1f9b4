"""The ``regsweep`` command line (click), over the library."""

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
# that: a quarter of a second, and no muzzy stage, lowers the peak by 30-40 MiB on the
# benchmark stores at no measurable cost in time (bench/RESULTS.md). One arena instead of four
# per core: the listing's and the Parquet reader's threads reuse each other's freed pages
# (2M objects: 16-22 MiB lower peak; 10M objects and the filesystem bench: the same time).
os.environ.setdefault("JE_ARROW_MALLOC_CONF", "dirty_decay_ms:250,muzzy_decay_ms:0,narenas:1")
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
