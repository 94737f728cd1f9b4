"""The scan's per-kind parts: merged sixteen at a time (fewer, larger buffers), rows in order;
the distinct values of its dictionary-encoded link columns; and the manifests it reads while
listing, which count only where the listing shows their blobs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from regsweep.demo.generator import generate_demo
from regsweep.layout.digest_columns import SHA256_BYTES, as_bytes, bytes_or_null, text_of
from regsweep.layout.keys import blob_data_key
from regsweep.layout.manifest import ParsedManifest
from regsweep.scan import scanner
from regsweep.scan.scanner import _contents_onto, _digests_onto, _distinct_of, _Parts, scan
from regsweep.scan.snapshot import column, constant, identity, rows
from regsweep.storage.filesystem import FilesystemStore

V2 = "docker/registry/v2/"


def test_parts_merge_sixteen_at_a_time_and_keep_the_rows_in_order() -> None:
    parts = _Parts()
    for i in range(300):
        parts.add(pa.table({"n": list(range(i * 3, i * 3 + 3))}))
    assert pa.concat_tables(parts.tables)["n"].to_pylist() == list(range(900))
    # 300 = 256 + 2 x 16 + 12: one table merged twice, two merged once, twelve as added.
    assert parts.levels == [2, 1, 1] + [0] * 12
    assert [t.num_rows for t in parts.tables] == [768, 48, 48] + [3] * 12
    assert all(t["n"].num_chunks == 1 for t in parts.tables)


def test_a_column_null_in_every_row_is_held_without_buffers_until_typed() -> None:
    """While listing, a column that a batch leaves null in every row (a filesystem's ETags, a
    ``_layers`` link's tag) takes no buffer; merged with a batch that has values it takes
    their type, and given its type at the end it is nulls held once."""
    n = 100_000
    empty = pa.table(
        {"etag": pa.nulls(n, pa.string()).dictionary_encode(), "size": pa.repeat(71, n)}
    )
    untyped = scanner._nulls_untyped(empty)
    assert untyped["etag"].type == pa.null() and untyped["etag"].nbytes == 0
    assert untyped["size"].type == pa.int64()
    with_values = pa.table({"etag": pa.array(["e1", None]).dictionary_encode(), "size": [1, 2]})
    parts = _Parts()
    parts._FAN_IN = 2  # type: ignore[misc]
    parts.add(untyped)
    parts.add(with_values)
    (merged,) = parts.tables
    assert merged["etag"].to_pylist() == [None] * n + ["e1", None]
    schema = pa.schema([("etag", pa.dictionary(pa.int32(), pa.string())), ("size", pa.int64())])
    typed = scanner._typed(untyped, schema)
    assert typed.schema == schema and typed["etag"].null_count == n
    assert len({c.buffers()[1].address for c in typed["etag"].chunks}) == 1  # one, repeated


def test_merged_parts_hold_a_column_of_one_value_once() -> None:
    """While listing, the sixteen tables merged into one keep a column of one value in every
    row (a link's size) as one chunk repeated, and every other column as one chunk."""
    parts = _Parts()
    for i in range(16):
        parts.add(pa.table({"size": pa.repeat(71, 10_000), "n": list(range(i, i + 10_000))}))
    (merged,) = parts.tables
    assert merged["size"].to_pylist() == [71] * 160_000
    assert len({c.buffers()[1].address for c in merged["size"].chunks}) == 1  # one, repeated
    assert merged["n"].num_chunks == 1


def test_a_sort_holds_a_column_of_one_value_once() -> None:
    """Sorting the links (_take) moves the columns of many values and keeps those of one (a
    link's size, nulls) as one chunk repeated, not a copy of 4-8 bytes a row; a column to be
    encoded that is null in every row (a ``_layers`` link's tag, a filesystem's ETag) too,
    as nulls of the encoded type."""
    n = 100_000
    table = pa.table(
        {
            "digest": pa.array([f"d{i}" for i in range(n)]),
            "size": constant(71, n, pa.int64()),
            "problem": pa.nulls(n, pa.string()),
            "tag": pa.nulls(n, pa.string()),
            "etag": constant(None, n, pa.dictionary(pa.int32(), pa.string())),
        }
    )
    order = pa.array(range(n - 1, -1, -1))
    out = scanner._take(table, order, encode=("etag", "tag", "digest"))
    assert out["digest"].to_pylist() == [f"d{i}" for i in range(n - 1, -1, -1)]
    for name in ("size", "problem", "tag", "etag"):
        assert out[name].num_chunks > 1, name
        assert len({c.buffers()[1].address for c in out[name].chunks}) == 1, name
    assert out["size"].to_pylist() == [71] * n and out["problem"].null_count == n
    for name in ("tag", "etag", "digest"):
        assert out.schema.field(name).type == pa.dictionary(pa.int32(), pa.string()), name
    assert out["tag"].null_count == out["etag"].null_count == n


def test_distinct_values_are_those_the_rows_use() -> None:
    """A dictionary can hold values no row uses (a filtered column), and chunks can share one
    dictionary or have their own, also across columns: the distinct values are the rows' own,
    and chunks over one dictionary give it once."""
    shared = pa.array(["a", "b", "c", "unused"])
    chunks = [
        pa.DictionaryArray.from_arrays(pa.array([0, 1, None], pa.int32()), shared),
        pa.DictionaryArray.from_arrays(pa.array([1, 2], pa.int32()), shared),
        pa.array(["d", "a", None]).dictionary_encode(),
    ]
    col = pa.chunked_array(chunks)
    other = pa.chunked_array([pa.DictionaryArray.from_arrays(pa.array([1, 0], pa.int32()), shared)])
    arrays = _distinct_of(col, other)
    assert len(arrays) == 2  # one per dictionary
    assert sorted(v for a in arrays for v in a.to_pylist()) == ["a", "a", "b", "c", "d"]
    every = pa.chunked_array([pa.DictionaryArray.from_arrays(pa.array([2, 0, 1, 0]), shared[:3])])
    (whole,) = _distinct_of(every)
    assert whole.to_pylist() == ["a", "b", "c"]  # every value used: the dictionary, no copy
    assert identity(whole) == identity(every.chunk(0).dictionary)
    plain = pa.chunked_array([pa.array(["x", None, "x", "y"])])
    assert [sorted(a.to_pylist()) for a in _distinct_of(plain)] == [["x", "y"]]


def test_a_manifest_read_while_listing_counts_only_if_the_listing_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Manifests that revision links name are read while the listing runs, their references
    kept as a table. One whose blob the listing then does not show (deleted between the read
    and the listing of its shard) is not a manifest of the snapshot, and none of its
    references are: the scan is the same as with the blob gone."""
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=3, now=datetime(2026, 11, 20, tzinfo=UTC))
    before = scan(store)
    refs = before["references"]
    digest = sorted(set(column(refs, "parent")))[0]
    assert digest in column(before["revisions"], "digest")
    key = blob_data_key(digest, V2)
    real = scanner.list_layout

    def hiding(*args: Any, **kwargs: Any) -> Iterator[pa.Table]:
        for table in real(*args, **kwargs):
            yield table.filter(pc.not_equal(table["key"], key))

    monkeypatch.setattr(scanner, "list_layout", hiding)
    hidden = scan(store)
    monkeypatch.undo()
    assert digest not in column(hidden["manifests"], "digest")
    assert digest not in column(hidden["references"], "parent")
    assert hidden["references"].num_rows < refs.num_rows
    store.delete_many([key])
    gone = scan(store)
    for name in gone.names():
        assert rows(hidden[name]) == rows(gone[name]), name


@pytest.mark.parametrize("verify_links", [True, False])
def test_links_read_a_few_at_a_time_give_the_same_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verify_links: bool
) -> None:
    """The scan reads and judges the links it must read a slice at a time (an audit reads
    every link of the store). With slices of three links, and bad links of each kind spread
    over the slices, the snapshot is the one read all at once: the same targets, ways of
    resolving and problems on the same rows, and the same anomalies in the same order. Some
    links hold another link's digest: their targets are no path's digest, which the scan
    keeps past the end of the paths' dictionary (``_over_paths``), the same few values in
    several slices."""
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=5, now=datetime(2026, 11, 20, tzinfo=UTC))
    options = scanner.ScanOptions(verify_links=verify_links)
    whole = scan(store, options)
    elsewhere: dict[str, str] = {}  # _layers links made to hold another's digest
    for table in ("revisions", "layer_links", "tags"):
        keys = column(whole.with_keys(table), "key")
        others = [store.read(key, max_bytes=4096) for key in keys[:2]]
        for i, key in enumerate(keys[1::4]):
            good = store.read(key, max_bytes=4096)
            other = others[0] if others[0] != good else others[1]
            bad = [good + b"\n", other, b"", good.upper(), b"not a digest", other][i % 6]
            store.write(key, bad)
            if bad is other and table == "layer_links":
                elsewhere[key] = other.decode()
    monkeypatch.setattr(scanner, "_LINK_SLICE", 1 << 20)
    at_once = scan(store, options)
    monkeypatch.setattr(scanner, "_LINK_SLICE", 3)
    sliced = scan(store, options)
    assert len(column(at_once["anomalies"], "key")) > 10
    assert len(elsewhere) > 2 and len(set(elsewhere.values())) < len(elsewhere)
    for snap in (at_once, sliced) if verify_links else ():  # else their paths are trusted
        links = snap.with_keys("layer_links")
        targets = dict(zip(column(links, "key"), column(links, "target"), strict=True))
        assert {key: targets[key] for key in elsewhere} == elsewhere
    for name in at_once.names():
        assert rows(sliced[name]) == rows(at_once[name]), name


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def test_link_digests_go_onto_the_manifests_read_while_listing() -> None:
    """Revision and tag-index links name the manifests read while listing: their digest
    column, listed in chunks each over its own dictionary (with nulls and an empty chunk),
    becomes one chunk over the sorted digests of those manifests, with the same values. A
    link naming a manifest not among them (its blob missing) leaves the table as it was, for
    resolve_links to unite."""
    manifests = pa.array([_digest(n) for n in range(0, 40, 2)])
    chunks = [
        pa.array([_digest(6), _digest(2), None, _digest(6)]).dictionary_encode(),
        pa.array([], pa.string()).dictionary_encode(),
        pa.array([_digest(38), _digest(0)]).dictionary_encode(),
    ]
    table = pa.table({"repo": pa.array(["a"] * 6), "digest": pa.chunked_array(chunks)})
    onto = _digests_onto(table, manifests)
    assert onto["digest"].num_chunks == 1
    assert identity(onto["digest"].chunk(0).dictionary) == identity(manifests)
    assert onto["digest"].to_pylist() == table["digest"].to_pylist()
    assert onto["repo"].to_pylist() == ["a"] * 6
    odd = table.set_column(
        1,
        "digest",
        pa.chunked_array([*chunks[:2], pa.array([_digest(5), _digest(0)]).dictionary_encode()]),
    )
    assert _digests_onto(odd, manifests) is odd
    assert _digests_onto(table, None) is table
    plain = table.set_column(1, "digest", table["digest"].cast(pa.string()))
    assert _digests_onto(plain, manifests) is plain


def test_tag_contents_go_onto_the_manifests_read_while_listing() -> None:
    """What the tag links read while listing say (a digest, or null for a bad link) becomes
    indices into the manifests read while listing, with the same values; a tag naming any
    other digest leaves the contents as they were."""
    manifests = pa.array([_digest(n) for n in range(10)])
    contents = pa.table(
        {
            "row": pa.array([0, 1, 2, 3], pa.int32()),
            "target": pa.array([_digest(3), None, _digest(9), _digest(3)]),
            "problem": pa.array([None, "empty", None, None]),
        }
    )
    onto = _contents_onto(contents, manifests)
    assert identity(onto["target"].chunk(0).dictionary) == identity(manifests)
    assert rows(onto) == rows(contents)
    other = contents.set_column(1, "target", pa.array([_digest(3), None, _digest(11), None]))
    assert _contents_onto(other, manifests) is other
    empty = contents.slice(0, 0)
    assert _contents_onto(empty, manifests) is empty


def test_a_sound_stores_link_digests_are_the_manifests_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a sound store every revision and tag-index link names a manifest read while
    listing: when the links are resolved, both tables' digests are indices into those
    manifests' digests (one array, no copy of them), and the snapshot is what it was."""
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=3, now=datetime(2026, 11, 20, tzinfo=UTC))
    seen: list[bool] = []
    real = scanner._Scan.resolve_links

    def checking(self: scanner._Scan) -> Any:
        manifests = self.manifest_digests()
        assert manifests is not None and len(manifests)
        for kind in (scanner.Kind.REVISION_LINK, scanner.Kind.TAG_INDEX):
            col = self.kinds[kind]["digest"]
            seen.append(
                col.num_chunks == 1 and identity(col.chunk(0).dictionary) == identity(manifests)
            )
        return real(self)

    monkeypatch.setattr(scanner._Scan, "resolve_links", checking)
    onto = scan(store)
    monkeypatch.undo()
    monkeypatch.setattr(scanner, "_digests_onto", lambda table, manifests: table)
    monkeypatch.setattr(scanner, "_contents_onto", lambda contents, manifests: contents)
    apart = scan(store)
    assert seen == [True, True]
    for name in onto.names():
        assert rows(onto[name]) == rows(apart[name]), name


def test_after_reading_manifests_link_digests_are_the_manifests_blob_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the manifests are read, the revision, tag-index and tag links' digests are indices
    into the digests of the manifests' blob rows (the manifests table's dictionary, one array,
    no other copy of them), and the snapshot is what it was without that step."""
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=4, now=datetime(2026, 11, 20, tzinfo=UTC))
    seen: list[bool] = []
    real = scanner._Scan._onto_found

    def checking(self: scanner._Scan, links: dict[Any, pa.Table], found: pa.Array) -> None:
        real(self, links, found)
        (blobs,) = self.found_blobs
        digests = identity(blobs["digest"].chunk(0))
        for kind, name in (
            (scanner.Kind.REVISION_LINK, "digest"),
            (scanner.Kind.TAG_INDEX, "digest"),
            (scanner.Kind.TAG_CURRENT, "target"),
        ):
            col = links[kind][name]
            seen.append(all(identity(c.dictionary) == digests for c in col.chunks))

    monkeypatch.setattr(scanner._Scan, "_onto_found", checking)
    onto = scan(store)
    monkeypatch.undo()
    monkeypatch.setattr(scanner._Scan, "_onto_found", lambda self, links, found: None)
    apart = scan(store)
    assert seen == [True, True, True]
    for name in onto.names():
        assert rows(onto[name]) == rows(apart[name]), name


def test_manifests_read_while_listing_hold_their_digests_as_bytes() -> None:
    """A batch of manifests read while listing holds its digests as their bytes where every
    one is sha256 (text otherwise); sorted, the batches keep them as bytes, spelling the same
    rows, and with a batch of text among them all are text."""
    parsed = ParsedManifest("image", "application/vnd.oci.image.manifest.v1+json")
    sha = [f"sha256:{i:064x}" for i in (5, 3, 9, 1)]
    batches = [
        scanner._parsed_table([(d, parsed) for d in sha[:2]], as_bytes_where_sha256=True),
        scanner._parsed_table([(d, parsed) for d in sha[2:]], as_bytes_where_sha256=True),
    ]
    assert all(b.schema.field("digest").type == SHA256_BYTES for b in batches)
    odd = scanner._parsed_table([("sha512:" + "ab" * 64, parsed)], as_bytes_where_sha256=True)
    assert odd.schema.field("digest").type == pa.string()
    whole = scanner._sorted_parsed(list(batches))
    assert whole.schema.field("digest").type == SHA256_BYTES
    assert text_of(whole["digest"].chunk(0)).to_pylist() == sorted(sha)
    mixed = scanner._sorted_parsed([*batches, odd])
    assert mixed["digest"].to_pylist() == sorted([*sha, "sha512:" + "ab" * 64])
    assert mixed.num_rows == 5


def test_gathered_takes_rows_from_each_chunk_as_a_take_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A column of several chunks taken chunk by chunk (a few rows at a time here): the same
    values, nulls and dictionary values as Arrow's take of the joined column; a column it
    cannot take so (text, booleans, one chunk) is left to Arrow (None)."""
    monkeypatch.setattr(scanner, "_GATHER_ROWS", 3)
    order = pa.array([6, 0, 3, 3, 5, 1, 2, 4], pa.int64())
    times = pa.chunked_array(
        [pa.array([5, None, 7], pa.int64()), pa.array([], pa.int64()), pa.array([1, 2, 3, 4])]
    ).cast(pa.timestamp("ms", tz="UTC"))
    kinds = pa.chunked_array(
        [
            pa.DictionaryArray.from_arrays(pa.array([0, 1, None], pa.int32()), ["a", "b"]),
            pa.DictionaryArray.from_arrays(pa.array([1, 0, 1, 0], pa.int32()), ["c", "a"]),
        ]
    )
    for col in (times, kinds, pa.chunked_array([[10, 11, 12], [13, 14, 15, 16]], pa.int32())):
        got = scanner._gathered(col, order)
        assert got is not None
        assert got.to_pylist() == col.take(order).to_pylist()
    assert scanner._gathered(pa.chunked_array([["a"], ["b"]]), pa.array([1, 0])) is None
    assert scanner._gathered(pa.chunked_array([[True], [False]]), pa.array([1, 0])) is None
    assert scanner._gathered(pa.chunked_array([[1, 2]]), pa.array([1, 0])) is None


