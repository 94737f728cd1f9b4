"""The graph, the mark and the plan work on digests' places in the snapshot's shared dictionary
(issue 7: memory): checked against plain Python over the same rows, and that a gc plan never
turns the graph's digests into strings."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from imagegen import Blob, Layer, LayoutWriter, Manifest, image_manifest, make_layer
from regsweep.clock import utcnow
from regsweep.demo.generator import generate_demo
from regsweep.gc import mark as mark_module
from regsweep.gc import plan as plan_module
from regsweep.gc.mark import RepoPlaces, mark
from regsweep.gc.plan import GcSettings, _last_use_ms, _young_use, make_plan
from regsweep.layout.keys import blob_data_key, layer_link_key
from regsweep.scan.graph import Graph, _index_in, places, sorted_range
from regsweep.scan.scanner import scan
from regsweep.scan.snapshot import Snapshot, column
from regsweep.storage.filesystem import FilesystemStore


def _strong_edges(snap: Snapshot) -> dict[str, list[str]]:
    edges: dict[str, list[str]] = defaultdict(list)
    refs = snap["references"]
    for parent, child, kind in zip(
        column(refs, "parent"), column(refs, "child"), column(refs, "kind"), strict=True
    ):
        if kind != "subject":
            edges[parent].append(child)
    return edges


def _closure(edges: dict[str, list[str]], roots: set[str]) -> set[str]:
    seen, todo = set(roots), list(roots)
    while todo:
        for child in edges.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_graph_edges_and_closures_match_the_references(snap: Snapshot) -> None:
    graph = Graph.from_snapshot(snap)
    edges = _strong_edges(snap)
    assert graph.edges == {p: tuple(c) for p, c in edges.items()}
    revisions: dict[str, set[str]] = defaultdict(set)
    rv = snap["revisions"]
    for repo, d in zip(column(rv, "repository"), column(rv, "digest"), strict=True):
        revisions[repo].add(d)
    assert len(revisions) > 3
    for repo, roots in revisions.items():
        assert graph.closure(repo, roots) == _closure(edges, roots), repo


def test_marked_closures_are_the_closures_of_the_roots(snap: Snapshot) -> None:
    marked = mark(snap)  # every revision is a root
    graph = marked.graph
    edges = _strong_edges(snap)
    rv = snap["revisions"]
    roots: dict[str, set[str]] = defaultdict(set)
    for repo, d, target in zip(
        column(rv, "repository"), column(rv, "digest"), column(rv, "target"), strict=True
    ):
        roots[repo] |= {d, target} - {None}
    live: set[str] = set()
    for repo, r in roots.items():
        if repo in marked.unsafe_repos:
            continue
        reach = _closure(edges, r)
        assert marked.reach[repo] == reach, repo
        assert marked.live_manifests[repo] == reach & r
        live |= reach & graph.blob_sizes.keys()
    assert live <= marked.live_blobs


@pytest.mark.parametrize("delete_untagged", [False, True])
def test_a_gc_plan_turns_no_digest_of_the_graph_into_a_string(
    snap: Snapshot, delete_untagged: bool
) -> None:
    """The mark and the plan stay on places: the graph's string views (hundreds of thousands
    of digests on a large store) are built only for retention, the reports and the audit."""
    marked = mark(snap, delete_untagged=delete_untagged)
    settings = GcSettings(delete_untagged=delete_untagged, grace=timedelta(0))
    plan = make_plan(snap, marked, settings, utcnow())
    assert plan.rows.num_rows
    built = {"names", "_place", "blob_sizes", "edges", "manifest_kind", "manifest_children"}
    assert built.isdisjoint(vars(marked.graph))
    assert {"live_blobs", "reach", "live_manifests"}.isdisjoint(vars(marked))


@pytest.mark.parametrize("delete_untagged", [False, True])
def test_the_kept_tags_are_rows_of_the_tags_table_named_only_when_asked(
    snap: Snapshot, delete_untagged: bool
) -> None:
    """The mark keeps its tags as rows of the tags table (Arrow, not a Python string and tuple
    per tag); ``kept_tags`` names them when asked: every tag it neither removes nor leaves to
    a policy, per repository, sorted."""
    marked = mark(snap, delete_untagged=delete_untagged)
    assert isinstance(marked.kept, pa.Table) and "kept_tags" not in vars(marked)
    tags: dict[str, set[str]] = defaultdict(set)
    for repo, tag in zip(
        column(snap["tags"], "repository"), column(snap["tags"], "tag"), strict=True
    ):
        tags[repo].add(tag)
    removed = {(repo, tag) for repo, gone in marked.removed_tags.items() for tag in gone}
    want = {
        repo: tuple(sorted(t for t in names if (repo, t) not in removed))
        for repo, names in sorted(tags.items())
    }
    assert marked.kept_tags == {repo: kept for repo, kept in want.items() if kept}
    assert sum(map(len, marked.kept_tags.values())) == marked.kept.num_rows > 3


def test_rows_in_asks_each_row_of_its_own_repository() -> None:
    places = RepoPlaces({"b": np.array([2, 5], np.int64), "a": np.array([1], np.int64)})
    repos = pa.array(["a", "a", "b", "b", "c", None, "b"]).dictionary_encode()
    at = np.array([1, 2, 5, 1, 1, 1, -1], np.int64)
    assert places.rows_in(repos, at).tolist() == [True, False, True, False, False, False, False]
    assert RepoPlaces({}).rows_in(repos, at).tolist() == [False] * 7
    assert places.get("c").tolist() == []


@pytest.mark.parametrize("at_once", [1 << 16, 7])
def test_rows_in_is_membership_of_each_rows_pair_with_repositories_interleaved(
    at_once: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of many repositories in any order (a slice of revisions), each asked among its
    own repository's places only: the same answer as a set of (repository, place) pairs,
    whether the rows are looked up all at once or seven at a time; ``get`` and
    ``every_place`` give the places as they were given."""
    monkeypatch.setattr(mark_module, "_ROWS_AT_ONCE", at_once)
    rng = np.random.default_rng(3)
    names = [f"r{i}" for i in range(40)]
    given = {n: np.unique(rng.integers(0, 500, rng.integers(0, 30))) for n in names}
    pairs = {(n, int(p)) for n, at in given.items() for p in at}
    places = RepoPlaces({n: at.copy() for n, at in given.items()})
    repos = [rng.choice([*names, "other"]) for _ in range(3000)]
    at = rng.integers(-1, 500, 3000)
    want = [(r, int(p)) in pairs for r, p in zip(repos, at, strict=True)]
    assert places.rows_in(pa.array(repos), at).tolist() == want
    assert places.rows_in(pa.chunked_array([pa.array(repos)]), at).tolist() == want
    for n in names:
        assert places.get(n).tolist() == given[n].tolist()
    assert places.every_place().tolist() == [int(p) for n in sorted(names) for p in given[n]]


