"""``run_job``: the nightly job in one call (``regsweep run``).

Steps, in order: open the store; take the lock (unless a dry run); scan once (read-only); audit
that snapshot; plan with the policy; apply (quarantine by default; skipped in a dry run); purge
quarantine runs older than the retention period (``gc.quarantine.purge_run`` scans afresh and
restores anything referenced again); write the report datasets; write and push the metrics.

Each step is isolated: a failure is recorded with the step's name and one-line error, and the
steps that do not need its output still run; those that do are marked skipped with the reason.
Exit code (``JobResult.exit_code``): 3 when a safety brake or another run's lock refused a step,
else 1 when a step failed or the audit found errors, else 0; 2 when the store cannot be opened
for a configuration reason (the CLI also exits 2 for bad settings before any step runs).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from regsweep.clock import utcnow
from regsweep.config import ConfigError, JobSettings
from regsweep.errors import RegsweepError, SafetyRefusal
from regsweep.gc.apply import CACHE_WARNING, ApplyResult, apply_plan
from regsweep.gc.lock import Lock, acquire_lock, release_lock
from regsweep.gc.plan import GcSettings, Plan, new_run_id
from regsweep.gc.planning import plan_gc
from regsweep.gc.quarantine import QuarantineRun, list_runs, purge_run
from regsweep.retention import PolicyFile, load_policy
from regsweep.scan.listing import Progress, no_progress
from regsweep.scan.scanner import ScanOptions, scan
from regsweep.scan.snapshot import Snapshot
from regsweep.storage.base import ObjectStore
from regsweep.storage.readonly import ReadOnlyStore

# The audit and the report writers (pyarrow.dataset, pandas, prometheus_client) are imported
# by the steps that use them, not here: importing this module should not cost their start-up.
if TYPE_CHECKING:
    from regsweep.audit.report import AuditReport
    from regsweep.reports.tables import Report

log = logging.getLogger("regsweep.jobs")

STEPS = ("open", "lock", "scan", "audit", "plan", "apply", "purge", "report", "metrics")
OK, FINDINGS, FAILED, REFUSED, SKIPPED = "ok", "findings", "failed", "refused", "skipped"


@dataclass
class StepResult:
    """What one step did. ``error`` is the one-line error of a failed or refused step, or the
    reason a step was skipped."""

    name: str
    status: str = OK
    seconds: float = 0.0
    counts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "duration_seconds": round(self.seconds, 3),
            "counts": self.counts,
        }
        if self.error is not None:
            out["reason" if self.status == SKIPPED else "error"] = self.error
        return out


@dataclass
class JobResult:
    run_id: str
    store: str
    dry_run: bool
    mode: str
    started: datetime
    seconds: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # name -> value, where from

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)

    @property
    def exit_code(self) -> int:
        """3 if a step was refused, else the worst failure (1; 2 for a store that cannot be
        opened for a configuration reason), else 0."""
        if any(s.status == REFUSED for s in self.steps):
            return 3
        return max((s.exit_code for s in self.steps), default=0)

    @property
    def status(self) -> str:
        return {0: OK, 3: REFUSED}.get(self.exit_code, FAILED)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "store": self.store,
            "dry_run": self.dry_run,
            "mode": self.mode,
            "started": self.started.isoformat(),
            "duration_seconds": round(self.seconds, 3),
            "status": self.status,
            "exit_code": self.exit_code,
            "failed_steps": [s.name for s in self.steps if s.status in (FAILED, REFUSED)],
            "steps": [s.to_json() for s in self.steps],
            "settings": self.settings,
        }


def gc_settings(settings: JobSettings, policy: PolicyFile | None) -> GcSettings:
    return GcSettings(
        delete_untagged=settings.delete_untagged or policy is not None,
        grace=settings.grace,
        upload_grace=settings.upload_grace,
        max_delete_fraction=settings.max_delete_fraction,
    )


def run_started(run: QuarantineRun) -> datetime | None:
    """When a quarantine run began: its first logged move, else the time in its run id."""
    if run.first_quarantined is not None:
        return run.first_quarantined
    try:
        return datetime.strptime(run.run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=utcnow().tzinfo)
    except ValueError:
        return None


def _redact(value: str) -> str:
    """A URL without the user and password it may carry."""
    parts = urlsplit(value)
    if "@" not in parts.netloc:
        return value
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def settings_json(settings: JobSettings) -> dict[str, Any]:
    """Each setting's value (durations in seconds) and where it came from."""
    out: dict[str, Any] = {}
    for f in fields(settings):
        if f.name == "sources":
            continue
        value = getattr(settings, f.name)
        if isinstance(value, timedelta):
            value = value.total_seconds()
        elif isinstance(value, str):
            value = _redact(value)
        out[f.name] = {"value": value, "from": settings.sources.get(f.name, "default")}
    return out


