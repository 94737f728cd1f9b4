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
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
