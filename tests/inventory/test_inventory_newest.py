"""An inventory named by its folder (a URL ending in /, or a local directory) is the newest
report under it: the most recently written manifest, whatever the folder names say. That is
how a scheduled ``regsweep run`` follows daily reports, so ``run`` takes ``--inventory`` too."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from inventory_builders import (
    DEMO_NOW,
    later,
    put_into,
    put_into_dir,
    rows_of,
    write_azure_inventory,
    write_s3_inventory,
)

from regsweep.cli.main import cli
from regsweep.demo.generator import generate_demo
from regsweep.errors import StoreError
from regsweep.layout.keys import blob_data_key
from regsweep.scan.inventory import InventoryError, open_inventory
from regsweep.storage.base import ObjectStore


def test_s3_folder_means_the_newest_manifest(
    store_factory: Callable[..., ObjectStore], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    store: Any = store_factory("s3")
    generate_demo(store, now=DEMO_NOW)
    dest: Any = store_factory("s3")
    # Written first, yet in the folder whose name sorts last: only the write time counts.
    old = write_s3_inventory(
        rows_of(store), put_into(dest), source_bucket=store.bucket, fmt="CSV", created=later(60)
    )
    time.sleep(1.1)  # S3 times are whole seconds
    new = write_s3_inventory(
        rows_of(store), put_into(dest), source_bucket=store.bucket, fmt="Parquet", created=later()
    )
    assert old > new
    for folder in (f"s3://{dest.bucket}/", f"s3://{dest.bucket}/inventories/"):
        inv = open_inventory(folder)
        assert inv.url == f"s3://{dest.bucket}/{new}"
        assert inv.file_format == "parquet"
    with pytest.raises(InventoryError, match=r"no manifest\.json or <rule>-manifest\.json"):
        open_inventory(f"s3://{dest.bucket}/nothing/here/")
    with pytest.raises(StoreError, match="bucket no-such-bucket does not exist"):
        open_inventory("s3://no-such-bucket/inventories/")


def test_azure_folder_means_the_newest_manifest(
    store_factory: Callable[..., ObjectStore], azurite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    store: Any = store_factory("azure")
    generate_demo(store, now=DEMO_NOW)
    dest: Any = store_factory("azure")
    old = write_azure_inventory(
        rows_of(store), put_into(dest), container=store.container, fmt="csv", created=later(60)
    )
    time.sleep(1.1)
    new = write_azure_inventory(
        rows_of(store), put_into(dest), container=store.container, fmt="parquet", created=later()
    )
    assert old > new
    inv = open_inventory(f"azure://{dest.container}/")
    assert inv.url == f"azure://{dest.container}/{new}"
    assert (inv.vendor, inv.file_format) == ("azure", "parquet")


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_run_follows_the_newest_local_report(
    store_factory: Callable[..., ObjectStore], tmp_path: Path
) -> None:
    """``regsweep run --inventory DIR``: the plan is made from the newest report in DIR. A blob
    the newest report does not list is not planned (apply would re-check it anyway); one
    listed by an older report, named by its manifest, is."""
    store: Any = store_factory("fs")
    generate_demo(store, now=DEMO_NOW)
    dest = tmp_path / "dest"
    newest = write_s3_inventory(
        rows_of(store), put_into_dir(dest), source_bucket="b", fmt="Parquet", created=later()
    )
    orphan = blob_data_key("sha256:" + "e" * 64)
    store.write(orphan, b"nothing references this")
    _age(store.root / orphan, 30 * 86400)
    older = write_s3_inventory(
        rows_of(store), put_into_dir(dest), source_bucket="b", fmt="Parquet", created=later(60)
    )
    _age(dest / older, 3600)  # its folder name sorts last, but it was written an hour ago
    assert older > newest

    def candidates(*extra: str) -> int:
        res = CliRunner().invoke(
            cli,
            ["run", "--store", str(store.root), "--dry-run", "--delete-untagged", "--json", *extra],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
        steps = {s["name"]: s for s in json.loads(res.stdout)["steps"]}
        assert steps["scan"]["status"] == "ok", steps["scan"]
        return int(steps["plan"]["counts"]["candidates"])

    live = candidates()
    assert candidates("--inventory", str(dest)) == live - 1
    assert candidates("--inventory", str(dest / older)) == live
    (tmp_path / "empty").mkdir()
    with pytest.raises(InventoryError, match=r"no manifest\.json or <rule>-manifest\.json"):
        open_inventory(str(tmp_path / "empty"))
