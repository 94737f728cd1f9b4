"""``run_audit``: scan a store read-only, run every check (and, if asked, the digest scrub) and
return an AuditReport. The store is wrapped in a ReadOnlyStore here, so an audit cannot change
the storage it looks at, whatever store it is given.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from regsweep.audit.checks import DEFAULT_UPLOAD_AGE, CheckSettings, run_checks
from regsweep.audit.findings import (
    ERROR,
    WARNING,
    Finding,
    count_by_kind,
    count_by_severity,
    dedupe,
    findings_table,
    sorted_findings,
)
from regsweep.audit.scrub import BlobToCheck, ScrubOptions, ScrubResult, ScrubStatus, scrub
from regsweep.clock import utcnow
from regsweep.gc.apply import QUARANTINE_PREFIX
from regsweep.gc.mark import mark
from regsweep.scan.listing import Progress, no_progress
from regsweep.scan.scanner import DEFAULT_MANIFEST_CAP, ScanOptions, scan
from regsweep.scan.snapshot import Snapshot, column, rows
from regsweep.storage.base import ObjectStore
from regsweep.storage.readonly import ReadOnlyStore

FINDINGS_FILE = "findings.parquet"


@dataclass(frozen=True)
class AuditOptions:
    """What an audit checks, with units in the types. The defaults suit a scheduled run."""

    upload_age: timedelta = DEFAULT_UPLOAD_AGE
    verify_digests: bool = False
    sample: float = 1.0  # of blobs, chosen by digest (scrub only)
    max_bytes: int | None = None  # scrub budget for this run
    checkpoint: Path | None = None  # scrub checkpoint (JSON lines)
    scrub_workers: int = 8
    workers: int = 16  # scan listing and reading
    # Read every link file, even where its path and size (or S3 ETag) vouch for it: a link of
    # the right size with wrong content (upper-case hex, another digest) is only seen this way.
    verify_links: bool = True
    layout_root: str | None = None
    max_manifest_bytes: int = DEFAULT_MANIFEST_CAP
    timestamp_share: float = 0.5
    timestamp_min_objects: int = 200
    now: datetime | None = None  # default: the clock when the scan starts
    inventory: str | None = None  # list from this inventory report instead (ScanOptions)

    def scrub_options(self) -> ScrubOptions:
        return ScrubOptions(
            sample=self.sample,
            max_bytes=self.max_bytes,
            checkpoint=self.checkpoint,
            workers=self.scrub_workers,
        )


@dataclass
class AuditReport:
    store: str
    layout_root: str
    now: datetime
    findings: list[Finding]  # errors first
    counts: dict[str, int]  # snapshot rows per table
    blob_bytes: int
    scrub: ScrubResult | None = None
    snapshot: Snapshot | None = field(default=None, repr=False)

    def by_severity(self) -> dict[str, int]:
        return count_by_severity(self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def exit_code(self) -> int:
        """1 when any finding is an error, else 0 (design.md exit codes)."""
        return 1 if self.errors else 0

    def table(self) -> pa.Table:
        return findings_table(self.findings)

    def write(self, directory: str | Path) -> Path:
        """Write ``findings.parquet`` into ``directory``; returns its path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        path = out / FINDINGS_FILE
        pq.write_table(self.table(), path)
        return path

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "layout_root": self.layout_root,
            "now": self.now.isoformat(),
            "counts": self.counts,
            "blob_bytes": self.blob_bytes,
            "severities": self.by_severity(),
            "kinds": [
                {"severity": sev, "kind": kind, "count": n}
                for (sev, kind), n in count_by_kind(self.findings).items()
            ],
            "findings": [f.to_json() for f in self.findings],
            "scrub": self.scrub.to_json() if self.scrub is not None else None,
            "exit_code": self.exit_code,
        }


def _blob_repositories(snap: Snapshot) -> dict[str, list[str]]:
    """Blob digest -> repositories that link it (as a layer or a manifest)."""
    out: dict[str, set[str]] = defaultdict(set)
    for table in ("layer_links", "revisions"):
        t = snap[table]
        for repo, target in zip(column(t, "repository"), column(t, "target"), strict=True):
            if target is not None:
                out[target].add(repo)
    return {d: sorted(r) for d, r in out.items()}


