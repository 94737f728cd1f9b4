"""A scan listed from an S3 Inventory or Azure Blob Inventory report equals a scan that lists
the store (storage-layout.md §6), for every format the vendors write, with the reports stored
in moto, Azurite or a local directory."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from inventory_builders import (
    DEMO_NOW,
    Row,
    assert_same_snapshot,
    later,
    put_into,
    put_into_dir,
    rows_of,
    write_azure_inventory,
    write_s3_inventory,
)

from regsweep.audit.report import AuditOptions, audit_snapshot
from regsweep.demo.generator import generate_demo
from regsweep.layout.keys import blob_data_key, layer_link_key, repo_key
from regsweep.scan.inventory import InventoryError, inventory_time
from regsweep.scan.scanner import ScanOptions, scan
from regsweep.scan.snapshot import column, rows
from regsweep.storage.base import ObjectStore
from services import start_multipart_upload

# -- S3 ------------------------------------------------------------------------------------


@pytest.fixture
def s3_pair(
    store_factory: Callable[..., ObjectStore], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Any]:
    """(registry store on S3 with rootdirectory /pfx holding the demo, destination bucket);
    ``s3://`` inventory URLs reach moto through AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    store = store_factory("s3", "pfx")
    generate_demo(store, now=DEMO_NOW)
    dest = store_factory("s3")
    return store, dest


@pytest.mark.parametrize("fmt", ["CSV", "ORC", "Parquet"])
def test_s3_inventory_scan_equals_listing(s3_pair: tuple[Any, Any], fmt: str) -> None:
    store, dest = s3_pair
    # A real incomplete multipart upload: never in an inventory, still found on the live store.
    upload = "docker/registry/v2/repositories/team/app/_uploads/" + str(uuid.uuid4()) + "/data"
    start_multipart_upload(store, upload)
    # Objects of the same bucket outside the store's prefix must not leak into the snapshot.
    other = Row(
        "elsewhere/docker/registry/v2/blobs/sha256/aa/" + "a" * 64 + "/data", 3, DEMO_NOW, None
    )
    inv_rows = [*rows_of(store, "pfx/"), other]
    created = later()
    key = write_s3_inventory(
        inv_rows, put_into(dest), source_bucket=store.bucket, fmt=fmt, created=created, files=3
    )
    url = f"s3://{dest.bucket}/{key}"
    live = scan(store)
    inv = scan(store, ScanOptions(inventory=url))
    assert_same_snapshot(live, inv)
    assert inv.meta["inventory"]["url"] == url
    assert inv.meta["inventory"]["format"] == fmt.lower()
    assert inv.meta["inventory"]["vendor"] == "s3"
    assert inv.scanned_at == created
    assert inventory_time(inv.meta) == created
    assert any(r["multipart_key"] == upload for r in rows(inv["uploads"]))
    assert inv["blobs"].num_rows == live["blobs"].num_rows == 55


def test_s3_csv_with_versions_keeps_only_current_objects(
    s3_pair: tuple[Any, Any], tmp_path: Path
) -> None:
    """``IncludedObjectVersions: All``: non-current versions and delete markers are not
    objects of the store."""
    store, _ = s3_pair
    base = rows_of(store, "pfx/")
    ghost = "pfx/docker/registry/v2/blobs/sha256/bb/" + "b" * 64 + "/data"
    extra = [
        Row(base[0].key, 7, DEMO_NOW, "0" * 32, version_id="v-old", is_latest=False),
        Row(ghost, 0, DEMO_NOW, None, version_id="v-dm", is_delete_marker=True),
        Row(ghost, 9, DEMO_NOW - timedelta(days=1), "1" * 32, version_id="v-1", is_latest=False),
    ]
    current = [Row(r.key, r.size, r.last_modified, r.etag, version_id="v-cur") for r in base]
    key = write_s3_inventory(
        current + extra,
        put_into_dir(tmp_path),
        source_bucket=store.bucket,
        fmt="CSV",
        created=later(),
        versions=True,
    )
    assert_same_snapshot(scan(store), scan(store, ScanOptions(inventory=str(tmp_path / key))))


