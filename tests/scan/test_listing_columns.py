"""The filesystem's columnar listing (bfs or GNU find, several processes) must list exactly what
the record-by-record walker lists, and the scan must give the same snapshot whichever is used:
with bfs, with GNU find, and with neither (the scan falls back to ``iter_objects``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regsweep.demo.generator import generate_demo
from regsweep.errors import StoreError, UsageError
from regsweep.scan import listing
from regsweep.scan.listing import list_layout
from regsweep.scan.scanner import scan
from regsweep.scan.snapshot import Snapshot, column, rows
from regsweep.storage import filesystem
from regsweep.storage.columns import LISTING_SCHEMA, list_table, listing_table
from regsweep.storage.filesystem import FilesystemStore
from regsweep.storage.readonly import ReadOnlyStore

V2 = "docker/registry/v2/"

pytestmark = pytest.mark.skipif(filesystem._walker() is None, reason="no bfs or GNU find")


def use_walker(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str] | None:
    """List with ``name`` (bfs, find or python), as REGSWEEP_FS_WALKER says; skip the test
    if it is not installed (CI installs both)."""
    monkeypatch.setenv("REGSWEEP_FS_WALKER", name)
    filesystem._walker.cache_clear()  # and again after the test (_fresh_walker)
    try:
        return filesystem._walker()
    except UsageError:
        pytest.skip(f"{name} is not installed")


@pytest.fixture(autouse=True)
def _fresh_walker() -> Iterator[None]:
    yield
    filesystem._walker.cache_clear()


@pytest.fixture(params=["bfs", "find"])
def walker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each C walker in turn, as the one the store lists with."""
    cmd = use_walker(monkeypatch, request.param)
    assert cmd is not None
    return cmd


@pytest.fixture
def demo(tmp_path: Path) -> FilesystemStore:
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=3, now=datetime(2026, 11, 20, tzinfo=UTC))
    # Odd names the walker must not lose: spaces, a newline, non-ASCII, a symlink, an empty file.
    (tmp_path / "reg" / V2 / "repositories" / "odd dir").mkdir()
    (tmp_path / "reg" / V2 / "repositories" / "odd dir" / "a\nb").write_bytes(b"x")
    (tmp_path / "reg" / V2 / "repositories" / "odd dir" / "é").write_bytes(b"")
    os.symlink("é", tmp_path / "reg" / V2 / "repositories" / "odd dir" / "link-to-é")
    return store


def _by_key(table: pa.Table) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda r: str(r["key"]))


def test_walker_picks_bfs_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    bfs = shutil.which("bfs")
    if bfs is None or not filesystem.lists_like_find([bfs, "-S", "dfs"]):
        pytest.skip("bfs is not installed")
    monkeypatch.delenv("REGSWEEP_FS_WALKER", raising=False)
    filesystem._walker.cache_clear()
    assert filesystem._walker() == [bfs, "-S", "dfs"]
    assert not filesystem.lists_like_find(["ls"])  # no -printf: not a walker
    monkeypatch.setenv("REGSWEEP_FS_WALKER", "fd")
    filesystem._walker.cache_clear()
    with pytest.raises(UsageError, match="expected bfs, find or python"):
        filesystem._walker()
    monkeypatch.setenv("REGSWEEP_FS_WALKER", "find")
    monkeypatch.setenv("PATH", "/nonexistent")
    filesystem._walker.cache_clear()
    with pytest.raises(UsageError, match="no find on PATH"):
        filesystem._walker()


def test_find_listing_equals_the_walker(demo: FilesystemStore, walker: list[str]) -> None:
    prefixes = [V2 + "blobs/", V2 + "repositories/"]
    fast = list_table(demo, prefixes)
    slow = pa.concat_tables([listing_table(demo.iter_objects(p)) for p in prefixes])
    assert fast.schema == LISTING_SCHEMA
    assert fast.num_rows == slow.num_rows > 50
    assert _by_key(fast) == _by_key(slow)  # keys, sizes and times to the millisecond
    keys = set(fast["key"].to_pylist())
    assert V2 + "repositories/odd dir/a\nb" in keys
    assert V2 + "repositories/odd dir/link-to-é" in keys


