"""Sharded, parallel listing of a layout root.

Shards are ``blobs/<alg>/<h2>/`` and the first level of ``repositories/`` (storage-layout.md §2.4):
each is one flat listing, so a thread pool on one machine, or a cluster engine's Executor, can
list them side by side. Any other directory under the root is one more shard, so foreign keys
are seen too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor

from regsweep.storage.base import IncompleteUpload, ObjectInfo, ObjectStore

Progress = Callable[[str, int, int | None], None]


def no_progress(phase: str, advance: int, total: int | None) -> None:
    pass


def plan_shards(store: ObjectStore, root: str) -> list[str]:
    """The prefixes to list, each ending in ``/``. Together they cover every key under ``root``
    that sits below ``blobs/<alg>/<h2>/``, ``repositories/<name>/`` or any other directory."""
    shards: list[str] = []
    for top in store.iter_subdirs(root):
        name = top[len(root) :].rstrip("/")
        if name == "blobs":
            for alg in store.iter_subdirs(top):
                shards.extend(store.iter_subdirs(alg))
        elif name == "repositories":
            shards.extend(store.iter_subdirs(top))
        else:
            shards.append(top)
    return shards


def list_layout(
    store: ObjectStore, root: str, executor: Executor, progress: Progress = no_progress
) -> Iterator[list[ObjectInfo]]:
    """Yield the objects under ``root`` shard by shard, listing shards in parallel."""
    shards = plan_shards(store, root)
    progress("list", 0, len(shards))
    futures = [executor.submit(lambda s: list(store.iter_objects(s)), s) for s in shards]
    for fut in futures:
        yield fut.result()
        progress("list", 1, None)


def list_incomplete_uploads(store: ObjectStore, root: str) -> list[IncompleteUpload]:
    return list(store.iter_incomplete_uploads(root + "repositories/"))
