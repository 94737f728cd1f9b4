"""Listings as Arrow tables: one row per object, instead of an ObjectInfo per object.

A scan of millions of objects spends most of its time and memory on per-object Python records
(bench/RESULTS.md), so it lists into columns. Backends that can list straight into columns
(the filesystem, through GNU find) offer ``list_table``; the others are converted here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

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
LISTED_TIME = LISTING_SCHEMA.field("last_modified").type  # timestamp[ms, tz=UTC]

_RFC1123 = "%a, %d %b %Y %H:%M:%S GMT"
_FRACTION = re.compile(r"\.(\d+)")


def listing_table(objects: Iterable[ObjectInfo]) -> pa.Table:
    """ObjectInfo records as a listing table (for backends that list record by record)."""
    objs = list(objects)
    return pa.Table.from_arrays(
        [
            pa.array([o.key for o in objs], pa.string()),
            pa.array([o.size for o in objs], pa.int64()),
            pa.array([o.last_modified for o in objs], LISTED_TIME),
            pa.array([o.etag for o in objs], pa.string()),
            pa.array([o.content_md5 for o in objs], pa.string()),
        ],
        schema=LISTING_SCHEMA,
    )


def list_table(
    store: ObjectStore,
    prefixes: Sequence[str],
    blocks: Callable[[pa.Table], None] | None = None,
) -> pa.Table:
    """Every object under each of ``prefixes`` (flat, as ``iter_objects``), as one table; or,
    with ``blocks``, handed to it a block at a time where the store lists so (a filesystem's
    walker), else as one table, and an empty table returned."""
    fast: Any = getattr(store, "list_table", None)
    if fast is not None:
        table = fast(prefixes) if blocks is None else fast(prefixes, blocks=blocks)
        if table is not None:
            return table
    table = pa.concat_tables(
        [listing_table(store.iter_objects(p)) for p in prefixes] or [listing_table([])]
    )
    if blocks is None:
        return table
    blocks(table)
    return listing_table([])


# -- listed text -> listing columns ----------------------------------------------------------
# What object-store listings and inventory reports give as text, turned into the listing
# schema's columns in Arrow; Python sees only the values the vectorized parse rejects.


def unquoted_etags(text: pa.Array) -> pa.Array:
    """ETags without their surrounding quotes; "" -> null."""
    s = pc.utf8_trim(text, characters='"')
    return pc.if_else(pc.equal(s, ""), NULL_STRING, s)


def floor_ms(col: pa.Array) -> pa.Array:
    """A timestamp column as LISTED_TIME, floored to the millisecond (naive is UTC)."""
    unit = col.type.unit
    naive = col.view(pa.timestamp(unit))
    if unit in ("us", "ns"):
        naive = pc.floor_temporal(naive, unit="millisecond")
    return naive.cast(pa.timestamp("ms")).view(LISTED_TIME)


def parse_times(text: pa.Array) -> pa.Array:
    """ISO 8601 (with Z, an offset or none = UTC; any fraction digits) and RFC 1123 text, as
    ``parse_time`` reads them; "" is null. Raises ValueError on unparsable text."""
    t = pc.utf8_trim_whitespace(text)
    t = pc.if_else(pc.equal(t, ""), NULL_STRING, t)
    for typ in (pa.timestamp("ns", "UTC"), pa.timestamp("ns")):  # zoned, then naive = UTC
        try:
            return floor_ms(pc.cast(t, typ))
        except pa.ArrowInvalid:
            pass
    # Not all one ISO spelling: RFC 1123 vectorized, the rest through parse_time.
    rfc = floor_ms(pc.strptime(t, format=_RFC1123, unit="s", error_is_null=True))
    rest = pc.and_(pc.is_valid(t), pc.is_null(rfc))
    texts = pc.filter(t, rest).to_pylist()
    if not texts:
        return rfc
    parsed = floor_ms(pa.array([parse_time(s) for s in texts], pa.timestamp("us", "UTC")))
    return pc.replace_with_mask(rfc, rest, parsed)


def parse_time(text: str | None) -> datetime | None:
    """ISO 8601 (S3 ``2024-05-01T10:00:00.000Z``; Azure ``...:00.4571217Z``, 7 digits) or
    RFC 1123 (``Wed, 01 May 2024 10:00:00 GMT``)."""
    if not text:
        return None
    t = text.strip()
    try:
        if "," in t:
            from email.utils import parsedate_to_datetime

            return parsedate_to_datetime(t).astimezone(UTC)
        t = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], t, count=1)
        d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except (ValueError, TypeError) as e:
        raise ValueError(f"unparsable time {text!r}") from e
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
