"""The Snapshot: everything a scan found, as Arrow tables, saved as one Parquet file per table.

Column names and types are a stable interface (gc, audit and reports read them; so do users'
notebooks). Digest, repository and tag columns are dictionary-encoded, so each distinct value is
stored once however many rows mention it.

In memory, the ``key`` of a blob or link in the common shape is null: it follows from the
digest, repository and tag (layout/key_columns.py), and at millions of rows the keys were the
largest part of a snapshot. ``Snapshot.with_keys`` builds them; files hold every key.

In memory, a scan's digest columns other than the blobs' may hold the 32 bytes each digest
spells rather than its text (``share_digests``): read them as text with ``column``, ``rows``
or ``decoded``. Files hold text.
"""

from __future__ import annotations

import itertools
import json
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep.errors import UsageError
from regsweep.layout.digest_columns import (
    SHA256_BYTES,
    as_bytes,
    is_sha256_text,
    text_of,
)
from regsweep.layout.key_columns import (
    blob_data_keys,
    layer_link_keys,
    revision_link_keys,
    tag_current_keys,
    tag_index_keys,
)
from regsweep.layout.keys import (
    blob_data_key,
    layer_link_key,
    revision_link_key,
    tag_current_key,
    tag_index_key,
)
from regsweep.scan.spill import SpilledTable
from regsweep.storage.columns import NULL_STRING

_DICT = pa.dictionary(pa.int32(), pa.string())
_TS = pa.timestamp("ms", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "repositories": pa.schema(
        [
            ("repository", pa.string()),
            ("kind", _DICT),  # manifest-bearing | link-only | upload-only
            ("valid_name", pa.bool_()),
            ("tags", pa.int64()),
            ("revisions", pa.int64()),
            ("layer_links", pa.int64()),
            ("uploads", pa.int64()),
        ]
    ),
    "tags": pa.schema(
        [
            ("repository", _DICT),
            ("tag", _DICT),  # a registry's tags repeat the same few names
            ("digest", _DICT),  # what current/link says; null when unreadable
            ("key", pa.string()),
            ("size", pa.int64()),
            ("last_modified", _TS),
            ("etag", _DICT),  # links with the same content have the same ETag
            ("resolved_by", _DICT),  # read | etag
            ("problem", _DICT),
        ]
    ),
    "tag_history": pa.schema(
        [
            ("repository", _DICT),
            ("tag", _DICT),
            ("digest", _DICT),
            ("key", pa.string()),
            ("size", pa.int64()),
            ("last_modified", _TS),
            ("problem", _DICT),
        ]
    ),
    "revisions": pa.schema(
        [
            ("repository", _DICT),
            ("digest", _DICT),  # from the path
            ("target", _DICT),  # from the content (equal unless the link is corrupt)
            ("key", pa.string()),
            ("size", pa.int64()),
            ("last_modified", _TS),
            ("etag", _DICT),  # links with the same content have the same ETag
            ("blob_present", pa.bool_()),
            ("resolved_by", _DICT),  # path | read
            ("problem", _DICT),
        ]
    ),
    "layer_links": pa.schema(
        [
            ("repository", _DICT),
            ("digest", _DICT),  # from the path (the lookup key)
            ("target", _DICT),  # from the content: the canonical blob (differs for alias links)
            ("key", pa.string()),
            ("size", pa.int64()),
            ("last_modified", _TS),
            ("etag", _DICT),  # links with the same content have the same ETag
            ("alias", pa.bool_()),
            ("blob_present", pa.bool_()),
            ("resolved_by", _DICT),
            ("problem", _DICT),
        ]
    ),
    "blobs": pa.schema(
        [
            ("digest", _DICT),
            ("key", pa.string()),
            ("size", pa.int64()),
            ("last_modified", _TS),
            ("etag", pa.string()),
        ]
    ),
    "manifests": pa.schema(
        [
            ("digest", _DICT),
            ("size", pa.int64()),
            ("kind", _DICT),  # image | index | schema1 | artifact | unknown | unread
            ("media_type", _DICT),
            ("artifact_type", _DICT),
            ("subject", _DICT),
            ("problem", pa.string()),
        ]
    ),
    "references": pa.schema(
        [
            ("parent", _DICT),
            ("child", _DICT),
            ("kind", _DICT),  # config | layer | manifest | blob | subject
            ("media_type", _DICT),
            ("size", pa.int64()),
            ("platform", _DICT),
            ("has_urls", pa.bool_()),
            ("artifact_type", _DICT),
        ]
    ),
    "uploads": pa.schema(
        [
            ("repository", _DICT),
            ("upload_id", pa.string()),
            ("started_at", _TS),
            ("started_source", _DICT),  # startedat | uuid7 | mtime | multipart
            ("last_activity", _TS),
            ("data_size", pa.int64()),
            ("keys", pa.list_(pa.string())),
            ("key_sizes", pa.list_(pa.int64())),  # parallel to keys
            ("key_times", pa.list_(_TS)),  # parallel to keys
            ("multipart_key", pa.string()),
            ("multipart_upload_id", pa.string()),
            ("problem", _DICT),
        ]
    ),
    "anomalies": pa.schema(
        [
            ("kind", _DICT),
            ("severity", _DICT),  # error | warning | info
            ("repository", _DICT),
            ("key", pa.string()),
            ("size", pa.int64()),
            ("last_modified", _TS),
            ("detail", pa.string()),
        ]
    ),
}

TABLES = tuple(SCHEMAS)


@dataclass(frozen=True)
class KeyShape:
    """How the keys of a table's rows follow from their columns: ``build`` (one of
    layout/key_columns.py) takes the layout root and then the ``columns``, in that order;
    ``one``, where given, builds one row's key from the same values (layout/keys.py), for
    what asks for a few keys (the plan's order, the audit's findings)."""

    build: Callable[..., pa.Array]
    columns: tuple[str, ...]
    one: Callable[..., str] | None = None

    def keys(self, table: pa.Table, root: str) -> pa.Array:
        return one_array(self.build(root, *(decoded(table[c]) for c in self.columns)))

    def key(self, root: str, *values: Any) -> str:
        """One row's key from its ``columns`` values, as ``keys`` builds it."""
        assert self.one is not None, "a shape without a one-row builder"
        return self.one(root, *values)