@pytest.mark.parametrize("dangling", [False, True])
def test_manifests_blob_rows_found_in_digest_order_are_those_hashing_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dangling: bool
) -> None:
    """read_manifests first finds the blobs of the manifests that revision and tag links name
    (one sorted dictionary of them) by binary search in each part of the blobs, in digest
    order: the same snapshot as when each part is hashed. Where every one of them is a blob,
    the rows' digests are that dictionary itself, not a copy; where one is gone (a revision
    link whose blob was deleted), the others."""
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=5, now=datetime(2026, 11, 20, tzinfo=UTC))
    if dangling:
        first = scan(store)
        digest = sorted(set(column(first["revisions"], "digest")))[0]
        store.delete_many([blob_data_key(digest, V2)])
    seen: list[tuple[int, bool]] = []
    real = scanner._Scan._sorted_blob_rows

    def checking(self: scanner._Scan, digests: pa.ChunkedArray) -> pa.Table | None:
        got = real(self, digests)
        if got is not None:
            (named,) = [c for c in digests.chunks if len(c)]
            same = identity(got["digest"].chunk(0)) == identity(named)
            seen.append((len(named) - got.num_rows, same))
        return got

    monkeypatch.setattr(scanner._Scan, "_sorted_blob_rows", checking)
    in_order = scan(store)
    monkeypatch.undo()
    monkeypatch.setattr(scanner._Scan, "_sorted_blob_rows", lambda self, digests: None)
    hashed = scan(store)
    assert seen == ([(1, False)] if dangling else [(0, True)])
    for name in in_order.names():
        assert rows(in_order[name]) == rows(hashed[name]), name


