"""Listings as Arrow tables: one row per object, instead of an ObjectInfo per object.

A scan of millions of objects spends most of its time and memory on per-object Python records
(bench/RESULTS.md), so it lists into columns. Backends that can list straight into columns
(the filesystem, through GNU find) offer ``list_table``; the others are converted here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from regsweep.storage.base import ObjectInfo, ObjectStore

# Keys are relative to the store, as ObjectInfo.key.
LISTING_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("size", pa.int64()),
        ("last_modified", pa.timestamp("ms", tz="UTC")),
        ("etag", pa.string()),  # S3/Azure ETag without quotes; null on a filesystem
        ("content_md5", pa.string()),  # hex; Azure's Content-MD5 where set, else null
    ]
)

# A typed null for compute kernels. Not pa.scalar(None, ...): converting a Python value makes
# pyarrow import pandas, a third of a second of every start-up.
NULL_STRING = pa.nulls(1, pa.string())[0]


def listing_table(objects: Iterable[ObjectInfo]) -> pa.Table:
    """ObjectInfo records as a listing table (for backends that list record by record)."""
    objs = list(objects)
    return pa.Table.from_arrays(
        [
            pa.array([o.key for o in objs], pa.string()),
            pa.array([o.size for o in objs], pa.int64()),
            pa.array([o.last_modified for o in objs], LISTING_SCHEMA.field("last_modified").type),
            pa.array([o.etag for o in objs], pa.string()),
            pa.array([o.content_md5 for o in objs], pa.string()),
        ],
        schema=LISTING_SCHEMA,
    )


def list_table(store: ObjectStore, prefixes: Sequence[str]) -> pa.Table:
    """Every object under each of ``prefixes`` (flat, as ``iter_objects``), as one table."""
    fast: Any = getattr(store, "list_table", None)
    if fast is not None:
        table = fast(prefixes)
        if table is not None:
            return table
    return pa.concat_tables(
        [listing_table(store.iter_objects(p)) for p in prefixes] or [listing_table([])]
    )