# The tables whose keys are null in memory where the layout tells them, and how they are built.
DERIVED_KEYS: dict[str, KeyShape] = {
    "blobs": KeyShape(blob_data_keys, ("digest",), lambda root, d: blob_data_key(d, root)),
    "layer_links": KeyShape(
        layer_link_keys, ("repository", "digest"), lambda root, r, d: layer_link_key(r, d, root)
    ),
    "revisions": KeyShape(
        revision_link_keys,
        ("repository", "digest"),
        lambda root, r, d: revision_link_key(r, d, root),
    ),
    "tags": KeyShape(
        tag_current_keys, ("repository", "tag"), lambda root, r, t: tag_current_key(r, t, root)
    ),
    "tag_history": KeyShape(
        tag_index_keys,
        ("repository", "tag", "digest"),
        lambda root, r, t, d: tag_index_key(r, t, d, root),
    ),
}
_WRITE_ROWS = 1 << 18  # rows whose keys are built at a time when a table is written

# The columns that hold digests, by table (the blobs' are in scratch files, see spill.py).
DIGEST_COLUMNS: dict[str, tuple[str, ...]] = {
    "references": ("parent", "child"),
    "manifests": ("digest",),
    "layer_links": ("digest", "target"),
    "revisions": ("digest", "target"),
    "tags": ("digest",),
    "tag_history": ("digest",),
}


def share_digests(tables: dict[str, pa.Table], also: pa.Array | None = None) -> pa.Array | None:
    """Every digest column of ``tables`` (replaced in place) as indices into one sorted
    dictionary of every digest they name, and of ``also`` (digests, without nulls, that a table
    not given yet will name: see scanner.manifest_tables); that dictionary is returned (None
    where the columns do not share one). Each table's columns had their own dictionary, most
    digests in several of them (a layer is a reference's child and a link's digest and target
    in every repository that uses it): ~64 MiB of dictionaries for 351k distinct digests on a
    store of 94k manifests, against 25 MiB for one. What reads them (the graph) can then use
    the indices as they are instead of looking every digest up. Written tables are compacted
    again (``compacted``): a dictionary is written whole, used or not.

    Where every digest is sha256 (lower-case hex, as Distribution writes them), that one
    dictionary holds the 32 bytes each spells (``SHA256_BYTES``), not its 71 bytes of text:
    ~38 MiB less at 1M digests, from the scan's end through the mark, the plan, the audit and
    the reports. What shows, writes or compares a digest as text converts the values it uses
    (``decoded``, ``column``, ``rows``, graph.pylist; files are always text)."""
    columns = [(t, c) for t, cs in DIGEST_COLUMNS.items() if t in tables for c in cs]
    _unite(tables, columns, [] if also is None or not len(also) else [also], binary=True)
    if not all(pa.types.is_dictionary(tables[t][c].type) for t, c in columns):
        return None
    shared = {identity(d): d for t, c in columns for d in dictionaries(tables[t][c])}
    return next(iter(shared.values())) if len(shared) == 1 else None


def _unite(
    tables: dict[str, pa.Table],
    columns: list[tuple[str, str]],
    also: Sequence[pa.Array] = (),
    *,
    binary: bool = False,
) -> bool:
    """The dictionary ``columns`` (table, column) of ``tables`` (replaced in place) as indices
    into one sorted dictionary of their chunks' values and of ``also``'s (``_sorted_union``),
    of their bytes where ``binary`` and every value is a sha256 digest (``as_bytes``).
    False, and nothing changed, where there is nothing to unite (fewer than two dictionaries),
    a column is not a dictionary or a dictionary holds a null: not what a scan makes."""
    where: dict[tuple[int, ...], int] = {}  # a dictionary's identity -> its place below
    distinct: list[pa.Array] = []
    for t, c in columns:
        col = tables[t][c]
        if not pa.types.is_dictionary(col.type):
            return False
        for dictionary in dictionaries(col):
            if (key := identity(dictionary)) not in where:
                where[key] = len(distinct)
                distinct.append(dictionary)
    distinct += list(also)
    if len(distinct) < 2 or any(d.null_count for d in distinct):
        return False
    # One type for the union: the digests' bytes where asked for and every value is a sha256
    # digest, else text (converted below, once only ``distinct`` holds the dictionaries).
    binary = binary and all(d.type == SHA256_BYTES or is_sha256_text(d) for d in distinct)
    # While the union is made, each column is only its chunks' indices (no copy), so that the
    # union holds the only reference to each dictionary and lets it go once it is cut into
    # groups: the old dictionaries and the new one at once were the scan's peak.
    held: dict[tuple[str, str], tuple[pa.DataType, list[tuple[int, pa.Array]]]] = {}
    for t, c in columns:
        col = tables[t][c]
        held[(t, c)] = col.type, [(where[identity(k.dictionary)], k.indices) for k in col.chunks]
        at = tables[t].schema.get_field_index(c)
        bare = pa.chunked_array([k.indices for k in col.chunks], col.type.index_type)
        tables[t] = tables[t].set_column(at, c, bare)
        del col, bare
    for i, d in enumerate(distinct):  # (each let go as it is converted)
        if binary and d.type != SHA256_BYTES:
            distinct[i] = as_bytes(d)
        elif not binary and d.type == SHA256_BYTES:
            distinct[i] = text_of(d)
        del d
    shared, remaps = _sorted_union(distinct)
    del distinct
    done: dict[Any, pa.Array] = {}  # columns that shared a chunk still do
    for t, c in columns:
        dtype, chunks = held.pop((t, c))
        dtype = pa.dictionary(dtype.index_type, shared.type)
        remapped = []
        for place, indices in chunks:
            if (same := (place, identity(indices))) not in done:
                done[same] = pa.DictionaryArray.from_arrays(remaps[place].take(indices), shared)
            remapped.append(done[same])
        at = tables[t].schema.get_field_index(c)
        tables[t] = tables[t].set_column(at, c, pa.chunked_array(remapped, dtype))
    return True


def spill_shared(tables: dict[str, pa.Table | None], name: str) -> SpilledTable | None:
    """Table ``name``, taken out of ``tables`` (its place left None), written to scratch files
    with each digest column as its indices into its one dictionary (SpilledTable's
    ``shared``), where each has one (share_digests); else None, and the table left where it
    was. A store has several references a manifest (1.2M at 256k manifests, ~37 MiB), held
    from the scan's end to its plan's end though only the graph, the audit and the reports
    read them: a plan's peak."""
    table = tables[name]
    assert table is not None
    shared = {}
    for c in DIGEST_COLUMNS[name]:
        distinct = dictionaries(table[c]) if pa.types.is_dictionary(table[c].type) else []
        if len(distinct) != 1:
            return None
        shared[c] = distinct[0]
    out = SpilledTable(table.schema, name, shared)
    tables[name] = None
    # One part of one chunk a column, as the table was: what reads it takes rows of it, and
    # Arrow unifies the dictionaries of chunks it joins (a hash of every digest, for each).
    out.append(table.combine_chunks())
    return out


