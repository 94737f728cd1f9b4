"""gc over an inventory treats its candidates as candidates only (storage-layout.md §6.3): the
plan never uses a ``now`` later than the report's creation, and apply re-checks every object
against the live store, so whatever changed, vanished or appeared since the report is not
acted on. Then the ``--inventory`` option of ``regsweep scan`` and ``regsweep gc``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from inventory_builders import DEMO_NOW, Row, later, put_into, rows_of, write_s3_inventory

from regsweep.audit.report import run_audit
from regsweep.cli.main import cli
from regsweep.clock import utcnow
from regsweep.demo.generator import DemoSummary, generate_demo
from regsweep.errors import ObjectNotFound
from regsweep.gc.apply import apply_plan
from regsweep.gc.mark import mark
from regsweep.gc.plan import GcSettings, make_plan
from regsweep.layout.keys import blob_data_key, layer_link_key, revision_link_key
from regsweep.scan.scanner import ScanOptions, scan
from regsweep.scan.snapshot import rows
from regsweep.storage.base import ObjectStore

EVERYTHING = GcSettings(delete_untagged=True, grace=timedelta(0), max_delete_fraction=1.0)


def exists(store: ObjectStore, key: str) -> bool:
    try:
        store.stat(key)
    except ObjectNotFound:
        return False
    return True


@pytest.fixture
def registry(
    store_factory: Callable[..., ObjectStore], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Any, DemoSummary]:
    """(the demo on S3 under rootdirectory /pfx, an inventory destination bucket, the demo's
    summary). Every object's time is the service's clock (moto cannot back-date)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    store = store_factory("s3", "pfx")
    summary = generate_demo(store, now=DEMO_NOW)
    return store, store_factory("s3"), summary


def inventory(store: Any, dest: Any, inv_rows: list[Row] | None = None) -> tuple[str, datetime]:
    created = later()
    key = write_s3_inventory(
        inv_rows if inv_rows is not None else rows_of(store, "pfx/"),
        put_into(dest),
        source_bucket=store.bucket,
        fmt="Parquet",
        created=created,
    )
    return f"s3://{dest.bucket}/{key}", created


def test_plan_now_is_never_later_than_the_inventory(registry: tuple[Any, Any, Any]) -> None:
    """Nothing newer than creation - grace is a candidate, however late the plan is made."""
    store, dest, _ = registry
    url, created = inventory(store, dest)
    much_later = created + timedelta(days=30)
    settings = GcSettings(delete_untagged=True, grace=timedelta(hours=24), max_delete_fraction=1)
    live = scan(store)
    live_plan = make_plan(live, mark(live, delete_untagged=True), settings, much_later)
    assert live_plan.summary().get("blob", {}).get("count", 0) > 0  # a live listing would go
    snap = scan(store, ScanOptions(inventory=url))
    plan = make_plan(snap, mark(snap, delete_untagged=True), settings, much_later)
    assert plan.now == created
    assert plan.rows.num_rows == 0 or all(
        r["kind"] in ("upload", "multipart_upload") for r in rows(plan.decoded_rows())
    )
    assert plan.protected.get("blob", 0) > 0


