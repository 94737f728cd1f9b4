"""Inventories of a layout written by a real registry (Debian's docker-registry, Distribution
2.8): the scan listed from them equals the scan that lists the store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from inventory_builders import (
    assert_same_snapshot,
    put_into_dir,
    rows_of,
    write_azure_inventory,
    write_s3_inventory,
)

from imagegen import RegistryClient, index, sample_image
from registry_fixtures import RegistryFactory
from regsweep.clock import utcnow
from regsweep.scan.scanner import ScanOptions, scan
from regsweep.storage.filesystem import FilesystemStore

pytestmark = pytest.mark.e2e


def test_docker_registry_layout(registry_server: RegistryFactory, tmp_path: Path) -> None:
    root = tmp_path / "storage"
    server = registry_server(root=root)
    client = RegistryClient(server.url)
    base = sample_image("inv-base", layers=2)
    client.push("library/base", base, ["1.0", "latest"])
    client.push(
        "team/multi",
        index([sample_image("inv-amd"), sample_image("inv-arm", architecture="arm64")]),
        ["v1"],
    )
    client.push("team/multi", sample_image("inv-old"), ["v0"])
    client.push("team/multi", sample_image("inv-new"), ["v0"])  # v0 moves: history grows
    client.abandon_upload("team/multi", b"never committed")
    server.stop()
    store = FilesystemStore(root)
    live = scan(store)
    assert live["tags"].num_rows == 4
    created = utcnow() + timedelta(seconds=1)
    for fmt in ("CSV", "ORC", "Parquet"):
        key = write_s3_inventory(
            rows_of(store),
            put_into_dir(tmp_path / fmt),
            source_bucket="registry",
            fmt=fmt,
            created=created,
        )
        assert_same_snapshot(live, scan(store, ScanOptions(inventory=str(tmp_path / fmt / key))))
    for fmt in ("csv", "parquet"):
        path = write_azure_inventory(
            rows_of(store),
            put_into_dir(tmp_path / fmt),
            container="registry",
            fmt=fmt,
            created=created,
        )
        assert_same_snapshot(live, scan(store, ScanOptions(inventory=str(tmp_path / fmt / path))))
