"""The snapshot's column helpers against Arrow's own kernels on decoded values."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from regsweep.layout.digest_columns import SHA256_BYTES, as_bytes, text_of
from regsweep.scan import snapshot
from regsweep.scan.graph import pylist
from regsweep.scan.snapshot import (
    DIGEST_COLUMNS,
    ascending,
    by_value,
    compacted,
    decoded,
    dictionaries,
    identity,
    is_in,
    over_dictionary,
    share_digests,
    sorted_places,
    sorted_places_of_sorted,
    table_from_columns,
    with_one_dictionary,
)


def test_by_value_equals_the_kernel_on_decoded_rows() -> None:
    """Per dictionary value, spread to the rows: the same answer as the kernel on the decoded
    strings, over chunks with different dictionaries, and null for a null row."""
    col = pa.chunked_array(
        [
            pa.array(["sha256:b", "sha256:a", None, "sha256:b"]).dictionary_encode(),
            pa.array(["sha256:c", "sha256:a"]).dictionary_encode(),
        ]
    )
    wanted = pa.array(["sha256:a", "sha256:c"])
    got = by_value(col, lambda v: pc.index_in(v, value_set=wanted))
    assert got.to_pylist() == [None, 0, None, None, 1, 0]
    assert got.to_pylist() == pc.index_in(decoded(col), value_set=wanted).to_pylist()
    member = by_value(col, lambda v: pc.is_in(v, value_set=wanted))
    assert member.to_pylist() == [False, True, None, False, True, True]


def test_by_value_of_a_plain_column_is_the_kernel() -> None:
    col = pa.chunked_array([pa.array(["x", None]), pa.array(["y"])])
    got = by_value(col, lambda v: pc.is_in(v, value_set=pa.array(["y"])))
    assert got.to_pylist() == [False, False, True]
    # The kernel's own result, as it returned it: wrapping a ChunkedArray in
    # pa.chunked_array([...]) converted it value by value (a second per million blobs).
    kernel = pc.is_in(col, value_set=pa.array(["y"]))
    assert by_value(col, lambda v: kernel) is kernel


def test_by_value_runs_the_kernel_once_over_every_distinct_dictionary() -> None:
    """Chunks that share a dictionary are computed once; the kernel sees every distinct
    dictionary in one call (a value set is built once, not once per chunk)."""
    shared = pa.array(["sha256:a", "sha256:b"]).dictionary_encode()
    other = pa.array(["sha256:c", "sha256:b"]).dictionary_encode()
    col = pa.chunked_array([shared, shared.slice(1), other, pa.array([], shared.type)])
    calls: list[int] = []

    def member(v: pa.ChunkedArray) -> pa.ChunkedArray:
        calls.append(len(v))
        return pc.is_in(v, value_set=pa.array(["sha256:b", "sha256:c"]))

    got = by_value(col, member)
    assert (
        got.to_pylist()
        == pc.is_in(decoded(col), value_set=pa.array(["sha256:b", "sha256:c"])).to_pylist()
    )
    assert got.to_pylist() == [False, True, True, True, True]
    assert calls == [4]  # a, b once (shared), c, b of the other; the empty chunk adds nothing


def _dicts(values: list[str | None]) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(values, pa.string()).dictionary_encode()])


def test_over_dictionary_shares_the_dictionary_where_every_row_is_in_it() -> None:
    """A chunk whose rows all name values of the dictionary (nulls aside) becomes indices into
    it, the same rows; a chunk with a value it lacks is left as it was (a dangling tag names a
    manifest that was not read)."""
    manifests = pa.array(["sha256:a", "sha256:b", "sha256:c"])
    sound = pa.array(["sha256:c", None, "sha256:a", "sha256:c"]).dictionary_encode()
    dangling = pa.array(["sha256:b", "sha256:d"]).dictionary_encode()
    col = pa.chunked_array([sound, dangling, pa.array([], sound.type)])
    got = over_dictionary(col, manifests)
    assert got.type == col.type
    assert got.to_pylist() == col.to_pylist()
    assert identity(got.chunk(0).dictionary) == identity(manifests)
    assert got.chunk(0).indices.to_pylist() == [2, None, 0, 2]
    assert got.chunk(1) is dangling or got.chunk(1).equals(dangling)
    assert identity(got.chunk(1).dictionary) == identity(dangling.dictionary)
    plain = pa.chunked_array([pa.array(["sha256:a"])])
    assert over_dictionary(plain, manifests) is plain


def test_with_one_dictionary_makes_one_chunk_over_one_sorted_dictionary() -> None:
    """The same rows (nulls too) in one chunk, over the sorted distinct values of every
    chunk's dictionary (of digests of many first characters), the other columns as they were;
    a chunk that shares another's dictionary counts it once. Tables given together share the
    one dictionary (revision and tag-index links name the same manifests)."""
    rng = random.Random(7)
    digests = [f"sha256:{rng.getrandbits(256):064x}" for _ in range(300)]
    first = pa.array([*digests[:200], None]).dictionary_encode()
    chunks = [
        first,
        pa.array([*digests[150:], digests[0]]).dictionary_encode(),
        pa.DictionaryArray.from_arrays(pa.array([3, 1], pa.int32()), first.dictionary),
    ]
    col = pa.chunked_array(chunks)
    table = pa.table({"n": pa.array(range(len(col))), "digest": col})
    held = {"one": table}
    with_one_dictionary(held, "digest")
    got = held["one"]
    assert got.schema == table.schema
    assert got["digest"].num_chunks == 1
    assert got["digest"].to_pylist() == col.to_pylist()
    assert got["n"].to_pylist() == table["n"].to_pylist()
    assert got["digest"].chunk(0).dictionary.to_pylist() == sorted(digests)
    single = {"one": pa.table({"digest": pa.chunked_array([first])})}
    with_one_dictionary(single, "digest")
    assert single["one"]["digest"].to_pylist() == first.to_pylist()

    more = [f"sha256:{rng.getrandbits(256):064x}" for _ in range(20)]
    other = pa.table({"digest": pa.array([*digests[290:], *more, None]).dictionary_encode()})
    two = {"a": table, "b": other}
    with_one_dictionary(two, "digest")
    a, b = (two[k]["digest"] for k in ("a", "b"))
    assert a.to_pylist() == col.to_pylist()
    assert b.to_pylist() == [*digests[290:], *more, None]
    assert a.num_chunks == b.num_chunks == 1
    assert identity(a.chunk(0).dictionary) == identity(b.chunk(0).dictionary)  # not a copy
    assert a.chunk(0).dictionary.to_pylist() == sorted([*digests, *more])


def test_table_from_columns_holds_a_column_of_one_value_as_one_chunk_repeated() -> None:
    """A long column that is all null, one dictionary value or empty text keeps its rows but
    is one small chunk over and over (sharing its buffers); one with two values is kept."""
    n = 200_000
    digests = pa.array([f"sha256:{i:064x}" for i in range(n)]).dictionary_encode()
    path = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array(["path"]))
    problem = pa.array([None] * (n - 1) + ["bad"]).dictionary_encode()
    sizes = pa.array(np.full(n, 71, np.int64))
    t = table_from_columns(
        "layer_links",
        {
            "digest": digests,
            "key": pa.array([""] * n),
            "resolved_by": path,
            "problem": problem,
            "size": sizes,
            "last_modified": pa.array(np.arange(n), pa.timestamp("ms", tz="UTC")),
        },
    )
    assert t.num_rows == n
    assert t["size"].num_chunks > 1 and t["size"].to_pylist() == sizes.to_pylist()
    assert t["last_modified"].num_chunks == 1  # of many values: kept
    for name in ("etag", "key", "resolved_by", "repository", "size"):
        col = t[name]
        assert col.num_chunks > 1
        assert len({c.buffers()[1].address for c in col.chunks}) == 1, name
    assert t["etag"].null_count == n
    assert pc.all(pc.equal(t["key"], "")).as_py()
    assert t["resolved_by"].unique().to_pylist() == ["path"]
    assert t["resolved_by"].null_count == 0
    assert t["problem"].to_pylist() == problem.to_pylist()
    assert t["digest"].num_chunks == 1


def test_dictionaries_gives_each_shared_dictionary_once() -> None:
    """Chunks over one dictionary (a column repeated, a scratch file read back in batches)
    give it once, so that a look-up's value set is not that many copies of it."""
    one = pa.array(["sha256:a", "sha256:b"]).dictionary_encode()
    other = pa.array(["sha256:c"]).dictionary_encode()
    col = pa.chunked_array([one, one.slice(1), other, one])
    got = dictionaries(col)
    assert [d.to_pylist() for d in got] == [["sha256:a", "sha256:b"], ["sha256:c"]]
    assert dictionaries(one)[0].to_pylist() == ["sha256:a", "sha256:b"]


