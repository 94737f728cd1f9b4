"""Sharded, parallel listing of a layout root, into Arrow tables.

Shards are ``blobs/<alg>/<h2>/`` and the first level of ``repositories/`` (storage-layout.md §2.4):
each is one flat listing, so a thread pool on one machine, or a cluster engine's Executor, can
list them side by side. Any other directory under the root is one more shard, so foreign keys
are seen too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor

import pyarrow as pa

from regsweep.storage.base import IncompleteUpload, ObjectInfo, ObjectStore
from regsweep.storage.columns import LISTING_SCHEMA, list_table, listing_table

Progress = Callable[[str, int, int | None], None]

__all__ = ["LISTING_SCHEMA", "Progress", "list_layout", "listing_table", "no_progress"]


def no_progress(phase: str, advance: int, total: int | None) -> None:
    pass


def plan_shards(store: ObjectStore, root: str) -> tuple[list[str], list[ObjectInfo]]:
    """The prefixes to list, each ending in ``/``, and the loose files found on the way.

    The shards cover every key below ``blobs/<alg>/<h2>/``, ``repositories/<name>/`` or any
    other directory under ``root``; the loose files are those sitting directly in ``root``,
    ``blobs/``, ``blobs/<alg>/`` or ``repositories/`` (Distribution never writes any, so they
    must be reported rather than silently missed)."""
    shards: list[str] = []
    loose: list[ObjectInfo] = list(store.iter_files(root))
    for top in store.iter_subdirs(root):
        name = top[len(root) :].rstrip("/")
        if name == "blobs":
            loose.extend(store.iter_files(top))
            for alg in store.iter_subdirs(top):
                loose.extend(store.iter_files(alg))
                shards.extend(store.iter_subdirs(alg))
        elif name == "repositories":
            loose.extend(store.iter_files(top))
            shards.extend(store.iter_subdirs(top))
        else:
            shards.append(top)
    return shards, loose


def _groups(shards: list[str], n: int) -> list[list[str]]:
    n = max(1, min(n, len(shards)))
    return [shards[i::n] for i in range(n)]


def list_layout(
    store: ObjectStore, root: str, executor: Executor, progress: Progress = no_progress
) -> Iterator[pa.Table]:
    """Yield the objects under ``root`` as listing tables, listing shards in parallel.

    An object store lists one shard per request stream, all at once. A filesystem store lists
    a group of shards with one ``find`` process (so both cores work, which Python threads
    cannot), one group per core at a time: first the repositories, then the blobs, so the scan
    can start reading the manifests that revision links name while the blobs are listed."""
    shards, loose = plan_shards(store, root)
    progress("list", 0, len(shards))
    if getattr(store, "list_table", None) is None:
        futures = [executor.submit(list_table, store, [s]) for s in shards]
        yield listing_table(loose)
        for fut in futures:
            yield fut.result()
            progress("list", 1, None)
        return
    cores = os.cpu_count() or 2
    repos = [s for s in shards if s.startswith(root + "repositories/")]
    others = [s for s in shards if not s.startswith(root + "repositories/")]
    done: list[tuple[pa.Table, int]] = []
    # The last, empty wave only hands on the blobs.
    for wave, groups in enumerate((_groups(repos, cores), _groups(others, cores), [])):
        running = [(executor.submit(list_table, store, g), len(g)) for g in groups if g]
        if wave == 0:
            # The loose files are converted while the first wave runs: the first Arrow array
            # built from Python values makes pyarrow import pandas (a third of a second).
            done = [(listing_table(loose), 0)]
        # Hand on the previous wave only once this one runs, so its work overlaps the listing.
        for table, n in done:
            yield table
            progress("list", n, None)
        done = [(fut.result(), n) for fut, n in running]


def list_incomplete_uploads(store: ObjectStore, root: str) -> list[IncompleteUpload]:
    return list(store.iter_incomplete_uploads(root + "repositories/"))