def test_tag_links_read_go_onto_the_revision_links_digests_a_slice_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tag links a filesystem's scan reads come out of their reading (a slice at a time,
    two links here) as indices into the revision links' one dictionary, where it holds what
    each says; where one says a digest it does not hold, all are text, and either way the
    snapshot is the one read without it."""
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=3, now=datetime(2026, 11, 20, tzinfo=UTC))
    monkeypatch.setattr(scanner, "_LINK_SLICE", 2)
    kinds: list[Any] = []
    real = scanner._Scan._read_links_of

    def checking(self: scanner._Scan, kind: Any, *args: Any) -> Any:
        got = real(self, kind, *args)
        if kind is scanner.Kind.TAG_CURRENT:
            kinds.append(got[0].type)
        return got

    monkeypatch.setattr(scanner._Scan, "_read_links_of", checking)
    onto = scan(store)
    assert len(kinds) == 1 and pa.types.is_dictionary(kinds[0])
    monkeypatch.setattr(scanner, "_named_by", lambda resolved, kind: None)
    apart = scan(store)
    for name in onto.names():
        assert rows(onto[name]) == rows(apart[name]), name
    target = pa.array(["sha256:" + "a" * 64, None, "sha256:" + "c" * 64])
    over = scanner._onto_sorted(target, pa.array(["sha256:" + "a" * 64, "sha256:" + "c" * 64]))
    assert pa.types.is_dictionary(over.type) and over.to_pylist() == target.to_pylist()
    assert scanner._onto_sorted(target, pa.array(["sha256:" + "a" * 64])) is target


def test_references_are_joined_into_chunks_of_many_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The references are read back a few parts at a time and joined into chunks of
    ``_REFERENCE_CHUNK_ROWS`` rows or more: their parent and child indices over the one
    dictionary as they were, the other columns' few values united. Any size of chunk gives
    the same snapshot."""
    shared = pa.array(["sha256:" + c * 64 for c in "abc"])
    tables = [
        pa.table(
            {
                "parent": pa.DictionaryArray.from_arrays(pa.array(p, pa.int32()), shared),
                "kind": pa.array(k).dictionary_encode(),
                "size": pa.array(n, pa.int64()),
            }
        )
        for p, k, n in (([0, 1], ["layer", "config"], [1, 2]), ([2], ["manifest"], [None]))
    ]
    want = pa.concat_tables(tables).to_pylist()
    joined = scanner._joined(tables, shared)
    assert tables == []
    assert joined.to_pylist() == want
    assert all(joined[name].num_chunks == 1 for name in joined.column_names)
    assert identity(joined["parent"].chunk(0).dictionary) == identity(shared)
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=6, now=datetime(2026, 11, 20, tzinfo=UTC))
    whole = scan(store)
    monkeypatch.setattr(scanner, "_REFERENCE_CHUNK_ROWS", 3)
    monkeypatch.setattr(scanner, "_REFERENCE_PARTS", 1)
    small = scan(store)
    for name in whole.names():
        assert rows(whole[name]) == rows(small[name]), name