def test_share_digests_puts_every_digest_column_over_one_dictionary() -> None:
    """The same rows, every digest column's chunks over one dictionary of every digest they
    name; a column that shared a chunk with another (a link's digest and target) still does;
    other columns are left alone."""
    links = _dicts(["sha256:b", "sha256:c", None])
    tables = {
        "references": pa.table(
            {"parent": _dicts(["sha256:a", "sha256:a"]), "child": _dicts(["sha256:b", "x:1"])}
        ),
        "layer_links": pa.table(
            {"digest": links, "target": links, "repo": _dicts(["r", "r", "s"])}
        ),
        "tags": pa.table({"digest": _dicts(["sha256:a"])}),
    }
    before = {name: t.to_pylist() for name, t in tables.items()}
    share_digests(tables)
    assert {name: t.to_pylist() for name, t in tables.items()} == before
    dictionaries = {
        identity(chunk.dictionary)
        for name, columns in DIGEST_COLUMNS.items()
        if name in tables
        for c in columns
        for chunk in tables[name][c].chunks
    }
    assert len(dictionaries) == 1
    (shared,) = {tuple(tables["tags"]["digest"].chunk(0).dictionary.to_pylist())}
    assert list(shared) == ["sha256:a", "sha256:b", "sha256:c", "x:1"]  # sorted
    ll = tables["layer_links"]
    assert identity(ll["digest"].chunk(0).indices) == identity(ll["target"].chunk(0).indices)
    assert ll["repo"].chunk(0).dictionary.to_pylist() == ["r", "s"]