def test_a_layer_named_by_its_sha512_is_kept_through_its_alias_link(tmp_path: Path) -> None:
    """storage-layout.md §7.10: the manifest names the layer's sha512; the blob is stored under
    its sha256, which the repository's sha512 ``_layers`` link points to. The closure on
    places follows the alias: the blob and both links stay, and nothing is missing."""
    store = FilesystemStore(tmp_path)
    w = LayoutWriter(store)
    layer = make_layer("alias", 64)
    sha512 = "sha512:" + hashlib.sha512(layer.blob.data).hexdigest()
    config = Blob(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}')
    plain = image_manifest(config, [Layer(layer.blob, layer.diff_id)])
    body = json.loads(plain.blob.data)
    body["layers"][0]["digest"] = sha512
    w.push_blob("alias/app", config)
    w.push_blob("alias/app", layer.blob)
    store.write(layer_link_key("alias/app", sha512), layer.blob.digest.encode())
    w.put_manifest("alias/app", Manifest(Blob(json.dumps(body).encode()), plain.media_type), "v1")
    orphan = Blob(b"nothing names this blob")
    store.write(blob_data_key(orphan.digest), orphan.data)

    snap = scan(store)
    for delete_untagged in (False, True):
        marked = mark(snap, delete_untagged=delete_untagged)
        assert marked.missing == [] and marked.unsafe_repos == {}
        assert layer.blob.digest in marked.live_blobs
        assert sha512 in marked.reach["alias/app"]
        plan = make_plan(
            snap,
            marked,
            GcSettings(delete_untagged=delete_untagged, grace=timedelta(0), max_delete_fraction=1),
            utcnow(),
        )
        assert plan.refusals == []
        assert [(r["kind"], r["digest"]) for r in plan.rows.to_pylist()] == [
            ("blob", orphan.digest)
        ]


