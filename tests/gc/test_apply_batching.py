"""apply deletes in batches (S3 DeleteObjects takes up to 1000 keys, Azure batches 256; the
backends split larger calls) and still reports every key: bytes count only when confirmed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from gc_helpers import assert_no_live_blob_lost

from imagegen import Blob
from regsweep.audit.log import read_log
from regsweep.clock import utcnow
from regsweep.demo import generate_demo
from regsweep.gc.apply import _Applier, apply_plan
from regsweep.gc.lock import LOCK_KEY
from regsweep.gc.mark import mark
from regsweep.gc.plan import GcSettings, make_plan
from regsweep.layout.keys import blob_data_key
from regsweep.scan.scanner import scan
from regsweep.storage.base import DeleteOutcome, ObjectStore


class CountingStore:
    """Counts delete_many calls and the keys each carried."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.delete_calls: list[int] = []

    def delete_many(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        if list(keys) != [LOCK_KEY]:  # releasing the lock is not part of the plan
            self.delete_calls.append(len(keys))
        return self.inner.delete_many(keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_delete_mode_batches_and_reports_every_key(store: ObjectStore) -> None:
    generate_demo(store, seed=3, now=utcnow() - timedelta(days=30))
    orphans = [Blob(f"orphan {i}".encode() * 8) for i in range(300)]
    for b in orphans:
        store.write(blob_data_key(b.digest), b.data)
    snap = scan(store)
    settings = GcSettings(grace=timedelta(0), upload_grace=timedelta(0), max_delete_fraction=1.0)
    plan = make_plan(snap, mark(snap), settings, utcnow() + timedelta(seconds=5))
    blob_rows = [r for r in plan.rows.to_pylist() if r["kind"] == "blob"]
    assert {b.digest for b in orphans} <= {r["digest"] for r in blob_rows}

    counting = CountingStore(store)
    res = apply_plan(counting, plan, mode="delete")  # type: ignore[arg-type]

    assert not res.failures
    # A few batched calls, not one call per key.
    assert sum(counting.delete_calls) == plan.rows.num_rows
    assert len(counting.delete_calls) < plan.rows.num_rows / 10
    assert res.removed["blob"]["keys"] == len(blob_rows)
    assert res.removed["blob"]["bytes"] == sum(r["size"] for r in blob_rows)
    log = read_log(store, plan.run_id).to_pylist()
    assert sorted(r["key"] for r in log if r["action"] == "deleted") == sorted(
        plan.decoded_rows().column("key").to_pylist()
    )
    assert_no_live_blob_lost(store)


def test_candidates_stream_in_plan_order_whatever_the_row_order(store: ObjectStore) -> None:
    """apply turns the plan into Python a slice at a time (a plan can hold millions of
    blobs): the candidates, and what is removed, are the same for a plan whose rows come in
    another order and for slices smaller than a candidate."""
    generate_demo(store, seed=5, now=utcnow() - timedelta(days=30))
    snap = scan(store)
    settings = GcSettings(
        delete_untagged=True, grace=timedelta(0), upload_grace=timedelta(0), max_delete_fraction=1
    )
    plan = make_plan(snap, mark(snap, delete_untagged=True), settings, utcnow())
    rows = plan.decoded_rows().to_pylist()  # with every key, as apply sees them
    expected: dict[int, list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: (r["phase"], r["seq"])):
        expected.setdefault(r["candidate"], []).append(r)
    assert any(len(rs) > 2 for rs in expected.values()), "want candidates of several keys"
    shuffled = replace(plan, rows=plan.rows.take(list(range(plan.rows.num_rows))[::-1]))
    for p, batch in ((plan, 1000), (shuffled, 2), (shuffled, 1000)):
        got = list(_Applier(store, p, "delete", lambda *a: None, batch).candidates())
        assert got == list(expected.values())

    res = apply_plan(store, shuffled, mode="delete", log_batch=2)
    assert not res.failures
    assert sum(v["keys"] for v in res.removed.values()) == len(rows)
    assert_no_live_blob_lost(store)