def test_share_digests_takes_in_digests_a_later_table_names_and_returns_the_dictionary() -> None:
    """``also`` (digests only a table not yet built names, such as a reference's missing
    child) joins the union; the one dictionary is returned, or None where the columns are not
    dictionaries and nothing was shared."""
    tables = {
        "tags": pa.table({"digest": _dicts(["sha256:b", "sha256:a"])}),
        "manifests": pa.table({"digest": _dicts(["sha256:c"])}),
    }
    shared = share_digests(tables, pa.array(["sha256:0"]))
    assert shared is not None
    assert shared.to_pylist() == ["sha256:0", "sha256:a", "sha256:b", "sha256:c"]
    assert identity(tables["tags"]["digest"].chunk(0).dictionary) == identity(shared)
    assert decoded(tables["tags"]["digest"]).to_pylist() == ["sha256:b", "sha256:a"]
    assert share_digests({"tags": pa.table({"digest": pa.array(["sha256:a"])})}) is None


def test_share_digests_over_many_prefixes_sorts_them_all_as_one() -> None:
    """Digests are hashed a group of first characters at a time: the groups' values, one after
    another, are the sorted distinct values of every dictionary, whatever their algorithms and
    lengths, and a dictionary may name a value twice or hold values that no row uses."""
    rng = random.Random(7)
    hexes = [f"{rng.getrandbits(256):064x}" for _ in range(400)]
    values = [f"sha256:{h}" for h in hexes] + [f"sha512:{h}{h}" for h in hexes[:50]]
    values += ["sha256:", "sha", "a", "", "sha256:0", "tarsum.v1+sha256:" + hexes[0], "zzz"]
    pieces = [rng.sample(values, 120) for _ in range(5)]
    # Each with values repeated, and each a slice of a longer array.
    dicts = [pa.array(["x" * 90, *p, *p[:10], "y"], pa.string())[1:-1] for p in pieces]

    def column(d: pa.Array) -> pa.ChunkedArray:
        rows = pa.array([rng.randrange(len(d)) for _ in range(300)], pa.int32())
        return pa.chunked_array([pa.DictionaryArray.from_arrays(rows, d)])

    tables = {
        "references": pa.table({"parent": column(dicts[0]), "child": column(dicts[1])}),
        "layer_links": pa.table({"digest": column(dicts[2]), "target": column(dicts[3])}),
        "tags": pa.table({"digest": column(dicts[4])}),
    }
    before = {name: t.to_pylist() for name, t in tables.items()}
    share_digests(tables)
    assert {name: t.to_pylist() for name, t in tables.items()} == before
    shared = tables["tags"]["digest"].chunk(0).dictionary
    assert shared.to_pylist() == sorted({v for p in pieces for v in p})
    assert ascending(shared)
    assert {
        identity(chunk.dictionary)
        for t in tables.values()
        for col in t.columns
        for chunk in col.chunks
    } == {identity(shared)}


