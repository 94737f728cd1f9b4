"""Apply a Plan: the only code in regsweep that deletes or moves registry objects.

Order (invariant 6): lock; phase 1 (tags, untagged manifests) and phase 2 (``_layers`` links);
then a fresh listing of every repository's links so a blob linked or referenced again since the
scan is kept; then blob data; then stale uploads and temp files. Each candidate is re-checked
right before it is acted on and skipped, whole, if any of its objects changed. Every action is
written to the deletion log, batch by batch. In ``quarantine`` mode (the default) objects move
to ``regsweep/quarantine/<run-id>/`` and can be restored; in ``delete`` mode they are deleted.
Bytes count as freed only after the store confirmed the delete or move.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from regsweep.audit.log import DeletionLog
from regsweep.config import MODES
from regsweep.errors import ObjectNotFound, SafetyRefusal, StoreError, UsageError
from regsweep.gc.lock import acquire_lock, release_lock
from regsweep.gc.plan import PHASE_BLOBS, Plan
from regsweep.gc.recheck import CurrentReferences, referenced_digests, unchanged
from regsweep.storage.base import IncompleteUpload, ObjectStore

Progress = Callable[[str, int, int | None], None]
QUARANTINE_PREFIX = "regsweep/quarantine/"

CACHE_WARNING = (
    "If a registry is serving this storage with a blob-descriptor cache (inmemory, the default, "
    "or redis), restart it or flush its redis cache now: otherwise it may claim deleted blobs "
    "still exist."
)


def quarantine_key(run_id: str, key: str) -> str:
    return f"{QUARANTINE_PREFIX}{run_id}/{key.lstrip('/')}"


@dataclass
class ApplyResult:
    run_id: str
    mode: str
    actions: Counter[str] = field(default_factory=Counter)  # action -> keys
    removed: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> keys, bytes
    skipped: Counter[str] = field(default_factory=Counter)  # why -> candidates
    failures: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(v["bytes"] for v in self.removed.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "actions": dict(self.actions),
            "removed": self.removed,
            "bytes_freed": self.bytes_freed,
            "skipped": dict(self.skipped),
            "failures": self.failures,
        }


def _in_order(rows: pa.Table) -> bool:
    """The plan's rows are by phase, then by seq (as make_plan writes them)."""
    if rows.num_rows < 2:
        return True
    phase, seq = rows["phase"], rows["seq"]
    a, b = phase[:-1], phase[1:]
    later = pc.or_(pc.less(a, b), pc.and_(pc.equal(a, b), pc.less(seq[:-1], seq[1:])))
    return bool(pc.all(later).as_py())


def _noop(phase: str, advance: int, total: int | None) -> None:
    pass