def test_manifests_read_while_listing_are_bytes_until_the_blobs_are_sorted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifests read while listing keep their digests as bytes through the sort of the
    blobs, and the revision and tag-index links and the tag links' contents go onto them as
    bytes; at gather's end all are text again, over one array (manifests_as_text). The
    snapshot is the one made with the manifests as text from the listing's end."""
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=7, now=datetime(2026, 11, 20, tzinfo=UTC))
    seen: list[Any] = []
    sorting, resolving = scanner._Scan.sorted_blobs, scanner._Scan.resolve_links

    def sorted_blobs(self: scanner._Scan, odd: pa.Table) -> Any:
        seen.append(self.prefetched_manifests.schema.field("digest").type)
        return sorting(self, odd)

    def resolve_links(self: scanner._Scan) -> Any:
        manifests = self.manifest_digests()
        assert manifests is not None
        seen.append(manifests.type)
        target = self.link_contents["target"].chunk(0)
        seen.append(identity(target.dictionary) == identity(manifests))
        for kind in (scanner.Kind.REVISION_LINK, scanner.Kind.TAG_INDEX):
            digest = self.kinds[kind]["digest"].chunk(0)
            seen.append(identity(digest.dictionary) == identity(manifests))
        return resolving(self)

    monkeypatch.setattr(scanner._Scan, "sorted_blobs", sorted_blobs)
    monkeypatch.setattr(scanner._Scan, "resolve_links", resolve_links)
    held_as_bytes = scan(store)
    monkeypatch.undo()
    assert seen == [SHA256_BYTES, pa.string(), True, True, True]
    real = scanner._sorted_by_digest
    monkeypatch.setattr(
        scanner, "_sorted_by_digest", lambda tables, field, text=True: real(tables, field)
    )
    as_text = scan(store)
    for name in held_as_bytes.names():
        assert rows(held_as_bytes[name]) == rows(as_text[name]), name