def test_share_digests_finds_values_of_sorted_dictionaries_in_them() -> None:
    """Values that a sorted dictionary holds (the links' and the manifests' are) are looked up
    in it rather than united again: the same union and rows as when no dictionary is sorted,
    whether a dictionary's values are all, some or none of a sorted one's, of one length or
    another (sha512), or sorted themselves."""
    rng = random.Random(11)
    layers = sorted({f"sha256:{rng.getrandbits(256):064x}" for _ in range(500)})
    manifests = sorted({f"sha256:{rng.getrandbits(256):064x}" for _ in range(80)})
    long = [f"sha512:{rng.getrandbits(512):0128x}" for _ in range(30)]
    unstored = [f"sha256:{rng.getrandbits(256):064x}" for _ in range(40)]
    children = [
        rng.sample(layers, 200) + rng.sample(manifests, 10) + unstored[:20],  # some of both
        rng.sample(layers, 150),  # all of one
        unstored[20:] + long[:10],  # none, of two lengths
        unstored[25:],  # none
        sorted(rng.sample(layers, 50) + long[10:]),  # sorted, of two lengths
        sorted(long[20:] + unstored[:5]),  # sorted, found in none (a digest is in two)
    ]

    def column(values: list[str], n: int = 400) -> pa.ChunkedArray:
        rows = pa.array([rng.randrange(len(values)) for _ in range(n)], pa.int32())
        return pa.chunked_array([pa.DictionaryArray.from_arrays(rows, pa.array(values))])

    def tables(sort: bool) -> dict[str, pa.Table]:
        def d(values: list[str]) -> list[str]:
            return sorted(values) if sort else rng.sample(values, len(values))

        kids = [column(c) for c in children]
        return {
            "layer_links": pa.table({"digest": column(d(layers)), "target": column(d(layers))}),
            "manifests": pa.table({"digest": column(d(manifests))}),
            "references": pa.table(
                {
                    "parent": column(d(manifests), len(children) * 400),
                    "child": pa.chunked_array([k.chunk(0) for k in kids]),
                }
            ),
        }

    for sort in (True, False):
        rng.seed(3)
        held = tables(sort)
        before = {name: t.to_pylist() for name, t in held.items()}
        share_digests(held)
        assert {name: t.to_pylist() for name, t in held.items()} == before
        shared = held["manifests"]["digest"].chunk(0).dictionary
        every = {v for c in children for v in c} | set(layers) | set(manifests)
        assert shared.to_pylist() == sorted(every)


def test_sorted_places_finds_values_in_a_sorted_dictionary_or_says_it_cannot() -> None:
    """Each value's place in a sorted dictionary, -1 where it is not there (pc.index_in's
    answer); None where a binary search over fixed-width values cannot tell: a null, values
    of several lengths or of another length than the dictionary's, a dictionary not sorted."""
    rng = random.Random(5)
    digests = sorted({f"sha256:{rng.getrandbits(256):064x}" for _ in range(300)})
    dictionary = pa.array(digests)
    others = [f"sha256:{rng.getrandbits(256):064x}" for _ in range(20)]
    values = pa.array(rng.sample(digests, 100) + others + digests[:1] + digests[-1:])[1:]
    got = sorted_places(values, dictionary)
    assert got is not None
    want = pc.fill_null(pc.index_in(values, value_set=dictionary), -1).to_pylist()
    assert got.tolist() == want
    assert sorted_places(pa.array([digests[0], None]), dictionary) is None
    assert sorted_places(pa.array([digests[0], "sha512:" + "0" * 128]), dictionary) is None
    assert sorted_places(pa.array(["sha512:" + "0" * 128]), dictionary) is None
    assert sorted_places(values, pa.array(digests[::-1])) is None


