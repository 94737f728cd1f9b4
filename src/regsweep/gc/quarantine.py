"""Quarantine runs: list them, restore one exactly, or purge one for good (invariant 7).

A quarantine run is what ``apply --mode quarantine`` moved under
``regsweep/quarantine/<run-id>/``; the deletion log says where each object came from. Restore
moves data back before links (the reverse of apply), so a registry never sees a link without
its data. Purge first scans the store afresh: a quarantined blob that something references
again, or a ``_layers`` link that a kept manifest of its repository needs again, is restored
instead of deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regsweep.audit.log import DeletionLog, read_log
from regsweep.clock import utcnow
from regsweep.errors import ObjectNotFound, StoreError, UsageError
from regsweep.gc.apply import QUARANTINE_PREFIX
from regsweep.gc.lock import acquire_lock, release_lock
from regsweep.gc.mark import mark
from regsweep.gc.plan import new_run_id
from regsweep.layout.keys import DEFAULT_ROOT as V2
from regsweep.layout.keys import Kind, classify
from regsweep.scan.scanner import ScanOptions, scan
from regsweep.scan.snapshot import column
from regsweep.storage.base import ObjectStore

# Restore order: data first, then what points at it.
_RESTORE_ORDER = {"blob": 0, "layer_link": 1, "revision": 2, "tag_index": 3, "tag": 4}


@dataclass
class QuarantineRun:
    run_id: str
    objects: int
    bytes: int
    first_quarantined: datetime | None
    reasons: dict[str, int]


@dataclass
class QuarantineResult:
    run_id: str
    restored: int = 0
    purged: int = 0
    bytes_purged: int = 0
    already_present: int = 0
    failures: list[str] = field(default_factory=list)
    restored_keys: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "restored": self.restored,
            "purged": self.purged,
            "bytes_purged": self.bytes_purged,
            "already_present": self.already_present,
            "failures": self.failures,
        }


def list_runs(store: ObjectStore) -> list[QuarantineRun]:
    runs: dict[str, QuarantineRun] = {}
    for obj in store.iter_objects(QUARANTINE_PREFIX):
        run_id = obj.key[len(QUARANTINE_PREFIX) :].split("/", 1)[0]
        r = runs.setdefault(run_id, QuarantineRun(run_id, 0, 0, None, {}))
        r.objects += 1
        r.bytes += obj.size
    if runs:
        log = read_log(store).to_pylist()
        for row in log:
            r2 = runs.get(row["run_id"])
            if r2 is None or row["action"] != "quarantined":
                continue
            r2.reasons[row["reason"]] = r2.reasons.get(row["reason"], 0) + 1
            if r2.first_quarantined is None or row["time"] < r2.first_quarantined:
                r2.first_quarantined = row["time"]
    return sorted(runs.values(), key=lambda r: r.run_id)


_KIND_OF = {
    Kind.BLOB_DATA: "blob",
    Kind.LAYER_LINK: "layer_link",
    Kind.REVISION_LINK: "revision",
    Kind.TAG_INDEX: "tag_index",
    Kind.TAG_CURRENT: "tag",
    Kind.UPLOAD_FILE: "upload",
    Kind.TMP: "tmp",
}


def _unlogged(
    store: ObjectStore, run_id: str, logged: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Objects in the run's quarantine that the log does not name: a run that crashed after a
    move and before its log batch was written. The original key is the quarantine key less its
    prefix (plus the leading "/" of Distribution 2.x Azure names, if the run's keys had it)."""
    prefix = f"{QUARANTINE_PREFIX}{run_id}/"
    known = {r["quarantine_key"] for r in logged}
    slash = "/" if any(r["key"].startswith("/") for r in logged) else ""
    out = []
    for obj in store.iter_objects(prefix):
        if obj.key in known:
            continue
        key = slash + obj.key[len(prefix) :]
        rel = key.lstrip("/")
        rec = classify(rel[len(V2) :]) if rel.startswith(V2) else None
        out.append(
            {
                "key": key,
                "quarantine_key": obj.key,
                "kind": _KIND_OF.get(rec.kind, "other") if rec else "other",
                "reason": "unlogged",
                "size": obj.size,
                "digest": rec.digest if rec else None,
                "repository": rec.repo if rec else None,
            }
        )
    return out