def test_tag_links_read_while_listing_go_onto_the_manifests_as_bytes_or_as_text() -> None:
    """Tag links read while listing hold what they say as bytes where each is a sha256 digest
    (null for a bad link); joined, a batch of text makes them all text. Put over the
    manifests read while listing, as bytes or as text, they keep their values; where a tag
    names another digest, they are text."""
    bytes_batch = pa.table(
        {
            "row": pa.array([0, 1], pa.int32()),
            "target": bytes_or_null(pa.array([_digest(3), None])),
            "problem": pa.array([None, "empty"]),
        }
    )
    text_batch = pa.table(
        {
            "row": pa.array([2], pa.int32()),
            "target": pa.array(["sha512:" + "ab" * 64]),
            "problem": pa.array([None], pa.string()),
        }
    )
    assert scanner._link_reads([bytes_batch]).schema.field("target").type == SHA256_BYTES
    mixed = scanner._link_reads([bytes_batch, text_batch])
    assert mixed["target"].to_pylist() == [_digest(3), None, "sha512:" + "ab" * 64]
    assert scanner._link_reads([]).num_rows == 0
    names = pa.array([_digest(n) for n in range(5)])
    for manifests in (names, as_bytes(names)):
        onto = _contents_onto(bytes_batch, manifests)
        assert identity(onto["target"].chunk(0).dictionary) == identity(manifests)
        assert [r["target"] for r in rows(onto)] == [_digest(3), None]
    other = bytes_batch.set_column(1, "target", bytes_or_null(pa.array([_digest(9), None])))
    left = _contents_onto(other, as_bytes(names))
    assert left["target"].type == pa.string()
    assert left["target"].to_pylist() == [_digest(9), None]