def test_sorted_values_are_searched_only_within_the_dictionarys_range() -> None:
    """Sorted values looked up in a sorted dictionary: those before its first value and after
    its last are not searched (none of them is there), the others get sorted_places' answer;
    None where sorted_places would say it cannot tell."""
    rng = random.Random(12)
    digests = sorted({f"sha256:{rng.getrandbits(256):064x}" for _ in range(400)})
    dictionary = pa.array(digests[100:300:2])
    values = pa.array(digests)
    got = sorted_places_of_sorted(values, dictionary)
    assert got is not None
    first, places = got
    want = np.asarray(pc.fill_null(pc.index_in(values, value_set=dictionary), -1))
    assert (first, len(places)) == (100, 199)  # digests[100] to digests[298]
    assert places.tolist() == want[first : first + len(places)].tolist()
    assert (want[:first] == -1).all() and (want[first + len(places) :] == -1).all()
    assert sorted_places_of_sorted(values, pa.array(digests[::-1])) is None
    assert sorted_places_of_sorted(pa.array([digests[0], None]), dictionary) is None
    assert sorted_places_of_sorted(pa.array(["sha512:" + "0" * 128]), dictionary) is None
    bytes_got = sorted_places_of_sorted(as_bytes(values), as_bytes(dictionary))
    assert bytes_got is not None and bytes_got[0] == first
    assert bytes_got[1].tolist() == places.tolist()


def test_sorted_by_text_sorts_a_column_taken_out_of_the_tables() -> None:
    """The text column of several tables, one after another, sorted, with the order that
    sorts it (the rows' other columns follow it); each table left without the column. Text of
    several widths cannot be sorted this way: None, and the tables as they were."""
    rng = random.Random(7)
    digests = [f"sha256:{rng.getrandbits(256):064x}" for _ in range(50)]
    tables = [
        pa.table({"digest": digests[:20], "n": list(range(20))}),
        pa.table({"digest": pa.array([], pa.string()), "n": pa.array([], pa.int64())}),
        pa.table({"digest": digests[20:], "n": list(range(20, 50))}),
    ]
    got = snapshot.sorted_by_text(tables, "digest")
    assert got is not None
    text, order = got
    assert text.to_pylist() == sorted(digests)
    assert [digests[i] for i in order.tolist()] == sorted(digests)
    assert all(t.column_names == ["n"] for t in tables)
    assert pa.concat_tables(tables)["n"].take(pa.array(order)).to_pylist() == [
        digests.index(d) for d in sorted(digests)
    ]
    assert snapshot.sorted_by_text([], "digest") is None  # nothing to sort
    mixed = [pa.table({"digest": ["sha256:ab", "sha512:abcd"]})]
    assert snapshot.sorted_by_text(mixed, "digest") is None
    assert mixed[0].column_names == ["digest"]


def test_sorted_by_text_takes_each_chunk_and_digests_as_their_bytes() -> None:
    """Tables whose column has several chunks (empty ones too) sort as their values do, each
    chunk copied as it is; digests held as their bytes (every table) sort as their text does
    and stay bytes; bytes in one table and text in another are not sorted this way."""
    rng = random.Random(8)
    digests = [f"sha256:{rng.getrandbits(256):064x}" for _ in range(40)]
    chunked = pa.chunked_array([digests[:5], [], digests[5:25]], pa.string())
    tables = [
        pa.table({"digest": chunked, "n": pa.chunked_array([range(5), [], range(5, 25)])}),
        pa.table({"digest": digests[25:], "n": list(range(25, 40))}),
    ]
    got = snapshot.sorted_by_text(tables, "digest")
    assert got is not None
    assert got[0].to_pylist() == sorted(digests)
    assert [digests[i] for i in got[1].tolist()] == sorted(digests)
    as_bytes_ = [
        pa.table({"digest": as_bytes(pa.array(digests[:15]))}),
        pa.table({"digest": as_bytes(pa.array(digests[15:]))}),
    ]
    got = snapshot.sorted_by_text(as_bytes_, "digest")
    assert got is not None
    assert got[0].type == SHA256_BYTES
    assert text_of(got[0]).to_pylist() == sorted(digests)
    assert [digests[i] for i in got[1].tolist()] == sorted(digests)
    mixed = [
        pa.table({"digest": as_bytes(pa.array(digests[:3]))}),
        pa.table({"digest": digests[3:6]}),
    ]
    assert snapshot.sorted_by_text(mixed, "digest") is None
    assert all(t.column_names == ["digest"] for t in mixed)