def test_sorted_range_covers_the_digests_of_a_column() -> None:
    named = pa.array([f"sha256:{i:02x}" for i in range(0, 200, 10)])
    plain = pa.chunked_array([pa.array(["sha256:15", "sha256:3c", None])])
    lo, hi = sorted_range(named, plain)
    assert named[lo:hi].to_pylist() == ["sha256:1e", "sha256:28", "sha256:32", "sha256:3c"]
    # Of a dictionary column, the range of its dictionaries (at most wider than its rows').
    encoded = pa.chunked_array([pa.array(["sha256:00", "sha256:c6"]).dictionary_encode()[:1]])
    assert sorted_range(named, encoded) == (0, len(named))
    assert sorted_range(named, pa.chunked_array([pa.array([None], pa.string())])) == (0, 0)


@pytest.mark.parametrize("more", [0, 100])  # the column's values few or many beside named
@pytest.mark.parametrize("encoded", [False, True])
@pytest.mark.parametrize(
    "chunks",
    [
        [["sha256:0a", "sha256:14", None], ["sha256:28", "sha256:c6", "sha256:99"]],  # apart
        [["sha256:00", "sha256:c6"], ["sha256:14", "sha256:99"], ["sha256:c6", None, "sha256:3c"]],
        [],
    ],
)
def test_places_of_a_column_in_chunks_are_its_digests_places(
    chunks: list[list[str | None]], encoded: bool, more: int
) -> None:
    """Looked up chunk by chunk in each chunk's range where the ranges are apart, at once
    where they overlap: the same places either way (null where a digest is not named)."""
    named = pa.array([f"sha256:{i:02x}" for i in range(0, 200, 10)])
    arrays = [pa.array(c, pa.string()) for c in chunks]
    if encoded and arrays:
        arrays = [a.dictionary_encode() for a in arrays]
        arrays.append(arrays[0][1:])  # a dictionary used twice
    col = pa.chunked_array(arrays, arrays[0].type if arrays else pa.string())
    index = {d: i for i, d in enumerate(named.to_pylist())}
    expected = [index.get(d) for d in pa.chunked_array(col).cast(pa.string()).to_pylist()]
    assert places(col, named).to_pylist() == expected


@pytest.mark.parametrize(
    "values",
    [
        ["sha256:28", "sha256:1e", "sha256:32", "sha256:29", "sha256:28"],  # one length
        ["sha256:28", "sha256:1e", "sha256:3200", "sha256:2"],  # several: hashed instead
        ["sha256:28", None, "sha256:32"],  # a null: hashed instead
    ],
)
def test_places_found_in_a_range_are_places_in_the_whole_named_digests(
    values: list[str | None],
) -> None:
    """Looked for among the named digests in the values' range only, by binary search where
    every value is of one length and by a hash table where not: either way a value's place
    counts from the start of all of them, and a value not named is null."""
    named = pa.array([f"sha256:{i:02x}" for i in range(0, 200, 10)])
    index = {d: i for i, d in enumerate(named.to_pylist())}
    got = places(pa.chunked_array([pa.array(values, pa.string())]), named)
    assert got.type == pa.int32()
    assert got.to_pylist() == [index.get(v) for v in values]  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [4, 200])
def test_index_in_hashes_either_side_alike(n: int) -> None:
    """``_index_in`` finds few digests among many by hashing the few: the same places as
    ``index_in`` over the named digests (duplicates, nulls and unnamed digests included)."""
    named = pa.array([f"sha256:{i:03x}" for i in range(n)])
    values = pa.chunked_array(
        [["sha256:001", None, "sha256:fff"], ["sha256:003", "sha256:001", "sha256:002"]]
    )
    expected = pc.index_in(values, value_set=named).to_pylist()
    assert _index_in(values, named).to_pylist() == expected
    assert expected[:3] == [1, None, None]


