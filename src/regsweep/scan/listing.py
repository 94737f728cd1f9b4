"""Sharded, parallel listing of a layout root, into Arrow tables.

Shards are ``blobs/<alg>/<h2>/`` and the first level of ``repositories/`` (storage-layout.md §2.4):
each is one flat listing, so a thread pool on one machine, or a cluster engine's Executor, can
list them side by side. Any other directory under the root is one more shard, so foreign keys
are seen too.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

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


# Groups of shards per core on a filesystem (of the repositories, then of the blobs). Two, so
# that the first repositories are classified (and their manifests read) while the rest are
# still being listed; not more, since each group is one walker process, and its output one
# conversion: with bfs, two per core planned 3% faster than four, and eight 4% slower.
_GROUPS_PER_CORE = 2


def list_layout(
    store: ObjectStore, root: str, executor: Executor, progress: Progress = no_progress
) -> Iterator[pa.Table]:
    """Yield the objects under ``root`` as listing tables, listing shards in parallel.

    An object store lists one shard per request stream, all at once. A filesystem store lists
    a group of shards with one walker process (bfs or GNU find), one process per core at a
    time (so both cores work, which Python threads cannot): first the repositories, then the
    blobs. Each group is handed on as it is listed, once those before it are, so the scan
    reads the manifests that the first revision links name while the rest is still being
    listed."""
    shards, loose = plan_shards(store, root)
    progress("list", 0, len(shards))
    # Local or not, not whether the store has a columnar listing: a read-only wrapper has
    # one for any store (``run``, ``audit`` and ``report`` scan through it), and an object
    # store listed a group of shards per core at a time had as many request streams as cores.
    if not getattr(store, "local", False):
        futures = [executor.submit(list_table, store, [s]) for s in shards]
        yield listing_table(loose)
        for fut in futures:
            yield fut.result()
            progress("list", 1, None)
        return
    cores = os.cpu_count() or 2
    repos = [s for s in shards if s.startswith(root + "repositories/")]
    others = [s for s in shards if not s.startswith(root + "repositories/")]
    groups = [g for part in (repos, others) for g in _groups(part, cores * _GROUPS_PER_CORE) if g]
    # Its own pool, one thread per core, so the groups run in order and no more than ``cores``
    # walker processes at once (the scan's pool has more threads than cores).
    finds = ThreadPoolExecutor(max_workers=cores, thread_name_prefix="find")
    # Each walker hands its output on a block at a time, through a queue of a few blocks: on a
    # warm page cache the walkers outrun the classification, and each listed group waiting
    # whole for the scan was held in memory (one to three groups at once, ~50 MiB each on a
    # store of 2.8M objects). A walker whose queue is full waits; the group being classified
    # is taken as it is listed. A group is started when one is done.
    stop = threading.Event()
    todo = iter(groups)
    running: deque[tuple[Future[None], queue.Queue[Any], int]] = deque()

    def start_next() -> None:
        group = next(todo, None)
        if group is not None:
            out: queue.Queue[Any] = queue.Queue(maxsize=_WAITING_BLOCKS)
            running.append((finds.submit(_walk, store, group, out, stop), out, len(group)))

    try:
        for _ in range(cores):
            start_next()
        # The loose files are converted while the first groups are listed: the first Arrow
        # array built from Python values makes pyarrow import pandas (a third of a second).
        yield listing_table(loose)
        while running:
            fut, out, n = running[0]
            while True:
                block = out.get()
                if block is _DONE:
                    break
                yield block
                del block
            running.popleft()
            fut.result()  # the walker's error, if it failed
            start_next()
            progress("list", n, None)
    finally:
        # A scan that stops early (an error while classifying) does not list the rest: the
        # walkers that wait on a full queue stop (and kill their processes).
        stop.set()
        finds.shutdown(cancel_futures=True)


# Converted blocks of a walker's output (~8 MiB of text each, see FilesystemStore.list_table)
# waiting for the scan, per walker.
_WAITING_BLOCKS = 2
_DONE = object()  # a walker's last item


class _Stopped(Exception):
    """The scan stopped taking the listing."""


def _walk(
    store: ObjectStore, group: list[str], out: queue.Queue[Any], stop: threading.Event
) -> None:
    """List ``group`` into ``out`` a block at a time, then ``_DONE`` (also after an error,
    which the future raises); give up once ``stop`` is set."""

    def put(item: Any) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                out.put(item, timeout=0.1)
                return
        raise _Stopped

    try:
        list_table(store, group, blocks=put)
    finally:
        with contextlib.suppress(_Stopped):
            put(_DONE)


def list_incomplete_uploads(store: ObjectStore, root: str) -> list[IncompleteUpload]:
    return list(store.iter_incomplete_uploads(root + "repositories/"))