def open_job_store(settings: JobSettings) -> ObjectStore:
    from regsweep.storage import open_store, open_store_from_registry_config

    if settings.registry_config:
        return open_store_from_registry_config(settings.registry_config)
    if settings.store:
        return open_store(settings.store)
    raise ConfigError("store: no store given (set store or registry_config)")


class _Job:
    def __init__(
        self,
        settings: JobSettings,
        store: ObjectStore | None,
        progress: Progress,
        opener: Callable[[JobSettings], ObjectStore],
        run_id: str | None,
    ) -> None:
        self.settings = settings
        self.progress = progress
        self.opener = opener
        self.store: ObjectStore | None = store
        self.policy: PolicyFile | None = None
        self.lock: Lock | None = None
        self.snap: Snapshot | None = None
        self.audit: AuditReport | None = None
        self.plan: Plan | None = None
        self.applied: ApplyResult | None = None
        self.report: Report | None = None
        self.now = utcnow()
        self.started = time.monotonic()
        self.run_id = run_id or new_run_id(self.now)
        self.result = JobResult(
            self.run_id,
            settings.store or settings.registry_config or "?",
            settings.dry_run,
            settings.mode,
            self.now,
            settings=settings_json(settings),
        )

    def step(
        self, name: str, fn: Callable[[], dict[str, Any] | tuple[str, dict[str, Any]]]
    ) -> StepResult:
        """Run ``fn`` as step ``name``: it returns its counts, or (status, counts), or raises
        ``_Skip``. Any other exception fails the step and only this step."""
        res = StepResult(name)
        started = time.monotonic()
        log.info("%s started", name, extra={"phase": name})
        try:
            out = fn()
            if isinstance(out, tuple):
                res.status, res.counts = out
            else:
                res.counts = out
        except _Skip as e:
            res.status, res.error, res.counts = SKIPPED, e.reason, e.counts
        except SafetyRefusal as e:
            res.status, res.error, res.exit_code = REFUSED, str(e), 3
        except RegsweepError as e:
            res.status, res.error = FAILED, str(e)
            res.counts = getattr(e, "counts", {})
            res.exit_code = e.exit_code if name == "open" else 1
        except Exception as e:  # isolate the step: the others still run and report
            res.status, res.error, res.exit_code = FAILED, f"{type(e).__name__}: {e}", 1
            log.debug("%s failed", name, exc_info=True, extra={"phase": name})
        res.seconds = time.monotonic() - started
        if res.status == FINDINGS:
            res.exit_code = 1
        if res.status == FAILED and res.exit_code == 0:
            res.exit_code = 1
        level = logging.INFO if res.status in (OK, SKIPPED) else logging.ERROR
        if res.status == FINDINGS:
            level = logging.WARNING
        message = f"{name} {res.status}" + (
            f" ({res.error})" if res.status == SKIPPED and res.error else ""
        )
        extra: dict[str, Any] = {"phase": name, "counts": res.counts}
        if res.status in (FAILED, REFUSED):
            extra["error"] = res.error
        log.log(level, message, extra=extra)
        self.result.steps.append(res)
        return res

    # -- steps --------------------------------------------------------------------------

    def open(self) -> dict[str, Any]:
        if self.store is None:
            self.store = self.opener(self.settings)
        self.result.store = self.store.url
        return {}

    def _need(self, what: str, ok: bool) -> None:
        if not ok:
            raise _Skip(f"needs {what}")

    def take_lock(self) -> dict[str, Any]:
        self._need("open", self.store is not None)
        assert self.store is not None
        if self.settings.dry_run:
            raise _Skip("dry run: nothing is changed, no lock taken")
        self.lock = acquire_lock(self.store, self.run_id)
        # "now" from the store's own clock (design.md invariant 4), as gc --apply does.
        self.now = self.lock.service_now
        return {}

    def scan(self) -> dict[str, Any]:
        self._need("open", self.store is not None)
        assert self.store is not None
        opts = ScanOptions(
            workers=self.settings.workers,
            layout_root=self.settings.layout_root,
            verify_links=True,
            inventory=self.settings.inventory,
        )
        self.snap = scan(ReadOnlyStore(self.store), opts, progress=self.progress)
        return dict(self.snap.counts())

    def run_audit(self) -> tuple[str, dict[str, Any]]:
        self._need("scan", self.snap is not None)
        assert self.store is not None and self.snap is not None
        from regsweep.audit.report import AuditOptions, audit_snapshot  # see the top

        options = AuditOptions(upload_age=self.settings.upload_grace, now=self.now)
        self.audit = audit_snapshot(self.store, self.snap, options)
        counts: dict[str, Any] = {"findings": len(self.audit.findings), **self.audit.by_severity()}
        return (FINDINGS if self.audit.exit_code else OK), counts

    def make_plan(self) -> tuple[str, dict[str, Any]]:
        self._need("scan", self.snap is not None)
        if not self.settings.dry_run:
            self._need("the lock", self.lock is not None)
        assert self.store is not None and self.snap is not None
        settings = gc_settings(self.settings, self.policy)
        self.plan, _ = plan_gc(
            self.snap, ReadOnlyStore(self.store), self.policy, settings, self.now, self.run_id
        )
        counts = {
            "candidates": self.plan.rows.num_rows,
            "bytes": self.plan.total_bytes(),
            **{f"{k}_keys": v["keys"] for k, v in sorted(self.plan.summary().items())},
        }
        if self.plan.refusals:
            raise SafetyRefusal(self.plan.refusals[0] + " (nothing was changed)")
        return OK, counts

    def apply(self) -> tuple[str, dict[str, Any]]:
        if self.settings.dry_run:
            raise _Skip("dry run: nothing is changed")
        self._need("a plan", self.plan is not None and not self.plan.refusals)
        assert self.store is not None and self.plan is not None
        res = apply_plan(self.store, self.plan, mode=self.settings.mode, progress=self.progress)
        self.applied = res
        counts = {
            "removed_keys": sum(v["keys"] for v in res.removed.values()),
            "bytes_freed": res.bytes_freed,
            "skipped": sum(res.skipped.values()),
            "failures": len(res.failures),
        }
        if counts["removed_keys"]:
            log.warning(CACHE_WARNING, extra={"phase": "apply"})
        if res.failures:
            more = f" and {len(res.failures) - 1} more" if len(res.failures) > 1 else ""
            raise _Failed(f"{res.failures[0]}{more} (see the deletion log)", counts)
        return OK, counts

    def purge(self) -> tuple[str, dict[str, Any]]:
        self._need("open", self.store is not None)
        assert self.store is not None
        retention = self.settings.quarantine_retention
        if retention is None:
            raise _Skip("quarantine_retention is never")
        cutoff = self.now - retention
        due = [
            r
            for r in list_runs(self.store)
            if r.run_id != self.run_id and (t := run_started(r)) is not None and t <= cutoff
        ]
        counts: dict[str, Any] = {"runs_due": len(due)}
        if self.settings.dry_run:
            raise _Skip("dry run: nothing is purged", counts)
        totals: Counter[str] = Counter()
        errors: list[str] = []
        opts = ScanOptions(workers=self.settings.workers, layout_root=self.settings.layout_root)
        for r in due:
            try:
                res = purge_run(self.store, r.run_id, opts)
            except RegsweepError as e:
                errors.append(f"{r.run_id}: {e}")
                continue
            totals.update(purged=res.purged, restored=res.restored, bytes_purged=res.bytes_purged)
            errors += [f"{r.run_id}: {f}" for f in res.failures]
            if not res.failures:
                totals["runs_purged"] += 1
        counts.update({"runs_purged": 0, "purged": 0, "restored": 0, "bytes_purged": 0, **totals})
        counts["failures"] = len(errors)
        if errors:
            more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
            raise _Failed(errors[0] + more, counts)
        return OK, counts

    def write_report(self) -> dict[str, Any]:
        if not self.settings.report_dir:
            raise _Skip("no report_dir")
        self._need("scan", self.snap is not None)
        self._need("a plan", self.plan is not None)
        assert self.store is not None and self.snap is not None and self.plan is not None
        # See the note on imports at the top.
        from regsweep.audit.log import read_log
        from regsweep.reports.dataset import write_report
        from regsweep.reports.tables import build_report

        self.report = build_report(
            self.snap,
            settings=self.plan.settings,
            now=self.now,
            log=read_log(ReadOnlyStore(self.store)),
            plan=self.plan,
            policy=self.settings.policy,
        )
        paths = write_report(self.report, self.settings.report_dir)
        return {"files": len(paths)}

    def write_metrics(self) -> dict[str, Any]:
        s = self.settings
        if not s.metrics_file and not s.pushgateway:
            raise _Skip("no metrics_file or pushgateway")
        # See the note on imports at the top.
        from regsweep.reports.metrics import RunMetrics
        from regsweep.reports.tables import reclaimable_by_reason
        from regsweep.reports.usage import usage

        m = RunMetrics("run")
        if self.report is not None:
            m.set_usage(self.report.usage)
        elif self.snap is not None:
            m.set_usage(usage(self.snap))
        if self.plan is not None:
            m.set_reclaimable(reclaimable_by_reason(self.plan))
        if self.applied is not None:
            m.set_deleted(self.applied.removed)
        if self.audit is not None:
            m.set_findings(Counter(f.kind for f in self.audit.findings))
        m.finish(
            success=self.result.exit_code == 0,
            duration_seconds=time.monotonic() - self.started,
            now=utcnow(),
        )
        if s.metrics_file:
            m.write_textfile(s.metrics_file)
        if s.pushgateway:
            try:
                m.push(s.pushgateway)
            except (OSError, ValueError) as e:
                where = _redact(s.pushgateway)
                raise RegsweepError(f"cannot push metrics to {where}: {e}") from e
        return {"series": sum(1 for _ in m.registry.collect())}

    def run(self) -> JobResult:
        self.started = time.monotonic()
        if self.settings.policy:
            self.policy = load_policy(self.settings.policy)  # a config error: before any step
        log.info(
            "run %s: %s%s",
            self.run_id,
            self.result.store,
            " (dry run)" if self.settings.dry_run else f" (mode {self.settings.mode})",
            extra={"phase": "start"},
        )
        try:
            self.step("open", self.open)
            self.step("lock", self.take_lock)
            self.step("scan", self.scan)
            self.step("audit", self.run_audit)
            self.step("plan", self.make_plan)
            self.step("apply", self.apply)
        finally:
            if self.lock is not None and self.store is not None:
                release_lock(self.store, self.lock)  # apply released it already, if it ran
        self.step("purge", self.purge)
        self.step("report", self.write_report)
        self.step("metrics", self.write_metrics)
        self.result.seconds = time.monotonic() - self.started
        log.info(
            "run %s %s (exit code %d)",
            self.run_id,
            self.result.status,
            self.result.exit_code,
            extra={"phase": "end", "counts": {s.name: s.status for s in self.result.steps}},
        )
        return self.result


class _Skip(Exception):
    def __init__(self, reason: str, counts: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.counts = counts or {}


class _Failed(RegsweepError):
    """A step that finished but with failures: its counts are kept."""

    def __init__(self, message: str, counts: dict[str, Any]) -> None:
        super().__init__(message)
        self.counts = counts


def run_job(
    settings: JobSettings,
    *,
    store: ObjectStore | None = None,
    progress: Progress = no_progress,
    opener: Callable[[JobSettings], ObjectStore] | None = None,
    run_id: str | None = None,
) -> JobResult:
    """Run every step of the scheduled job with ``settings`` (see the module docstring) and
    return what each did. ``store`` replaces the one the settings name (tests, wrappers).
    Raises ConfigError (or PolicyError) for settings that cannot work, before any step runs;
    never raises for a failing step."""
    if store is None and not (settings.store or settings.registry_config):
        raise ConfigError("store: no store given (set store or registry_config)")
    return _Job(settings, store, progress, opener or open_job_store, run_id).run()


__all__ = ["STEPS", "JobResult", "StepResult", "new_run_id", "run_job"]
