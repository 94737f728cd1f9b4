"""A quarantine run whose deletion log lost a batch (a crash between a move and the log write)
still restores whole: the original key is read back from the quarantine key."""

from __future__ import annotations

from datetime import timedelta

from gc_helpers import contents

from regsweep.audit.log import LOG_PREFIX
from regsweep.clock import utcnow
from regsweep.demo import generate_demo
from regsweep.gc.apply import QUARANTINE_PREFIX, apply_plan
from regsweep.gc.mark import mark
from regsweep.gc.plan import GcSettings, make_plan
from regsweep.gc.quarantine import list_runs, restore_run
from regsweep.scan.scanner import scan
from regsweep.storage.base import ObjectStore


def test_restore_finds_objects_the_log_never_recorded(store: ObjectStore) -> None:
    generate_demo(store, seed=5, now=utcnow() - timedelta(days=30))
    before = contents(store, "docker/")
    snap = scan(store)
    settings = GcSettings(
        delete_untagged=True, grace=timedelta(0), upload_grace=timedelta(0), max_delete_fraction=1.0
    )
    plan = make_plan(
        snap, mark(snap, delete_untagged=True), settings, utcnow() + timedelta(seconds=5)
    )
    res = apply_plan(store, plan, mode="quarantine")
    assert res.actions["quarantined"] > 0
    # Lose the whole log of the run, as if the process died before writing it.
    lost = [o.key for o in store.iter_objects(f"{LOG_PREFIX}{plan.run_id}/")]
    assert lost
    store.delete_many(lost)
    assert [r.run_id for r in list_runs(store)] == [plan.run_id]

    restored = restore_run(store, plan.run_id)

    assert not restored.failures
    assert restored.restored == res.actions["quarantined"]
    assert contents(store, "docker/") == before
    assert not list(store.iter_objects(f"{QUARANTINE_PREFIX}{plan.run_id}/"))
