"""Walk a store and build a Snapshot (design.md "scan"; storage-layout.md §9.1 steps 1-4).

The scan never aborts because one object is bad: every problem becomes a ``problem`` value on
its row and an entry in the ``anomalies`` table. It never writes to the store.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import re
import sys
import threading
import uuid
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep import __version__
from regsweep.clock import utcnow
from regsweep.errors import ObjectNotFound, ObjectTooLarge, StoreError
from regsweep.heap import trim_heap
from regsweep.layout.classify_columns import split_kinds
from regsweep.layout.digest import EMPTY_MD5, is_valid_digest, parse_link
from regsweep.layout.digest_columns import (
    SHA256_BYTES,
    SHA256_TEXT_BYTES,
    as_bytes,
    as_text,
    bytes_or_null,
    dictionary_as_text,
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
from regsweep.layout.keys import KeyRecord, Kind, blob_data_key, classify, valid_repository_name
from regsweep.layout.manifest import (
    REF_MANIFEST,
    ParsedManifest,
    parse_manifest,
)
from regsweep.layout.root import find_layout_root
from regsweep.python_gc import collector_paused
from regsweep.scan.graph import among, kind_is, places
from regsweep.scan.inventory import open_inventory
from regsweep.scan.listing import Progress, list_incomplete_uploads, list_layout, no_progress
from regsweep.scan.snapshot import (
    DIGEST_COLUMNS,
    SCHEMAS,
    KeyShape,
    Snapshot,
    TableBuilder,
    as_dictionary,
    as_repeated,
    ascending,
    by_value,
    constant,
    decoded,
    dictionaries,
    identity,
    is_in,
    is_sorted_text,
    one_array,
    over_dictionary,
    places_in,
    share_digests,
    sorted_by_text,
    sorted_places,
    sorted_places_of_sorted,
    spill_shared,
    table_from_columns,
    value_ranks,
    with_keys,
    with_one_dictionary,
)
from regsweep.scan.spill import SpilledTable
from regsweep.storage.base import IncompleteUpload, ObjectInfo, ObjectStore
from regsweep.storage.columns import LISTING_SCHEMA, NULL_STRING, listing_table

LINK_READ_CAP = 4096  # a link is 71 bytes (sha256) or 135 (sha512); anything near this is corrupt
DEFAULT_MANIFEST_CAP = 4 * 1024 * 1024  # Distribution's PUT limit (maxManifestBodySize)
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
_LINK_PROBLEMS = {
    "empty": "is empty (0 bytes)",
    "whitespace": "has whitespace around its digest (e.g. a trailing newline)",
    "doubled": "holds its digest twice",
    "uppercase": "has upper-case hex",
    "unsupported-algorithm": "names an unsupported digest algorithm",
    "invalid": "does not hold a digest",
}
# What a link or manifest that was listed but gone when read has as its problem (deleted while
# the scan ran, or since the inventory it lists from was made).
VANISHED = "vanished during the scan"
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class ScanOptions:
    """Knobs of a scan. The defaults suit a scheduled run."""

    max_manifest_bytes: int = DEFAULT_MANIFEST_CAP
    verify_links: bool = False  # read every link, even where the path already says the digest
    workers: int = 16
    layout_root: str | None = None  # force "docker/registry/v2/" or "/docker/registry/v2/"
    # An S3 or Azure inventory report to list from instead of listing the store (its
    # manifest's URL or local path; storage-layout.md §6). Content is still read from the store.
    inventory: str | None = None


# The kinds of key the scan keeps column-wise: a listing's columns plus the repository, tag and
# the digest the path says (see layout/classify_columns.py).
_COLUMNAR = (Kind.BLOB_DATA, Kind.LAYER_LINK, Kind.REVISION_LINK, Kind.TAG_CURRENT, Kind.TAG_INDEX)
_LINK_SCHEMA = pa.schema(
    [*LISTING_SCHEMA, ("repo", pa.string()), ("tag", pa.string()), ("digest", pa.string())]
)
# The columns of each kind of link the scan dictionary-encodes as it lists them (see
# classify): a store's links repeat a few repositories, tags, digests and ETags (a link's ETag
# follows from its content). The schema of those rows.
_ENCODED = {
    Kind.LAYER_LINK: ("etag", "repo", "digest"),
    Kind.REVISION_LINK: ("etag", "repo", "digest"),
    Kind.TAG_INDEX: ("etag", "repo", "tag", "digest"),
    Kind.TAG_CURRENT: ("etag", "repo", "tag"),
}
_DICT = pa.dictionary(pa.int32(), pa.string())
_BYTES_DICT = pa.dictionary(pa.int32(), SHA256_BYTES)
_LISTED_SCHEMA = {
    kind: pa.schema([pa.field(f.name, _DICT) if f.name in names else f for f in _LINK_SCHEMA])
    for kind, names in _ENCODED.items()
}
# How the key of a column-wise row of a kind follows from its other columns: the scan holds
# no such key (it is null) and builds it when needed (see snapshot.DERIVED_KEYS).
_KEY_SHAPE = {
    Kind.BLOB_DATA: KeyShape(blob_data_keys, ("digest",)),
    Kind.LAYER_LINK: KeyShape(layer_link_keys, ("repo", "digest")),
    Kind.REVISION_LINK: KeyShape(revision_link_keys, ("repo", "digest")),
    Kind.TAG_CURRENT: KeyShape(tag_current_keys, ("repo", "tag")),
    Kind.TAG_INDEX: KeyShape(tag_index_keys, ("repo", "tag", "digest")),
}
# The snapshot table of each link kind in key order: by the columns its key is built from,
# which is the order of the snapshot's rows (not the keys' own: "a-b/" sorts before "a/").
_LINK_ORDER = {
    Kind.LAYER_LINK: ("repo", "digest"),
    Kind.REVISION_LINK: ("repo", "digest"),
    Kind.TAG_CURRENT: ("repo", "tag"),
    Kind.TAG_INDEX: ("repo", "tag", "digest"),
}
# The columns of the blob rows. A column-wise blob row holds no key (it follows from the
# digest) and no MD5 (nothing uses it), and repo and tag mean nothing for a blob: not even a
# column of nulls, which costs 4 bytes a row, until the odd blobs with keys join them.
_BLOB_COLUMNS = ["digest", "key", "size", "last_modified", "etag"]
_BLOB_PART = pa.schema([_LINK_SCHEMA.field(n) for n in _BLOB_COLUMNS if n != "key"])
_SHA256 = len("sha256:")
_HEX_DIGITS = "0123456789abcdef"


_SPILL_ROWS = 1 << 13  # blob rows of a part (a sixteenth) kept in memory while listing
# Blob rows of a part of the snapshot's blobs table, at least (see sorted_blobs). Each pass
# over the blobs holds a part's columns and their places: parts of 64k rows or more were
# ~2 MiB higher at the 1M-blob plan's peaks than 32k (each sixteenth its own part there).
_PART_ROWS = 1 << 15


class _Parts:
    """The rows of one kind as classify finds them, a table per listing batch, merged sixteen
    at a time into one table (and those sixteen at a time, and so on: each row is copied once
    per level). Thousands of small per-batch buffers fragmented the allocator: at 10M objects
    the scan held ~500 MiB of RSS beyond what Arrow had allocated."""

    _FAN_IN = 16

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.levels: list[int] = []
        self.num_rows = 0

    def add(self, table: pa.Table) -> None:
        self.tables.append(table)
        self.num_rows += table.num_rows
        self.levels.append(0)
        n = self._FAN_IN
        while len(self.levels) >= n and len(set(self.levels[-n:])) == 1:
            merged = _merged(self.tables[-n:])
            level = self.levels[-1] + 1
            del self.tables[-n:], self.levels[-n:]
            self.tables.append(merged)
            self.levels.append(level)


def _merged(tables: list[pa.Table]) -> pa.Table:
    """``tables`` as one table, a chunk a column, but for a column of one value in every row
    (the links' sizes: 71 bytes, every one), held once (``as_repeated``): 8 bytes a link,
    ~11 MiB at 1.5M links, through the listing. (A column of nulls in one table and not in
    another takes the other's type.)"""
    whole = pa.concat_tables(tables, promote_options="default")
    columns = []
    for col in whole.columns:
        same = as_repeated(col)
        columns.append(same if same is not col else col.combine_chunks())
        del col, same
    return pa.Table.from_arrays(columns, schema=whole.schema)


@dataclass
class _Vanished:
    """The links of one kind and repository that were listed but gone when read: how many,
    and the first of them."""

    count: int
    first: ObjectInfo


@dataclass
class _Upload:
    files: list[tuple[KeyRecord, ObjectInfo]] = field(default_factory=list)
    multipart: IncompleteUpload | None = None


def _col(table: pa.Table, name: str) -> pa.Array:
    """One column as a single Array (compute kernels such as replace_with_mask want one)."""
    return one_array(table[name])


def _encoded(table: pa.Table, names: Sequence[str]) -> pa.Table:
    """``table`` with the columns ``names`` dictionary-encoded."""
    for name in names:
        at = table.schema.get_field_index(name)
        table = table.set_column(at, name, table[name].dictionary_encode())
    return table


def _digests_as_bytes(table: pa.Table) -> pa.Table:
    """``table`` with its dictionary column ``digest`` (if any) over the 32 bytes each digest
    spells rather than its text: the listing's ``_layers``, revision and tag-index links are
    sha256 with lower-case hex (classify_columns checks), and their dictionaries were most of
    what it held (~88 MiB of text at 815k ``_layers`` links and 256k manifests, ~37 as bytes).
    gather gives them their text back."""
    if "digest" not in table.column_names or not pa.types.is_dictionary(table["digest"].type):
        return table
    at = table.schema.get_field_index("digest")
    chunks = [
        pa.DictionaryArray.from_arrays(c.indices, as_bytes(c.dictionary))
        for c in table["digest"].chunks
    ]
    return table.set_column(at, "digest", pa.chunked_array(chunks, _BYTES_DICT))


def _per_value(col: pa.Array, fn: Callable[[Any], Any]) -> pa.Array:
    """``fn`` of every row of ``col``, computed once per value of a dictionary column: the
    string kernels take no dictionaries, and decoding one is a copy of every string."""
    return one_array(by_value(pa.chunked_array([col]), fn))


def _plain(col: pa.Array) -> pa.Array:
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def _nulls_untyped(table: pa.Table) -> pa.Table:
    """``table`` with each column that is null in every row as Arrow's null type, which holds
    no buffer (``_typed`` gives it its type back): no link's key is held (see classify), and a
    filesystem's links have no ETag or MD5, nor a ``_layers`` link a tag. As typed nulls they
    were 4 bytes a row each of offsets or indices, ~16 MiB at 815k ``_layers`` links from the
    listing to the links' resolution."""
    for at, col in enumerate(table.columns):
        if len(col) and col.null_count == len(col) and not pa.types.is_null(col.type):
            table = table.set_column(at, table.field(at).name, pa.nulls(len(col), pa.null()))
    return table


def _typed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` cast to ``schema``, a column of the null type (``_nulls_untyped``) as nulls of
    its type held once (``constant``); digests held as their bytes stay so."""
    columns, fields = [], []
    for f in schema:
        col = table[f.name]
        if pa.types.is_null(col.type):
            col = constant(None, table.num_rows, f.type)
        elif col.type != _BYTES_DICT:
            col = col.cast(f.type)
        columns.append(col)
        fields.append(pa.field(f.name, col.type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _compact(col: pa.Array) -> pa.ChunkedArray:
    """A column of a few distinct strings (how each link was resolved, its problem) as one
    chunk repeated where every row says the same (``as_repeated``), else dictionary-encoded:
    not 4-8 bytes of text and offsets a row (~9 MiB at 815k ``_layers`` links, held from the
    links' resolution to the scan's tables)."""
    col = pa.chunked_array([col])
    same = as_repeated(col)
    return same if same is not col else col.dictionary_encode()


def _path_targets(ok: pa.Array, digest: pa.Array) -> pa.Array:
    """The links' targets that their paths tell (``ok``), null for the others: when every path
    tells, ``digest`` itself, not a copy."""
    return digest if pc.all(ok).as_py() is not False else _where(ok, digest)


def _where(mask: pa.Array, col: pa.Array) -> pa.Array:
    """``col`` where ``mask`` holds, else null; a dictionary column stays one (``if_else``
    would decode it)."""
    if not pa.types.is_dictionary(col.type):
        return pc.if_else(mask, col, NULL_STRING)
    indices = pc.if_else(mask, col.indices, pa.scalar(None, col.indices.type))
    return pa.DictionaryArray.from_arrays(indices, col.dictionary)


def _order(table: pa.Table, by: Sequence[str]) -> pa.Array:
    """The rows' order by the columns ``by``, as sort_indices gives it for their values. Arrow
    cannot sort by a dictionary column: its rows are sorted by the ranks of their values."""
    keys = {}
    for name in by:
        col = table[name]
        keys[name] = pa.array(value_ranks(col)) if pa.types.is_dictionary(col.type) else col
    if len(by) == 1:
        return pc.sort_indices(keys[by[0]])
    return pc.sort_indices(pa.table(keys), [(name, "ascending") for name in by])


def _sorted_out_of(
    tables: dict[Kind, pa.Table], kind: Kind, *by: str, encode: Sequence[str] = ()
) -> pa.Table:
    """``tables[kind]`` sorted by its columns ``by``, taken out of ``tables`` a column at a
    time: each column of the unsorted table is let go once its sorted copy exists, so the peak
    is the table and one column, not two tables (the blobs, or the ``_layers`` links, can be
    millions of rows). The columns ``encode`` are dictionary-encoded first, so that the take
    copies 4-byte indices rather than strings (millions of ``_layers`` links name a few
    thousand layers); a column equal to one already encoded shares its encoding."""
    table = tables[kind]
    if len(by) == 1 and not pa.types.is_dictionary(table[by[0]].type) and ascending(table[by[0]]):
        order = None  # it came sorted
    else:
        order = _order(table, by)
    del table
    if order is None and not encode:
        return tables.pop(kind)  # no sort, and no copy
    return _take(tables.pop(kind), order, encode)  # no other reference: _take lets columns go


def _take(table: pa.Table, indices: pa.Array | None, encode: Sequence[str] = ()) -> pa.Table:
    # ``table`` must be the caller's only reference (passed straight from a ``pop``), or
    # dropping its columns here frees nothing.
    schema, columns = table.schema, []
    encoded: list[tuple[pa.Array, pa.Array]] = []  # (plain, encoded)
    for name in schema.names:
        whole = table[name]
        if name not in encode and (same := as_repeated(whole)) is not whole:
            # One value in every row (nulls, the size of a link): in any order the same
            # column, held once rather than copied out to 4-8 bytes a row.
            columns.append(same)
            table = table.drop_columns([name])
            del whole, same
            continue
        if name in encode and len(whole) and whole.null_count == len(whole):
            # Null in every row (a filesystem's ETags, a ``_layers`` link's tag): its nulls
            # held once as the encoded type, not taken out to 4 bytes of indices a row (~6 MiB
            # for the ``_layers`` links, from their table to the plan's end).
            encoded_type = (
                whole.type
                if pa.types.is_dictionary(whole.type)
                else pa.dictionary(pa.int32(), whole.type)
            )
            columns.append(constant(None, len(whole), encoded_type))
            table = table.drop_columns([name])
            del whole
            continue
        del whole
        if indices is not None and name not in encode:
            gathered = _gathered(table[name], indices)
            if gathered is not None:
                table = table.drop_columns([name])
                columns.append(gathered)
                del gathered
                continue
        col = _col(table, name)  # one chunk: a copy when the listing gave several
        table = table.drop_columns([name])  # so that the chunks go before the take copies
        if name in encode:
            same = [e for plain, e in encoded if plain.equals(col)]
            if not same and pa.types.is_dictionary(col.type):
                same = [col]  # encoded as listed
            encoded.append((col, same[0] if same else col.dictionary_encode()))
            col = encoded[-1][1]
            if name == encode[-1]:
                encoded.clear()  # the plain strings can go
        columns.append(col if indices is None else col.take(indices))
        del col
    fields = [
        pa.field(c.name, columns[i].type) if c.name in encode else c for i, c in enumerate(schema)
    ]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


_GATHER_ROWS = 1 << 16  # rows taken at a time by _gathered
_GATHER_VALUES = 1 << 12  # values of the chunks' own dictionaries that _gathered unites
_GATHERED_TYPES = (pa.types.is_integer, pa.types.is_floating, pa.types.is_temporal)


def _gathered(col: pa.ChunkedArray, indices: pa.Array) -> pa.Array | None:
    """``col.take(indices)`` as one chunk, taken from each of ``col``'s chunks in turn, where
    ``col`` has several chunks of fixed-width numbers or times (or indices into one dictionary
    shared by every chunk); else None. Arrow's take first joins the chunks into one: a copy of
    the whole column besides the one taken (~10 MiB for the sizes of a store's 1.2M
    references, at the scan's peak)."""
    if col.num_chunks < 2 or indices.null_count:
        return None
    dictionary = None
    chunks: list[pa.Array] = list(col.chunks)
    onto: list[np.ndarray] | None = None  # per chunk, its dictionary's places in ``dictionary``
    if pa.types.is_dictionary(col.type):
        shared = dictionaries(col)
        if len(shared) == 1:
            dictionary = shared[0]
        elif sum(len(d) for d in shared) <= _GATHER_VALUES:
            # A few values in each chunk's own dictionary (a reference's kind or media type):
            # one dictionary of them all, and each chunk's places in it.
            dictionary = pc.unique(pa.concat_arrays(shared))
            onto = [
                np.asarray(pc.index_in(c.dictionary, value_set=dictionary), np.int32)
                for c in chunks
            ]
        else:
            return None
        chunks = [c.indices for c in chunks]  # (a null row is a null index)
    type_ = chunks[0].type
    if not any(is_(type_) for is_ in _GATHERED_TYPES):
        return None
    width = type_.bit_width // 8
    dtype = np.dtype(f"u{width}")  # (the values' bytes, whatever they mean)
    values = [np.frombuffer(c.buffers()[1], dtype, len(c), c.offset * width) for c in chunks]
    valid = [c.is_valid().to_numpy(zero_copy_only=False) for c in chunks] if col.null_count else []
    starts = np.cumsum([0] + [len(v) for v in values])
    want = np.asarray(indices)
    out = np.empty(len(want), dtype)
    out_valid = np.empty(len(want), bool) if valid else None
    # A slice of rows at a time: the rows' chunks and places in them for every row at once
    # were as large as the column taken.
    for lo in range(0, len(want), _GATHER_ROWS):
        rows = want[lo : lo + _GATHER_ROWS].astype(np.int64)  # (sort_indices gives uint64)
        which = np.searchsorted(starts, rows, side="right") - 1
        for k in np.unique(which).tolist():
            mask = which == k
            at = rows[mask] - starts[k]
            taken = values[k][at]
            if onto is not None:  # (a null row's index may be anything: clipped, then masked)
                taken = onto[k].take(taken, mode="clip") if len(onto[k]) else 0
            out[lo : lo + _GATHER_ROWS][mask] = taken
            if out_valid is not None:
                out_valid[lo : lo + _GATHER_ROWS][mask] = valid[k][at]
    if out_valid is None:
        bitmap, nulls = None, 0
    else:
        bitmap, nulls = pa.array(out_valid).buffers()[1], len(out) - int(out_valid.sum())
    taken = pa.Array.from_buffers(type_, len(out), [bitmap, pa.py_buffer(out)], nulls)
    return taken if dictionary is None else pa.DictionaryArray.from_arrays(taken, dictionary)


def _joined(tables: list[pa.Table], shared: pa.Array) -> pa.Table:
    """``tables`` (references over the one dictionary ``shared``; the list is emptied) as one
    chunk a column, their parent and child indices joined as they are, over ``shared``. A
    group's columns (~36k rows) are under a MiB: jemalloc keeps such pages a while once freed
    (``JE_ARROW_MALLOC_CONF``, cli), and the sort by parent that frees them all, a column at a
    time, held ~30 MiB more at its end than the columns themselves. Columns of a MiB or more
    are handed back as each is freed."""
    columns = []
    for name in tables[0].column_names:
        if name in ("parent", "child"):
            indices = pa.concat_arrays([c.indices for t in tables for c in t[name].chunks])
            columns.append(pa.DictionaryArray.from_arrays(indices, shared))
        else:
            columns.append(one_array(pa.concat_tables([t.select([name]) for t in tables])[0]))
    schema = tables[0].schema
    tables.clear()
    return pa.Table.from_arrays(columns, schema=schema)


def _stable_order(chunks: Sequence[pa.DictionaryArray]) -> np.ndarray:
    """The rows of ``chunks`` (dictionary indices under 2**31, no nulls) in the order of their
    indices, stably, as int32: each row's index and row number as one 64-bit key, sorted in
    place. ``np.argsort`` of the joined indices held them, its 8-byte answer, its merge
    buffer and the int32 copy at once (~24 MiB at 1.2M references, the scan's peak)."""
    n = sum(len(c) for c in chunks)
    shift = max(n - 1, 1).bit_length()
    keys = np.empty(n, np.int64)
    at = 0
    for c in chunks:
        indices = np.asarray(c.indices, np.int64)
        keys[at : at + len(c)] = (indices << shift) | np.arange(at, at + len(c), dtype=np.int64)
        at += len(c)
        del indices
    keys.sort()  # (distinct keys: any sort is stable)
    np.bitwise_and(keys, (1 << shift) - 1, out=keys)  # (each row's number, in place)
    return keys.astype(np.int32)


def _by_parent(tables: dict[str, Any]) -> pa.Table:
    """The references (taken out of ``tables``, their place left None) sorted by parent,
    stably: each manifest's in the order it lists them. Over one sorted dictionary
    (share_digests) a parent's index orders as its digest does, so the sort is of 4-byte
    indices and the take copies no text."""
    held = [tables["references"]]  # so that _take is given the only reference
    tables["references"] = None
    parent = held[0]["parent"]
    shared = {identity(c.dictionary) for c in parent.chunks} if parent.num_chunks else set()
    if pa.types.is_dictionary(parent.type) and len(shared) == 1:
        if not ascending(parent.chunk(0).dictionary):
            raise AssertionError("share_digests makes a sorted dictionary")
        order = pa.array(_stable_order(parent.chunks))
    else:
        order = _order(held[0], ["parent"])
    del parent
    return _take(held.pop(), order)


def _values(digests: pa.ChunkedArray) -> pa.ChunkedArray:
    """The digests of a part of the snapshot's blobs as a value set: the dictionaries of its
    chunks, which are its rows' digests (see sorted_blobs), without decoding them."""
    if not pa.types.is_dictionary(digests.type):
        return digests
    return pa.chunked_array(dictionaries(digests), pa.string())


def _over_paths(target: pa.Array, paths: pa.DictionaryArray, extra: dict[str, int]) -> pa.Array:
    """The links' ``target`` (what they say) as indices: into the dictionary of their path
    digests ``paths`` where a target is its link's own path digest (nearly every link), and
    past its end into ``extra`` (added to) where not. An audit reads every link: their
    targets as plain strings were ~35 MiB for 470k links, and as many again when the table's
    other targets were decoded to put them in."""
    same = pc.fill_null(pc.equal(target, _text_rows(paths)), False)
    indices = pc.if_else(same, paths.indices, pa.scalar(None, pa.int32()))
    odd = pc.and_(pc.invert(same), pc.is_valid(target))
    if not pc.any(odd).as_py():
        return indices
    own = np.array(pc.fill_null(indices, -1).to_numpy(zero_copy_only=False), np.int32)
    at = np.flatnonzero(np.asarray(odd.to_numpy(zero_copy_only=False)))
    size = len(paths.dictionary)
    for i, value in zip(at.tolist(), target.take(pa.array(at)).to_pylist(), strict=True):
        own[i] = extra.setdefault(value, size + len(extra))
    return pa.array(own, pa.int32(), mask=own < 0)


def _text_rows(digests: pa.Array) -> pa.Array:
    """The rows of the digest column ``digests`` as plain text (of a dictionary over their
    bytes too: only the rows' values are spelled)."""
    return one_array(decoded(pa.chunked_array([digests])))


def _over_manifests_named(target: pa.Array, revisions: pa.ChunkedArray) -> pa.Array:
    """The tag links' ``target`` (what they say, as text) as indices into the dictionary of the
    revision and tag-index links' digests (``revisions``, see resolve_links) when it holds
    every digest they name, as it does in a sound store (tagging writes both links); else as
    it is. A tag's manifest was the third copy of each manifest's digest held through the
    scan (~13 MiB at 177k tags), and a fourth while read_manifests found them."""
    if (
        not len(target)
        or pa.types.is_dictionary(target.type)
        or not pa.types.is_dictionary(revisions.type)
        or revisions.num_chunks != 1
    ):
        return target
    # (Sorted: see with_one_dictionary.)
    return _onto_sorted(target, revisions.chunk(0).dictionary, hashed=True)


def _onto_sorted(target: pa.Array, dictionary: pa.Array, *, hashed: bool = False) -> pa.Array:
    """``target`` over ``dictionary`` (sorted distinct digests, as ``target`` holds them: text
    or their bytes) where it holds every value, else as it is; found by binary search, or
    where that cannot be done (``_sorted_indices``) and ``hashed``, by hashing. The tag
    links' targets as text, every slice's at once and then their concatenation, were the
    peak of resolve_links (~25 MiB at 177k tags) before _over_manifests_named put them over
    the revision links' digests."""
    at = _sorted_indices(target, dictionary)
    if at is None and hashed:
        at = pc.index_in(target, value_set=dictionary)
    if at is None or at.null_count != target.null_count:
        return target
    return pa.DictionaryArray.from_arrays(at, dictionary)


def _named_by(resolved: dict[Kind, pa.Table], kind: Kind) -> pa.Array | None:
    """For the tag links (``kind``): the revision links' one dictionary of digests where they
    are resolved already and it is text (see _over_manifests_named), which the tags' targets
    are put over as they are read; else None."""
    revisions = resolved.get(Kind.REVISION_LINK)
    if kind is not Kind.TAG_CURRENT or revisions is None:
        return None
    digests = revisions["digest"]
    if not pa.types.is_dictionary(digests.type) or digests.num_chunks != 1:
        return None
    dictionary = digests.chunk(0).dictionary
    return dictionary if pa.types.is_string(dictionary.type) else None


def _sorted_indices(values: pa.Array, dictionary: pa.Array) -> pa.Array | None:
    """Per value of ``values`` (text), its index in ``dictionary`` (sorted, distinct digests)
    as int32, null where the value is null or not there: a binary search (``sorted_places``),
    without the hash table of the dictionary that ``pc.index_in`` makes. None where the
    values cannot be searched that way (another width, several)."""
    named = values.drop_null() if values.null_count else values
    if not len(named):
        return pa.nulls(len(values), pa.int32())
    found = sorted_places(named, dictionary, rising=is_sorted_text(dictionary))
    if found is None:
        return None
    at = np.full(len(values), -1, np.int32)
    if values.null_count:
        at[np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False))] = found
    else:
        at = found.astype(np.int32, copy=False)
    return pa.array(at, mask=at < 0)


def _digests_onto(table: pa.Table, manifests: pa.Array | None) -> pa.Table:
    """The revision or tag-index links ``table`` with their digests as one chunk over
    ``manifests`` (the sorted digests of the manifests read while listing), where it holds
    every one of them, as it does in a sound store: the links' own dictionaries held those
    manifests' digests a second and a third time (~35 MiB at 256k manifests) from the listing's
    end into resolve_links, whose union of the two was then a peak of the scan."""
    col = table["digest"]
    if manifests is None or not pa.types.is_dictionary(col.type) or not col.num_chunks:
        return table
    pieces = []
    for chunk in col.chunks:
        found = _sorted_indices(chunk.dictionary, manifests)
        if found is None or found.null_count:
            return table  # an odd store: resolve_links unites the dictionaries
        pieces.append(pc.take(found, chunk.indices))
    indices = pa.concat_arrays(pieces)
    del pieces, col
    one = pa.DictionaryArray.from_arrays(indices, manifests)
    at = table.schema.get_field_index("digest")
    return table.set_column(at, table.schema.field(at), pa.chunked_array([one]))


def _contents_onto(contents: pa.Table, manifests: pa.Array | None) -> pa.Table:
    """The tag links read while listing (``_LINK_READS``) with what they say over
    ``manifests`` (see _digests_onto), where it holds every one: a tag names a manifest, and
    as text each tag's was one more copy of its digest (~13 MiB at 177k tags) until the links
    were resolved."""
    target = one_array(contents["target"]) if contents.num_rows else None
    if target is None or pa.types.is_dictionary(target.type):
        return contents
    # Compared as the manifests' digests are: as text, or as the bytes they spell (where
    # each says a sha256 digest, see _read_links).
    if manifests is not None and manifests.type == SHA256_BYTES:
        like = bytes_or_null(target) if is_sha256_text(target.drop_null()) else target
    else:
        like = text_of(target)
    one = _onto_sorted(like, manifests) if manifests is not None else like
    if not pa.types.is_dictionary(one.type):
        if target.type == pa.string():
            return contents
        return contents.set_column(1, "target", [text_of(target)])  # (what it says, as text)
    del target, like
    at = contents.schema.get_field_index("target")
    return contents.set_column(at, "target", pa.chunked_array([one]))


def _index_in_rows(rows: np.ndarray, read: pa.ChunkedArray) -> pa.Array:
    """Per row of ``rows``: its place among the rows ``read`` (int32), null where none. By
    binary search where those are ascending (the tag links read while listing are, in the
    order listed): ``index_in`` hashed all of them again for each slice of links, the
    links' resolution's peak (~5 MiB at 177k tags)."""
    if not ascending(read):
        return pc.index_in(pa.array(rows, pa.int32()), value_set=read)
    at = places_in(np.asarray(rows), np.asarray(one_array(read)))
    return pa.array(at, pa.int32(), mask=at < 0)


def _link_reads(tables: list[pa.Table]) -> pa.Table:
    """The tag links read while listing (``_LINK_READS``, their targets as text or as the
    bytes they spell, see _Scan._read_links; the list is emptied) as one table: their targets
    as bytes where every table's are, else as text."""
    tables[:] = [t for t in tables if t.num_rows]
    if any(t.schema.field("target").type != SHA256_BYTES for t in tables):
        tables[:] = [t.set_column(1, "target", [text_of(one_array(t["target"]))]) for t in tables]
    if not tables:
        return _LINK_READS.empty_table()
    joined = pa.concat_tables(tables)
    tables.clear()
    # Their rows as one chunk: each slice of tag links searches them (_index_in_rows).
    return joined.set_column(0, _LINK_READS.field("row"), [one_array(joined["row"])])


def _extends(read: pa.Array, target: pa.Array) -> bool:
    """Both are dictionary arrays, and ``read``'s dictionary starts with ``target``'s (the
    links' path digests, see _over_paths): ``target``'s indices hold in it."""
    if not (pa.types.is_dictionary(read.type) and pa.types.is_dictionary(target.type)):
        return False
    n = len(target.dictionary)
    return len(read.dictionary) >= n and read.dictionary.slice(0, n).equals(target.dictionary)


def _link_digests_as_bytes(links: pa.Table) -> pa.Table:
    """``links`` (resolved ``_layers`` links) with their digest and target columns as the
    bytes each digest spells, where both are one chunk over one dictionary (the links' content
    was their path's, or was not read) of sha256 digests; else as they are. The links' digests
    as text (~50 MiB at 815k links naming 700k layers) were held from here to the digests'
    union, through the reading of the manifests and of the tag links, the scan's peak; the
    union takes them as they are (share_digests)."""
    digest, target = links["digest"], links["target"]
    if not (digest.num_chunks == target.num_chunks == 1):
        return links
    ours, theirs = digest.chunk(0), target.chunk(0)
    if not (pa.types.is_dictionary(ours.type) and pa.types.is_dictionary(theirs.type)):
        return links
    if identity(ours.dictionary) != identity(theirs.dictionary):
        return links
    if not is_sha256_text(ours.dictionary):
        return links
    spelled = as_bytes(ours.dictionary)
    type_ = pa.dictionary(ours.type.index_type, SHA256_BYTES)
    for name, col in (("digest", ours), ("target", theirs)):
        at = links.schema.get_field_index(name)
        over = pa.DictionaryArray.from_arrays(col.indices, spelled)
        links = links.set_column(at, pa.field(name, type_), pa.chunked_array([over], type_))
    return links


def _algorithm(digests: pa.Array) -> pa.Array:
    """What comes before each digest's first colon (all of it, where none). Cutting the rest
    off, not splitting at the colon (a list of both halves: a copy of every digest), which was
    the peak of the link tables on a store of many manifests (~20 MiB at 256k tag targets)."""
    return pc.replace_substring_regex(digests, pattern="(?s):.*", replacement="")


def _aliases(digest: pa.ChunkedArray, target: pa.ChunkedArray) -> pa.ChunkedArray:
    """Per link: its content names a digest of another algorithm than its path does (an
    alias link); false where either is unknown. Where the two columns are one chunk each over
    one dictionary (the links' content was their path's, or was not read) and no row's two
    indices differ, none is: the algorithm of every row, twice, as text, was the peak of a
    scan of many manifests (~16 MiB at 815k layer links, on top of the link tables)."""
    if digest.num_chunks == target.num_chunks == 1 and pa.types.is_dictionary(digest.type):
        ours, theirs = digest.chunk(0), target.chunk(0)
        if (
            pa.types.is_dictionary(target.type)
            and identity(ours.dictionary) == identity(theirs.dictionary)
            and not pc.any(pc.not_equal(ours.indices, theirs.indices)).as_py()
        ):
            return pa.chunked_array([pa.array(np.zeros(len(ours), np.bool_))])
    alg, target_alg = by_value(digest, _algorithm), by_value(target, _algorithm)
    return pc.fill_null(pc.not_equal(alg, target_alg), False)


def _named_manifests(links: dict[Kind, pa.Table]) -> pa.ChunkedArray:
    """The digests that revision and tag links name (by path or content), a column's distinct
    values at a time (a digest may be in several: the look-ups they are for hash them once),
    the columns that share a dictionary (a link's path digest and the target read or taken
    from it; the revision, tag-index and tag links' digests, see resolve_links) as one. Their
    union, made one column at a time, held a copy of it and its hash table on top of the
    columns': ~30 MiB on a store of 94k manifests, its scan's peak."""
    kinds = (Kind.REVISION_LINK, Kind.TAG_CURRENT, Kind.TAG_INDEX)
    cols = [links[kind][name] for kind in kinds for name in ("digest", "target")]
    return pa.chunked_array(_distinct_of(*cols), pa.string())


def _distinct_of(*cols: pa.ChunkedArray) -> list[pa.Array]:
    """The distinct non-null values of ``cols``, in a few arrays (values may repeat between
    them): chunks over one dictionary are taken together, by their indices."""
    out: list[pa.Array] = []
    shared: dict[tuple[int, ...], tuple[pa.Array, list[pa.Array]]] = {}
    for col in cols:
        if not pa.types.is_dictionary(col.type):
            out.append(pc.unique(col.drop_null()).cast(pa.string()))
            continue
        for chunk in col.chunks:
            entry = shared.setdefault(identity(chunk.dictionary), (chunk.dictionary, []))
            entry[1].append(chunk.indices)
    for dictionary, indices in shared.values():
        used = pc.unique(pa.chunked_array(indices, indices[0].type)).drop_null()
        # Every value used (the revision and tag links' one dictionary, in a sound store):
        # the dictionary itself, not a copy of it (~18 MiB at 256k manifests).
        out.append(dictionary if len(used) == len(dictionary) else dictionary.take(used))
    return out


_BATCH = 256  # items per task handed to a pool
_NO_HASHES = np.empty(0, np.int64)
# Tag links read while listing: each one's row in the tags table (see classify), target (null
# if none) and problem (see _read_link). Not its key, ~100 bytes a tag held until the links
# were resolved (~17 MiB at 177k tags).
_LINK_READS = pa.schema([("row", pa.int32()), ("target", pa.string()), ("problem", pa.string())])
# Links read and judged at once (see _read_links_of). A slice's keys, contents and verdicts as
# Python values are ~300 bytes a link: 32k at once were the peak of resolve_links on a store
# of 177k tags (~10 MiB over its level).
_LINK_SLICE = 1 << 14
# Link kinds whose listed digests gather keeps as the bytes they spell (see gather).
_STILL_BYTES = (Kind.LAYER_LINK, Kind.REVISION_LINK, Kind.TAG_INDEX)
# Parts of the listed references read at once (see manifest_tables), joined into one chunk
# of text: 32 at a time were manifest_tables' peak on a store of 1.2M references (~10 MiB
# over 8's).
_REFERENCE_PARTS = 8
# References joined into one chunk (see _joined): 4-byte indices of a MiB or more a column.
_REFERENCE_CHUNK_ROWS = 1 << 18
# A batch of manifests read while listing: their parsed columns, and the (parent, child) pairs
# of their references to other manifests, as tables (see _Scan._prefetch; the rest of their
# references are in scratch files).
_Prefetched = tuple[pa.Table, pa.Table]
# Reads finished while listing that are joined into one table at a time (see _Reads).
_JOIN_READS = 64


class _Reads:
    """The tables that reads started while listing give (a tuple of ``width`` tables a
    read), taken from their futures in the order started, as each finishes (``collect``),
    and joined ``_JOIN_READS`` reads at a time into one table of one chunk a column, where
    they share a schema. Each read's small tables, held to the listing's end, had their own
    Arrow objects in the C heap and their own small buffers (~2,000 reads of manifests and
    tag links on a store of 256k manifests: 32 MiB of the C heap in use at the listing's end,
    its peak then, against 12 so), and each future its own lock and condition."""

    def __init__(self, width: int) -> None:
        self.futures: list[Future[Any]] = []
        self.joined: list[list[pa.Table]] = [[] for _ in range(width)]
        self.waiting: list[list[pa.Table]] = [[] for _ in range(width)]

    def collect(self, *, wait: bool = False) -> None:
        """Take the results of the reads finished so far (of every read, with ``wait``)."""
        done = 0
        while done < len(self.futures) and (wait or self.futures[done].done()):
            done += 1
        for fut in self.futures[:done]:
            result = fut.result()
            for waiting, table in zip(
                self.waiting, result if isinstance(result, tuple) else (result,), strict=True
            ):
                waiting.append(table)
        del self.futures[:done]
        if len(self.waiting[0]) >= _JOIN_READS:
            for joined, waiting in zip(self.joined, self.waiting, strict=True):
                joined += _one_table_of(waiting)
                waiting.clear()

    def tables(self) -> list[list[pa.Table]]:
        """Every read's tables, waited for (each of the ``width`` lists is the caller's)."""
        self.collect(wait=True)
        out = [joined + waiting for joined, waiting in zip(self.joined, self.waiting, strict=True)]
        self.joined = [[] for _ in out]
        self.waiting = [[] for _ in out]
        return out


def _one_table_of(tables: list[pa.Table]) -> list[pa.Table]:
    """``tables`` as one table of one chunk a column where they share a schema (the
    dictionaries of its dictionary columns united), else as they are; the empty left out."""
    tables = [t for t in tables if t.num_rows]
    if len(tables) < 2 or any(t.schema != tables[0].schema for t in tables):
        return tables
    return [pa.concat_tables(tables).combine_chunks()]


# What the scan keeps of each manifest it reads: the manifests table's columns but its size,
# the digest as plain text (each is distinct). Its kind and media type as in the snapshot,
# dictionary-encoded: as text, ~13 MiB for 256k manifests read while listing, held until the
# manifests table is made.
_PARSED = pa.schema(
    [
        (f.name, pa.string() if f.name in ("digest", "problem") else f.type)
        for f in SCHEMAS["manifests"]
        if f.name != "size"
    ]
)


def _sorted_parsed(tables: list[pa.Table]) -> pa.Table:
    """``tables`` (``_PARSED`` rows, their digests as text or as their bytes, see
    _parsed_table; the list is emptied) as one table in digest order, its digests as their
    bytes where every table's are (see _Scan.manifests_as_text), else as text."""
    tables[:] = [t for t in tables if t.num_rows] or [_PARSED.empty_table()]  # (the caller's)
    return _sorted_by_digest(tables, _PARSED.field("digest"), text=False)


def _sorted_by_digest(tables: list[pa.Table], field: pa.Field, *, text: bool = True) -> pa.Table:
    """``tables`` (their first column ``digest``, as text or all as their bytes; the list is
    emptied) as one table in digest order, its digests as text (``field``; as their bytes
    where they are and ``text`` is false), one chunk a column. The digests are taken out of
    the tables as they are sorted (sorted_by_text) and
    the other columns a column at a time (_take): the tables, their concatenation and the
    sorted copy at once were a peak of the scan (~25 MiB for the blobs of 256k manifests).
    Bytes in some tables and text in others (an odd digest among a batch's) are sorted as
    text, by Arrow."""
    if (by_text := sorted_by_text(tables, "digest")) is None:
        whole = pa.concat_tables([t.set_column(0, field, text_of(one_array(t[0]))) for t in tables])
        tables.clear()
        return _take(whole, pc.sort_indices(whole["digest"]))
    digest, order = by_text
    rest = pa.concat_tables(tables)
    tables.clear()
    if text:
        digest = text_of(digest)  # (the sorted bytes let go: their text sorts the same)
    return _take(rest, pa.array(order)).add_column(0, field.with_type(digest.type), [digest])


# A manifest's blob as read_manifests finds it (see _Scan._blob_objects): the blobs table's
# columns, its digest as plain text.
_FOUND = pa.schema(
    [
        ("digest", pa.string()),
        *(SCHEMAS["blobs"].field(name) for name in ("key", "size", "last_modified")),
    ]
)


def _parsed_table(
    manifests: Sequence[tuple[str, ParsedManifest]], *, as_bytes_where_sha256: bool = False
) -> pa.Table:
    """The ``_PARSED`` rows of ``manifests`` (digest, parsed), in that order. Where asked and
    every digest is sha256, the digests as their bytes: the manifests read while listing are
    held to its end, and their digests as text were ~18 MiB at 256k manifests."""
    table = pa.table(
        [[d for d, _ in manifests]]
        + [[getattr(p, name) for _, p in manifests] for name in _PARSED.names[1:]],
        schema=_PARSED,
    )
    digests = one_array(table["digest"])
    if as_bytes_where_sha256 and is_sha256_text(digests):
        table = table.set_column(0, pa.field("digest", SHA256_BYTES), as_bytes(digests))
    return table


def _manifest_children(
    references: Sequence[pa.Table], *, as_bytes_where_sha256: bool = False
) -> pa.Table:
    """The (parent, child) pairs, as plain text, of ``references`` (tables of the snapshot's
    schema) whose child is a manifest: the ones read_manifests follows. With
    ``as_bytes_where_sha256``, as the bytes each digest spells where every one is a sha256
    digest: those of the manifests read while listing are held to the listing's end (~2.6
    MiB rather than 6 at 43k pairs), and spelled there (``_children_as_text``)."""
    pairs = [t.filter(kind_is(t, REF_MANIFEST)).select(["parent", "child"]) for t in references]
    plain = pa.schema([("parent", pa.string()), ("child", pa.string())])
    table = pa.concat_tables([plain.empty_table(), *(t.cast(plain) for t in pairs)])
    if as_bytes_where_sha256 and table.num_rows:
        parent, child = (one_array(table[name]) for name in plain.names)
        if is_sha256_text(parent) and is_sha256_text(child):
            return pa.table({"parent": as_bytes(parent), "child": as_bytes(child)})
    return table


def _children_as_text(children: pa.Table) -> pa.Table:
    """``_manifest_children`` as plain text, where it holds the digests' bytes."""
    if children.schema.field("parent").type != SHA256_BYTES:
        return children
    return pa.table(
        {
            name: pa.chunked_array([text_of(c) for c in children[name].chunks], pa.string())
            for name in ("parent", "child")
        }
    )


def _over_manifests(tables: dict[str, Any]) -> None:
    """The revision and tag tables' digests as indices into the manifests' dictionary, where
    they name manifests that were read (all of them, in a sound store): each table's own copy
    of the same digests (~60 MiB on a store of 256k manifests) was held into share_digests,
    the scan's peak, which also had them to unite."""
    listed = tables["manifests"]["digest"]
    if not listed.num_chunks:
        return
    dictionary = listed.chunk(0).dictionary
    for name in ("revisions", "tags", "tag_history"):
        table = tables[name]
        for column in DIGEST_COLUMNS[name]:
            at = table.schema.get_field_index(column)
            shared = over_dictionary(table[column], dictionary)
            table = table.set_column(at, table.schema.field(at), shared)
        tables[name] = table


def _unnamed(digests: pa.ChunkedArray, named: Sequence[tuple[pa.Array, bool]]) -> pa.Array:
    """The distinct values of the digest column ``digests`` (of its chunks' dictionaries) that
    none of ``named`` (dictionaries of digests, and whether each is sorted) holds; a sorted
    one searched by binary search (``places``), any other hashed."""
    if pa.types.is_dictionary(digests.type):
        digests = pa.chunked_array(dictionaries(digests), digests.type.value_type)
    values = pc.unique(digests)
    for dictionary, is_sorted in named:
        if not len(values):
            break
        if is_sorted:
            found = one_array(pc.is_valid(places(pa.chunked_array([values]), dictionary)))
        else:  # (a dictionary of digests as their bytes holds no other algorithm's)
            probe = bytes_or_null(values) if dictionary.type == SHA256_BYTES else values
            found = pc.fill_null(is_in(probe, dictionary), False)
        values = values.filter(pc.invert(found))
    return values


def _references_table(manifests: Sequence[tuple[str, ParsedManifest]]) -> pa.Table:
    """The snapshot's ``references`` rows of ``manifests`` (digest, parsed), in that order,
    each manifest's in the order it lists them."""
    parents = [d for d, p in manifests for _ in p.references]
    refs = [r for _, p in manifests for r in p.references]
    return table_from_columns(
        "references",
        {
            "parent": parents,
            "child": [r.digest for r in refs],
            "kind": [r.kind for r in refs],
            "media_type": [r.media_type for r in refs],
            "size": [r.size for r in refs],
            "platform": [r.platform for r in refs],
            "has_urls": [r.has_urls for r in refs],
            "artifact_type": [r.artifact_type for r in refs],
        },
    )


def _chunks(items: Sequence[_T]) -> list[Sequence[_T]]:
    """``items`` (a list, or an Arrow array: its slices copy nothing) a batch at a time."""
    return [items[i : i + _BATCH] for i in range(0, len(items), _BATCH)]


def _md5_like(etag: pa.Array) -> pa.Array:
    """Per row: the ETag looks like an MD5 (a single-PUT object's, on S3)."""
    like = _per_value(etag, lambda v: pc.match_substring_regex(v, _MD5_ETAG.pattern))
    return pc.fill_null(like, False)


def _known_md5(table: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Per row: the MD5 of the content as the listing tells it (null where it does not), and
    whether it is the ETag. On S3 a single-PUT object's ETag is its MD5; on Azure the ETag
    is not, but a single Put Blob sets Content-MD5."""
    etag = _col(table, "etag")
    from_etag = _md5_like(etag)
    if from_etag.false_count == 0:  # S3: no copy of millions of ETags
        return etag, from_etag
    return pc.if_else(from_etag, _plain(etag), _col(table, "content_md5")), from_etag


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class _Scan:
    def __init__(
        self, store: ObjectStore, options: ScanOptions, executor: Executor, progress: Progress
    ) -> None:
        self.store = store
        self.options = options
        self.executor = executor
        self.progress = progress
        self.root = ""
        # Per kind of key, the listing's rows of that kind (tables, then one table each).
        self.parts: dict[Kind, _Parts] = {k: _Parts() for k in _COLUMNAR}
        self.blob_parts: dict[str, _Parts] = defaultdict(_Parts)  # see add_blobs
        self.odd: dict[Kind, list[tuple[KeyRecord, ObjectInfo]]] = {k: [] for k in _COLUMNAR}
        # Blob rows written out as they are listed, by the first hex digit of their digest (see
        # add_blobs); then the snapshot's blobs table, sorted, on disk (see sorted_blobs).
        self.listed_blobs: dict[str, SpilledTable] = {}
        self.blobs: SpilledTable | None = None
        self.kinds: dict[Kind, pa.Table] = {}
        self.uploads: dict[tuple[str, str], _Upload] = defaultdict(_Upload)
        self.repo_parts: dict[str, set[str]] = defaultdict(set)
        self.anomalies = TableBuilder("anomalies")
        self.vanished: dict[tuple[Kind, str | None], _Vanished] = {}  # see _judge_link
        self.manifests: dict[str, ParsedManifest] = {}  # read after the listing
        self.found_blobs: list[pa.Table] = []  # the blob rows of manifests (_blob_objects)
        # Manifests read while the listing still runs (see prefetch), and their digests.
        self.prefetched = _Reads(2)  # each read's _Prefetched
        self.prefetching = _NO_HASHES  # the hashes of their digests, sorted (see prefetch)
        self.prefetcher: Executor = executor
        self.prefetched_manifests = _PARSED.empty_table()  # see _parsed_table
        # Their references, written out as they are read (see _prefetch), and those to other
        # manifests, which read_manifests follows (see _manifest_children).
        self.prefetched_references: SpilledTable | None = None
        self.prefetched_children = _manifest_children([])
        self.spilling = threading.Lock()  # the prefetcher may be a pool
        # Tag links read while listing (see classify), and then their contents together.
        self.prefetched_links = _Reads(1)
        self.link_contents = _LINK_READS.empty_table()

    # -- helpers -----------------------------------------------------------------------------

    def anomaly(
        self,
        kind: str,
        severity: str,
        detail: str,
        key: str | None = None,
        repo: str | None = None,
        obj: ObjectInfo | None = None,
    ) -> None:
        self.anomalies.add(
            kind=kind,
            severity=severity,
            repository=repo,
            key=key if key is not None else (obj.key if obj else None),
            size=obj.size if obj else None,
            last_modified=obj.last_modified if obj else None,
            detail=detail,
        )

    def pmap(
        self, fn: Callable[[_T], _R], items: Sequence[_T], phase: str, *, announce: bool = True
    ) -> list[_R]:
        """Run ``fn`` over ``items`` on the executor in batches, keeping order, with progress
        (``announce``: as the phase's total; a caller that maps a phase a slice at a time
        announces the total itself). On a local store (a filesystem) they run here: its reads
        hold the GIL, so threads only slow them down (twice the CPU time on the benchmark
        store)."""
        if announce:
            self.progress(phase, 0, len(items))
        out: list[_R] = []
        chunks = _chunks(items)
        if getattr(self.store, "local", False):
            for chunk in chunks:
                out.extend(fn(x) for x in chunk)
                self.progress(phase, len(chunk), None)
            return out
        futures = [self.executor.submit(lambda c: [fn(x) for x in c], c) for c in chunks]
        for fut, chunk in zip(futures, chunks, strict=True):
            out.extend(fut.result())
            self.progress(phase, len(chunk), None)
        return out

    # -- phases ------------------------------------------------------------------------------

    def run(self) -> Snapshot:
        scanned_at = utcnow()
        self.root = find_layout_root(self.store, self.options.layout_root)
        inventory = open_inventory(self.options.inventory) if self.options.inventory else None
        if inventory is not None:
            scanned_at = inventory.created_at  # the listing's time is the report's
        batches = (
            inventory.batches(self.store, self.root)
            if inventory is not None
            else list_layout(self.store, self.root, self.executor, self.progress)
        )
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as one:
            if getattr(self.store, "local", False):
                self.prefetcher = one  # local reads hold the GIL: one thread is enough
            for batch in batches:
                self.classify(batch)
            parsed, children = self.prefetched.tables()
            children = [self.prefetched_children, *(_children_as_text(c) for c in children)]
            # In digest order (read_manifests finds the listed ones among them by binary
            # search), sorted a column at a time (see _take), the digests as they are taken
            # out of the batches (sorted_by_text).
            self.prefetched_manifests = _sorted_parsed(parsed)
            self.prefetched_children = pa.concat_tables(children)
            del children
            self.prefetching = _NO_HASHES  # (only to start each read once)
            self.link_contents = _link_reads(self.prefetched_links.tables()[0])
            self.link_contents = _contents_onto(self.link_contents, self.manifest_digests())
        for mpu in list_incomplete_uploads(self.store, self.root):
            self.add_multipart(mpu)
        # From here each phase starts with the C heap's free pages handed back (trim_heap):
        # the links and manifests read as Python values leave it fragmented, ~10 MiB free but
        # resident at each phase's start on a store of 256k manifests, the references' sort
        # ~10 MiB lower for it (17 ms a trim there). The listing's end leaves ~5 MiB so, under
        # gather's sort of the blobs.
        trim_heap()
        self.gather()
        links = self.resolve_links()
        trim_heap()
        self.read_manifests(links)
        trim_heap()
        tables = {
            "repositories": self.repositories_table(links),
            # Each kind's links are taken out of ``links`` as they are sorted, to keep the peak low.
            "tags": self.link_table("tags", links, Kind.TAG_CURRENT),
            "tag_history": self.link_table("tag_history", links, Kind.TAG_INDEX),
            "revisions": self.link_table("revisions", links, Kind.REVISION_LINK),
            "layer_links": self.link_table("layer_links", links, Kind.LAYER_LINK),
            "manifests": None,
            "references": None,
            "uploads": self.uploads_table(),
        }
        trim_heap()
        # Every digest column over the snapshot's one dictionary (see manifest_tables).
        tables["references"] = self.manifest_tables(tables)
        trim_heap()
        tables["references"] = _by_parent(tables)
        assert self.blobs is not None
        spilled = {"blobs": self.blobs}
        if (references := spill_shared(tables, "references")) is not None:
            spilled["references"] = references
        del references
        self.vanished_anomalies()
        tables["anomalies"] = self.anomalies.build()
        meta: dict[str, Any] = {
            "store": self.store.url,
            "layout_root": self.root,
            "scanned_at": scanned_at.isoformat(),
            "regsweep_version": __version__,
            "max_manifest_bytes": self.options.max_manifest_bytes,
        }
        if inventory is not None:
            meta["inventory"] = inventory.meta()
        snap = Snapshot({k: v for k, v in tables.items() if v is not None}, meta, spilled)
        meta["counts"] = snap.counts()
        return snap

    def classify(self, batch: pa.Table) -> None:
        """Sort one listing batch by kind: the common shapes column-wise, the rest one by one."""
        common, rest = split_kinds(batch, len(self.root.encode()))
        for kind, table in common.items():
            # A blob's or link's key follows from its digest, repository and tag
            # (layout/key_columns.py): not holding it saves 100-140 bytes per row, in the scan
            # and in the snapshot. (``common`` keeps the keys for the reads below.)
            if kind is Kind.BLOB_DATA:
                self.add_blobs(table.select(_BLOB_PART.names))
            elif table.num_rows:
                at = table.schema.get_field_index("key")
                table = table.set_column(at, "key", pa.nulls(table.num_rows, pa.null()))
                # Millions of _layers links name a few thousand layers, in a few hundred
                # repositories, with one ETag per layer (and revision and tag links a few
                # thousand manifests): 4-byte indices from the start, rather than ~140 bytes
                # of text a link until the scan's tables are built.
                table = _encoded(table, _ENCODED[kind])
                self.parts[kind].add(_nulls_untyped(_digests_as_bytes(table)))
        revisions = common.get(Kind.REVISION_LINK)
        if revisions is not None and revisions.num_rows:
            self.prefetch(pc.unique(revisions["digest"]))
        tags = common.get(Kind.TAG_CURRENT)
        if tags is not None and tags.num_rows:
            # Tag links whose listing tells no MD5 (a filesystem's) must be read: read them now.
            # Their rows in the tags table: gather puts the parts first, in the order listed.
            unknown = pc.is_null(_known_md5(tags)[0])
            first = self.parts[Kind.TAG_CURRENT].num_rows - tags.num_rows
            at = np.flatnonzero(unknown.to_numpy(zero_copy_only=False)).astype(np.int32) + first
            keys = _col(tags, "key").filter(unknown)
            self.prefetched_links.futures += [
                self.prefetcher.submit(self._read_links, keys[i : i + _BATCH], at[i : i + _BATCH])
                for i in range(0, len(at), _BATCH)
            ]
        self.prefetched.collect()
        self.prefetched_links.collect()
        for row in rest.to_pylist():
            self.classify_one(
                ObjectInfo(row["key"], row["size"], row["last_modified"], row["etag"])
            )

    def add_blobs(self, table: pa.Table) -> None:
        """Keep the column-wise blob rows in sixteen parts, by the first hex digit of their
        digest, so that gather sorts them a sixteenth at a time, and write each part out to
        scratch files as it grows: the blobs are most of a store's objects, and their digests
        the scan's largest column (see spill.py)."""
        if not table.num_rows:
            return
        first = pc.utf8_slice_codeunits(table["digest"], _SHA256, _SHA256 + 1)
        for h in _HEX_DIGITS:
            part = table.filter(pc.equal(first, h))
            if part.num_rows:
                parts = self.blob_parts[h]
                parts.add(part)
                if parts.num_rows >= _SPILL_ROWS:
                    self._spill_listed(h)

    def _spill_listed(self, h: str) -> None:
        parts = self.blob_parts.pop(h, None)
        if parts is None or not parts.num_rows:
            return
        if h not in self.listed_blobs:
            self.listed_blobs[h] = SpilledTable(_BLOB_PART, "blob listing")
        self.listed_blobs[h].append(
            pa.concat_tables([t.cast(_BLOB_PART) for t in parts.tables]).combine_chunks()
        )

    def classify_one(self, obj: ObjectInfo) -> None:
        rel = obj.key[len(self.root) :]
        rec = classify(rel)
        if rec.repo:
            self.repo_parts[rec.repo]
        match rec.kind:
            case (
                Kind.BLOB_DATA
                | Kind.LAYER_LINK
                | Kind.REVISION_LINK
                | Kind.TAG_CURRENT
                | Kind.TAG_INDEX
            ):
                # A common kind in an uncommon shape (another algorithm, an odd repository
                # name): gather() puts it with the column-wise rows of its kind.
                self.odd[rec.kind].append((rec, obj))
            case Kind.UPLOAD_FILE:
                self.repo_parts[rec.repo or ""].add("_uploads")
                assert rec.repo is not None and rec.upload_id is not None
                self.uploads[(rec.repo, rec.upload_id)].files.append((rec, obj))
            case Kind.LEGACY_SIGNATURE:
                self.repo_parts[rec.repo or ""].add("_manifests")
                self.anomaly(
                    "legacy-signature",
                    "info",
                    "schema1 signature link from registry <= 2.4; nothing uses it",
                    repo=rec.repo,
                    obj=obj,
                )
            case Kind.TMP:
                self.anomaly("tmp-file", "warning", rec.detail or "", repo=rec.repo, obj=obj)
            case Kind.FOREIGN:
                self.anomaly("foreign-key", "warning", rec.detail or "", repo=rec.repo, obj=obj)

    def gather(self) -> None:
        """One table per kind: the column-wise parts and the keys classify decided one by one."""
        for kind in _COLUMNAR:
            odd = self.odd.pop(kind)
            extra = (
                listing_table(o for _, o in odd)
                .append_column("repo", pa.array([r.repo for r, _ in odd], pa.string()))
                .append_column("tag", pa.array([r.tag for r, _ in odd], pa.string()))
                .append_column("digest", pa.array([r.digest for r, _ in odd], pa.string()))
            )
            if kind is Kind.BLOB_DATA:
                self.blobs = self.sorted_blobs(extra)
                continue
            schema = _LISTED_SCHEMA[kind]
            parts = self.parts.pop(kind).tables
            # Chunked as listed (no combined copy): the sorts and takes that follow copy anyway.
            listed = pa.concat_tables(parts, promote_options="default") if parts else None
            del parts
            # The ``_layers`` links' digests stay the bytes they spell (resolve_links), unless
            # links of another shape join them; the revision and tag-index links' go onto the
            # manifests read while listing as bytes too, and are text again with them (see
            # manifests_as_text); the others' are text again.
            as_bytes_still = kind in _STILL_BYTES and not extra.num_rows
            if listed is not None and "digest" in _ENCODED[kind] and not as_bytes_still:
                at = listed.schema.get_field_index("digest")
                listed = listed.set_column(at, "digest", dictionary_as_text(listed["digest"]))
            if listed is not None and as_bytes_still:
                self.kinds[kind] = _typed(listed, schema)
            else:
                self.kinds[kind] = pa.concat_tables(
                    [*([_typed(listed, schema)] if listed is not None else []), extra.cast(schema)]
                )
            del listed
            if kind in (Kind.REVISION_LINK, Kind.TAG_INDEX):
                self.kinds[kind] = _digests_onto(self.kinds.pop(kind), self.manifest_digests())
        self.manifests_as_text()
        part_of = {
            Kind.LAYER_LINK: "_layers",
            Kind.REVISION_LINK: "_manifests",
            Kind.TAG_CURRENT: "_manifests",
            Kind.TAG_INDEX: "_manifests",
        }
        for kind, part in part_of.items():
            for repo in pc.unique(self.kinds[kind]["repo"]).to_pylist():
                self.repo_parts[repo or ""].add(part)

    def manifests_as_text(self) -> None:
        """The digests of the manifests read while listing as text, where they were the bytes
        each spells (see _sorted_parsed), and so the revision and tag-index links' and the tag
        links' contents that gather and run put over them (their indices as they were); any
        of those links over bytes of their own as text too. Held as text from the listing's
        end, they were ~18 MiB of text at 256k manifests (~8 as bytes) through the sort of the
        blobs, and spelling them the listing's end's peak."""
        col = self.prefetched_manifests["digest"]
        spelled = col.chunk(0) if col.type == SHA256_BYTES and col.num_chunks == 1 else None
        if spelled is None:
            return
        text = as_text(spelled)
        at = self.prefetched_manifests.schema.get_field_index("digest")
        self.prefetched_manifests = self.prefetched_manifests.set_column(at, "digest", [text])
        same = identity(spelled)
        del spelled

        def as_text_too(col: pa.ChunkedArray) -> pa.ChunkedArray:
            # Over ``text`` where over the manifests' bytes (their indices as they are), else
            # each chunk's bytes spelled (dictionary_as_text; text stays as it is).
            over_bytes = pa.types.is_dictionary(col.type) and col.type.value_type == SHA256_BYTES
            if not over_bytes or any(identity(c.dictionary) != same for c in col.chunks):
                return dictionary_as_text(col)
            type_ = pa.dictionary(col.type.index_type, pa.string())
            over = [pa.DictionaryArray.from_arrays(c.indices, text) for c in col.chunks]
            return pa.chunked_array(over, type_)

        for kind in (Kind.REVISION_LINK, Kind.TAG_INDEX):
            table = self.kinds.pop(kind)
            digest = as_text_too(table["digest"])
            at = table.schema.get_field_index("digest")
            self.kinds[kind] = table.set_column(at, pa.field("digest", digest.type), digest)
            del table, digest
        target = as_text_too(self.link_contents["target"])
        self.link_contents = self.link_contents.set_column(1, "target", target)

    def manifest_digests(self) -> pa.Array | None:
        """The digests of the manifests read while listing, sorted (see _sorted_parsed): the
        manifests that revision links name, one each."""
        digests = self.prefetched_manifests["digest"]
        return digests.chunk(0) if digests.num_chunks == 1 else None

    def sorted_blobs(self, odd: pa.Table) -> SpilledTable:
        """The snapshot's blobs table in digest order, on disk a part at a time: each sixteenth
        of add_blobs read back and sorted on its own (its keys null, see DERIVED_KEYS), with
        the odd blobs (other algorithms, tarsum: they keep their keys) whose digests sort
        among its own (odd blobs that sort before or after every sha256 digest go first or
        last). Consecutive sixteenths are written as one part up to ``_PART_ROWS`` rows: every
        pass over the blobs costs a little per part (a value set hashed, a file mapped)."""
        odd = odd.select(_BLOB_COLUMNS)
        # The part of each odd blob: the last whose first digest is not after it (-1: before
        # every sha256 part, 16: after them all).
        starts = [f"sha256:{h}" for h in _HEX_DIGITS]
        where = pa.array(
            [
                bisect_right(starts, d) - 1 if d < "sha256:g" else 16
                for d in odd["digest"].to_pylist()
            ],
            pa.int8(),
        )
        out = SpilledTable(SCHEMAS["blobs"], "blobs")
        ready: list[pa.Table] = []  # sorted, not yet written

        def write() -> None:
            out.append(pa.concat_tables(ready))
            ready.clear()

        for at in range(-1, 17):
            pieces: list[pa.Table] = []
            if 0 <= at < 16:
                h = _HEX_DIGITS[at]
                listed = self.listed_blobs.pop(h, None)
                if listed is not None:
                    pieces += listed.parts()  # memory-mapped: copied by the sort's take below
                if (parts := self.blob_parts.pop(h, None)) is not None:
                    pieces += parts.tables
                pieces = [
                    t.cast(_BLOB_PART).add_column(1, "key", pa.nulls(t.num_rows, pa.string()))
                    for t in pieces
                ]
            mine = odd.filter(pc.equal(where, at))
            if mine.num_rows:
                pieces.append(mine.cast(pieces[0].schema) if pieces else mine)
            if not pieces:
                continue
            # The digests taken out of the pieces as they are sorted (_sorted_by_digest): a
            # joined copy of them, then the sorted one, beside the listing's memory-mapped
            # pages, were the peak of gather (~14 MiB at 63k blobs a sixteenth).
            part = _sorted_by_digest(pieces, _BLOB_PART.field("digest"))
            del pieces
            # Each as one chunk (those of one value come repeated from the take): a record
            # batch of the scratch file a part, over the part's one dictionary.
            columns = {n: one_array(part[n]) for n in ("key", "size", "last_modified", "etag")}
            digest = as_dictionary(_col(part, "digest"))
            # Not repeated (see table_from_columns): a part is written to a scratch file a
            # record batch a chunk, and read back so, each chunk over the part's dictionary.
            ready.append(table_from_columns("blobs", {"digest": digest, **columns}, repeat=False))
            del part, digest, columns
            if sum(t.num_rows for t in ready) >= _PART_ROWS:
                write()
        if ready:
            write()
        return out

    def add_multipart(self, mpu: IncompleteUpload) -> None:
        rec = classify(mpu.key[len(self.root) :]) if mpu.key.startswith(self.root) else None
        if rec is None or rec.kind is not Kind.UPLOAD_FILE or rec.name != "data":
            self.anomaly(
                "foreign-multipart-upload",
                "warning",
                f"incomplete multipart upload {mpu.upload_id} outside any upload directory",
                key=mpu.key,
            )
            return
        assert rec.repo is not None and rec.upload_id is not None
        self.repo_parts[rec.repo].add("_uploads")
        self.uploads[(rec.repo, rec.upload_id)].multipart = mpu

    # -- links -------------------------------------------------------------------------------

    def _path_is_enough(self, links: pa.Table) -> pa.Array:
        """Per row: a revision, tag-index or canonical ``_layers`` link says its digest in its
        path. Trust the path when the object has exactly the right size and, where the ETag is
        an MD5, the ETag matches; otherwise the link is read."""
        n = links.num_rows
        if self.options.verify_links or n == 0:
            return pa.repeat(pa.scalar(False), n)
        digest, (md5, _) = _col(links, "digest"), _known_md5(links)
        if digest.type == _BYTES_DICT:  # sha256, every one: 71 bytes as text
            ok = pc.fill_null(pc.equal(_col(links, "size"), SHA256_TEXT_BYTES), False)
        else:
            ok = pc.and_(
                pc.fill_null(_per_value(digest, lambda v: pc.starts_with(v, "sha256:")), False),
                pc.fill_null(
                    pc.equal(_col(links, "size"), _per_value(digest, pc.utf8_length)), False
                ),
            )
        check = pc.and_(ok, pc.is_valid(md5))
        if pc.any(check).as_py():
            # The MD5 the listing tells (S3's ETag, Azure's Content-MD5) must be the path's.
            # Computed once per distinct digest (a layer's links in many repositories share
            # one), and each row's MD5 looked up among those: no Python string per row.
            encoded = digest if pa.types.is_dictionary(digest.type) else digest.dictionary_encode()
            wanted = pa.array(
                [_md5(d) for d in text_of(encoded.dictionary).to_pylist()], pa.string()
            )
            at = _per_value(md5, lambda v: pc.index_in(v, value_set=wanted))
            agrees = pc.equal(at, encoded.indices)
            ok = pc.if_else(check, pc.fill_null(agrees, False), ok)
        return ok

    def resolve_links(self) -> dict[Kind, pa.Table]:
        """Each link kind's table with ``target`` (what the link says), ``resolved_by`` and
        ``problem`` added. Links are read only where the path or the ETag cannot tell."""
        kinds = (Kind.REVISION_LINK, Kind.TAG_INDEX, Kind.LAYER_LINK, Kind.TAG_CURRENT)
        known: dict[Kind, tuple[pa.Array, pa.Array]] = {}  # (resolved without a read, target)
        # Each kind's digest column as one chunk, in the table too (the listed chunks can go);
        # when every path tells, the targets are that same array, not a copy of it. Revision
        # and tag-index links name the same manifests: one dictionary for both (in a sound
        # store already the manifests read while listing, see _digests_onto: nothing to unite).
        for group in ((Kind.REVISION_LINK, Kind.TAG_INDEX), (Kind.LAYER_LINK,)):
            held = {kind: self.kinds.pop(kind) for kind in group}
            # (The ``_layers`` links' digests as their bytes, where gather left them so.)
            with_one_dictionary(held, "digest", binary=group == (Kind.LAYER_LINK,))
            self.kinds.update(held)
            del held
        for kind in kinds[:3]:
            table = self.kinds[kind]
            ok = self._path_is_enough(table)
            known[kind] = ok, _path_targets(ok, table["digest"].chunk(0))
            del table
        tags = self.kinds[Kind.TAG_CURRENT]
        md5, from_etag = _known_md5(tags)
        tag_source = pc.if_else(from_etag, "etag", "content-md5")
        if self.options.verify_links or md5.null_count == len(md5):
            known[Kind.TAG_CURRENT] = (
                pa.repeat(pa.scalar(False), tags.num_rows),
                pa.nulls(tags.num_rows, pa.string()),
            )
        else:
            # A single-PUT link's MD5 (S3's ETag, Azure's Content-MD5) is md5("sha256:<hex>")
            # (storage-layout.md §6.3). A tag names a manifest, which has revision and index
            # links; a tag whose MD5 matches none of their digests is read.
            candidates = pc.unique(
                pa.chunked_array(
                    _distinct_of(
                        self.kinds[Kind.REVISION_LINK]["digest"],
                        self.kinds[Kind.TAG_INDEX]["digest"],
                    ),
                    pa.string(),
                )
            ).drop_null()
            by_md5 = {_md5(d): d for d in candidates.to_pylist()}
            target = pa.array([by_md5.get(m) for m in md5.to_pylist()], pa.string())
            known[Kind.TAG_CURRENT] = pc.is_valid(target), target

        unread = {kind: pc.invert(known[kind][0]) for kind in kinds}
        counts = {
            kind: self.kinds[kind].num_rows - (pc.sum(known[kind][0]).as_py() or 0)
            for kind in kinds
        }
        # (Links read while the listing ran are among these, and are not read again.)
        self.progress("links", 0, max(sum(counts.values()) - self.link_contents.num_rows, 0))
        out: dict[Kind, pa.Table] = {}
        for kind in kinds:
            table, (ok, target) = self.kinds.pop(kind), known.pop(kind)
            by = pc.if_else(ok, tag_source if kind is Kind.TAG_CURRENT else "path", NULL_STRING)
            problem = pa.nulls(table.num_rows, pa.string())
            if counts[kind]:
                at = np.flatnonzero(unread[kind].to_numpy(zero_copy_only=False))
                # Every row, where every link is read (an audit's scan): the table itself, not
                # a copy of it (~30 MiB for 815k ``_layers`` links, held while they are read).
                rows = table if len(at) == table.num_rows else table.take(at)
                read, by_read, problem_read = self._read_links_of(
                    kind, rows, at, _named_by(out, kind)
                )
                del rows
                if len(at) == table.num_rows:  # every link read: what it says, not a copy
                    target, by, problem = read, by_read, problem_read
                else:
                    if _extends(read, target):
                        # Over the path digests' dictionary (see _over_paths): only indices move.
                        indices = pc.replace_with_mask(target.indices, unread[kind], read.indices)
                        target = pa.DictionaryArray.from_arrays(indices, read.dictionary)
                    else:  # (as text, where the read targets are and the paths' are bytes)
                        target = pc.replace_with_mask(
                            text_of(_plain(target)), unread[kind], text_of(_plain(read))
                        )
                    by, problem = (
                        pc.replace_with_mask(_plain(old), unread[kind], new)
                        for old, new in zip((by, problem), (by_read, problem_read), strict=True)
                    )
                del read, by_read, problem_read
            if kind is Kind.TAG_CURRENT:
                target = _over_manifests_named(target, out[Kind.REVISION_LINK]["digest"])
            out[kind] = (
                table.append_column("target", target)
                .append_column("resolved_by", _compact(by))
                .append_column("problem", _compact(problem))
            )
            del table, ok, target
            if kind is Kind.LAYER_LINK:
                out[kind] = _link_digests_as_bytes(out[kind])
        self.link_contents = _LINK_READS.empty_table()
        return out

    def _read_links_of(
        self, kind: Kind, rows: pa.Table, at: np.ndarray, onto: pa.Array | None = None
    ) -> tuple[pa.Array, pa.Array, pa.Array]:
        """(targets, resolved_by, problems) of the links ``rows`` of ``kind`` (rows ``at`` of
        its table), read and judged a slice at a time: an audit reads every link, and every
        link's key and content as Python strings at once were ~200 MiB of its scan of 470k
        links. ``onto``: sorted digests (the revision links' dictionary) that the targets are
        put over as each slice is judged, where it holds every one (``_onto_sorted``)."""
        parts: list[tuple[pa.Array, ...]] = []
        paths = _col(rows, "digest")
        extra: dict[str, int] = {}  # targets that are no path's digest (see _over_paths)
        for lo in range(0, rows.num_rows, _LINK_SLICE):
            part = rows.slice(lo, _LINK_SLICE)
            if paths.type == _BYTES_DICT:
                # Judged against the paths' digests as text, a slice at a time: the whole
                # dictionary as text, with its bytes still held, was an audit's peak.
                at_digest = part.schema.get_field_index("digest")
                part = part.set_column(at_digest, "digest", _text_rows(_col(part, "digest")))
            keys = self._keyed(kind, part)["key"]
            read = self._contents(
                keys, at[lo : lo + _LINK_SLICE] if kind is Kind.TAG_CURRENT else None
            )
            targets, by, problems = self._judge_links(kind, part, read)
            target = pa.array(targets, pa.string())
            if pa.types.is_dictionary(paths.type):
                target = _over_paths(target, paths.slice(lo, _LINK_SLICE), extra)
            elif onto is not None:
                target = _onto_sorted(target, onto)
            parts.append((target, pa.array(by, pa.string()), pa.array(problems, pa.string())))
        if onto is not None and len({p[0].type for p in parts}) > 1:
            # Some slice named a digest ``onto`` does not hold: all as text.
            parts = [(text_of(_plain(t)), *rest) for t, *rest in parts]
        targets, by, problems = (
            pa.concat_arrays(list(column)) for column in zip(*parts, strict=True)
        )
        if pa.types.is_dictionary(targets.type) and not pa.types.is_dictionary(paths.type):
            return targets, by, problems  # (over ``onto``)
        if pa.types.is_dictionary(paths.type):
            # Every slice's indices are into the paths' dictionary and then ``extra``: as the
            # digests' bytes where both can be, else as text.
            dictionary = paths.dictionary
            if extra:
                more = pa.array(list(extra), pa.string())
                if dictionary.type == SHA256_BYTES and is_sha256_text(more):
                    more = as_bytes(more)
                else:
                    dictionary = text_of(dictionary)
                dictionary = pa.concat_arrays([dictionary, more])
            targets = pa.DictionaryArray.from_arrays(targets, dictionary)
        return targets, by, problems

    def _keyed(self, kind: Kind, table: pa.Table) -> pa.Table:
        """Rows of ``kind`` with their keys, also those the scan does not hold."""
        return with_keys(table, self.root, _KEY_SHAPE[kind])

    def _contents(
        self, keys: pa.ChunkedArray, rows: np.ndarray | None
    ) -> list[tuple[str | None, str | None]]:
        """(target, problem) of the links at ``keys``: as read while listing (tag links, by
        their ``rows`` in the tags table), else read now."""
        if rows is None:
            known = pa.nulls(len(keys), pa.int32())
        else:
            known = _index_in_rows(rows, self.link_contents["row"])
        pending = keys.filter(pc.is_null(known)).to_pylist()
        fresh = iter(self.pmap(self._read_link, pending, "links", announce=False))
        got = self.link_contents.take(known.drop_null())
        said = pa.chunked_array([text_of(c) for c in decoded(got["target"]).chunks], pa.string())
        before = iter(zip(said.to_pylist(), got["problem"].to_pylist(), strict=True))
        return [next(fresh) if at is None else next(before) for at in known.to_pylist()]

    def _read_links(self, keys: pa.Array, rows: np.ndarray) -> pa.Table:
        """The links at ``keys`` (at ``rows`` of their table) read, as a table of
        ``_LINK_READS``: as Python values, the tag links a filesystem's listing has the scan
        read (all of them) were ~20 MiB at 65k tags until the links were resolved."""
        read = [self._read_link(key) for key in keys.to_pylist()]
        target = pa.array([t for t, _ in read], pa.string())
        if is_sha256_text(target.drop_null()):
            # As the bytes each spells (null stays null): 32 bytes a tag, not 75, held from
            # here to the listing's end (see _contents_onto).
            target = bytes_or_null(target)
        columns = [pa.array(rows, pa.int32()), target, pa.array([p for _, p in read], pa.string())]
        return pa.table(columns, names=_LINK_READS.names)

    def _read_link(self, key: str) -> tuple[str | None, str | None]:
        try:
            data = self.store.read(key, max_bytes=LINK_READ_CAP)
        except ObjectTooLarge as e:
            return None, f"oversized ({e.size} bytes)"
        except ObjectNotFound:
            return None, VANISHED
        except StoreError as e:
            return None, f"read error: {e}"
        content = parse_link(data)
        return content.digest, content.problem

    def _judge_links(
        self, kind: Kind, rows: pa.Table, read: list[tuple[str | None, str | None]]
    ) -> tuple[list[str | None], list[str], list[str | None]]:
        """(targets, resolved_by, problems) of the links ``rows`` whose contents were ``read``.
        A link that says its digest plainly resolves as read; only the others (a problem, no
        digest, content that differs from the path, an empty object) go through _judge_link
        as Python rows (a filesystem's tag links are all read: tens of thousands of rows)."""
        targets = [t for t, _ in read]
        problems = [p for _, p in read]
        by = ["read"] * len(read)
        path = _col(rows, "digest").to_pylist()
        empty = pc.fill_null(
            pc.or_kleene(
                pc.equal(_col(rows, "etag"), EMPTY_MD5),
                pc.equal(_col(rows, "content_md5"), EMPTY_MD5),
            ),
            False,
        ).to_pylist()
        odd = [
            i
            for i, (t, p) in enumerate(read)
            if p is not None
            or t is None
            or empty[i]
            or (kind is not Kind.TAG_CURRENT and path[i] is not None and t != path[i])
        ]
        if odd:
            picked = self._keyed(kind, rows.take(pa.array(odd, pa.int64()))).to_pylist()
            for i, row in zip(odd, picked, strict=True):
                targets[i], by[i], problems[i] = self._judge_link(kind, row, *read[i])
        return targets, by, problems

    def _judge_link(
        self, kind: Kind, row: dict[str, Any], target: str | None, problem: str | None
    ) -> tuple[str | None, str, str | None]:
        """(target, resolved_by, problem) of a link that was read. Records deviations:
        unreadable content, and a path that disagrees with the content."""
        path_digest = row["digest"]
        resolved_by = "read"
        if problem is None and EMPTY_MD5 in (row["etag"], row["content_md5"]):
            problem = "empty"
        if target is None:
            if path_digest is not None and is_valid_digest(path_digest):
                # The path still tells the digest (§7.8): use it, but keep the problem on record.
                target, resolved_by = path_digest, "path"
        elif (
            kind is not Kind.TAG_CURRENT
            and path_digest is not None
            and target != path_digest
            and path_digest.startswith("sha256:")
        ):
            problem = problem or f"content {target} differs from path"
        if problem == VANISHED:
            # Counted, not an anomaly each: an inventory a few days old can list hundreds of
            # thousands of links that are gone since (4M at 10M objects were ~1.7 GiB of
            # anomalies as Python values). Each link's row says so; see vanished_anomalies.
            if (gone := self.vanished.get((kind, row["repo"]))) is not None:
                gone.count += 1
            else:
                first = ObjectInfo(row["key"], row["size"], row["last_modified"], row["etag"])
                self.vanished[(kind, row["repo"])] = _Vanished(1, first)
        elif problem is not None:
            what = kind.value.replace("_", " ")
            # One string for each repository and each text: a store can hold many links with
            # one problem (a copy that added newlines to every file).
            self.anomaly(
                "bad-link",
                "error",
                sys.intern(
                    f"{what} {_LINK_PROBLEMS.get(problem, problem)}; Distribution cannot "
                    "read it (its garbage-collect aborts on it)"
                ),
                repo=sys.intern(row["repo"]) if row["repo"] is not None else None,
                obj=ObjectInfo(row["key"], row["size"], row["last_modified"], row["etag"]),
            )
        return target, resolved_by, problem

    def vanished_anomalies(self) -> None:
        """One anomaly for the links of each kind and repository that were listed but gone
        when read, naming the first of them."""
        stale = " or since the inventory was made" if self.options.inventory else ""
        for (kind, repo), gone in sorted(self.vanished.items(), key=lambda kv: kv[1].first.key):
            what = kind.value.replace("_", " ")
            if gone.count == 1:
                detail = f"{what} was listed but gone when read (deleted since the listing{stale})"
                obj: ObjectInfo | None = gone.first
            else:
                detail = (
                    f"{gone.count} {what}s were listed but gone when read (deleted since the "
                    f"listing{stale}), {gone.first.key} the first"
                )
                obj = None
            self.anomaly("vanished-link", "info", detail, key=gone.first.key, repo=repo, obj=obj)
        self.vanished.clear()

    # -- manifests ---------------------------------------------------------------------------

    def _blob_objects(self, digests: pa.Array | pa.ChunkedArray) -> pa.Table:
        """The blob rows (``_FOUND``) of those of ``digests`` that are blobs, in one pass over
        the blobs (each once, whether ``digests`` names it once or more); kept in
        ``found_blobs`` for manifest_tables. The smaller side is hashed, for each part: where
        ``digests`` outnumber the part's, the part's own digests are the value set that they
        are looked up in (its dictionary: no copy), and the few found the value set of the
        part's rows. ``digests`` as the value set, hashed again for each part, held a copy of
        the digests that every revision and tag link names (~45 MiB at 256k manifests) and its
        hash table at once, the peak of the scan of many manifests; the other way round, each
        part of an inventory's millions of blobs was hashed to find a few thousand manifests
        (2 s at 5.9M blobs and 20k manifests, against 0.2)."""
        out = [_FOUND.empty_table()]
        if len(digests) == 0 or self.blobs is None:
            return out[0]  # (read_manifests' last round asks for none)
        if (in_order := self._sorted_blob_rows(digests)) is not None:
            self.found_blobs.append(in_order)
            return in_order
        for part in self.blobs.parts(_FOUND.names):
            values = _values(part["digest"])
            if len(digests) > len(values):
                named = digests.filter(pc.is_in(digests, value_set=values))
            else:
                named = digests
            del values
            if len(named):
                found = by_value(part["digest"], functools.partial(pc.is_in, value_set=named))
                if pc.any(found).as_py():
                    # Copied out of the part (a filtered dictionary keeps every digest of it).
                    out.append(part.filter(found).cast(_FOUND))
            del named
        table = pa.concat_tables(out)
        self.found_blobs.append(table)
        return table

    def _sorted_blob_rows(self, digests: pa.Array | pa.ChunkedArray) -> pa.Table | None:
        """_blob_objects where ``digests`` are one chunk of sorted text (the revision and tag
        links' one dictionary, as read_manifests asks first in a sound store): each part's
        rows found by binary search, in digest order as the parts are, and their digests
        ``digests`` itself where every one is a blob (else the found ones taken from it).
        Copied out of the parts as text, they were a second copy of every manifest's digest
        (~18 MiB at 256k manifests), and their sort in _place_prefetched a third, the peak
        of the scan. None where this cannot be done (another layout of the parts' digests,
        digests of several widths): _blob_objects then looks them up by hashing."""
        chunks = digests.chunks if isinstance(digests, pa.ChunkedArray) else [digests]
        chunks = [c for c in chunks if len(c)]
        if len(chunks) != 1 or self.blobs is None:
            return None
        (want,) = chunks
        if not pa.types.is_string(want.type) or not is_sorted_text(want):
            return None
        picked: list[np.ndarray] = []  # per piece of rows found: their places in ``want``
        pieces: list[pa.Table] = []
        others = _FOUND.names[1:]
        for part in self.blobs.parts(_FOUND.names):
            start = 0
            for chunk in part["digest"].chunks:
                if not pa.types.is_dictionary(chunk.type) or chunk.null_count:
                    return None
                found = sorted_places_of_sorted(want, chunk.dictionary)
                if found is None:
                    return None
                first, at = found
                hit = at >= 0
                # Per value of the chunk's dictionary, its place in ``want`` (-1: none).
                wanted_at = np.full(len(chunk.dictionary), -1, np.int64)
                wanted_at[at[hit]] = first + np.flatnonzero(hit)
                row_at = wanted_at[np.asarray(chunk.indices, np.int64)]
                rows = np.flatnonzero(row_at >= 0)
                if len(rows):
                    picked.append(row_at[rows])
                    pieces.append(part.select(others).slice(start, len(chunk)).take(rows))
                start += len(chunk)
                del found, at, hit, wanted_at, row_at, rows
            del part
        order = np.concatenate(picked) if picked else np.empty(0, np.int64)
        if len(order) > 1 and not (np.diff(order) > 0).all():
            return None  # (the parts' rows not in digest order: hashed instead)
        found_digests = want if len(order) == len(want) else want.take(pa.array(order))
        rest = pa.concat_tables([_FOUND.empty_table().select(others), *pieces]).combine_chunks()
        return rest.add_column(0, _FOUND.field("digest"), [found_digests])

    def stored(self, digests: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        """Per value of ``digests`` (distinct): it is a stored blob. One pass over the blobs,
        each of ``digests`` looked up among each part's own digests (its dictionary, sorted: a
        binary search, ``sorted_places``), where they are of one width. The distinct targets of
        every link as the value set, hashed again for each part, held ~130 MiB at once on a
        store of 350k distinct targets; each part's digests hashed instead, ~9 MiB a part, were
        the peak of the scan of many manifests (on the way to the link tables)."""
        chunks = digests.chunks if isinstance(digests, pa.ChunkedArray) else [digests]
        hit = [np.zeros(len(c), bool) for c in chunks]
        # Sorted digests (a link table's one dictionary) are searched only in each part's
        # range: every one of them in every part was the peak of the link tables (~15 MiB
        # of answers and copies at a time for 703k layers), and sixteen times the work.
        in_order = [c.null_count == 0 and is_sorted_text(c) for c in chunks]
        for part in self.blobs.parts(("digest",)) if self.blobs is not None else ():
            for values in _values(part["digest"]).chunks:
                if chunks and chunks[0].type == SHA256_BYTES:  # (the ``_layers`` links')
                    values = bytes_or_null(values)
                for i, chunk in enumerate(chunks):
                    if in_order[i] and (ranged := sorted_places_of_sorted(chunk, values)):
                        first, found_at = ranged
                        hit[i][first : first + len(found_at)] |= found_at >= 0
                        del ranged, found_at
                        continue
                    at = sorted_places(chunk, values) if chunk.null_count == 0 else None
                    if at is None:
                        found = pc.fill_null(pc.is_in(chunk, value_set=values), False)
                        hit[i] |= found.to_numpy(zero_copy_only=False)
                    else:
                        hit[i] |= at >= 0
                    del at
            del part
        return pa.chunked_array([pa.array(h) for h in hit], pa.bool_())

    def prefetch(self, digests: pa.Array) -> None:
        """Start reading the manifests that revision links name (``digests``, distinct) while
        the listing still runs (it lists repositories before blobs). A manifest is read from
        where its blob must be; read_manifests uses the result only if the listing then shows
        that blob. A manifest in several repositories is read once: what remembers it is the
        hash of its digest, and the digests wait to be read as Arrow. As Python strings, held
        to the listing's end, they left ~15 MiB of Python's memory in partly used arenas for
        the rest of the scan at 94k manifests. (Two digests with one hash, ~4e-7 at 1M
        manifests, only leave the second's manifest to be read after the listing.) The hashes
        are a sorted numpy array, not a set of Python ints: a set of 256k was ~20 MiB at the
        listing's end, the ints left in partly used arenas after it."""
        hashes = np.fromiter((hash(d) for d in digests.to_pylist()), np.int64, len(digests))
        new = ~among(hashes, self.prefetching)
        # Two sorted runs: the stable sort (timsort for 64-bit keys) merges them in linear time.
        self.prefetching = np.sort(
            np.concatenate([self.prefetching, np.sort(hashes[new])]), kind="stable"
        )
        todo = digests.filter(pa.array(new))
        self.prefetched.futures += [
            self.prefetcher.submit(self._prefetch, c) for c in _chunks(todo)
        ]

    def _prefetch(self, digests: pa.Array) -> _Prefetched:
        """The manifests ``digests`` found where their blobs must be, as a table of what each
        says (``_parsed_table``), and the pairs of their references to other manifests; their
        references are written to scratch files (``prefetched_references``). A store's
        references are several times its manifests, and as Python objects they, and then the
        parsed manifests, were most of a scan's memory while it listed (~30 MiB at 94k
        manifests); as tables held until manifest_tables, ~40 MiB through every phase of the
        scan. read_manifests and manifest_tables take from them only the manifests the
        listing shows as blobs."""
        out: list[tuple[str, ParsedManifest]] = []
        for digest in digests.to_pylist():
            # Not a blob (yet): read_manifests reads it if the listing shows it.
            with contextlib.suppress(ObjectNotFound):
                key = blob_data_key(digest, self.root)
                out.append((digest, self._read_manifest_at(digest, key)))
        references = _references_table(out)
        if references.num_rows:
            with self.spilling:
                if self.prefetched_references is None:
                    self.prefetched_references = SpilledTable(
                        references.schema, "listed references"
                    )
                self.prefetched_references.append(references)
        children = _manifest_children([references], as_bytes_where_sha256=True)
        return _parsed_table(out, as_bytes_where_sha256=True), children

    def read_manifests(self, links: dict[Kind, pa.Table]) -> None:
        """Read every manifest that links name and the listing shows as a blob (those read
        while listing are not read again), and the manifests those name in turn. Held as
        Arrow, not as a Python string and tuple per manifest: ~30 MiB at 94k manifests."""
        pre = one_array(self.prefetched_manifests["digest"])
        nested = self.prefetched_children
        found = self._blob_objects(_named_manifests(links))
        seen = found["digest"]
        while found.num_rows:
            read_before = pc.is_valid(places(found["digest"], pre))
            fresh = self._keyed(Kind.BLOB_DATA, found.filter(pc.invert(read_before)))
            batch = sorted(zip(fresh["digest"].to_pylist(), fresh["key"].to_pylist(), strict=True))
            # The nested children of the manifests found here that were read while listing: of
            # those among ``found`` and ``pre``, looked up in both rather than in a filtered
            # copy of ``found``'s digests (~18 MiB at 256k manifests, the scan's peak).
            nested_here = nested.filter(
                pc.and_(
                    is_in(nested["parent"], found["digest"]),
                    pc.is_valid(places(nested["parent"], pre)),
                )
            )
            # Follow children that exist as blobs even where no revision links them here:
            # nested indexes and cross-repository children still need reading.
            children: list[str] = []
            for (digest, _), parsed in zip(
                batch, self.pmap(self._read_manifest, batch, "manifests"), strict=True
            ):
                self.manifests[digest] = parsed
                children += [r.digest for r in parsed.references if r.kind == REF_MANIFEST]
            named = pc.unique(
                pa.chunked_array(
                    [pa.array(children, pa.string()), *nested_here["child"].chunks],
                    pa.string(),
                )
            )
            named = named.filter(pc.invert(is_in(named, seen)))
            del nested_here
            found = self._blob_objects(named)
            # (Their chunks: a ChunkedArray given to pa.chunked_array is joined into one, a
            # copy of every digest found, ~18 MiB at 256k manifests, the scan's peak.)
            seen = pa.chunked_array([*seen.chunks, *found["digest"].chunks], seen.type)
        del pre, seen, found
        self._onto_found(links, self._place_prefetched())

    def _onto_found(self, links: dict[Kind, pa.Table], found: pa.Array) -> None:
        """The revision, tag-index and tag links' digests (see resolve_links: indices into the
        digests of the manifests read while listing) as indices into the manifests' blob rows'
        digests, where those hold every one (in a sound store they do): the manifests table's
        dictionary (see manifest_tables), and then the only copy of those digests. The links
        held the other one (~18 MiB of text at 256k manifests) through their tables, the peak
        of the scan's end. ``found``: those digests (_place_prefetched)."""
        if not len(found) or not ascending(found):
            return
        for kind in (Kind.REVISION_LINK, Kind.TAG_INDEX, Kind.TAG_CURRENT):
            table = links[kind]
            moved: dict[str, tuple[list[tuple[int, ...]], pa.ChunkedArray]] = {}
            for name in ("digest", "target"):
                col = table[name]
                if not pa.types.is_dictionary(col.type) or col.null_count == len(col):
                    continue
                # (A link's target is often its digest column itself: moved once.)
                same = [identity(c) for c in col.chunks]
                twin = [m for key, m in moved.values() if key == same]
                moved[name] = same, twin[0] if twin else over_dictionary(col, found)
            for name, (_, col) in moved.items():
                at = table.schema.get_field_index(name)
                table = table.set_column(at, table.schema.field(at).with_type(col.type), col)
            links[kind] = table
            del table, moved

    def _place_prefetched(self) -> pa.Array:
        """The manifests' blob rows (``found_blobs``) as one table in digest order (their
        digests returned), and each
        manifest read while listing whose blob is among them in place of its digest as its row
        there (``at``); the others go. The digests are then held once, in the blob rows, not
        also in the manifests read while listing and in those of them the listing showed (~18
        MiB each at 256k manifests, from here to the scan's tables)."""
        tables, self.found_blobs = [_FOUND.empty_table(), *self.found_blobs], []
        tables = [t for t in tables if t.num_rows] or tables[:1]
        if len(tables) == 1 and ascending(tables[0]["digest"]):
            # Already in order (see _sorted_blob_rows): not copied again.
            blobs = tables.pop()
        else:
            blobs = _sorted_by_digest(tables, _FOUND.field("digest"))
        self.found_blobs = [blobs]
        found = one_array(blobs["digest"])
        pre, self.prefetched_manifests = self.prefetched_manifests, _PARSED.empty_table()
        at = one_array(places(pre["digest"], found))
        listed = pc.is_valid(at)
        self.prefetched_manifests = (
            pre.drop_columns(["digest"]).filter(listed).append_column("at", at.filter(listed))
        )
        return found

    def _read_manifest(self, blob: tuple[str, str]) -> ParsedManifest:
        """The manifest of ``blob`` (its digest and key)."""
        try:
            return self._read_manifest_at(*blob)
        except ObjectNotFound:
            return ParsedManifest("unread", None, problem=VANISHED)

    def _read_manifest_at(self, digest: str, key: str) -> ParsedManifest:
        """Read and parse the manifest blob ``digest`` stored at ``key``; raises
        ObjectNotFound, and turns every other failure into a problem on the result."""
        cap = self.options.max_manifest_bytes
        try:
            data = self.store.read(key, max_bytes=cap)
        except ObjectTooLarge as e:
            return ParsedManifest("unread", None, problem=f"too-large: {e.size} bytes > {cap}")
        except ObjectNotFound:
            raise
        except StoreError as e:
            return ParsedManifest("unread", None, problem=f"read-error: {e}")
        alg, _, hex_ = digest.partition(":")
        if alg in ("sha256", "sha384", "sha512") and hashlib.new(alg, data).hexdigest() != hex_:
            parsed = parse_manifest(data)
            parsed.problem = "digest-mismatch: content does not hash to its digest"
            return parsed
        return parse_manifest(data)

    def manifest_tables(self, tables: dict[str, Any]) -> pa.Table:
        """The manifests table, put in ``tables`` (with the revision and tag tables' digests
        over its dictionary, see _over_manifests, before the references are read back), and
        the references table, returned."""
        # Every manifest whose blob read_manifests found was read, here or while listing: its
        # row among the blobs (in digest order, see _place_prefetched) is its row here.
        fresh = sorted(self.manifests.items())
        (blobs,) = self.found_blobs or [_FOUND.empty_table()]
        self.found_blobs = []
        found = one_array(blobs["digest"])
        fresh_rows = _parsed_table(fresh).drop_columns(["digest"])
        pre, self.prefetched_manifests = self.prefetched_manifests, _PARSED.empty_table()
        where = np.full(len(found), -1, np.int64)
        where[np.asarray(one_array(pre["at"]), np.int64)] = np.arange(pre.num_rows)
        read_here = pa.chunked_array([pa.array([d for d, _ in fresh], pa.string())])
        fresh_at = np.asarray(one_array(pc.fill_null(places(read_here, found), -1)), np.int64)
        if (fresh_at < 0).any():
            raise AssertionError("a manifest read is not among the blobs found")
        where[fresh_at] = np.arange(pre.num_rows, pre.num_rows + len(fresh))
        if (where < 0).any():
            raise AssertionError("a manifest found among the blobs was not read")
        rows = pa.concat_tables([pre.drop_columns(["at"]), fresh_rows]).take(pa.array(where))
        del pre, fresh_rows, where, read_here, fresh_at
        bad = pc.is_valid(rows["problem"])
        if pc.any(bad).as_py():
            objects = self._keyed(Kind.BLOB_DATA, blobs.filter(bad))
            for digest, problem, obj in zip(
                found.filter(bad).to_pylist(),
                rows["problem"].filter(bad).to_pylist(),
                objects.select(["key", "size", "last_modified"]).to_pylist(),
                strict=True,
            ):
                self.anomaly(
                    "bad-manifest", "error", f"manifest {digest}: {problem}", obj=ObjectInfo(**obj)
                )
        size = blobs["size"]
        del blobs
        # Sorted distinct digests: a dictionary of themselves, with no hashing or copy.
        digest = as_dictionary(found)
        del found
        mt = table_from_columns(
            "manifests",
            {"digest": digest, "size": size, **{n: rows[n] for n in _PARSED.names[1:]}},
        )
        tables["manifests"] = mt
        _over_manifests(tables)
        # The references of the manifests read here, then of those read while listing (see
        # _prefetch), a few parts at a time, each few as one chunk; in the order of their
        # manifests' digests, each manifest's in the order it lists them (a stable sort: a
        # manifest's references are all in one of these tables). Their children are digests
        # the other tables name too, nearly all (a layer is a ``_layers`` link's, a platform
        # manifest a revision's): as text, a dictionary per few parts, they were ~55 MiB at
        # 1.2M references, held into share_digests, the scan's peak. So they are read twice:
        # first for the few digests no other table names, which join the union of the other
        # tables' digests (share_digests), then onto that union, each row's parent and child
        # its index there, their text never held. The references of manifests read while
        # listing whose blob the listing did not show (not among the manifests) go.
        fresh_refs = _references_table(fresh)
        del fresh, rows, digest, size, mt
        self.manifests = {}
        spilled, self.prefetched_references = self.prefetched_references, None
        self.prefetched_children = _manifest_children([])

        def read() -> Iterator[pa.Table]:
            yield fresh_refs
            if spilled is not None:
                parts = spilled.parts(mapped=False)
                while group := list(itertools.islice(parts, _REFERENCE_PARTS)):
                    yield pa.concat_tables(group).combine_chunks()

        # Taken out of ``tables`` (their places kept) so that the union holds the only
        # reference to each dictionary and lets each go as it cuts it into groups.
        others: dict[str, pa.Table] = {}
        for t in DIGEST_COLUMNS:
            if tables.get(t) is not None:
                others[t], tables[t] = tables[t], None
        named = {
            identity(d): d
            for t, table in others.items()
            for c in DIGEST_COLUMNS[t]
            for d in dictionaries(table[c])
        }
        searched = [(d, ascending(d)) for d in named.values()]
        del named
        unnamed = pa.chunked_array([_unnamed(g["child"], searched) for g in read()], pa.string())
        del searched
        also = pc.unique(unnamed)
        del unnamed
        shared = share_digests(others, also.take(pc.array_sort_indices(also)))
        del also
        tables.update(others)
        del others
        if shared is None:  # (no table names a digest: an empty store)
            if any(tables[t].num_rows for t in DIGEST_COLUMNS if tables.get(t) is not None):
                raise AssertionError("share_digests makes one dictionary")
            shared = pa.array([], pa.string())
        # Per place: a manifest's digest (a reference of any other parent goes).
        is_manifest = np.zeros(len(shared) + 1, bool)
        manifest_at = places(tables["manifests"]["digest"], shared)
        is_manifest[np.asarray(one_array(pc.fill_null(manifest_at, -1)), np.int64)] = True
        is_manifest[-1] = False
        del manifest_at
        out: list[pa.Table] = []
        pending: list[pa.Table] = []  # groups' rows joined into one chunk (see _joined)
        over_shared = pa.dictionary(pa.int32(), shared.type)  # (text, or the digests' bytes)
        schema = pa.schema(
            pa.field(f.name, over_shared) if f.name in ("parent", "child") else f
            for f in SCHEMAS["references"]
        )
        for group in read():
            parent = one_array(pc.fill_null(places(group["parent"], shared), -1))
            keep = is_manifest[np.asarray(parent, np.int64)]
            group, parent = group.filter(keep), parent.filter(pa.array(keep))
            child = one_array(places(group["child"], shared))
            if child.null_count:
                raise AssertionError("a reference's child is not among the scan's digests")
            over = {"parent": parent, "child": child}
            columns = [
                pa.DictionaryArray.from_arrays(over[n], shared) if n in over else group[n]
                for n in SCHEMAS["references"].names
            ]
            pending.append(pa.table(columns, schema=schema))
            del group, parent, child, columns
            if sum(t.num_rows for t in pending) >= _REFERENCE_CHUNK_ROWS:
                out.append(_joined(pending, shared))
        if pending:
            out.append(_joined(pending, shared))
        fresh_refs = None
        if spilled is not None:
            spilled.close()
        # (No empty table first: its empty dictionaries would be the column's second ones.)
        return pa.concat_tables(out)

    # -- tables ------------------------------------------------------------------------------

    def link_table(self, name: str, resolved: dict[Kind, pa.Table], kind: Kind) -> pa.Table:
        """The snapshot table ``name`` from the resolved links of ``kind`` (taken out of
        ``resolved``), in ``_LINK_ORDER``."""
        # Encoded in the order of the columns (see _take). A layer's links in many repositories
        # hold the same content, and so the same ETag.
        links = _sorted_out_of(
            resolved, kind, *_LINK_ORDER[kind], encode=("etag", "repo", "tag", "digest", "target")
        )
        digest, target = links["digest"], links["target"]
        present = by_value(target, self.stored, text=False)
        return table_from_columns(
            name,
            {
                "repository": links["repo"],
                "tag": links["tag"],
                "digest": target if name == "tags" else digest,
                "target": target,
                "key": links["key"],
                "size": links["size"],
                "last_modified": links["last_modified"],
                "etag": links["etag"],
                "alias": _aliases(digest, target),
                "blob_present": pc.fill_null(present, False),
                "resolved_by": links["resolved_by"],
                "problem": links["problem"],
            },
        )

    def repositories_table(self, links: dict[Kind, pa.Table]) -> Any:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for kind, what in (
            (Kind.TAG_CURRENT, "tags"),
            (Kind.REVISION_LINK, "revisions"),
            (Kind.LAYER_LINK, "layer_links"),
        ):
            for item in pc.value_counts(links[kind]["repo"]).to_pylist():
                counts[item["values"] or ""][what] += item["counts"]
        for repo, _ in self.uploads:
            counts[repo]["uploads"] += 1
        t = TableBuilder("repositories")
        for repo in sorted(self.repo_parts):
            parts = self.repo_parts[repo]
            if not parts:
                continue  # only foreign keys mentioned it
            repo_kind = (
                "manifest-bearing"
                if "_manifests" in parts
                else "link-only"
                if "_layers" in parts
                else "upload-only"
            )
            valid = valid_repository_name(repo)
            if not valid:
                self.anomaly(
                    "invalid-repository-name",
                    "error",
                    f"{repo!r} is not a valid repository name; Distribution ignores it",
                    key=f"{self.root}repositories/{repo}/",
                    repo=repo,
                )
            c = counts[repo]
            t.add(
                repository=repo,
                kind=repo_kind,
                valid_name=valid,
                tags=c["tags"],
                revisions=c["revisions"],
                layer_links=c["layer_links"],
                uploads=c["uploads"],
            )
        return t.build()

    def uploads_table(self) -> Any:
        items = sorted(self.uploads.items())
        startedat = [next((o for r, o in u.files if r.name == "startedat"), None) for _, u in items]
        present = [o for o in startedat if o is not None]
        contents = dict(
            zip(
                [o.key for o in present],
                self.pmap(self._read_startedat, present, "uploads"),
                strict=True,
            )
        )
        t = TableBuilder("uploads")
        for ((repo, upload_id), u), st in zip(items, startedat, strict=True):
            times = [o.last_modified for _, o in u.files]
            if u.multipart:
                times.append(u.multipart.initiated)
            problem = None
            started, source = (contents.get(st.key) if st else None), "startedat"
            if st is None:
                problem = "no startedat"
            elif started is None:
                problem = "unparsable startedat"
            if started is None:
                started, source = _uuid7_time(upload_id), "uuid7"
            if started is None and u.multipart is not None:
                started, source = u.multipart.initiated, "multipart"
            if started is None:
                started, source = min(times), "mtime"
            data = next((o for r, o in u.files if r.name == "data"), None)
            files = sorted((o for _, o in u.files), key=lambda o: o.key)
            t.add(
                repository=repo,
                upload_id=upload_id,
                started_at=started,
                started_source=source,
                last_activity=max(times),
                data_size=data.size if data else None,
                keys=[o.key for o in files],
                key_sizes=[o.size for o in files],
                key_times=[o.last_modified for o in files],
                multipart_key=u.multipart.key if u.multipart else None,
                multipart_upload_id=u.multipart.upload_id if u.multipart else None,
                problem=problem,
            )
        return t.build()

    def _read_startedat(self, obj: ObjectInfo) -> datetime | None:
        try:
            text = self.store.read(obj.key, max_bytes=LINK_READ_CAP).decode("ascii").strip()
            return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except (StoreError, UnicodeDecodeError, ValueError):
            try:
                return datetime.fromisoformat(text).astimezone(UTC)
            except (ValueError, UnboundLocalError):
                return None


def _uuid7_time(upload_id: str) -> datetime | None:
    """Distribution 3.1+ upload ids are UUIDv7: the first 48 bits are Unix milliseconds."""
    try:
        u = uuid.UUID(upload_id)
    except ValueError:
        return None
    if u.version != 7:
        return None
    return datetime.fromtimestamp(int(u.hex[:12], 16) / 1000, tz=UTC)


@collector_paused
def scan(
    store: ObjectStore,
    options: ScanOptions | None = None,
    *,
    executor: Executor | None = None,
    progress: Progress = no_progress,
) -> Snapshot:
    """Scan ``store`` and return its Snapshot. Raises LayoutError if it holds no v2 layout and
    StoreError if the service fails; any single bad object only becomes an anomaly."""
    options = options or ScanOptions()
    if executor is not None:
        return _Scan(store, options, executor, progress).run()
    with ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="scan") as pool:
        return _Scan(store, options, pool, progress).run()


__all__ = ["ScanOptions", "scan"]