class _Applier:
    def __init__(
        self, store: ObjectStore, plan: Plan, mode: str, progress: Progress, batch: int
    ) -> None:
        self.store = store
        self.plan = plan
        self.mode = mode
        self.progress = progress
        self.batch = batch
        self.result = ApplyResult(plan.run_id, mode)
        self.log = DeletionLog(store, plan.run_id, mode)

    def done(self, action: str, row: dict[str, Any], **extra: Any) -> None:
        self.result.actions[action] += 1
        self.log.record(action, row, **extra)
        if action in ("deleted", "quarantined", "aborted"):
            e = self.result.removed.setdefault(row["kind"], {"keys": 0, "bytes": 0})
            e["keys"] += 1
            e["bytes"] += row.get("size") or 0

    def run(self) -> ApplyResult:
        rows = self.plan.rows
        # Links the plan saw: the re-checks count them as fresh only if they changed since.
        links = rows.filter(pc.is_in(rows["kind"], pa.array(["revision", "tag", "tag_index"])))
        self.planned_links = {r["key"]: r for r in self.plan.decoded_rows(links).to_pylist()}
        self.progress("apply", 0, rows.num_rows)
        with ThreadPoolExecutor(max_workers=16, thread_name_prefix="apply") as pool:
            self.pool = pool
            refs = self.current_references(pool)  # before touching links: fresh pushes
            blob_phase_checked = False
            try:
                for window in self.windows(self.candidates()):
                    if window[0][0]["phase"] >= PHASE_BLOBS and not blob_phase_checked:
                        # Links are gone now; list again so a blob linked or referenced again
                        # since the scan (or since the first check) is kept.
                        self.log.flush()
                        blob_phase_checked = True
                        refs = self.current_references(pool)
                    ready = [rs for rs in window if self.guard(rs, refs)]
                    self.execute(self.recheck(ready))
                    if len(self.log.pending) >= self.batch:
                        self.log.flush()
            finally:
                self.log.flush()
        return self.result

    def candidates(self) -> Iterator[list[dict[str, Any]]]:
        """The plan's candidates in apply order (by phase, then as planned), each as its rows.
        Rows become Python values a slice at a time: a plan can hold millions of blobs, and
        a dict per row for all of them at once would cost gigabytes."""
        table = self.plan.rows
        order = [("phase", "ascending"), ("seq", "ascending")]
        if _in_order(table):
            parts: Iterable[pa.Table] = self.plan.row_parts()  # see Plan.row_parts
        else:
            parts = [table.take(pc.sort_indices(table, order))]
        del table
        current: list[dict[str, Any]] = []
        for part in parts:
            for batch in part.to_batches(max_chunksize=self.batch):
                for r in self.plan.decoded_rows(pa.Table.from_batches([batch])).to_pylist():
                    if current and r["candidate"] != current[0]["candidate"]:
                        yield current
                        current = []
                    current.append(r)
        if current:
            yield current

    def windows(
        self, cands: Iterable[list[dict[str, Any]]]
    ) -> Iterator[list[list[dict[str, Any]]]]:
        """Consecutive candidates of one phase, about ``batch`` keys at a time: the unit that
        is re-checked in parallel and deleted with one batched request."""
        window: list[list[dict[str, Any]]] = []
        keys = 0
        for rs in cands:
            if window and (rs[0]["phase"] != window[0][0]["phase"] or keys + len(rs) > self.batch):
                yield window
                window, keys = [], 0
            window.append(rs)
            keys += len(rs)
        if window:
            yield window

    def guard(self, rs: list[dict[str, Any]], refs: CurrentReferences | None) -> bool:
        """False (and logged as skipped) when something references the candidate again."""
        kinds = {r["kind"] for r in rs}
        digest = rs[-1]["digest"]
        guarded = kinds & {"blob", "layer_link", "revision"}
        if "tag" in kinds and rs[-1]["reason"] == "dangling-tag":
            # The manifest a dangling tag names may have been pushed again by digest since.
            guarded.add("tag")
        if guarded and refs is None:
            self.skip(rs, "re-check failed")
            return False
        if guarded and refs is not None and digest is not None:
            if "blob" in kinds and (digest in refs.linked or digest in refs.fresh):
                self.skip(rs, "referenced-since-scan")
                return False
            if digest in refs.fresh:
                self.skip(rs, "referenced-since-scan")
                return False
        return True

    def current_references(self, pool: ThreadPoolExecutor) -> CurrentReferences | None:
        try:
            return referenced_digests(
                self.store, self.plan.layout_root, self.plan.now, pool, self.planned_links
            )
        except StoreError as e:
            self.result.failures.append(str(e))
            return None

    def skip(self, rs: list[dict[str, Any]], why: str) -> None:
        self.result.skipped[why] += 1
        for r in rs:
            self.done("skipped", r, detail=why)
        self.progress("apply", len(rs), None)

    def _state(self, r: dict[str, Any]) -> str:
        """present | missing | changed, from the store right now."""
        if r["kind"] == "multipart_upload":
            live = {u.upload_id for u in self.store.iter_incomplete_uploads(r["key"])}
            return "present" if r["etag"] in live else "missing"
        try:
            info = self.store.stat(r["key"])
        except ObjectNotFound:
            return "missing"
        return "present" if unchanged(info, r) else "changed"

    def recheck(self, cands: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        """Re-check every object (in parallel); a candidate with any changed object is skipped
        whole; objects already gone are logged as missing. Returns what to act on."""
        flat = [r for rs in cands for r in rs]
        states = dict(zip((id(r) for r in flat), self.pool.map(self._state, flat), strict=True))
        out: list[list[dict[str, Any]]] = []
        for rs in cands:
            if any(states[id(r)] == "changed" for r in rs):
                self.skip(rs, "changed-since-scan")
                continue
            for r in rs:
                if states[id(r)] == "missing":
                    self.done("missing", r)
            present = [r for r in rs if states[id(r)] == "present"]
            if present:
                out.append(present)
            self.progress("apply", len(rs), None)
        return out

    def execute(self, cands: list[list[dict[str, Any]]]) -> None:
        """Act on re-checked candidates. Within a candidate the last key goes last (a tag's
        current/link after its history, a revision link after its tag-index entries), so a
        crash never leaves what no later run would plan again."""
        for wave in ([r for rs in cands for r in rs[:-1]], [rs[-1] for rs in cands]):
            aborts = [r for r in wave if r["kind"] == "multipart_upload"]
            rest = [r for r in wave if r["kind"] != "multipart_upload"]
            for r in aborts:  # S3 has no batch abort; they are few
                self.outcome(r, self.abort(r), "aborted")
            if self.mode == "quarantine":
                for r, err in zip(rest, self.pool.map(self.quarantine, rest), strict=True):
                    self.outcome(r, err, "quarantined", quarantine_key=self.qkey(r))
            else:
                self.delete(rest)

    def qkey(self, r: dict[str, Any]) -> str:
        return quarantine_key(self.plan.run_id, r["key"])

    def quarantine(self, r: dict[str, Any]) -> BaseException | None:
        try:
            self.store.move(r["key"], self.qkey(r))
        except (ObjectNotFound, StoreError) as e:
            return e
        return None

    def abort(self, r: dict[str, Any]) -> BaseException | None:
        try:
            self.store.abort_incomplete_upload(
                IncompleteUpload(key=r["key"], upload_id=r["etag"], initiated=r["last_modified"])
            )
        except (ObjectNotFound, StoreError) as e:
            return e
        return None

    def outcome(
        self, r: dict[str, Any], err: BaseException | None, action: str, **extra: Any
    ) -> None:
        if err is None:
            self.done(action, r, **extra)
        elif isinstance(err, ObjectNotFound):
            self.done("missing", r)
        else:
            self.result.failures.append(f"{r['key']}: {err}")
            self.done("failed", r, detail=str(err))

    def delete(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        outcomes = self.store.delete_many([r["key"] for r in rows])
        for r, o in zip(rows, outcomes, strict=True):
            if o.deleted:
                self.done("deleted", r)
            elif o.missing:
                self.done("missing", r)
            else:
                self.result.failures.append(f"{r['key']}: {o.error}")
                self.done("failed", r, detail=o.error)


def apply_plan(
    store: ObjectStore,
    plan: Plan,
    *,
    mode: str = "quarantine",
    progress: Progress = _noop,
    log_batch: int = 1000,
) -> ApplyResult:
    """Execute ``plan`` against ``store``. Raises SafetyRefusal when the plan's brakes refused
    it or another run holds the store's lock. Per-object failures do not stop the run; they are
    in ``ApplyResult.failures`` (and the log)."""
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; use quarantine or delete")
    if plan.refusals:
        raise SafetyRefusal("the plan was refused by the safety brakes: " + plan.refusals[0])
    lock = acquire_lock(store, plan.run_id)
    try:
        return _Applier(store, plan, mode, progress, log_batch).run()
    finally:
        release_lock(store, lock)