def test_apply_acts_only_on_what_is_unchanged_since_the_inventory(
    registry: tuple[Any, Any, DemoSummary],
) -> None:
    store, dest, demo = registry
    root = "docker/registry/v2/"
    deleted_orphan, changed_orphan = demo.orphan_blobs
    repushed = demo.overwritten["library/base"][0]
    repushed_link = revision_link_key("library/base", repushed)
    inv_rows = rows_of(store, "pfx/")
    # The report saw the revision link an hour before it was pushed again (same bytes).
    inv_rows = [
        Row(r.key, r.size, r.last_modified - timedelta(hours=1), r.etag)
        if r.key == "pfx/" + repushed_link
        else r
        for r in inv_rows
    ]
    url, created = inventory(store, dest, inv_rows)

    # Since the report: one candidate deleted, one rewritten with other bytes, a manifest pushed
    # again by digest (same bytes, a later time), and a new orphan the report never saw.
    store.delete_many([blob_data_key(deleted_orphan)])
    store.write(blob_data_key(changed_orphan), b"other bytes")
    store.write(repushed_link, repushed.encode())
    new_orphan = "sha256:" + "e" * 64
    store.write(blob_data_key(new_orphan), b"pushed after the inventory")

    snap = scan(store, ScanOptions(inventory=url))
    plan = make_plan(snap, mark(snap, delete_untagged=True), EVERYTHING, created + timedelta(1))
    assert plan.now == created
    planned = {r["key"]: r for r in rows(plan.decoded_rows())}
    assert blob_data_key(deleted_orphan) in planned
    assert blob_data_key(changed_orphan) in planned
    assert repushed_link in planned
    assert blob_data_key(new_orphan) not in planned
    # And a layer of a planned manifest is linked again after the plan (a fresh push).
    manifests = {r["digest"] for r in rows(snap["manifests"])}
    relinked = next(
        r["digest"]
        for r in rows(plan.decoded_rows())
        if r["kind"] == "blob"
        and r["digest"] not in manifests
        and r["digest"] not in demo.orphan_blobs
    )
    store.write(layer_link_key("library/base", relinked), relinked.encode())

    result = apply_plan(store, plan, mode="delete")

    assert result.failures == []
    # The rewritten blob is changed; the pushed-again manifest (its revision link is fresh) and
    # the re-linked layer are referenced again.
    assert result.skipped["changed-since-scan"] >= 1, result.skipped
    assert result.skipped["referenced-since-scan"] >= 2, result.skipped
    assert result.actions["missing"] >= 1  # the orphan deleted since the report
    assert not exists(store, blob_data_key(deleted_orphan))
    assert store.read(blob_data_key(changed_orphan), max_bytes=100) == b"other bytes"
    assert exists(store, blob_data_key(new_orphan))
    assert exists(store, repushed_link) and exists(store, blob_data_key(repushed))
    assert exists(store, blob_data_key(relinked))
    # What had not changed went.
    other = next(d for d in demo.overwritten["team/app"])
    assert not exists(store, revision_link_key("team/app", other))
    assert store.stat(repushed_link).last_modified > created - timedelta(hours=1)
    # The registry is still whole: no error the audit can find.
    errors = [f for f in run_audit(store).findings if f.severity == "error"]
    assert errors == [], errors
    assert root  # keys above are relative to the store, under the default root


# -- CLI -------------------------------------------------------------------------------------


def invoke(args: list[str], moto: str) -> Any:
    return CliRunner().invoke(cli, args, env={"AWS_ENDPOINT_URL": moto})


def test_cli_scan_and_gc_with_inventory(
    registry: tuple[Any, Any, DemoSummary], moto_server: str, tmp_path: Path
) -> None:
    store, dest, demo = registry
    url, created = inventory(store, dest)
    res = invoke(
        ["scan", store.url, "--inventory", url, "-o", str(tmp_path / "s"), "--json"], moto_server
    )
    assert res.exit_code == 0, res.output
    meta = json.loads(res.stdout)["meta"]
    assert meta["inventory"]["url"] == url
    assert meta["scanned_at"] == created.isoformat()

    new_orphan = "sha256:" + "f" * 64
    store.write(blob_data_key(new_orphan), b"pushed after the inventory")
    args = ["gc", store.url, "--inventory", url, "--grace", "0s", "--delete-untagged"]
    args += ["--max-delete-fraction", "1", "--json"]
    # The report's creation time is a little ahead of the clock (see inventory()); plan once
    # the clock has passed it, so the plan's "now" is the report's time and not the clock's.
    while utcnow() <= created:
        time.sleep(0.1)
    res = invoke(args, moto_server)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert datetime.fromisoformat(doc["now"]) == created
    assert doc["applied"] is False
    res = invoke([*args, "--apply", "--yes", "--mode", "delete"], moto_server)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["applied"] is True and doc["result"]["failures"] == []
    for orphan in demo.orphan_blobs:
        assert not exists(store, blob_data_key(orphan))
    assert exists(store, blob_data_key(new_orphan))
    errors = [f for f in run_audit(store).findings if f.severity == "error"]
    assert errors == [], errors


def test_cli_corrupt_inventory_is_a_one_line_usage_error(
    registry: tuple[Any, Any, DemoSummary], moto_server: str
) -> None:
    store, dest, _ = registry
    url, _ = inventory(store, dest)
    key = url.split("/", 3)[3]
    data_key = json.loads(dest.read(key, max_bytes=1 << 20))["files"][0]["key"]
    dest.write(data_key, b"not the report")
    res = invoke(["gc", store.url, "--inventory", url, "--json"], moto_server)
    assert res.exit_code == 2
    assert data_key in res.stderr
    assert "Traceback" not in res.stderr
    res = invoke(["gc", store.url, "--inventory", "ftp://x/manifest.json"], moto_server)
    assert res.exit_code == 2
    assert "inventory" in res.stderr
