"""The ``regsweep`` command line (click), over the library."""

import os

# Arrow's allocator (mimalloc) keeps the memory it frees for a while, to reuse it. A scan and a
# plan free large transient columns one after another, and handing that memory back at once
# lowers the peak RSS of a million-blob plan by about a quarter, at no cost in time that the
# benchmarks can see (bench/RESULTS.md). Set before anything loads pyarrow; an explicit
# setting in the environment wins.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