def test_is_sorted_text_answers_for_each_array_it_is_asked_about() -> None:
    """Whether an array of fixed-width text rises, remembered while that array lives: another
    array (its own buffers) gets its own answer, and so does a slice."""
    rising = pa.array(["sha256:a", "sha256:b", "sha256:c"])
    falling = pa.array(["sha256:c", "sha256:b", "sha256:a"])
    assert snapshot.is_sorted_text(rising) and snapshot.is_sorted_text(rising)
    assert not snapshot.is_sorted_text(falling)
    assert snapshot.is_sorted_text(falling.slice(2, 1))
    assert not snapshot.is_sorted_text(pa.array(["sha256:a", "sha512:bb"]))  # two widths
    assert not snapshot.is_sorted_text(pa.array(["sha256:a", "sha256:a"]))  # not distinct
    values = pa.array(["sha256:b", "sha256:z"])
    found = sorted_places(values, falling, rising=snapshot.is_sorted_text(falling))
    assert found is None  # not searched: the falling dictionary cannot be


def test_sorted_places_looks_values_up_a_slice_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The values are searched a slice at a time (each slice's values copied to be compared,
    not all of them at once): the same places across the slices' boundaries."""
    rng = random.Random(6)
    digests = sorted({f"sha256:{rng.getrandbits(256):064x}" for _ in range(200)})
    values = pa.array(rng.sample(digests, 50) + [f"sha256:{i:064x}" for i in range(7)])
    whole = sorted_places(values, pa.array(digests))
    monkeypatch.setattr(snapshot, "_SEARCH_ROWS", 3)
    sliced = sorted_places(values, pa.array(digests))
    assert whole is not None and sliced is not None
    assert sliced.tolist() == whole.tolist()
    assert sliced.tolist() == pc.fill_null(pc.index_in(values, pa.array(digests)), -1).to_pylist()


def test_is_in_is_pc_is_in_whichever_side_is_larger() -> None:
    """Hashing the smaller side gives the kernel's answer, nulls included."""
    few = pa.array(["b", None, "x", "b"])
    many = pa.array([f"v{i}" for i in range(100)] + ["b", None])
    for values, value_set in ((few, many), (many, few), (few, many.slice(0, 100))):
        assert is_in(values, value_set).to_pylist() == (
            pc.is_in(values, value_set=value_set).to_pylist()
        )
    chunked = pa.chunked_array([many.slice(0, 50), many.slice(50)])
    assert is_in(few, chunked).to_pylist() == [True, True, False, True]


def test_compacted_keeps_only_the_dictionary_values_the_rows_use() -> None:
    wide = pa.array([f"sha256:{i:064x}" for i in range(1000)])
    col = pa.DictionaryArray.from_arrays(pa.array([7, None, 3, 7], pa.int32()), wide)
    table = pa.table({"digest": pa.chunked_array([col]), "n": [1, 2, 3, 4]})
    out = compacted(table)
    assert out.to_pylist() == table.to_pylist()
    assert out.schema == table.schema
    assert sorted(out["digest"].chunk(0).dictionary.to_pylist()) == [
        wide[3].as_py(),
        wide[7].as_py(),
    ]
    assert compacted(out)["digest"].chunk(0).dictionary.equals(out["digest"].chunk(0).dictionary)


def test_pylist_gives_columns_of_one_dictionary_the_same_strings() -> None:
    wide = pa.array([f"sha256:{i:064x}" for i in range(100)])
    a = pa.DictionaryArray.from_arrays(pa.array([5, 6, None], pa.int32()), wide)
    b = pa.DictionaryArray.from_arrays(pa.array([6, 9], pa.int32()), wide)
    shared: dict[tuple[int, ...], list[Any]] = {}
    got_a, got_b = pylist(a, shared), pylist(b, shared)
    assert got_a == [wide[5].as_py(), wide[6].as_py(), None]
    assert got_b == [wide[6].as_py(), wide[9].as_py()]
    assert got_a[1] is got_b[0]  # one string object
    assert pylist(a) == got_a  # the same values without sharing