@pytest.mark.parametrize("block", [1, 7, 100, 4096])
def test_the_walkers_output_read_in_blocks_lists_the_same(
    demo: FilesystemStore, walker: list[str], block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walker's output is read and converted a block at a time, each up to its last
    whole record (size, time and path, each NUL-terminated): records and fields split across
    blocks, and blocks holding no whole record, list the same as one block, and the scan
    (which classifies a block at a time) gives the same snapshot."""
    whole = list_table(demo, [V2])
    before = scan(demo)
    monkeypatch.setattr(filesystem, "_BLOCK", block)
    blocks = list_table(demo, [V2])
    assert _by_key(blocks) == _by_key(whole)
    if block < 4096:
        assert blocks.to_batches() and len(blocks.to_batches()) > 1
    after = scan(demo)
    for name in before.names():
        assert rows(before[name]) == rows(after[name]), name
    assert filesystem._whole_records(b"") == 0
    assert filesystem._whole_records(b"1\x002.5\x00a\x00") == len(b"1\x002.5\x00a\x00")
    assert filesystem._whole_records(b"1\x002.5\x00a\x009\x00") == len(b"1\x002.5\x00a\x00")


def test_read_only_store_lists_through_find(demo: FilesystemStore) -> None:
    ro = ReadOnlyStore(demo)
    assert _by_key(ro.list_table([V2])) == _by_key(demo.list_table([V2]))


def test_a_shard_removed_while_listing_is_just_empty(
    demo: FilesystemStore, walker: list[str]
) -> None:
    table = list_table(demo, [V2 + "repositories/", V2 + "repositories/gone/"])
    assert table.num_rows > 0


def test_an_unreadable_directory_is_a_clear_error(
    walker: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory the walker may not read fails the listing with an error that names it
    (the walker runs as an unprivileged user here: root reads everything)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to list as another user")
    tmp = Path(tempfile.mkdtemp(prefix="regsweep-perm-"))  # not under pytest's root-only dir
    try:
        tmp.chmod(0o755)
        store = FilesystemStore(tmp)
        generate_demo(store, seed=3, now=datetime(2026, 11, 20, tzinfo=UTC))
        locked = sorted((tmp / V2 / "repositories").rglob("_manifests"))[0]
        locked.chmod(0o000)
        user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        monkeypatch.setattr(filesystem, "_walker", lambda: [*user, *walker])
        with pytest.raises(StoreError, match="permission denied") as e:
            store.list_table([V2 + "repositories/"])
        assert str(locked.relative_to(tmp)) in str(e.value)
        locked.chmod(0o755)
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", str(tmp)], check=False)
        shutil.rmtree(tmp)


@pytest.mark.parametrize("how", ["bfs", "find", "python"])
def test_scan_is_the_same_with_every_walker(
    demo: FilesystemStore, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    use_walker(monkeypatch, "python")
    assert demo.list_table([V2]) is None
    by_python = scan(demo)
    use_walker(monkeypatch, how)
    with ThreadPoolExecutor(4) as pool:
        listed = sum(t.num_rows for t in list_layout(demo, V2, pool))
    snap = scan(demo)
    for name in by_python.names():
        assert rows(snap[name]) == rows(by_python[name]), name
    assert listed == sum(
        1 for _ in demo.iter_objects(V2)
    )  # every key listed once, loose files included


def test_groups_come_in_order_and_an_abandoned_listing_stops(
    demo: FilesystemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The filesystem is listed a group of shards at a time, repositories first, each group
    handed on in order as soon as it is listed; a scan that stops (an error while classifying)
    does not go on listing the groups still waiting."""
    started: list[list[str]] = []

    def slow(store: FilesystemStore, prefixes: list[str], blocks: Any = None) -> pa.Table:
        started.append(prefixes)
        time.sleep(0.2)
        return list_table(store, prefixes, blocks)

    with ThreadPoolExecutor(4) as pool:
        every = [t.num_rows for t in list_layout(demo, V2, pool)]
        groups = len(every) - 1  # the first table holds the loose files
        assert groups > 4 and sum(every) == sum(1 for _ in demo.iter_objects(V2))
        monkeypatch.setattr(listing, "list_table", slow)
        first = list_layout(demo, V2, pool)
        next(first)  # the loose files
        keys = column(next(first), "key")
        assert all(k.startswith(V2 + "repositories/") for k in keys)
        first.close()  # returns once the walkers still running have stopped
    assert len(started) < groups
    assert not [t for t in threading.enumerate() if t.name.startswith("find")]


def test_the_listing_runs_a_few_blocks_ahead_at_most(
    demo: FilesystemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the walkers list ahead of the scan is held in memory until the scan takes it: each
    walker's output is handed on a block at a time through a queue of a few blocks, and a
    group is started only as one is done, so however slowly the scan classifies (on a warm
    page cache the walkers are faster than it) a few blocks per core wait at most."""
    cores = 2
    monkeypatch.setattr(listing.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(filesystem, "_BLOCK", 1024)  # a few dozen blocks of the demo's listing
    started: list[list[str]] = []
    handed = [0]

    def counted(store: FilesystemStore, prefixes: list[str], blocks: Any = None) -> pa.Table:
        started.append(prefixes)

        def handed_on(table: pa.Table) -> None:
            blocks(table)
            handed[0] += 1

        return list_table(store, prefixes, handed_on)

    monkeypatch.setattr(listing, "list_table", counted)
    with ThreadPoolExecutor(4) as pool:
        tables = list_layout(demo, V2, pool)
        next(tables)  # the loose files
        taken, rows = 0, 0
        for table in tables:
            taken += 1
            rows += table.num_rows
            time.sleep(0.02)  # a slow scan: the walkers would run ahead if they could
            assert handed[0] - taken <= cores * (listing._WAITING_BLOCKS + 1)
    assert taken == handed[0] > 2 * len(started) > 4 * cores
    assert rows + len(listing.plan_shards(demo, V2)[1]) == sum(1 for _ in demo.iter_objects(V2))


def test_blob_keys_are_the_listed_keys(tmp_path: Path) -> None:
    """The scan holds no key for a blob or ``_layers`` link found by the column classifier
    (null in memory); ``with_keys`` and a written snapshot give them back from the digest and
    repository, and an odd blob path (registry 2.0 tarsum data) keeps its own key."""
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=4, now=datetime(2026, 11, 20, tzinfo=UTC))
    hex_ = "ab" * 32
    odd = V2 + f"blobs/tarsum/v1/sha256/{hex_[:2]}/{hex_}/data"
    store.write(odd, b"tarsum-era layer")
    snap = scan(store)
    assert snap["blobs"]["key"].to_pylist().count(None) == snap["blobs"].num_rows - 1
    assert snap["layer_links"]["key"].null_count == snap["layer_links"].num_rows
    listed = {k for k in (o.key for o in store.iter_objects(V2 + "blobs/")) if k.endswith("/data")}
    blobs = rows(snap.with_keys("blobs"))
    assert {b["key"] for b in blobs} == listed
    assert odd in listed
    for b in blobs:
        if b["key"] != odd:
            alg, h = b["digest"].split(":")
            assert b["key"] == f"{V2}blobs/{alg}/{h[:2]}/{h}/data"
    links = {o.key for o in store.iter_objects(V2 + "repositories/") if "/_layers/" in o.key}
    assert set(column(snap.with_keys("layer_links"), "key")) == links
    snap.write(tmp_path / "snap")
    for name in ("blobs", "layer_links"):
        on_disk = pq.read_table(tmp_path / "snap" / f"{name}.parquet")
        assert on_disk["key"].null_count == 0
        assert on_disk["key"].to_pylist() == column(snap.with_keys(name), "key")
        assert rows(Snapshot.read(tmp_path / "snap")[name]) == rows(snap[name]), "null again"
    assert {b["digest"] for b in blobs if b["key"] == odd} == {f"tarsum.v1+sha256:{hex_}"}


def test_link_keys_are_the_listed_keys(tmp_path: Path) -> None:
    """The scan holds no key for a revision, tag or tag-index link in the common shape either:
    ``with_keys`` and a written snapshot give back the listed key of every link from its
    repository, tag and digest, and a link in an odd shape (a sha512 revision) keeps its own."""
    (tmp_path / "reg").mkdir()
    store = FilesystemStore(tmp_path / "reg")
    generate_demo(store, seed=4, now=datetime(2026, 11, 20, tzinfo=UTC))
    repo = sorted(column(scan(store)["revisions"], "repository"))[0]
    odd = V2 + f"repositories/{repo}/_manifests/revisions/sha512/{'cd' * 64}/link"
    store.write(odd, f"sha512:{'cd' * 64}".encode())
    snap = scan(store)
    listed = {o.key for o in store.iter_objects(V2 + "repositories/")}
    shapes = {
        "revisions": "/_manifests/revisions/",
        "tags": "/current/link",
        "tag_history": "/index/",
    }
    for name, part in shapes.items():
        table = snap[name]
        assert table.num_rows > 10
        assert table["key"].null_count == table.num_rows - (name == "revisions"), name
        keys = column(snap.with_keys(name), "key")
        assert set(keys) == {k for k in listed if part in k}, name
        assert len(keys) == len(set(keys)), name
    assert odd in column(snap["revisions"], "key")
    snap.write(tmp_path / "snap")
    back = Snapshot.read(tmp_path / "snap")
    for name in shapes:
        on_disk = pq.read_table(tmp_path / "snap" / f"{name}.parquet")
        assert on_disk["key"].null_count == 0
        assert on_disk["key"].to_pylist() == column(snap.with_keys(name), "key")
        assert rows(back[name]) == rows(snap[name]), "null again"
