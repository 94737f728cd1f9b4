"""The plan's column-wise parts (issue 7: memory) against plain Python over the same rows: the
graph keeps only the blobs something names, the summaries are aggregated in Arrow, and the blob
phase does not depend on the order of the snapshot's blobs table."""

from __future__ import annotations

import hashlib
import pathlib
from collections import defaultdict
from dataclasses import replace
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from regsweep.clock import utcnow
from regsweep.gc import plan as plan_module
from regsweep.gc.apply import _Applier
from regsweep.gc.mark import mark
from regsweep.gc.plan import PLAN_SCHEMA, GcSettings, Plan, TagRemoval, make_plan
from regsweep.layout.keys import blob_data_key
from regsweep.reports.dataset import load_plan
from regsweep.scan.graph import Graph, column_places
from regsweep.scan.snapshot import Snapshot, ascending, column
from regsweep.scan.spill import SpilledTable
from regsweep.storage.filesystem import FilesystemStore


def test_graph_keeps_only_named_blobs_and_counts_them_all(snap: Snapshot) -> None:
    graph = Graph.from_snapshot(snap)
    named: set[str] = set()
    for table, columns in {
        "references": ("parent", "child"),
        "manifests": ("digest",),
        "layer_links": ("digest", "target"),
        "revisions": ("digest", "target"),
        "tags": ("digest",),
        "tag_history": ("digest",),
    }.items():
        for c in columns:
            named |= {d for d in column(snap[table], c) if d is not None}
    blobs = dict(zip(column(snap["blobs"], "digest"), column(snap["blobs"], "size"), strict=True))
    assert set(blobs) - named, "the demo store should hold blobs nothing names"
    assert graph.blob_sizes == {d: s for d, s in blobs.items() if d in named}
    assert (graph.stored_blobs, graph.stored_bytes) == (len(blobs), sum(blobs.values()))


@pytest.mark.parametrize("delete_untagged", [False, True])
def test_summaries_match_the_rows(snap: Snapshot, delete_untagged: bool) -> None:
    settings = GcSettings(delete_untagged=delete_untagged, grace=timedelta(0))
    plan = make_plan(snap, mark(snap, delete_untagged=delete_untagged), settings, utcnow())
    rows = plan.rows.to_pylist()
    assert {r["kind"] for r in rows} >= {"blob", "upload"}
    summary: dict[str, dict[str, int]] = {}
    candidates: dict[str, set[int]] = defaultdict(set)
    by_repo: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        e = summary.setdefault(r["kind"], {"count": 0, "keys": 0, "bytes": 0})
        e["keys"] += 1
        e["bytes"] += r["size"] or 0
        candidates[r["kind"]].add(r["candidate"])
        if r["repository"] is not None:
            by_repo[r["repository"]][f"{r['kind']}_keys"] += 1
            by_repo[r["repository"]]["bytes"] += r["size"] or 0
    for kind, cands in candidates.items():
        summary[kind]["count"] = len(cands)
    assert plan.summary() == summary
    assert list(plan.summary()) == list(summary)  # the order kinds first appear in
    assert plan.by_repository() == {k: dict(v) for k, v in sorted(by_repo.items())}
    assert plan.total_bytes() == sum(r["size"] or 0 for r in rows)


def test_blob_phase_does_not_depend_on_the_blobs_order(snap: Snapshot) -> None:
    settings = GcSettings(grace=timedelta(0))
    now = utcnow()
    blobs = snap["blobs"]
    assert ascending(blobs["digest"]), "a scan sorts blobs"
    reversed_ = Snapshot(
        {
            **{name: snap[name] for name in snap.names()},
            "blobs": blobs.take(pa.array(range(blobs.num_rows - 1, -1, -1))),
        },
        snap.meta,
    )
    expected = make_plan(snap, mark(snap), settings, now, run_id="r").rows
    got = make_plan(reversed_, mark(reversed_), settings, now, run_id="r").rows
    assert got.to_pylist() == expected.to_pylist()
    assert "blob" in column(expected, "kind")


def test_blob_rows_share_the_snapshot_strings(snap: Snapshot) -> None:
    """Blobs held in memory: the blob phase's digests are dictionaries over the snapshot's own
    column (4 bytes a row), not copies of the strings, and it holds no key the digest tells;
    by value they are the blobs that go."""
    in_memory = Snapshot({name: snap[name] for name in snap.names()}, snap.meta)
    plan = make_plan(in_memory, mark(in_memory), GcSettings(grace=timedelta(0)), utcnow())
    blob_rows = plan.rows.filter(pc.equal(plan.rows["kind"], "blob"))
    assert blob_rows.num_rows
    blobs = in_memory["blobs"]

    def data(a: pa.Array) -> int:
        return int(a.buffers()[2].address)

    stored_digests = {data(c.dictionary) for c in blobs["digest"].chunks}
    for chunk in blob_rows["digest"].chunks:
        assert data(chunk.dictionary) in stored_digests
    assert blobs["key"].null_count == blobs.num_rows
    assert blob_rows["key"].null_count == blob_rows.num_rows
    full = plan.decoded_rows(blob_rows)
    assert column(full, "key") == [blob_data_key(d) for d in column(full, "digest")]


