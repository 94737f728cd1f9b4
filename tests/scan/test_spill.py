"""The blobs of a scan and the blob rows of a plan live in scratch files (scan/spill.py): they
must come back exactly as written, in order, the scan must give the same snapshot however many
files its listing is cut into, a plan must be the same whether the blobs are on disk or in
memory, and a scratch directory that cannot be written must be a clear error."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from regsweep.clock import utcnow
from regsweep.demo.generator import generate_demo
from regsweep.gc.mark import mark
from regsweep.gc.plan import GcSettings, make_plan
from regsweep.layout.digest_columns import text_of
from regsweep.scan import scanner
from regsweep.scan.graph import named_digests
from regsweep.scan.scanner import scan
from regsweep.scan.snapshot import DIGEST_COLUMNS, Snapshot, ascending, decoded, identity, rows
from regsweep.scan.spill import ScratchError, SpilledTable
from regsweep.storage.filesystem import FilesystemStore

V2 = "docker/registry/v2/"
SCHEMA = pa.schema([("name", pa.dictionary(pa.int32(), pa.string())), ("n", pa.int64())])


def _part(names: list[str], start: int) -> pa.Table:
    return pa.table(
        {
            "name": pa.array(names).dictionary_encode(),
            "n": pa.array(range(start, start + len(names)), pa.int64()),
        }
    )


def test_parts_come_back_in_order_with_their_own_dictionaries() -> None:
    t = SpilledTable(SCHEMA, "test")
    t.append(_part(["a", "b", "a"], 0))
    t.append(_part(["c"], 3))
    t.append(_part([], 4))
    assert (t.num_rows, t.num_parts) == (4, 3)
    parts = list(t.parts())
    assert [p.num_rows for p in parts] == [3, 1, 0]
    assert rows(parts[0]) == [{"name": "a", "n": 0}, {"name": "b", "n": 1}, {"name": "a", "n": 2}]
    assert [p.column_names for p in t.parts(["n"])] == [["n"]] * 3
    whole = t.table()
    assert whole.schema == SCHEMA
    assert rows(whole) == [{"name": n, "n": i} for i, n in enumerate(["a", "b", "a", "c"])]


def test_columns_over_a_shared_dictionary_are_written_as_indices(tmp_path: Path) -> None:
    """A column over a dictionary held in memory (the snapshot's digests) is written as its
    indices only and read back over that same dictionary; a part over another dictionary is
    refused rather than read back wrong."""
    names = pa.array([f"sha256:{i:064x}" for i in range(5000)])
    t = SpilledTable(SCHEMA, "test", {"name": names})
    rows_at = pa.array([4999, 0, 7, 7], pa.int32())
    t.append(pa.table({"name": pa.DictionaryArray.from_arrays(rows_at, names), "n": [1, 2, 3, 4]}))
    on_disk = sum(p.stat().st_size for p in Path(t._dir).iterdir())
    assert on_disk < names.nbytes // 10  # the dictionary is not in the file
    back = t.table()
    assert back.schema == SCHEMA
    assert back["name"].num_chunks == 1
    assert identity(back["name"].chunk(0).dictionary) == identity(names)
    assert back["name"].chunk(0).indices.to_pylist() == rows_at.to_pylist()
    assert [p.column_names for p in t.parts(["n"])] == [["n"]]
    with pytest.raises(ValueError, match="shared dictionary"):
        t.append(_part(["a"], 0))


def test_a_scans_references_are_on_disk_over_its_digests(
    registry: FilesystemStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The references wait for the graph, the audit and the reports in scratch files, their
    digests indices into the snapshot's one dictionary; read back, they are the rows a scan
    held in memory before, and a take of some of them copies no digest."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    snap = scan(registry)
    assert set(snap.spilled) == {"blobs", "references"}
    refs = snap["references"]
    assert refs.num_rows == snap.num_rows("references") > 0
    shared = snap["manifests"]["digest"].chunk(0).dictionary
    for name in ("parent", "child"):
        assert [identity(c.dictionary) for c in refs[name].chunks] == [identity(shared)]
    few = refs.take(pa.array([0, refs.num_rows - 1]))
    assert identity(few["parent"].chunk(0).dictionary) == identity(shared)
    in_memory = Snapshot({name: snap[name] for name in snap.names()}, snap.meta)
    for name in DIGEST_COLUMNS["references"]:
        assert decoded(refs[name]).to_pylist() == decoded(in_memory["references"][name]).to_pylist()
    del snap, refs, few, in_memory
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("regsweep-references")]


def test_a_child_no_other_table_names_is_among_the_digests_the_references_index(
    registry: FilesystemStore,
) -> None:
    """The references are read back onto the union of the other tables' digests and of the
    children only they name (a layer whose blob and ``_layers`` links are all gone): every
    reference is there, its child's digest in the one dictionary that every digest column
    indexes, and the plan treats that layer as the missing blob it is."""
    whole = scan(registry)
    refs = rows(whole["references"])
    layer = next(r["child"] for r in refs if r["kind"] == "layer")
    keys = [f"{V2}blobs/sha256/{layer[7:9]}/{layer[7:]}/data"] + [
        f"{V2}repositories/{r['repository']}/_layers/sha256/{layer[7:]}/link"
        for r in rows(whole["layer_links"])
        if r["digest"] == layer
    ]
    registry.delete_many(keys)
    snap = scan(registry)
    assert layer not in decoded(snap["layer_links"]["digest"]).to_pylist()
    assert rows(snap["references"]) == refs  # every reference, the same rows
    shared = {
        identity(ch.dictionary)
        for t, cs in DIGEST_COLUMNS.items()
        for c in cs
        for ch in snap[t][c].chunks
    }
    assert len(shared) == 1
    dictionary = snap["manifests"]["digest"].chunk(0).dictionary
    assert layer in text_of(dictionary).to_pylist() and ascending(dictionary)
    missing = mark(snap).missing
    assert {m.blob for m in missing} == {layer}


def test_scratch_files_go_with_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    t = SpilledTable(SCHEMA, "test")
    t.append(_part(["a"], 0))
    mapped = t.table()
    assert len(list(tmp_path.iterdir())) == 1
    del t
    assert list(tmp_path.iterdir()) == []
    assert rows(mapped) == [{"name": "a", "n": 0}]  # what was mapped stays readable
    u = SpilledTable(SCHEMA, "test")
    u.append(_part(["b"], 0))
    u.close()
    assert (list(tmp_path.iterdir()), u.num_rows, list(u.parts())) == ([], 0, [])


def test_a_scratch_directory_that_cannot_be_written_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_dir))
    with pytest.raises(ScratchError, match="TMPDIR") as e:
        SpilledTable(SCHEMA, "blobs")
    assert e.value.exit_code == 2
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    t = SpilledTable(SCHEMA, "blobs")
    t.close()  # its directory is gone: the next write fails
    with pytest.raises(ScratchError, match="scratch files for the blobs"):
        t.append(_part(["a"], 0))


@pytest.fixture
def registry(tmp_path: Path) -> FilesystemStore:
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=7, now=datetime(2026, 11, 20, tzinfo=UTC))
    # Blobs of other algorithms, which sort after every sha256 digest and keep their keys.
    for alg in ("sha384", "sha512"):
        data = f"odd {alg} blob".encode()
        hex_ = hashlib.new(alg, data).hexdigest()
        store.write(f"{V2}blobs/{alg}/{hex_[:2]}/{hex_}/data", data)
    return store


def test_a_scan_is_the_same_however_many_files_its_blobs_take(
    registry: FilesystemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = scan(registry)
    assert whole.spilled["blobs"].num_parts == 1  # a small store's blobs make one part
    monkeypatch.setattr(scanner, "_SPILL_ROWS", 1)  # every listed blob row its own file
    monkeypatch.setattr(scanner, "_PART_ROWS", 1)  # every sixteenth its own part
    cut = scan(registry)
    blobs = cut.spilled["blobs"]
    assert blobs.num_parts > 2
    assert ascending(cut["blobs"]["digest"]), "sorted across the parts"
    assert [d.split(":")[0] for d in rows(cut["blobs"])[-2:] for d in [d["digest"]]] == [
        "sha384",
        "sha512",
    ]
    assert cut.names() == whole.names()
    for name in whole.names():
        assert rows(cut.with_keys(name)) == rows(whole.with_keys(name)), name
    assert cut.counts() == whole.counts()
    assert cut.counts()["blobs"] == blobs.num_rows


def test_the_references_of_manifests_read_while_listing_go_through_scratch_files(
    registry: FilesystemStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written out as each batch of manifests is read while listing, and read back a few
    parts at a time: the same snapshot however they are cut, and no scratch files left."""
    whole = scan(registry)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(scanner, "_BATCH", 1)  # each manifest read while listing, a part
    monkeypatch.setattr(scanner, "_REFERENCE_PARTS", 2)
    written: list[int] = []
    append = SpilledTable.append

    def counted(self: SpilledTable, part: pa.Table) -> None:
        if self.what == "listed references":
            written.append(part.num_rows)
        append(self, part)

    monkeypatch.setattr(SpilledTable, "append", counted)
    cut = scan(registry)
    assert len(written) > 2 and sum(written) == whole["references"].num_rows
    for name in whole.names():
        assert rows(cut.with_keys(name)) == rows(whole.with_keys(name)), name
    assert not [p for p in tmp_path.iterdir() if "listed references" in p.name]


def test_whether_a_links_blob_is_stored_is_looked_up_in_every_part_of_the_blobs(
    registry: FilesystemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A _layers link whose blob was never stored, beside the demo's links, whose blobs are.
    repo = rows(scan(registry)["layer_links"])[0]["repository"]
    absent = "sha256:" + hashlib.sha256(b"never stored").hexdigest()
    registry.write(f"{V2}repositories/{repo}/_layers/sha256/{absent[7:]}/link", absent.encode())
    monkeypatch.setattr(scanner, "_SPILL_ROWS", 1)
    monkeypatch.setattr(scanner, "_PART_ROWS", 1)  # the stored blobs in many parts
    snap = scan(registry)
    assert snap.spilled["blobs"].num_parts > 2
    links = rows(snap["layer_links"])
    assert [r["digest"] for r in links if not r["blob_present"]] == [absent]
    assert len(links) > 10
    stored = {r["digest"] for r in rows(snap["blobs"])}
    assert all(r["target"] in stored for r in links if r["blob_present"])


def test_a_scans_digest_columns_share_one_dictionary_and_are_written_compact(
    registry: FilesystemStore, tmp_path: Path
) -> None:
    snap = scan(registry)
    digest_columns = [(t, c) for t, cs in DIGEST_COLUMNS.items() for c in cs]
    shared = {identity(ch.dictionary) for t, c in digest_columns for ch in snap[t][c].chunks}
    assert len(shared) == 1
    assert {identity(named_digests(snap))} == shared  # the graph reads places, no lookups
    snap.write(tmp_path / "snap")
    back = Snapshot.read(tmp_path / "snap")
    for t, c in digest_columns:
        assert rows(back[t]) == rows(snap[t]), t
        col = back[t][c]
        # Parquet writes a dictionary whole: each table's own digests only, not the store's.
        distinct = len(pc.unique(decoded(col)).drop_null())
        assert 0 < sum(len(ch.dictionary) for ch in col.chunks) <= distinct, (t, c)


@pytest.mark.parametrize("delete_untagged", [False, True])
def test_a_plan_is_the_same_with_the_blobs_on_disk_or_in_memory(
    registry: FilesystemStore, delete_untagged: bool
) -> None:
    on_disk = scan(registry)
    in_memory = Snapshot({name: on_disk[name] for name in on_disk.names()}, on_disk.meta)
    assert "blobs" in on_disk.spilled and "blobs" not in in_memory.spilled
    settings = GcSettings(grace=timedelta(0), delete_untagged=delete_untagged)
    now = utcnow()
    a = make_plan(
        on_disk, mark(on_disk, delete_untagged=delete_untagged), settings, now, run_id="r"
    )
    b = make_plan(
        in_memory, mark(in_memory, delete_untagged=delete_untagged), settings, now, run_id="r"
    )
    assert rows(a.decoded_rows()) == rows(b.decoded_rows())
    assert a.to_json() == b.to_json()
    kinds = [r["kind"] for r in rows(a.rows)]
    assert kinds.count("blob") >= 3  # the demo's orphans and the odd blobs
    assert a.refusals == b.refusals


def test_gc_stops_cleanly_when_scratch_files_cannot_be_written(
    registry: FilesystemStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2 with a message that names TMPDIR, before anything is deleted (with --apply too),
    and the lock released."""
    from click.testing import CliRunner

    from regsweep.cli.main import cli

    root = Path(registry.root)
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    not_a_dir = tmp_path / "full"
    not_a_dir.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_dir))
    argv = ["gc", str(root), "--grace", "0s", "--apply", "--yes", "--max-delete-fraction", "1"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, result.output
    assert "TMPDIR" in result.output and "scratch files" in result.output
    after = sorted(str(p.relative_to(root)) for p in root.rglob("*") if "regsweep" not in str(p))
    assert after == [p for p in before if "regsweep" not in p]
    assert not list(root.rglob("lock.json"))
