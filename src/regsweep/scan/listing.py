"""Sharded, parallel listing of a layout root.

Shards are ``blobs/<alg>/<h2>/`` and the first level of ``repositories/`` (storage-layout.md §2.4):
each is one flat listing, so a thread pool on one machine, or a cluster engine's Executor, can
list them side by side. Any other directory under the root is one more shard, so foreign keys
are seen too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor

import pyarrow as pa

from regsweep.storage.base import IncompleteUpload, ObjectInfo, ObjectStore

Progress = Callable[[str, int, int | None], None]

# A listing batch: one row per object, keys relative to the store (as ObjectInfo.key). The scan
# works on these columns rather than on an ObjectInfo per object, which is what made it slow
# and large on millions of objects (bench/RESULTS.md).
LISTING_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("size", pa.int64()),
        ("last_modified", pa.timestamp("ms", tz="UTC")),
        ("etag", pa.string()),  # S3/Azure ETag without quotes; null on a filesystem
    ]
)


def listing_table(objects: Iterable[ObjectInfo]) -> pa.Table:
    """ObjectInfo records as a listing batch (for backends that only list record by record)."""
    objs = list(objects)
    return pa.Table.from_arrays(
        [
            pa.array([o.key for o in objs], pa.string()),
            pa.array([o.size for o in objs], pa.int64()),
            pa.array([o.last_modified for o in objs], LISTING_SCHEMA.field("last_modified").type),
            pa.array([o.etag for o in objs], pa.string()),
        ],
        schema=LISTING_SCHEMA,
    )


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


def list_layout(
    store: ObjectStore, root: str, executor: Executor, progress: Progress = no_progress
) -> Iterator[list[ObjectInfo]]:
    """Yield the objects under ``root`` shard by shard, listing shards in parallel."""
    shards, loose = plan_shards(store, root)
    yield loose
    progress("list", 0, len(shards))
    futures = [executor.submit(lambda s: list(store.iter_objects(s)), s) for s in shards]
    for fut in futures:
        yield fut.result()
        progress("list", 1, None)


def list_incomplete_uploads(store: ObjectStore, root: str) -> list[IncompleteUpload]:
    return list(store.iter_incomplete_uploads(root + "repositories/"))