def test_rows_in_the_order_of_their_indices_stably() -> None:
    """_stable_order: the rows of dictionary chunks in the order of their indices, rows of
    one index in their order, as numpy's stable argsort gives them."""
    rng = np.random.default_rng(3)
    values = pa.array([f"v{i}" for i in range(50)])
    chunks = [
        pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 50, n), pa.int32()), values)
        for n in (0, 7, 300, 1)
    ]
    joined = np.concatenate([np.asarray(c.indices) for c in chunks])
    got = scanner._stable_order(chunks)
    assert got.dtype == np.int32
    assert got.tolist() == np.argsort(joined, kind="stable").tolist()


def test_sorted_link_digests_are_looked_up_in_each_blob_parts_range_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a link's blob is stored: sorted digests (a link table's one dictionary) are
    searched only within each part of the blobs' range, with the same answers as a search of
    every digest in every part. A link whose blob is gone says so either way."""
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=8, now=datetime(2026, 11, 20, tzinfo=UTC))
    first = scan(store)
    layer = sorted(set(column(first["layer_links"], "target")))[-1]
    store.delete_many([blob_data_key(layer, V2)])
    calls: list[int] = []
    real = scanner.sorted_places_of_sorted

    def counting(values: pa.Array, dictionary: pa.Array) -> Any:
        calls.append(len(values))
        return real(values, dictionary)

    monkeypatch.setattr(scanner, "sorted_places_of_sorted", counting)
    ranged = scan(store)
    monkeypatch.setattr(scanner, "sorted_places_of_sorted", lambda values, dictionary: None)
    every = scan(store)
    assert calls
    gone = [r for r in rows(ranged["layer_links"]) if r["target"] == layer]
    assert gone and not any(r["blob_present"] for r in gone)
    for name in ranged.names():
        assert rows(ranged[name]) == rows(every[name]), name


def test_a_digests_algorithm_is_what_comes_before_its_first_colon() -> None:
    """A link's algorithm (which tells an alias link) is cut off at the first colon, not split
    there: the same answer as the split for every shape of digest a link can hold."""
    digests = pa.array(
        ["sha256:ab", "sha512:cd:ef", "no-colon", "", ":x", "sha256:a\nb", None], pa.string()
    )
    split = pc.list_element(pc.split_pattern(digests, ":", max_splits=1), 0)
    assert scanner._algorithm(digests).to_pylist() == split.to_pylist()
    assert scanner._algorithm(digests).to_pylist()[:3] == ["sha256", "sha512", "no-colon"]


def test_manifest_children_read_while_listing_are_bytes_until_spelled_again() -> None:
    """The (parent, child) pairs of the manifests read while listing are held as the bytes
    their digests spell, where every one is sha256, and spelled as the same text at the
    listing's end; a pair of another algorithm keeps the table as text."""
    a, b, c = (f"sha256:{ch * 64}" for ch in "abc")
    refs = pa.table(
        {
            "parent": [a, a, b],
            "child": [b, c, c],
            "kind": pa.array(["manifest", "layer", "manifest"]).dictionary_encode(),
        }
    )
    held = scanner._manifest_children([refs], as_bytes_where_sha256=True)
    assert held.schema.field("parent").type == SHA256_BYTES
    assert held.schema.field("child").type == SHA256_BYTES
    spelled = scanner._children_as_text(held)
    assert spelled.equals(scanner._manifest_children([refs]))
    assert spelled.to_pylist() == [{"parent": a, "child": b}, {"parent": b, "child": c}]
    odd = refs.set_column(1, "child", pa.array([b, c, "sha512:" + "d" * 128]))
    kept = scanner._manifest_children([odd], as_bytes_where_sha256=True)
    assert kept.schema.field("child").type == pa.string()
    assert scanner._children_as_text(kept).equals(kept)


