"""How each kind of store is listed: an object store one shard per task, all in flight at once
on the scan's pool, also behind the read-only wrapper that ``run``, ``audit`` and ``report``
scan through; a filesystem a group of shards per ``find`` process, one per core. An object
store's column-wise listing gives the same scan as its record-by-record ``iter_objects``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from regsweep.demo.generator import generate_demo
from regsweep.scan import listing
from regsweep.scan.listing import list_layout
from regsweep.scan.scanner import scan
from regsweep.scan.snapshot import rows
from regsweep.storage.base import ObjectStore
from regsweep.storage.readonly import ReadOnlyStore

V2 = "docker/registry/v2/"


def test_each_store_is_listed_as_its_kind_needs(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_demo(store, seed=3, now=datetime(2026, 11, 20, tzinfo=UTC))
    every = sum(1 for _ in store.iter_objects(V2))
    calls: list[tuple[str, list[str]]] = []
    real = listing.list_table

    def spy(st: ObjectStore, prefixes: list[str], blocks: Any = None) -> pa.Table:
        calls.append((threading.current_thread().name, list(prefixes)))
        return real(st, prefixes, blocks)

    monkeypatch.setattr(listing, "list_table", spy)
    for wrapped in (store, ReadOnlyStore(store)):
        calls.clear()
        with ThreadPoolExecutor(4, thread_name_prefix="scan") as pool:
            assert sum(t.num_rows for t in list_layout(wrapped, V2, pool)) == every
        if getattr(store, "local", False):
            assert all(name.startswith("find") for name, _ in calls)
            assert any(len(prefixes) > 1 for _, prefixes in calls)
        else:
            assert len(calls) > 4
            assert all(name.startswith("scan") and len(p) == 1 for name, p in calls), calls


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_a_scan_is_the_same_through_either_listing(
    kind: str, store_factory: Callable[..., ObjectStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_factory(kind, "p/")
    generate_demo(store, seed=5, now=datetime(2026, 11, 20, tzinfo=UTC))
    columnar = scan(ReadOnlyStore(store))
    monkeypatch.delattr(type(store), "list_table")
    by_record = scan(store)
    for name in columnar.names():
        assert rows(columnar[name]) == rows(by_record[name]), name