def over_dictionary(col: pa.ChunkedArray, dictionary: pa.Array) -> pa.ChunkedArray:
    """``col`` (a dictionary column) with each chunk whose every row's value is in
    ``dictionary`` (distinct values, no nulls) as indices into it; the other chunks as they
    were. Columns that name the same digests (a store's revision and tag links name its
    manifests) then share one dictionary instead of each holding a copy of the text, and
    share_digests has fewer to unite."""
    from regsweep.scan.graph import places  # (here: the graph imports this module)

    if not pa.types.is_dictionary(col.type) or not col.num_chunks:
        return col
    # Found by binary search where the dictionary is sorted (a scan's manifests are): a hash
    # table of 256k manifests' digests was ~25 MiB, at the peak of the scan's link tables.
    at = one_array(places(col, dictionary))
    chunks, start = [], 0
    for chunk in col.chunks:
        here = at.slice(start, len(chunk))
        start += len(chunk)
        if here.null_count == chunk.null_count:
            chunk = pa.DictionaryArray.from_arrays(here.cast(col.type.index_type), dictionary)
        chunks.append(chunk)
    return pa.chunked_array(chunks, col.type)


def with_one_dictionary(tables: dict[Any, pa.Table], name: str, *, binary: bool = False) -> None:
    """Each of ``tables``' dictionary column ``name`` (replaced in place) as one chunk, all of
    them over one sorted dictionary of their chunks' values, made a group of first characters
    at a time (``_sorted_union``). The caller passes its only references to the tables: each
    chunk's dictionary is let go once cut into its groups. ``combine_chunks`` hashed every
    value into a table of its own and copied them out again, with the chunks' dictionaries
    still held: three copies of the column's text at once, the peak of a scan's link
    resolution (a store's ``_layers`` links are listed in a dozen chunks, ~50 MiB of digests
    at 815k links). Tables that name the same digests (revision and tag-index links name a
    store's manifests) then hold them once, not a copy each. ``binary``: as in ``_unite``."""
    columns = [(key, name) for key in tables]
    united = _unite(tables, columns, binary=binary)
    for key in tables:
        table = tables[key]
        at = table.schema.get_field_index(name)
        field, chunks = table.schema.field(at), table[name].chunks
        if united and chunks:
            indices = pa.concat_arrays([c.indices for c in chunks])
            one = pa.DictionaryArray.from_arrays(indices, chunks[0].dictionary)
        else:
            one = one_array(table[name])
        del chunks
        tables[key] = table.set_column(at, field, pa.chunked_array([one], field.type))
        del table, one


# Digests are hashed a group at a time, by their first characters (the algorithm and the first
# hex digit): one hash table of every distinct digest, with the dictionary it makes and its
# sorted copy, was the peak of a scan of many manifests (~90 MiB at once for 351k digests).
# Sixteen groups, a hex digit each, rather than four: the scan's peak on a store of 94k
# manifests ~10 MiB lower, in the same time (bench/RESULTS.md, sixteenth round).
_GROUP_PREFIX = len("sha256:") + 1
_GROUPS = 16


def _sorted_union(dictionaries: list[pa.Array]) -> tuple[pa.Array, list[pa.Array]]:
    """The distinct values of ``dictionaries`` (without nulls; all text, or all digests as
    their bytes, ``SHA256_BYTES``), sorted, and for each dictionary the place of each of its
    values in them. A group of values sharing their first characters (bytes: the first four
    bits) at a time: each group sorts among the others by those, so the groups' sorted values,
    one after another, are sorted. Empties ``dictionaries``: each is let go once cut into its
    groups, and each group's values once placed."""
    binary = bool(dictionaries) and dictionaries[0].type == SHA256_BYTES
    group_of = _groups_of_bytes if binary else _groups_of_text(dictionaries)
    remaps = [np.empty(len(d), np.int32) for d in dictionaries]
    # The sorted values are copied into buffers as each group is done, rather than kept as a
    # piece per group and concatenated: that copy was the scan's peak (the union twice at
    # once). The buffers are sized for every value of every dictionary, but only what is
    # written is ever touched, and so resident.
    if binary:
        data = np.empty((sum(len(d) for d in dictionaries), SHA256_BYTES.byte_width), np.uint8)
    else:
        data = np.empty(sum(_value_bytes(d) for d in dictionaries), np.uint8)
    offsets = np.zeros(1 if binary else sum(len(d) for d in dictionaries) + 1, np.int32)
    found = _found_in_sorted(dictionaries)
    # Per group, the values of each dictionary in it: (which dictionary, values, their places).
    groups: list[list[tuple[int, pa.Array, np.ndarray]]] = [[] for _ in range(_GROUPS)]
    for i in range(len(dictionaries)):
        d, dictionaries[i] = dictionaries[i], None
        of = group_of(d)
        if i in found:  # only its values that no sorted dictionary holds
            own = np.flatnonzero(found[i][0] < 0).astype(np.int32)
            of = of[own]
        for g in np.unique(of):
            rows = np.flatnonzero(of == g).astype(np.int32)
            if i in found:
                rows = own[rows]
            groups[g].append((i, d.take(pa.array(rows)), rows))
        del d, of
    dictionaries.clear()
    start = 0
    for g in range(_GROUPS):
        pieces, groups[g] = groups[g], []
        if not pieces:
            continue
        values = pa.concat_arrays([v for _, v, _ in pieces])
        encoded = values.dictionary_encode()
        del values
        order = pc.array_sort_indices(encoded.dictionary)
        if binary:
            width = SHA256_BYTES.byte_width
            ordered = encoded.dictionary.take(order)
            data[start : start + len(order)] = np.frombuffer(
                ordered.buffers()[1], np.uint8, len(order) * width, ordered.offset * width
            ).reshape(len(order), width)
            del ordered
        else:
            _copy_strings(encoded.dictionary.take(order), data, offsets, start)
        rank = np.empty(len(order), np.int32)
        rank[order.to_numpy()] = np.arange(start, start + len(order), dtype=np.int32)
        placed = rank[encoded.indices.to_numpy()]
        at = 0
        for i, _, rows in pieces:
            remaps[i][rows] = placed[at : at + len(rows)]
            at += len(rows)
        start += len(order)
        del pieces, encoded, order, rank, placed
    # The values found in a sorted dictionary take the places its own values were given.
    for i, (anchor, places) in found.items():
        for a in np.unique(anchor[anchor >= 0]).tolist():
            hits = np.flatnonzero(anchor == a)
            remaps[i][hits] = remaps[a][places[hits]]
    if binary:
        shared = pa.Array.from_buffers(SHA256_BYTES, start, [None, pa.py_buffer(data[:start])])
    else:
        shared = pa.Array.from_buffers(
            pa.string(),
            start,
            [None, pa.py_buffer(offsets[: start + 1]), pa.py_buffer(data[: offsets[start]])],
        )
    return shared, [pa.array(r) for r in remaps]