def test_rows_read_while_listing_are_found_as_index_in_finds_them() -> None:
    """Each link row's place among the rows read while listing: by binary search where
    those are ascending (as read), else hashed; the same either way, null where not read."""
    rng = np.random.default_rng(1)
    read = np.unique(rng.integers(0, 1000, 300)).astype(np.int32)
    rows = rng.integers(0, 1100, 500)
    for col in (
        pa.chunked_array([read]),
        pa.chunked_array([read[:100], read[100:]]),
        pa.chunked_array([read[::-1].copy()]),
        pa.chunked_array([], pa.int32()),
    ):
        want = pc.index_in(pa.array(rows, pa.int32()), value_set=col)
        assert scanner._index_in_rows(rows, col).equals(want)


def test_reads_finished_while_listing_are_joined_in_order_a_few_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reads are taken from their futures in the order started, and only as far as the first
    unfinished one; once ``_JOIN_READS`` or more wait, they become one table of one chunk a
    column (the dictionaries united), unless one is of another schema; ``tables`` waits for
    the rest and gives every row in the order the reads were started."""
    monkeypatch.setattr(scanner, "_JOIN_READS", 3)

    def read(n: int) -> tuple[pa.Table, pa.Table]:
        kind = pa.array([f"k{n % 2}", f"k{n}"]).dictionary_encode()
        return pa.table({"n": [n, n], "kind": kind}), pa.table({"n": [n]})

    released = threading.Event()

    def slow(n: int) -> tuple[pa.Table, pa.Table]:
        released.wait(10)
        return read(n)

    reads = scanner._Reads(2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        reads.futures += [pool.submit(read, n) for n in range(4)]
        reads.futures.append(pool.submit(slow, 4))
        reads.futures += [pool.submit(read, n) for n in range(5, 7)]
        wait(reads.futures[:4])
        wait(reads.futures[5:])
        reads.collect()
        assert len(reads.futures) == 3  # the unfinished read and those after it
        first, second = reads.joined
        assert len(first) == 1 and first[0]["n"].num_chunks == first[0]["kind"].num_chunks == 1
        assert first[0]["n"].to_pylist() == [0, 0, 1, 1, 2, 2, 3, 3]
        assert first[0]["kind"].to_pylist() == ["k0", "k0", "k1", "k1", "k0", "k2", "k1", "k3"]
        assert [t["n"].to_pylist() for t in second] == [[0, 1, 2, 3]]
        assert reads.waiting == [[], []]
        reads.futures.append(pool.submit(lambda: (pa.table({"n": ["text"]}), pa.table({"n": [7]}))))
        released.set()
        parsed, children = reads.tables()
    assert reads.futures == [] and reads.joined == [[], []] and reads.waiting == [[], []]
    assert [v for t in parsed for v in t["n"].to_pylist()] == [
        0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, "text"
    ]  # fmt: skip
    assert len(parsed) == 1 + 4  # the text among the last four: those kept apart
    assert [t.num_rows for t in children] == [4, 4]
    assert [v for t in children for v in t["n"].to_pylist()] == list(range(8))


def test_reads_while_listing_joined_two_at_a_time_give_the_same_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Manifests and tag links read while listing, two a read and joined two reads at a
    time (the join's paths, which a small store never reaches by default), give the
    snapshot read without joining."""
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=9, now=datetime(2026, 11, 20, tzinfo=UTC))
    monkeypatch.setattr(scanner, "_JOIN_READS", 1 << 20)
    whole = scan(store)
    monkeypatch.setattr(scanner, "_BATCH", 2)
    monkeypatch.setattr(scanner, "_JOIN_READS", 2)
    joined = scan(store)
    assert joined["manifests"].num_rows > 10 and joined["tags"].num_rows > 10
    for name in whole.names():
        assert rows(joined[name]) == rows(whole[name]), name