def test_share_digests_with_empty_columns() -> None:
    """Tables with no rows (or whose only rows are null) have empty dictionaries."""
    empty = pa.chunked_array([pa.array([], pa.string()).dictionary_encode()])
    tables = {
        "references": pa.table({"parent": empty, "child": empty}),
        "tags": pa.table({"digest": _dicts([None])}),
        "manifests": pa.table({"digest": _dicts(["sha256:a"])}),
    }
    share_digests(tables)
    assert tables["manifests"]["digest"].to_pylist() == ["sha256:a"]
    assert tables["tags"]["digest"].to_pylist() == [None]
    assert tables["references"].num_rows == 0
    # The same with sha256 digests, united as their bytes.
    digest = _sha256(1)[0]
    tables["manifests"] = pa.table({"digest": _dicts([digest])})
    tables["tags"] = pa.table({"digest": _dicts([None])})
    share_digests(tables)
    assert decoded(tables["manifests"]["digest"]).to_pylist() == [digest]
    assert decoded(tables["tags"]["digest"]).to_pylist() == [None]


def _sha256(n: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    # Bytes 00 and ff among them: a digest's bytes may be zero anywhere, the last one too.
    return [f"sha256:{rng.getrandbits(256):064x}" for _ in range(n)] + [
        "sha256:" + "00" * 32,
        "sha256:" + "ff" * 31 + "00",
        "sha256:" + "00" * 31 + "ff",
    ]


def test_share_digests_of_sha256_digests_holds_their_bytes_and_rows_read_as_text() -> None:
    """Where every digest is sha256, the one dictionary holds the bytes each spells, sorted
    as the text is; the rows read as the same text through decoded, rows and pylist, and the
    graph finds text digests (and none of another algorithm) among them."""
    from regsweep.layout.digest_columns import SHA256_BYTES
    from regsweep.scan.graph import column_places, sorted_range
    from regsweep.scan.snapshot import rows

    digests = _sha256(300)
    rng = random.Random(9)
    tables = {
        "references": pa.table(
            {"parent": _dicts(rng.sample(digests, 80)), "child": _dicts(rng.sample(digests, 80))}
        ),
        "layer_links": pa.table(
            {"digest": _dicts([*digests[:100], None]), "target": _dicts([*digests[:100], None])}
        ),
        "tags": pa.table({"digest": _dicts(rng.sample(digests, 20))}),
    }
    before = {name: t.to_pylist() for name, t in tables.items()}
    shared = share_digests(tables)
    assert shared is not None and shared.type == SHA256_BYTES
    named = {v for t in before.values() for r in t for v in r.values() if v is not None}
    assert [bytes.fromhex(d[7:]) for d in sorted(named)] == shared.to_pylist()
    assert {name: rows(t) for name, t in tables.items()} == before
    ll = tables["layer_links"]["digest"]
    assert decoded(ll).to_pylist() == [*digests[:100], None]
    assert pylist(ll) == [*digests[:100], None]
    assert by_value(ll, lambda v: pc.equal(v, digests[0])).to_pylist()[0] is True

    asked = pa.chunked_array(
        [pa.array([digests[5], "sha512:" + "ab" * 64, None, "sha256:" + "ab" * 32, digests[-1]])]
    )
    at = column_places(asked, shared)
    assert at[0] >= 0 and shared[int(at[0])].as_py() == bytes.fromhex(digests[5][7:])
    assert list(at[1:4]) == [-1, -1, -1]
    assert shared[int(at[4])].as_py() == bytes.fromhex(digests[-1][7:])
    assert sorted_range(shared, pa.array(["sha512:00", "sha512:ff"])) == (0, 0)


def test_share_digests_keeps_text_where_a_digest_is_not_sha256() -> None:
    """One digest of another algorithm (or upper-case hex) and the dictionary stays text."""
    for odd in ("sha512:" + "ab" * 64, "sha256:" + "AB" * 32):
        tables = {
            "tags": pa.table({"digest": _dicts(_sha256(20))}),
            "manifests": pa.table({"digest": _dicts([odd])}),
        }
        shared = share_digests(tables)
        assert shared is not None and shared.type == pa.string()
        assert odd in shared.to_pylist()


def test_a_snapshot_over_digest_bytes_is_written_as_text(tmp_path: Any) -> None:
    """Files hold text: a snapshot whose digests are held as bytes reads back as the same rows,
    its digest columns text."""
    from regsweep.scan.snapshot import SCHEMAS, Snapshot, rows

    digests = _sha256(40)
    tables = {
        "tags": table_from_columns(
            "tags",
            {"repository": ["r"] * 40, "tag": [f"t{i}" for i in range(40)], "digest": digests[:40]},
        ),
        "manifests": table_from_columns("manifests", {"digest": sorted(digests[:40])}),
    }
    share_digests(tables)
    assert tables["tags"]["digest"].type.value_type != pa.string()
    snap = Snapshot(tables, {"layout_root": "docker/registry/v2/"})
    snap.write(tmp_path / "snap")
    back = Snapshot.read(tmp_path / "snap")
    assert back["tags"]["digest"].type == SCHEMAS["tags"].field("digest").type
    assert rows(back.with_keys("tags")) == rows(snap.with_keys("tags"))
    assert rows(back["manifests"]) == rows(snap["manifests"])


@pytest.mark.parametrize("shared", [True, False])
def test_value_ranks_order_rows_as_their_values_sort_nulls_last(shared: bool) -> None:
    """Ranks sort the rows as their values do, nulls last, whether the chunks share one
    ascending dictionary (its indices are the ranks: nothing ranked or united) or each has
    its own, unsorted; empty chunks (a filtered table keeps them) change nothing."""
    rng = random.Random(7)
    values = sorted({f"sha256:{rng.getrandbits(64):016x}" for _ in range(300)})
    rows = [rng.choice([*values, None]) for _ in range(2000)]
    if shared:
        dictionary = pa.array(values)
        index = {v: i for i, v in enumerate(values)}
        chunks = [
            pa.DictionaryArray.from_arrays(
                pa.array([None if v is None else index[v] for v in part], pa.int32()),
                dictionary,
            )
            for part in (rows[:700], [], rows[700:])
        ]
    else:
        chunks = [
            pa.array(part, pa.string()).dictionary_encode() for part in (rows[:700], rows[700:])
        ]
    col = pa.chunked_array(chunks, pa.dictionary(pa.int32(), pa.string()))
    ranks = snapshot.value_ranks(col)
    assert ranks.dtype == np.uint32 and len(ranks) == len(rows)
    by_rank = [rows[i] for i in np.argsort(ranks, kind="stable")]
    assert by_rank == sorted(rows, key=lambda v: (v is None, v or ""))
    # Equal values, equal ranks.
    assert len(set(ranks.tolist())) == len(set(rows))
    if shared:  # the indices themselves
        assert [r for r, v in zip(ranks.tolist(), rows, strict=True) if v is not None] == [
            index[v] for v in rows if v is not None
        ]


def test_constant_columns_of_one_value_and_type_share_one_chunk() -> None:
    """Every column that ``constant`` makes of one value and type is over one buffer (the
    links' sizes in each part of a listing), a shorter one over a slice of it; values that
    Python calls equal but that differ in type (1, True) or columns of other types do not
    mix, and each reads back as its value."""
    big = snapshot.constant(71, 200_000, pa.int64())
    small = snapshot.constant(71, 10, pa.int64())
    other = snapshot.constant(71, 200_000, pa.int32())
    flag = snapshot.constant(True, 10, pa.bool_())
    one = snapshot.constant(1, 10, pa.int64())
    nulls = [snapshot.constant(None, 100_000, pa.string()) for _ in range(2)]
    assert big.to_pylist() == [71] * 200_000 and small.to_pylist() == [71] * 10
    assert other.type == pa.int32() and other.to_pylist() == [71] * 200_000
    assert flag.to_pylist() == [True] * 10 and one.to_pylist() == [1] * 10
    assert nulls[0].null_count == 100_000 and nulls[0].type == pa.string()
    buffers = {c.buffers()[1].address for c in (*big.chunks, *small.chunks)}
    assert len(buffers) == 1
    assert other.chunk(0).buffers()[1].address not in buffers
    assert {c.buffers()[1].address for n in nulls for c in n.chunks} == {
        nulls[0].chunk(0).buffers()[1].address
    }