def _groups_of_bytes(digests: pa.Array) -> np.ndarray:
    """Per digest (``SHA256_BYTES``): its group, the first four bits of its first byte."""
    if not len(digests):
        return np.zeros(0, np.int8)
    width = SHA256_BYTES.byte_width
    first = np.frombuffer(
        digests.buffers()[1], np.uint8, len(digests) * width, digests.offset * width
    )
    return np.asarray(first[::width] >> 4, np.int8)


def _groups_of_text(dictionaries: list[pa.Array]) -> Callable[[pa.Array], np.ndarray]:
    """Per value of a dictionary (text): its group, by its first characters (the algorithm and
    the first hex digit of a digest) among those of every one of ``dictionaries``."""

    def firsts(d: pa.Array) -> pa.Array:
        return pc.utf8_slice_codeunits(d, 0, _GROUP_PREFIX)

    # Each dictionary's first characters made twice rather than held for all at once (~14 MiB
    # at 94k manifests, at the scan's peak).
    prefixes = pc.unique(
        pa.chunked_array([pc.unique(firsts(d)) for d in dictionaries], pa.string())
    )
    prefixes = prefixes.take(pc.array_sort_indices(prefixes))
    # Consecutive prefixes make a group: a few groups, since each costs a step per dictionary
    # (sha256 digests have sixteen prefixes, one a group).
    group = (np.arange(len(prefixes)) * _GROUPS // max(len(prefixes), 1)).astype(np.int8)

    def of(d: pa.Array) -> np.ndarray:
        return np.asarray(group[np.asarray(pc.index_in(firsts(d), value_set=prefixes), np.int32)])

    return of


def _found_in_sorted(dictionaries: list[pa.Array]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For each dictionary that is not sorted, per value: the sorted dictionary (-1: none)
    that holds it and its place there. Most of a scan's digests are in several dictionaries
    (a layer is a link's digest in a sorted one and a reference's child in another a dozen
    parts of the references): cut into groups with the rest, their copies were the union's
    input, nearly twice the union (115 MiB for 68 at 256k manifests), and that was the peak of
    a scan of many manifests. Found by binary search (``sorted_places``)."""
    views = [_fixed_width(d) for d in dictionaries]
    anchors = [(i, v) for i, v in enumerate(views) if v is not None and _rising(v)]
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, view in enumerate(views):
        if view is None or any(a == i for a, _ in anchors):
            continue
        anchor, places = np.full(len(view), -1, np.int32), np.zeros(len(view), np.int32)
        for a, sorted_view in anchors:
            if sorted_view.dtype != view.dtype:
                continue
            rows = np.flatnonzero(anchor < 0)
            at = places_in(view, sorted_view, None if len(rows) == len(view) else rows)
            hit = at >= 0
            anchor[rows[hit]], places[rows[hit]] = a, at[hit]
            del at, hit
        if (anchor >= 0).any():
            out[i] = anchor, places
    return out


def sorted_places(
    values: pa.Array, dictionary: pa.Array, *, rising: bool | None = None
) -> np.ndarray | None:
    """Per value of ``values`` (strings), its place in ``dictionary`` (sorted, distinct), -1
    where it is not there: a binary search over both as fixed-width bytes (a digest
    algorithm's digests have one length), without the hash table and the copy of the
    dictionary that ``pc.index_in`` makes (~20 MiB for 256k digests). None where it cannot
    be done that way: a null, values of another length or of several, a dictionary that is
    not sorted. ``rising``: whether the dictionary is known to be sorted (``is_sorted_text``),
    else checked here."""
    want, have = _fixed_width(values), _fixed_width(dictionary)
    if want is None or have is None or want.dtype != have.dtype:
        return None
    if not (_rising(have) if rising is None else rising):
        return None
    return places_in(want, have)


def sorted_places_of_sorted(
    values: pa.Array, dictionary: pa.Array
) -> tuple[int, np.ndarray] | None:
    """``sorted_places`` where ``values`` are sorted too (``is_sorted_text``, the caller's to
    know): only those between the dictionary's first and last value can be there, so only
    those are searched. (``first``, their places): the places of ``values[first:first + n]``;
    the values before and after are not in ``dictionary``. None where sorted_places would
    be."""
    want, have = _fixed_width(values), _fixed_width(dictionary)
    if want is None or have is None or want.dtype != have.dtype or not _rising(have):
        return None
    first = int(np.searchsorted(want, have[0]))
    last = int(np.searchsorted(want, have[-1], side="right"))
    return first, places_in(want[first:last], have)


# is_sorted_text's answers: an array's identity -> (the array, weakly; its answer).
_SORTED_TEXT: dict[tuple[int, ...], tuple[weakref.ref[pa.Array], bool]] = {}


def is_sorted_text(strings: pa.Array) -> bool:
    """``strings`` are of one width and each greater than the one before (``sorted_places``
    can search them), remembered while the array object lives: the snapshot's dictionary of
    every digest (1M at 1M blobs) was checked again at each look-up of a part's digests
    (~0.1 s each, seconds for the references of a store of many manifests). A living array
    keeps its buffers, so its identity cannot be another's."""
    key = identity(strings)
    known = _SORTED_TEXT.get(key)
    if known is not None and known[0]() is strings:
        return known[1]
    view = _fixed_width(strings)
    answer = view is not None and _rising(view)
    for gone in [k for k, (ref, _) in _SORTED_TEXT.items() if ref() is None]:
        del _SORTED_TEXT[gone]
    _SORTED_TEXT[key] = weakref.ref(strings), answer
    return answer


_SEARCH_ROWS = 1 << 16  # values looked up at a time by places_in


def places_in(
    values: np.ndarray, sorted_values: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """Per value (of ``rows`` of ``values``, when given), its place in ``sorted_values`` (of
    the same fixed width), -1 where none. A slice at a time: the values found are copied to be
    compared, and all of them at once were ~50 MiB for the 703k digests of a store's layer
    links, at the peak of its plan."""
    n = len(values) if rows is None else len(rows)
    out = np.full(n, -1, np.int32)
    if not len(sorted_values):
        return out
    for start in range(0, n, _SEARCH_ROWS):
        stop = min(start + _SEARCH_ROWS, n)
        want = values[start:stop] if rows is None else values[rows[start:stop]]
        at = np.minimum(np.searchsorted(sorted_values, want), len(sorted_values) - 1)
        out[start:stop] = np.where(sorted_values[at] == want, at, -1)
    return out


def sorted_by_text(tables: list[pa.Table], name: str) -> tuple[pa.Array, np.ndarray] | None:
    """The text column ``name`` of ``tables`` (or digests as their bytes, ``SHA256_BYTES``, in
    every table) one after another, sorted, and the order that sorts it (for the tables' other
    columns); the column is dropped from each table (replaced in the list) as it is copied
    out, so that its text is held about once, not as the tables' chunks, their concatenation
    and the sorted copy at once (a take of a text column does both copies: ~55 MiB for the
    digests of 256k manifests read while listing). Each chunk is copied as it is, not joined
    with the table's others first (~18 MiB more for the blobs of 256k manifests). None, and
    nothing changed, where the values are not all of one width (``_fixed_width``)."""
    # Views of each table's chunks' values (no copy), the empty chunks left out.
    views: list[list[np.ndarray]] = []
    for t in tables:
        found = [_fixed_width(c) for c in t[name].chunks if len(c)]
        if any(v is None for v in found):
            return None
        views.append([v for v in found if v is not None])
        del found
    types = {t.schema.field(name).type for t in tables if t.num_rows}
    if len(types) > 1:
        return None
    type_ = types.pop() if types else pa.string()
    widths = {v.dtype for table_views in views for v in table_views}
    if len(widths) != 1:
        return None
    data = np.empty(sum(len(v) for table_views in views for v in table_views), widths.pop())
    at = 0
    for i in range(len(views)):
        for view in views[i]:
            data[at : at + len(view)] = view
            at += len(view)
            del view
        views[i] = []
        tables[i] = tables[i].drop_columns([name])
    order = np.argsort(data, kind="stable")
    data.sort()  # in place: equal values are equal bytes, so the same as data[order]
    if type_ == SHA256_BYTES:  # (digests as their bytes: the same order, see digest_columns)
        return pa.Array.from_buffers(type_, len(data), [None, pa.py_buffer(data)]), order
    width = data.dtype.itemsize
    offsets = np.arange(0, (len(data) + 1) * width, width, dtype=np.int32)
    text = pa.Array.from_buffers(
        pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    return text, order


def _rising(view: np.ndarray) -> bool:
    """Each value is greater than the one before it (numpy's order of bytes)."""
    return len(view) < 2 or bool((view[1:] > view[:-1]).all())


def _fixed_width(strings: pa.Array) -> np.ndarray | None:
    """The values of ``strings`` (no nulls) as a numpy array of fixed-width bytes, a view of
    their buffer, where every value has one length (and is not empty); else None. Digests as
    their bytes (``SHA256_BYTES``) are 32 bytes each. (numpy's bytes compare as their bytes,
    zeros included, where all are of one width.)"""
    n = len(strings)
    if not isinstance(strings, pa.Array) or not n or strings.null_count:
        return None
    if strings.type == SHA256_BYTES:
        width = SHA256_BYTES.byte_width
        return np.frombuffer(strings.buffers()[1], f"S{width}", n, strings.offset * width)
    if not pa.types.is_string(strings.type):
        return None
    offsets = np.frombuffer(strings.buffers()[1], np.int32)[strings.offset : strings.offset + n + 1]
    width = int(offsets[1] - offsets[0])
    if not width or (np.diff(offsets) != width).any():
        return None
    return np.frombuffer(strings.buffers()[2], f"S{width}", n, int(offsets[0]))


def _value_bytes(strings: pa.Array) -> int:
    """The bytes of the values of a string array."""
    first, last = strings.offset, strings.offset + len(strings)
    offsets = np.frombuffer(strings.buffers()[1], np.int32)
    return int(offsets[last] - offsets[first]) if len(strings) else 0


def _copy_strings(strings: pa.Array, data: np.ndarray, offsets: np.ndarray, at: int) -> None:
    """Append ``strings`` (no nulls) at place ``at`` of a string array's ``data`` and
    ``offsets`` buffers (``offsets[at]`` says where its data ends so far)."""
    n = len(strings)
    if not n:
        return
    own = np.frombuffer(strings.buffers()[1], np.int32)[strings.offset : strings.offset + n + 1]
    begin, end = int(own[0]), int(own[-1])
    base = int(offsets[at])
    buffer = strings.buffers()[2]
    if buffer is not None and end > begin:
        data[base : base + end - begin] = np.frombuffer(buffer, np.uint8)[begin:end]
    offsets[at + 1 : at + n + 1] = own[1:] - begin + base


def compacted(table: pa.Table) -> pa.Table:
    """``table`` with each dictionary column's dictionary cut to the values its rows use:
    Parquet writes a dictionary whole, and a digest column's is every digest of the snapshot
    (``share_digests``)."""
    for at, f in enumerate(table.schema):
        if not pa.types.is_dictionary(f.type):
            continue
        col, chunks, changed = table.column(at), [], False
        for chunk in col.chunks:
            used = pc.unique(chunk.indices).drop_null()
            if len(used) < len(chunk.dictionary):
                remap = np.zeros(len(chunk.dictionary), np.int32)
                remap[used.to_numpy()] = np.arange(len(used), dtype=np.int32)
                indices = pc.take(pa.array(remap), chunk.indices)
                chunk = pa.DictionaryArray.from_arrays(
                    indices.cast(chunk.indices.type), chunk.dictionary.take(used)
                )
                changed = True
            chunks.append(chunk)
        if changed:
            table = table.set_column(at, f, pa.chunked_array(chunks, f.type))
    return table


class TableBuilder:
    """Collects rows column by column (cheaper than a dict per row) for one schema."""

    def __init__(self, name: str) -> None:
        self.schema = SCHEMAS[name]
        self.columns: dict[str, list[Any]] = {f.name: [] for f in self.schema}

    def add(self, **row: Any) -> None:
        for name, col in self.columns.items():
            col.append(row.get(name))

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def build(self) -> pa.Table:
        return table_from_columns(self.schema, self.columns)


def table_from_columns(
    schema: pa.Schema | str, columns: dict[str, Any], *, repeat: bool = True
) -> pa.Table:
    """A table of ``schema`` (or of the snapshot table so named) from whole columns (Python
    lists or Arrow arrays), all of one length; a column left out is all nulls. Cheaper than
    ``TableBuilder.add`` row by row. A column of one value is one chunk repeated (see
    as_repeated) unless ``repeat`` is false: for a table written to a scratch file, which
    would be cut into record batches of that chunk's rows. A dictionary column over digests
    as their bytes stays so (its field's type follows)."""
    if isinstance(schema, str):
        schema = SCHEMAS[schema]
    n = len(next(iter(columns.values()))) if columns else 0
    held = as_repeated if repeat else (lambda col: col)
    arrays = []
    fields = list(schema)
    for at, f in enumerate(schema):
        values = columns.get(f.name)
        if values is None:
            arrays.append(constant(None, n, f.type) if repeat else pa.nulls(n, f.type))
            continue
        if _is_dict(f) and _over_digest_bytes(values):
            fields[at] = pa.field(f.name, values.type)  # digests as their bytes stay so
            arrays.append(held(values))
            continue
        if isinstance(values, pa.ChunkedArray):
            if values.type == f.type:
                arrays.append(held(values))  # not combined: a copy can be a gigabyte
                continue
            values = values.combine_chunks()
        if isinstance(values, pa.Array) and values.type == f.type:
            arrays.append(held(values))
            continue
        if not isinstance(values, pa.Array):
            values = pa.array(values, type=f.type.value_type if _is_dict(f) else f.type)
        if _is_dict(f):
            values = values.cast(pa.string()).dictionary_encode()
        arrays.append(held(values.cast(f.type)))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, schema.metadata))


_REPEAT_ROWS = 1 << 16  # rows of the one chunk that a column of one value repeats


def as_repeated(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``col`` as one chunk of its value, ``repeated``, where every row holds the same: null
    (a filesystem link's ETag, nearly every row's problem), the same dictionary value (how a
    link was resolved), empty text (a key that is derived when written) or the same number
    (the size of a link). Such columns were ~21 MiB of a scan of 815k layer links and 1.2M
    references: 4 bytes a row of indices or offsets that all say the same, and the links'
    sizes another 11 MiB at 1.5M links, 8 bytes each. Others as they are."""
    n = len(col)
    if n <= _REPEAT_ROWS:
        return col
    if col.null_count == n:
        return constant(None, n, col.type)
    if col.null_count:
        return col
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    if pa.types.is_dictionary(col.type):
        values = set()
        for chunk in chunks:
            if len(chunk):
                low, high = pc.min_max(chunk.indices).values()
                if low != high:
                    return col
                values.add(chunk.dictionary[low.as_py()].as_py())
        if len(values) != 1 or None in values:
            return col
        return constant(values.pop(), n, col.type)
    if pa.types.is_string(col.type) and not any(_text_bytes(c) for c in chunks):
        return constant("", n, col.type)
    if pa.types.is_integer(col.type):  # a link's size: 71 bytes, every one of them
        low, high = pc.min_max(col).values()
        if low == high:
            return constant(low.as_py(), n, col.type)
    return col


def _text_bytes(chunk: pa.StringArray) -> int:
    """The bytes of text that ``chunk``'s rows hold (from its offsets, not a pass over them)."""
    if not len(chunk):
        return 0
    offsets = np.frombuffer(chunk.buffers()[1], np.int32)
    return int(offsets[chunk.offset + len(chunk)] - offsets[chunk.offset])


def _over_digest_bytes(values: Any) -> bool:
    """``values`` is an Arrow dictionary column (or array) over digests as their bytes."""
    type_ = getattr(values, "type", None)
    return type_ is not None and pa.types.is_dictionary(type_) and type_.value_type == SHA256_BYTES


def _is_dict(f: pa.Field) -> bool:
    return bool(pa.types.is_dictionary(f.type))


@dataclass
class Snapshot:
    """A scan's result. ``meta`` holds the store URL, layout root, scan time and version.

    A scan leaves its blobs and references tables on disk (``spilled``, see spill.py):
    ``snap["blobs"]`` maps the whole of it, and what passes over every blob takes it a part at
    a time (``parts``)."""

    tables: dict[str, pa.Table]
    meta: dict[str, Any] = field(default_factory=dict)
    spilled: dict[str, SpilledTable] = field(default_factory=dict)

    def __getitem__(self, name: str) -> pa.Table:
        if name in self.spilled:
            return self.spilled[name].table()
        return self.tables[name]

    def __contains__(self, name: str) -> bool:
        return name in self.tables or name in self.spilled

    def names(self) -> list[str]:
        """The tables it holds, in the order of ``TABLES``."""
        return [name for name in TABLES if name in self]

    def parts(self, name: str, columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """Table ``name`` (only ``columns``, when given) a part at a time: one part when it is
        held in memory."""
        if name in self.spilled:
            yield from self.spilled[name].parts(columns)
            return
        table = self.tables[name]
        yield table if columns is None else table.select(list(columns))

    def num_rows(self, name: str) -> int:
        if name in self.spilled:
            return self.spilled[name].num_rows
        return int(self.tables[name].num_rows)

    @property
    def scanned_at(self) -> datetime:
        return datetime.fromisoformat(self.meta["scanned_at"])

    @property
    def layout_root(self) -> str:
        return str(self.meta.get("layout_root", ""))

    def with_keys(self, name: str, table: pa.Table | None = None) -> pa.Table:
        """Table ``name`` (or ``table``, some of its rows) with every key, also those left
        null in memory (``DERIVED_KEYS``)."""
        if table is None:
            table = self[name]
        if name not in DERIVED_KEYS:
            return table
        return with_keys(table, self.layout_root, DERIVED_KEYS[name])

    def write(self, directory: str | Path) -> list[Path]:
        """Write ``<table>.parquet`` for every table plus ``meta.json``; returns the paths.
        Every key is written: the files are what notebooks read."""
        import pyarrow.parquet as pq  # here, not at the top: a plan-only run writes no file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in self.names():
            p = out / f"{name}.parquet"
            if name in DERIVED_KEYS:
                parts = self.parts(name)
                first = next(parts, None)
                if first is None:
                    first = SCHEMAS[name].empty_table()
                with pq.ParquetWriter(str(p), _text_schema(first.schema)) as w:
                    for table in itertools.chain([first], parts):
                        for start in range(0, max(table.num_rows, 1), _WRITE_ROWS):
                            part = table.slice(start, _WRITE_ROWS)
                            part = as_text_dictionaries(compacted(part))
                            w.write_table(with_keys(part, self.layout_root, DERIVED_KEYS[name]))
                del first, parts
            else:
                pq.write_table(as_text_dictionaries(compacted(self[name])), p)
            paths.append(p)
        meta = out / "meta.json"
        meta.write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n")
        paths.append(meta)
        return paths

    @classmethod
    def read(cls, directory: str | Path) -> Snapshot:
        import pyarrow.parquet as pq  # see write

        d = Path(directory)
        if not (d / "meta.json").is_file():
            raise UsageError(f"{d}: not a regsweep snapshot (no meta.json)")
        tables = {
            name: pq.read_table(d / f"{name}.parquet", schema=SCHEMAS[name])
            for name in TABLES
            if (d / f"{name}.parquet").is_file()
        }
        meta = json.loads((d / "meta.json").read_text())
        root = str(meta.get("layout_root", ""))
        for name, shape in DERIVED_KEYS.items():
            if name in tables:
                tables[name] = without_derived_keys(tables[name], root, shape)
        return cls(tables, meta)

    def counts(self) -> dict[str, int]:
        return {name: self.num_rows(name) for name in self.names()}


def with_keys(table: pa.Table, root: str, shape: KeyShape) -> pa.Table:
    """``table`` with its null keys built as ``shape`` says. Only the missing keys are built."""
    key = one_array(table["key"])
    if not key.null_count:
        return table
    missing = pc.is_null(key)
    built = shape.keys(table.filter(missing), root)
    key = built if key.null_count == len(key) else pc.replace_with_mask(key, missing, built)
    return table.set_column(table.schema.get_field_index("key"), "key", key)


def without_derived_keys(table: pa.Table, root: str, shape: KeyShape) -> pa.Table:
    """``table`` with the keys ``with_keys`` would build set to null, as a scan leaves them."""
    if table.num_rows == 0:
        return table
    key = one_array(table["key"])
    same = pc.fill_null(pc.equal(key, shape.keys(table, root)), False)
    if not pc.any(same).as_py():
        return table
    key = pc.if_else(same, NULL_STRING, key)
    return table.set_column(table.schema.get_field_index("key"), "key", key)


def column(table: pa.Table, name: str) -> list[Any]:
    """A column as Python values. Dictionary columns are decoded in Arrow first: converting
    dictionary values one by one is about ten times slower."""
    return decoded(table.column(name)).to_pylist()  # type: ignore[no-any-return]


def decoded(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary column as its plain values (computed in Arrow), digests held as their bytes
    as their text (only the rows', not the whole dictionary's); any other as it is."""
    if not pa.types.is_dictionary(col.type):
        return col
    plain = col.cast(col.type.value_type)
    if col.type.value_type != SHA256_BYTES:
        return plain
    return pa.chunked_array([text_of(c) for c in plain.chunks], pa.string())


def digest_text_type(type_: pa.DataType) -> pa.DataType:
    """``type_``, or text for digests held as their bytes (``text_of``)."""
    return pa.string() if type_ == SHA256_BYTES else type_


def _text_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with its dictionary columns over digests' bytes over text (as written)."""
    return as_text_dictionaries(schema.empty_table()).schema


def as_text_dictionaries(table: pa.Table) -> pa.Table:
    """``table`` with every dictionary column over digests held as their bytes over their text
    (each dictionary converted whole: ``compacted`` it first), as files and readers want."""
    for at, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type) and f.type.value_type == SHA256_BYTES:
            type_ = pa.dictionary(f.type.index_type, pa.string())
            chunks = [
                pa.DictionaryArray.from_arrays(c.indices, text_of(c.dictionary))
                for c in table.column(at).chunks
            ]
            table = table.set_column(at, pa.field(f.name, type_), pa.chunked_array(chunks, type_))
    return table


def by_value(
    col: pa.ChunkedArray, fn: Callable[[Any], pa.Array | pa.ChunkedArray], *, text: bool = True
) -> pa.ChunkedArray:
    """``fn`` (an element-wise kernel, such as ``is_in``, of an Array or ChunkedArray) of every
    row of ``col``; of a dictionary column, computed once per dictionary value and spread to
    the rows by their indices (a null row gives null). Arrow's kernels decode a dictionary
    column first: a copy of every string, about 150 MB for the digests of 2M blobs. ``fn``
    runs once over the chunks' distinct dictionaries together: a kernel such as ``is_in``
    builds its value set once per call, and the blobs' digests come in sixteen chunks."""
    if not pa.types.is_dictionary(col.type):
        out = fn(col)
        # Not pa.chunked_array([out]) of a ChunkedArray: that converts it value by value.
        return out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])
    distinct = dictionaries(col)
    if not distinct:
        empty = pa.array([], digest_text_type(col.type.value_type) if text else col.type.value_type)
        return pa.chunked_array([fn(empty)])
    starts = itertools.accumulate((len(d) for d in distinct[:-1]), initial=0)
    at = {identity(d): start for d, start in zip(distinct, starts, strict=True)}
    # ``fn`` is given digests as text, whatever they are held as (unless not ``text``: it
    # takes either): a kernel that compares them with text (``pc.equal``) would find no bytes
    # equal to it.
    if text:
        distinct = [text_of(d) for d in distinct]
    values = fn(pa.chunked_array(distinct, distinct[0].type))
    del distinct
    values = one_array(values) if isinstance(values, pa.ChunkedArray) else values
    out = [
        values.slice(at[identity(c.dictionary)], len(c.dictionary)).take(c.indices)
        for c in col.chunks
    ]
    return pa.chunked_array(out, values.type)


def is_in(
    values: pa.Array | pa.ChunkedArray, value_set: pa.Array | pa.ChunkedArray
) -> pa.Array | pa.ChunkedArray:
    """``pc.is_in(values, value_set=value_set)``, hashing the smaller side: where the value set
    is the larger, its values that are among ``values`` are found first and only those hashed.
    A value set of every manifest digest a scan has found, hashed to look up the few that
    nested indexes name, was the peak of a scan of many manifests (~30 MiB at 256k)."""
    if len(value_set) > len(values):
        value_set = value_set.filter(pc.is_in(value_set, value_set=values))
    return pc.is_in(values, value_set=value_set)


def identity(array: pa.Array) -> tuple[int, ...]:
    """Where ``array``'s values live: equal for chunks that share one dictionary."""
    return (array.offset, len(array), *(b.address for b in array.buffers() if b is not None))


def dictionaries(col: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    """The distinct dictionaries of a dictionary column's chunks, each once: chunks that share
    one (a column of one value repeated, a table read back from a scratch file in batches)
    would otherwise put its values into a look-up's value set once a chunk."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    return list({identity(c.dictionary): c.dictionary for c in chunks}.values())


def value_ranks(col: pa.ChunkedArray) -> np.ndarray:
    """Per row, the rank of its value among the column's values (a null ranks last), as
    uint32: what sorts a table by a dictionary column, which Arrow's sort cannot. Where the
    chunks share one dictionary that is ascending (the snapshot's digests, a link table's),
    its indices are the ranks: ranking it (a sort) and uniting the chunks' dictionaries (a
    hash table of every value) were ~20 MiB for the 913k digests of a store's plan, its
    peak, and 8-byte ranks twice what they need be."""
    if not pa.types.is_dictionary(col.type):
        col = col.dictionary_encode()
    # (Empty chunks left out: a filtered table keeps them, each with its whole dictionary.)
    col = pa.chunked_array([c for c in col.chunks if len(c)], col.type)
    if not col.num_chunks:
        return np.zeros(0, np.uint32)
    if len(dictionaries(col)) > 1:
        col = pa.table({"c": col}).unify_dictionaries()["c"]
    chunks = col.chunks
    dictionary = chunks[0].dictionary
    rank = (
        None
        if ascending(dictionary)
        else pc.rank(dictionary, sort_keys="ascending", tiebreaker="dense").cast(pa.uint32())
    )
    last = pa.scalar(len(dictionary) + 1, pa.uint32())
    out = np.empty(sum(len(c) for c in chunks), np.uint32)
    start = 0
    for c in chunks:
        if rank is None and not c.null_count:
            out[start : start + len(c)] = c.indices.to_numpy()  # (a view: no copy)
        else:
            ranked = c.indices.cast(pa.uint32()) if rank is None else pc.take(rank, c.indices)
            out[start : start + len(c)] = pc.fill_null(ranked, last).to_numpy()
        start += len(c)
    return out


def as_dictionary(plain: pa.Array) -> pa.DictionaryArray:
    """Text as a dictionary column. Sorted, distinct values (a part of the blobs' digests) are
    a dictionary of themselves: no hashing, and no copy of the strings."""
    if ascending(plain):
        return pa.DictionaryArray.from_arrays(
            pa.array(np.arange(len(plain), dtype=np.int32)), plain
        )
    return plain.dictionary_encode()


def one_array(col: pa.ChunkedArray) -> pa.Array:
    """A column as a single Array (some kernels want one), without a copy when it has one
    chunk."""
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


NO_TIME = np.iinfo(np.int64).min  # in ``epoch_ms``: no time known
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_epoch_ms(ms: int) -> datetime:
    """The time ``ms`` milliseconds after the epoch (a value of ``epoch_ms``), in UTC."""
    return _EPOCH + timedelta(milliseconds=ms)


def epoch_ms(col: pa.ChunkedArray) -> np.ndarray:
    """A timestamp column in milliseconds since the epoch, ``NO_TIME`` where null: numpy
    compares and takes maxima of millions of these without a Python value each."""
    ms = one_array(col.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()))
    return np.asarray(pc.fill_null(ms, NO_TIME), np.int64)


def repeated(chunk: pa.Array, n: int) -> pa.ChunkedArray:
    """A column of ``n`` rows made of ``chunk`` over and over: every chunk shares its buffers,
    so a column that is the same in millions of rows (nulls, a blob's kind in a plan) costs one
    chunk, not 4-8 bytes a row."""
    whole, rest = divmod(n, len(chunk)) if len(chunk) else (0, 0)
    return pa.chunked_array([chunk] * whole + ([chunk.slice(0, rest)] if rest else []), chunk.type)


def constant(value: Any, n: int, type_: pa.DataType) -> pa.ChunkedArray:
    """``value`` (None: null) in ``n`` rows of ``type_``, as one chunk of up to
    ``_REPEAT_ROWS`` rows ``repeated``; text of a dictionary type is a one-value dictionary.
    The chunk is shared by every column of that value and type (``_CONSTANTS``)."""
    rows = min(n, _REPEAT_ROWS)
    try:
        key = (type(value), value, type_)  # (its type too: 1, 1.0 and True are equal keys)
        one = _CONSTANTS.get(key)
    except TypeError:  # a value that cannot be a key: a chunk of its own
        return repeated(_one_chunk(value, rows, type_), n)
    if one is None or len(one) < rows:
        one = _one_chunk(value, rows, type_)
        with _CONSTANTS_LOCK:  # (the listing's and the reading threads make them too)
            if key not in _CONSTANTS and len(_CONSTANTS) >= _CONSTANT_KINDS:
                del _CONSTANTS[next(iter(_CONSTANTS))]  # the oldest
            _CONSTANTS[key] = one
    return repeated(one.slice(0, rows), n)


# The chunk of each value and type that ``constant`` has made, at the most rows asked for so
# far, for every column of it: a scan makes hundreds of such columns (a link's size and its
# nulls in every part of the listing and every table), each a chunk of 0.25-0.5 MiB of its
# own until this: ~8 MiB of the listing's link parts at 1.46M links. A few dozen kinds at most
# (the oldest let go).
_CONSTANTS: dict[tuple[type, Any, pa.DataType], pa.Array] = {}
_CONSTANT_KINDS = 64
_CONSTANTS_LOCK = threading.Lock()


def _one_chunk(value: Any, rows: int, type_: pa.DataType) -> pa.Array:
    if value is None:
        return pa.nulls(rows, type_)
    if pa.types.is_dictionary(type_):
        return pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(rows, np.int32)), pa.array([value], type_.value_type)
        ).cast(type_)
    return pa.array(np.full(rows, value)).cast(type_)


def ascending(col: pa.Array | pa.ChunkedArray) -> bool:
    """Every value is greater than the one before it: sorted, no value twice and no null. A
    dictionary column is checked on its indices and dictionaries, without a decoded copy."""
    if col.null_count:
        return False
    if isinstance(col, pa.ChunkedArray):
        chunks = [c for c in col.chunks if len(c)]
        return all(ascending(c) for c in chunks) and all(
            a[len(a) - 1].as_py() < b[0].as_py() for a, b in itertools.pairwise(chunks)
        )
    if pa.types.is_dictionary(col.type):
        # Rising indices into a rising dictionary: rising values.
        return ascending(col.indices) and ascending(col.dictionary)
    return len(col) < 2 or bool(pc.all(pc.less(col[:-1], col[1:])).as_py())


def rows(table: pa.Table) -> list[dict[str, Any]]:
    """The table as a list of dicts, with dictionary columns decoded first (see ``column``)."""
    plain = pa.table({name: decoded(table[name]) for name in table.column_names})
    return plain.to_pylist()  # type: ignore[no-any-return]