def test_local_inventory_of_a_filesystem_store(
    store_factory: Callable[..., ObjectStore], tmp_path: Path
) -> None:
    """A report copied to local disk (the whole destination, or only its own folder), named
    by path or file:// URL; the demo on a filesystem keeps its back-dated times."""
    store = store_factory("fs")
    generate_demo(store, now=DEMO_NOW)
    key = write_s3_inventory(
        rows_of(store),
        put_into_dir(tmp_path / "dest"),
        source_bucket="b",
        fmt="Parquet",
        created=later(),
    )
    live = scan(store)
    assert_same_snapshot(live, scan(store, ScanOptions(inventory=str(tmp_path / "dest" / key))))
    # Only the config folder was copied (``aws s3 sync s3://dest/inventories/b/ ./copy/``).
    copy = tmp_path / "copy"
    (tmp_path / "dest" / "inventories" / "b").rename(copy)
    manifest = copy / key.removeprefix("inventories/b/")
    assert_same_snapshot(live, scan(store, ScanOptions(inventory=f"file://{manifest}")))


# -- Azure ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("naming", ["d3", "d2"])
def test_azure_inventory_scan_equals_listing(
    store_factory: Callable[..., ObjectStore],
    azurite: str,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    naming: str,
) -> None:
    """Distribution 3 names (``docker/...``) and Distribution 2 names (``/docker/...``, so
    ``Name`` is ``container//docker/...``)."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    store: Any = store_factory("azure")
    if naming == "d3":
        generate_demo(store, now=DEMO_NOW)
    else:
        staging = store_factory("fs")
        generate_demo(staging, now=DEMO_NOW)
        for o in staging.iter_objects(""):
            store.write("/" + o.key, staging.read(o.key, max_bytes=o.size))
    dest: Any = store_factory("azure")
    # A second container in the same rule: its rows are not this store's objects.
    foreign = Row("docker/registry/v2/blobs/sha256/cc/" + "c" * 64 + "/data", 5, DEMO_NOW, None)
    inv_rows = rows_of(store)
    path = write_azure_inventory(
        inv_rows, put_into(dest), container=store.container, fmt=fmt, created=later(), files=2
    )
    path2 = write_azure_inventory(
        [foreign],
        put_into(dest),
        container="othercontainer",
        fmt=fmt,
        created=later(),
        rule="other",
    )
    url = f"azure://{dest.container}/{path}"
    live = scan(store)
    inv = scan(store, ScanOptions(inventory=url))
    assert_same_snapshot(live, inv)
    assert inv.meta["inventory"]["vendor"] == "azure"
    assert inv.meta["layout_root"] == (
        "docker/registry/v2/" if naming == "d3" else "/docker/registry/v2/"
    )
    # The other container's report has nothing of this store.
    other = scan(store, ScanOptions(inventory=f"azure://{dest.container}/{path2}"))
    assert other["blobs"].num_rows == 0


# -- bad and stale inventories -------------------------------------------------------------


def test_md5_mismatch_names_the_file(s3_pair: tuple[Any, Any]) -> None:
    store, dest = s3_pair
    key = write_s3_inventory(
        rows_of(store, "pfx/"),
        put_into(dest),
        source_bucket=store.bucket,
        fmt="CSV",
        created=later(),
        files=2,
    )
    import json

    manifest = json.loads(dest.read(key, max_bytes=1 << 20))
    bad = manifest["files"][1]["key"]
    good = dest.read(bad, max_bytes=1 << 20)
    dest.write(bad, good[:-1] + bytes([good[-1] ^ 1]))  # same size, one bit flipped
    with pytest.raises(InventoryError, match=bad) as e:
        scan(store, ScanOptions(inventory=f"s3://{dest.bucket}/{key}"))
    assert "MD5" in str(e.value)
    assert e.value.exit_code == 2


def test_missing_report_file_and_wrong_bucket(s3_pair: tuple[Any, Any], tmp_path: Path) -> None:
    store, _ = s3_pair
    key = write_s3_inventory(
        rows_of(store, "pfx/"),
        put_into_dir(tmp_path),
        source_bucket="another-bucket",
        fmt="ORC",
        created=later(),
    )
    with pytest.raises(InventoryError, match="another-bucket"):
        scan(store, ScanOptions(inventory=str(tmp_path / key)))
    key2 = write_s3_inventory(
        rows_of(store, "pfx/"),
        put_into_dir(tmp_path / "b"),
        source_bucket=store.bucket,
        fmt="ORC",
        created=later(),
    )
    data = sorted((tmp_path / "b").rglob("*.orc"))[0]
    data.unlink()
    with pytest.raises(InventoryError, match=data.name):
        scan(store, ScanOptions(inventory=str(tmp_path / "b" / key2)))
    with pytest.raises(InventoryError, match="neither"):
        (tmp_path / "x.json").write_text('{"files": []}')
        scan(store, ScanOptions(inventory=str(tmp_path / "x.json")))


def test_stale_inventory_makes_anomalies_not_crashes(s3_pair: tuple[Any, Any]) -> None:
    """Objects deleted after the report was made: the scan reads what it must from the live
    store, and what vanished becomes anomalies."""
    store, dest = s3_pair
    key = write_s3_inventory(
        rows_of(store, "pfx/"),
        put_into(dest),
        source_bucket=store.bucket,
        fmt="Parquet",
        created=later(),
    )
    live = scan(store)
    manifest = rows(live["manifests"])[0]["digest"]
    layer = next(r for r in rows(live["layer_links"]))
    gone = [blob_data_key(manifest), layer_link_key(layer["repository"], layer["digest"])]
    tag = rows(live.with_keys("tags"))[0]
    gone.append(tag["key"])
    # Every _layers link of another repository: one anomaly for them all, not one each.
    links = sorted(column(live.with_keys("layer_links"), "key"))
    repo = next(
        r["repository"] for r in rows(live["layer_links"]) if r["repository"] != tag["repository"]
    )
    theirs = sorted(k for k in links if k.startswith(repo_key(repo) + "_layers/"))
    assert len(theirs) > 1
    assert all(o.deleted for o in store.delete_many(gone + theirs))
    snap = scan(store, ScanOptions(inventory=f"s3://{dest.bucket}/{key}", verify_links=True))
    details = [r["detail"] for r in rows(snap["anomalies"])]
    assert any(manifest in d and "vanished" in d for d in details), details
    vanished = {r["key"]: r for r in rows(snap["anomalies"]) if r["kind"] == "vanished-link"}
    assert tag["key"] in vanished and gone[1] in vanished
    assert "since the inventory was made" in vanished[tag["key"]]["detail"]
    many = [r for r in vanished.values() if r["repository"] == repo]
    assert len(many) == 1 and many[0]["key"] == theirs[0]
    assert many[0]["detail"].startswith(f"{len(theirs)} layer links were listed but gone")
    # Each link's own row says it is gone.
    problems = dict(
        zip(
            column(snap.with_keys("layer_links"), "key"),
            column(snap["layer_links"], "problem"),
            strict=True,
        )
    )
    assert {problems[k] for k in theirs} == {"vanished during the scan"}
    # The audit of that snapshot says nothing of the links that vanished: they are not
    # malformed, and the live store no longer has them.
    report = audit_snapshot(store, snap, AuditOptions())
    assert not {f.key for f in report.findings} & set(gone[1:])
    assert {f.kind for f in report.findings}.isdisjoint({"malformed-link", "bad-link"})