def _quarantined(store: ObjectStore, run_id: str) -> list[dict[str, Any]]:
    rows = [
        r
        for r in read_log(store, run_id).to_pylist()
        if r["action"] == "quarantined" and r["quarantine_key"]
    ]
    rows += _unlogged(store, run_id, rows)
    if not rows:
        raise UsageError(f"no quarantine run {run_id!r} in {store.url} (see `quarantine list`)")
    restored = {
        r["key"]
        for r in read_log(store).to_pylist()
        if r["action"] in ("restored", "purged") and r["detail"] == run_id
    }
    return [r for r in rows if r["key"] not in restored]


def _move_back(
    store: ObjectStore, row: dict[str, Any], log: DeletionLog, res: QuarantineResult, run_id: str
) -> None:
    try:
        store.stat(row["key"])
        exists = True
    except ObjectNotFound:
        exists = False
    try:
        if exists:
            # Pushed again since: content-addressed, so the live copy is the same; drop ours.
            store.delete_many([row["quarantine_key"]])
            res.already_present += 1
        else:
            store.move(row["quarantine_key"], row["key"])
        res.restored += 1
        res.restored_keys.append(row["key"])
        log.record("restored", row, detail=run_id)
    except ObjectNotFound:
        res.failures.append(f"{row['quarantine_key']}: missing from quarantine")
    except StoreError as e:
        res.failures.append(f"{row['key']}: {e}")
        log.record("failed", row, detail=f"restore: {e}")


def restore_run(store: ObjectStore, run_id: str) -> QuarantineResult:
    """Move every object of quarantine run ``run_id`` back where it was."""
    rows = _quarantined(store, run_id)
    op_id = new_run_id(utcnow())
    lock = acquire_lock(store, op_id)
    res = QuarantineResult(run_id)
    log = DeletionLog(store, op_id, "restore")
    try:
        for row in sorted(rows, key=lambda r: (_RESTORE_ORDER.get(r["kind"], 9), r["key"])):
            _move_back(store, row, log, res, run_id)
    finally:
        log.flush()
        release_lock(store, lock)
    return res


def purge_run(
    store: ObjectStore, run_id: str, options: ScanOptions | None = None
) -> QuarantineResult:
    """Delete run ``run_id``'s quarantined objects for good, restoring any that a fresh scan
    shows are referenced again."""
    rows = _quarantined(store, run_id)
    op_id = new_run_id(utcnow())
    lock = acquire_lock(store, op_id)
    res = QuarantineResult(run_id)
    log = DeletionLog(store, op_id, "purge")
    try:
        snap = scan(store, options)
        marked = mark(snap)  # every revision is a root: nothing that is in use gets purged
        reached = set().union(*marked.reach.values()) if marked.reach else set()
        linked = set()
        for name in ("layer_links", "revisions", "tag_history"):
            linked |= set(column(snap[name], "digest"))
        linked |= {d for d in column(snap["tags"], "digest") if d}
        root = snap.meta["layout_root"]
        keep: list[dict[str, Any]] = []
        drop: list[dict[str, Any]] = []
        for row in rows:
            rec = classify(row["key"][len(root) :]) if row["key"].startswith(root) else None
            needed = False
            if rec is not None and rec.kind is Kind.BLOB_DATA:
                # ``live_blobs`` only holds blobs that are present; one a manifest references
                # while its data sits in quarantine is what most needs restoring.
                needed = rec.digest in reached or rec.digest in linked
            elif rec is not None and rec.repo and rec.kind in (Kind.LAYER_LINK, Kind.REVISION_LINK):
                # A link that a manifest of its repository needs (a layer, an index's child).
                needed = rec.digest in marked.reach.get(rec.repo, set())
            (keep if needed else drop).append(row)
        for row in sorted(keep, key=lambda r: (_RESTORE_ORDER.get(r["kind"], 9), r["key"])):
            _move_back(store, row, log, res, run_id)
        for i in range(0, len(drop), 1000):
            chunk = drop[i : i + 1000]
            outcomes = store.delete_many([r["quarantine_key"] for r in chunk])
            for row, out in zip(chunk, outcomes, strict=True):
                if out.deleted or out.missing:
                    res.purged += 1
                    res.bytes_purged += (row["size"] or 0) if out.deleted else 0
                    log.record("purged", row, detail=run_id)
                else:
                    res.failures.append(f"{row['quarantine_key']}: {out.error}")
                    log.record("failed", row, detail=f"purge: {out.error}")
        # Anything left under the run's prefix that the log does not name stays, and is listed.
    finally:
        log.flush()
        release_lock(store, lock)
    return res