def test_spilled_blob_rows_hold_only_their_own_digests(snap: Snapshot) -> None:
    """Blobs on disk (a scan's): the blob rows are written out too, and their dictionaries
    hold the digests of the blobs that go, not every blob of their part."""
    assert "blobs" in snap.spilled
    plan = make_plan(snap, mark(snap), GcSettings(grace=timedelta(0)), utcnow())
    blob_rows = plan.rows.filter(pc.equal(plan.rows["kind"], "blob"))
    assert blob_rows.num_rows
    dictionaries = {d for c in blob_rows["digest"].chunks for d in c.dictionary.to_pylist()}
    assert dictionaries == set(column(blob_rows, "digest"))
    assert blob_rows["key"].null_count == blob_rows.num_rows
    full = plan.decoded_rows(blob_rows)
    assert column(full, "key") == [blob_data_key(d) for d in column(full, "digest")]


def test_tag_and_revision_rows_hold_no_key_their_columns_tell(snap: Snapshot) -> None:
    """Tag, tag-index and revision rows, as blob and ``_layers`` link rows, hold no key in
    memory where the snapshot holds none (it follows from repository, tag and digest); built,
    they are the snapshot's keys of the links that go."""
    tags = snap["tags"]
    expired = set(zip(column(tags, "repository"), column(tags, "tag"), strict=True))
    removals: dict[str, dict[str, TagRemoval]] = defaultdict(dict)
    for repo, tag in expired:
        removals[repo][tag] = TagRemoval("retention", "r")
    settings = GcSettings(delete_untagged=True, grace=timedelta(0), max_delete_fraction=1)
    marked = mark(snap, delete_untagged=True, expired_tags=expired)
    plan = make_plan(snap, marked, settings, utcnow(), extra_removed_tags=removals)
    rows = plan.rows.filter(pc.is_in(plan.rows["kind"], pa.array(["tag", "tag_index", "revision"])))
    assert set(column(rows, "kind")) == {"tag", "tag_index", "revision"}
    assert rows["key"].null_count == rows.num_rows
    keys = column(plan.decoded_rows(rows), "key")
    known = {
        k
        for name in ("tags", "tag_history", "revisions")
        for k in column(snap.with_keys(name), "key")
    }
    assert len(set(keys)) == len(keys) and set(keys) <= known


def test_plan_file_holds_plain_strings_and_reads_back_equal(
    snap: Snapshot, tmp_path: pathlib.Path
) -> None:
    """A plan file stays what it was (plain string columns, one row group per slice) and
    ``Plan.read`` gives back the same rows, whatever the in-memory encoding."""
    settings = GcSettings(delete_untagged=True, grace=timedelta(0), max_delete_fraction=1)
    plan = make_plan(snap, mark(snap, delete_untagged=True), settings, utcnow())
    path = tmp_path / "plan.parquet"
    plan.write(path)
    schema = pq.read_schema(path)
    assert all(not pa.types.is_dictionary(f.type) for f in schema)
    assert schema.field("key").type == pa.string()
    back = Plan.read(path)
    assert back.rows.schema == PLAN_SCHEMA
    assert back.decoded_rows().to_pylist() == plan.decoded_rows().to_pylist()
    assert back.summary() == plan.summary()
    keys = column(plan.decoded_rows(), "key")
    assert None not in keys
    assert load_plan(path)["key"].tolist() == keys