def _scrub_progress(
    progress: Progress, extra: Callable[[ScrubStatus], None] | None
) -> Callable[[ScrubStatus], None]:
    """Turn scrub statuses into ``progress("scrub", bytes, total)`` calls (a bar in bytes)."""
    state = {"opened": False, "bytes": 0}

    def on_status(s: ScrubStatus) -> None:
        if not state["opened"]:
            progress("scrub", 0, s.bytes_total)
            state["opened"] = True
        delta = s.bytes_done - state["bytes"]
        state["bytes"] = s.bytes_done
        if delta:
            progress("scrub", delta, None)
        if extra is not None:
            extra(s)

    return on_status


def run_audit(
    store: ObjectStore,
    options: AuditOptions | None = None,
    progress: Progress = no_progress,
    *,
    executor: Executor | None = None,
    scrub_progress: Callable[[ScrubStatus], None] | None = None,
) -> AuditReport:
    """Audit ``store``: scan it, mark it (every revision a root: "live" means servable), run the
    checks of ``regsweep.audit.checks`` and, with ``verify_digests``, the scrub of
    ``regsweep.audit.scrub``. Never writes to the store (a ReadOnlyStore guards it; only the
    scrub checkpoint, a local file, is written). ``progress`` gets the scan's phases and
    ``("scrub", bytes, total)``; ``scrub_progress`` gets each ScrubStatus (with bytes/s).

    Raises LayoutError when the store holds no registry, StoreError when the service fails,
    UsageError for bad options or a checkpoint of another store."""
    options = options or AuditOptions()
    if options.verify_digests:
        options.scrub_options()  # validates them before the scan
    ro = store if isinstance(store, ReadOnlyStore) else ReadOnlyStore(store)
    now = options.now or utcnow()
    snap = scan(
        ro,
        ScanOptions(
            max_manifest_bytes=options.max_manifest_bytes,
            verify_links=options.verify_links,
            workers=options.workers,
            layout_root=options.layout_root,
            inventory=options.inventory,
        ),
        executor=executor,
        progress=progress,
    )
    return audit_snapshot(
        ro, snap, options, progress, executor=executor, scrub_progress=scrub_progress, now=now
    )


def audit_snapshot(
    store: ObjectStore,
    snap: Snapshot,
    options: AuditOptions | None = None,
    progress: Progress = no_progress,
    *,
    executor: Executor | None = None,
    scrub_progress: Callable[[ScrubStatus], None] | None = None,
    now: datetime | None = None,
) -> AuditReport:
    """The checks of ``run_audit`` on a snapshot already taken of ``store`` (a scheduled run
    scans once for its audit, plan and report). For the same findings as ``run_audit``, the
    scan must have read every link (``ScanOptions(verify_links=True)``). Only reads the store
    (the quarantine listing and, with ``verify_digests``, blob data)."""
    options = options or AuditOptions()
    scrub_opts = options.scrub_options() if options.verify_digests else None
    ro = store if isinstance(store, ReadOnlyStore) else ReadOnlyStore(store)
    now = now or options.now or utcnow()
    marked = mark(snap)
    quarantine = list(ro.iter_objects(QUARANTINE_PREFIX))
    settings = CheckSettings(
        now=now,
        upload_age=options.upload_age,
        timestamp_share=options.timestamp_share,
        timestamp_min_objects=options.timestamp_min_objects,
    )
    findings = run_checks(snap, marked, settings, quarantine)
    scrubbed: ScrubResult | None = None
    if scrub_opts is not None:
        blobs = [
            BlobToCheck(r["digest"], r["key"], int(r["size"]))
            for r in rows(snap.with_keys("blobs"))
        ]
        scrubbed = scrub(
            ro,
            blobs,
            scrub_opts,
            progress=_scrub_progress(progress, scrub_progress),
            executor=executor,
        )
        # The scan already hashes every manifest it reads: one finding per object and kind.
        seen = {(f.kind, f.key) for f in findings}
        findings += [
            f for f in scrubbed.findings(_blob_repositories(snap)) if (f.kind, f.key) not in seen
        ]
    blob_bytes = marked.graph.stored_bytes
    return AuditReport(
        store=ro.url,
        layout_root=str(snap.meta["layout_root"]),
        now=now,
        findings=sorted_findings(dedupe(findings)),
        counts=snap.counts(),
        blob_bytes=int(blob_bytes),
        scrub=scrubbed,
        snapshot=snap,
    )