def _ms(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _last_uses(snap: Snapshot) -> dict[str, int]:
    """storage-layout.md §5 ``blob_last_activity`` less the blob's own time, in plain Python
    over the rows: epoch milliseconds by digest."""
    last: dict[str, int] = {}

    def touch(d: str | None, t: datetime | None) -> None:
        if d is not None and t is not None:
            last[d] = max(last.get(d, _ms(t)), _ms(t))

    ll = snap["layer_links"]
    for d, target, t in zip(
        column(ll, "digest"), column(ll, "target"), column(ll, "last_modified"), strict=True
    ):
        touch(target or d, t)
    manifest: dict[str, datetime] = {}
    for name, col in (("revisions", "target"), ("tags", "digest"), ("tag_history", "digest")):
        for d, t in zip(column(snap[name], col), column(snap[name], "last_modified"), strict=True):
            if d is not None and t is not None:
                manifest[d] = max(manifest.get(d, t), t)
    for d, t in manifest.items():
        touch(d, t)
    for parent, children in _strong_edges(snap).items():
        for child in children:
            touch(child, manifest.get(parent))
    return last


def test_last_use_of_each_blob_matches_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan's grace check on places (a young link or manifest that uses a blob keeps it)
    against plain Python, on a demo store whose links have many different times."""
    root = tmp_path / "registry"
    root.mkdir()
    generate_demo(FilesystemStore(root), now=utcnow() - timedelta(days=30))
    rng = random.Random(7)
    base = time.time() - 40 * 86400
    for link in sorted(root.rglob("link")):
        t = base + rng.randrange(40 * 86400)
        os.utime(link, (t, t))
    snap = scan(FilesystemStore(root))
    graph = Graph.from_snapshot(snap)
    last = _last_use_ms(snap, graph)
    used = np.flatnonzero(last != np.iinfo(np.int64).min)
    expected = _last_uses(snap)
    assert len(expected) > 20
    assert dict(zip(graph.digests_at(used).to_pylist(), last[used].tolist(), strict=True)) == (
        expected
    )
    # The links, revisions and tags two at a time: the same.
    monkeypatch.setattr(plan_module, "_SLICE_ROWS", 2)
    assert (_last_use_ms(snap, graph) == last).all()
    # The blobs _young_use flags: stored, not live, used at or after the cutoff.
    live = np.zeros(len(graph.named), bool)
    live[: len(live) // 2] = True
    for days in (5, 20, 35):
        cutoff = utcnow() - timedelta(days=days)
        flags = _young_use(snap, graph, live, _ms(cutoff) * 1000)
        young = set(graph.digests_at(np.flatnonzero(flags)).to_pylist())
        assert young == {
            d
            for d, ms in expected.items()
            if ms >= _ms(cutoff)
            and graph.stored(at := int(graph.places_of([d])[0]))
            and not live[at]
        }


def test_edges_by_parent_keep_the_rows_order_and_drop_unnamed_ends() -> None:
    """The graph's edges (``_csr``): each parent's children in the order of the rows, the
    parents sorted stably where they are not; an edge with an unnamed end (-1) dropped. Where
    every edge is kept and the parents are in order, the children are the int32 array given,
    not a copy of it."""
    from regsweep.scan.graph import _csr

    parents = np.array([2, 0, 2, -1, 0, 1], np.int32)
    children = np.array([5, 3, 4, 1, -1, 0], np.int32)
    starts, kids = _csr(parents, children, 6)
    assert starts.tolist() == [0, 1, 2, 4, 4, 4, 4]
    assert kids.tolist() == [3, 0, 5, 4]
    in_order = np.array([0, 0, 1, 3], np.int32)
    named = np.array([4, 2, 1, 0], np.int32)
    starts, kids = _csr(in_order, named, 4)
    assert starts.tolist() == [0, 2, 3, 3, 4]
    assert kids is named


def test_alias_links_over_one_dictionary_are_found_by_index_as_by_value() -> None:
    """Links over the graph's named digests themselves are compared by their indices; over
    anything else (another dictionary, one with a value twice, plain columns) by their
    digests: the same alias links either way."""
    from regsweep.scan.graph import _alias_links

    distinct = pa.array([bytes([i]) * 32 for i in range(3)], pa.binary(32))
    twice = pa.array([b"a" * 32, b"a" * 32], pa.binary(32))

    def links(digest: list[int | None], target: list[int | None], values: pa.Array) -> pa.Table:
        def over(at: list[int | None]) -> pa.DictionaryArray:
            return pa.DictionaryArray.from_arrays(pa.array(at, pa.int32()), values)

        return pa.table(
            {"repository": ["r"] * len(digest), "digest": over(digest), "target": over(target)}
        )

    def found(table: pa.Table) -> list[tuple[object, object]]:
        return [
            (d, t)
            for part in _alias_links(table, distinct)
            for d, t in zip(part["digest"].to_pylist(), part["target"].to_pylist(), strict=True)
        ]

    one = links([0, 1, None, 2], [0, 2, 1, None], distinct)
    assert found(one) == [(distinct[1].as_py(), distinct[2].as_py()), (None, distinct[1].as_py())]
    plain = pa.schema(
        [("repository", pa.string()), ("digest", pa.binary(32)), ("target", pa.binary(32))]
    )
    assert found(one.cast(plain)) == found(one)
    copy = pa.array(distinct.to_pylist(), pa.binary(32))  # (equal, but not ``named`` itself)
    assert found(links([0, 1, None, 2], [0, 2, 1, None], copy)) == found(one)
    assert found(links([0], [1], twice)) == []  # equal digests at two indices: no alias