def test_plan_file_of_many_row_groups_reads_back_a_group_at_a_time(
    snap: Snapshot, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan file of several row groups (a large plan) is read into scratch files a row
    group at a time and mapped back: the same rows, summary and candidates for apply, in
    parts."""
    settings = GcSettings(delete_untagged=True, grace=timedelta(0), max_delete_fraction=1)
    plan = make_plan(snap, mark(snap, delete_untagged=True), settings, utcnow())
    monkeypatch.setattr(plan_module, "_WRITE_ROWS", 7)
    path = tmp_path / "plan.parquet"
    plan.write(path)
    groups = pq.ParquetFile(path).num_row_groups
    assert groups >= -(-plan.rows.num_rows // 7) > 2
    back = Plan.read(path)
    assert back.built_from is not None and back.built_from[0] is back.rows
    assert isinstance(back.built_from[1][0], SpilledTable)
    assert len(list(back.row_parts())) == groups
    assert back.rows.schema == PLAN_SCHEMA
    assert back.decoded_rows().to_pylist() == plan.decoded_rows().to_pylist()
    assert back.summary() == plan.summary()
    store = FilesystemStore(tmp_path)  # not touched: candidates only reads the plan
    candidates = [
        list(_Applier(store, p, "delete", lambda *a: None, 5).candidates()) for p in (plan, back)
    ]
    assert candidates[0] == candidates[1] and len(candidates[0]) > 3


def test_link_phase_is_the_same_a_slice_at_a_time(
    snap: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_layers links become Python values a slice at a time; slices of two rows give the same
    plan as one slice of every link."""
    settings = GcSettings(delete_untagged=True, grace=timedelta(0), max_delete_fraction=1)
    marked = mark(snap, delete_untagged=True)
    now = utcnow()
    expected = make_plan(snap, marked, settings, now, run_id="r").rows.to_pylist()
    assert sum(r["kind"] == "layer_link" for r in expected) > 2, "want several link rows"
    monkeypatch.setattr(plan_module, "_SLICE_ROWS", 2)
    assert make_plan(snap, marked, settings, now, run_id="r").rows.to_pylist() == expected


def test_rows_added_one_by_one_go_to_arrow_a_few_at_a_time(
    snap: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan's tag, revision and link rows are held as Python values only a few thousand at
    a time, then moved to Arrow: moved three at a time, the same rows in the same order."""
    settings = GcSettings(delete_untagged=True, grace=timedelta(0), max_delete_fraction=1)
    marked = mark(snap, delete_untagged=True)
    now = utcnow()
    whole = make_plan(snap, marked, settings, now, run_id="r")
    expected = whole.rows.to_pylist()
    assert sum(r["kind"] != "blob" for r in expected) > 6, "want several rows added one by one"
    monkeypatch.setattr(plan_module, "_PYTHON_ROWS", 3)
    sliced = make_plan(snap, marked, settings, now, run_id="r")
    assert sliced.rows.to_pylist() == expected
    assert sliced.summary() == whole.summary()


def test_summary_is_the_same_whatever_the_row_order(snap: Snapshot) -> None:
    """Candidates are counted where the candidate changes when the rows are in seq order, and
    with a distinct count otherwise: both give the same summary."""
    settings = GcSettings(delete_untagged=True, grace=timedelta(0), max_delete_fraction=1)
    plan = make_plan(snap, mark(snap, delete_untagged=True), settings, utcnow())
    assert any(c["count"] < c["keys"] for c in plan.summary().values()), "want multi-key ones"
    shuffled = replace(plan, rows=plan.rows.take(pa.array(range(plan.rows.num_rows - 1, -1, -1))))
    assert shuffled.summary() == plan.summary()


def test_each_blobs_place_in_the_graph_whatever_the_lengths_of_its_digests() -> None:
    """The blob phase finds each blob's place among the graph's digests (sorted), once per
    value of each chunk's dictionary: by binary search where a chunk's digests and the graph's
    in their range are of one length, else by hash (a sha512 blob among sha256 ones, once for
    chunks whose ranges overlap); -1 where the graph does not name the blob. A column of
    plain strings, chunk by chunk, the same."""

    def sha(n: int, alg: str = "sha256") -> str:
        return f"{alg}:" + hashlib.new(alg, str(n).encode()).hexdigest()

    named = sorted({sha(i) for i in range(0, 60, 2)} | {sha(i, "sha512") for i in range(0, 10, 2)})
    plain = sorted(sha(i) for i in range(40))  # every other one named
    mixed = sorted([*(sha(i) for i in range(40, 60)), *(sha(i, "sha512") for i in range(10))])
    overlapping = sorted([sha(7), sha(48), sha(2, "sha512"), sha(3, "sha512")])
    chunks = [
        pa.DictionaryArray.from_arrays(pa.array([3, 0, 1, 3, 39], pa.int32()), pa.array(plain)),
        pa.DictionaryArray.from_arrays(pa.array(range(len(mixed)), pa.int32()), pa.array(mixed)),
        pa.DictionaryArray.from_arrays(pa.array([3, 2, 1, 0], pa.int32()), pa.array(overlapping)),
    ]
    place = {d: i for i, d in enumerate(named)}
    for col in (pa.chunked_array(chunks), pa.chunked_array([c.cast(pa.string()) for c in chunks])):
        at = column_places(col, pa.array(named))
        assert at.tolist() == [place.get(d, -1) for d in col.to_pylist()]
        assert (at >= 0).any() and (at < 0).any()
