"""Prometheus metrics of one regsweep run (gc, audit, report or run), in its own
CollectorRegistry.

Every series carries a ``job`` label (``gc``, ``audit``, ``report``, ``run``), so the files of several
jobs can share a node_exporter textfile directory and the pushgateway groups agree with them.
All metrics are gauges: each run replaces the previous run's values.

Series (docs/reports.md lists them with their labels):

- ``regsweep_repository_bytes{repository, type=total|exclusive|shared}``
- ``regsweep_storage_bytes{state=stored|live|logical|shared|unreferenced}``, ``regsweep_dedup_ratio``
- ``regsweep_reclaimable_bytes{reason}``
- ``regsweep_deleted_objects{kind}``, ``regsweep_deleted_bytes{kind}``
- ``regsweep_findings{kind}``
- ``regsweep_run_duration_seconds``, ``regsweep_last_run_success``,
  ``regsweep_last_success_timestamp_seconds``

A run that failed keeps the previous ``regsweep_last_success_timestamp_seconds`` (read back from
the textfile; on the pushgateway by pushing with POST, which leaves metrics the run does not
send untouched), so "no success for two days" alerts keep working.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, pushadd_to_gateway
from prometheus_client import write_to_textfile as _write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from regsweep.reports.usage import UsageSummary

JOBS = ("gc", "audit", "report", "run")
LAST_SUCCESS = "regsweep_last_success_timestamp_seconds"

# name -> (help, labels besides job). HELP texts are constant: node_exporter rejects a metric
# whose HELP differs between two files of its textfile directory.
SERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "regsweep_repository_bytes": (
        "Bytes a repository reaches: total (unique), exclusive (freed if it were deleted) and "
        "shared (total - exclusive).",
        ("repository", "type"),
    ),
    "regsweep_storage_bytes": (
        "Bytes of the whole store: stored (all blob data), live (reached by any repository), "
        "logical (sum of repository totals), shared (live blobs reached by two or more "
        "repositories), unreferenced (stored - live).",
        ("state",),
    ),
    "regsweep_dedup_ratio": ("Logical bytes divided by live bytes.", ()),
    "regsweep_reclaimable_bytes": (
        "Bytes the gc plan would free, by reason, with the settings of this run.",
        ("reason",),
    ),
    "regsweep_deleted_objects": (
        "Objects the last run removed (deleted, moved to quarantine or aborted), by kind.",
        ("kind",),
    ),
    "regsweep_deleted_bytes": (
        "Bytes the last run removed (deleted, moved to quarantine or aborted), by kind.",
        ("kind",),
    ),
    "regsweep_findings": ("Findings of the last run, by kind.", ("kind",)),
    "regsweep_run_duration_seconds": ("Wall-clock duration of the last run.", ()),
    "regsweep_last_run_success": ("1 if the last run succeeded (exit code 0), else 0.", ()),
    LAST_SUCCESS: ("Unix time at which the last successful run finished.", ()),
}


class RunMetrics:
    """Metrics of one run of ``job``. Setters may be called in any order; only series that were
    set are exported (an absent series means "not measured by this job", never zero)."""

    def __init__(self, job: str) -> None:
        if job not in JOBS:
            raise ValueError(f"unknown job {job!r} (one of {', '.join(JOBS)})")
        self.job = job
        self.registry = CollectorRegistry()
        self.succeeded: bool | None = None
        self._gauges: dict[str, Gauge] = {}

    def _set(self, name: str, value: float, **labels: str) -> None:
        doc, names = SERIES[name]
        g = self._gauges.get(name)
        if g is None:
            g = Gauge(name, doc, ["job", *names], registry=self.registry)
            self._gauges[name] = g
        g.labels(job=self.job, **labels).set(value)

    # -- what a run measured -----------------------------------------------------------------

    def set_usage(self, u: UsageSummary) -> None:
        """Per-repository and whole-store bytes from ``reports.usage.usage``."""
        for r in u.repositories.to_pylist():
            for t in ("total", "exclusive", "shared"):
                self._set(
                    "regsweep_repository_bytes",
                    r[f"{t}_bytes"],
                    repository=r["repository"],
                    type=t,
                )
        for state, value in (
            ("stored", u.stored_bytes),
            ("live", u.live_bytes),
            ("logical", u.logical_bytes),
            ("shared", u.shared_unique_bytes),
            ("unreferenced", u.unreferenced_bytes),
        ):
            self._set("regsweep_storage_bytes", value, state=state)
        self._set("regsweep_dedup_ratio", u.dedup_ratio)

    def set_reclaimable(self, bytes_by_reason: Mapping[str, int]) -> None:
        """Bytes a gc plan would free, per plan reason (``tables.reclaimable_by_reason``)."""
        for reason, value in bytes_by_reason.items():
            self._set("regsweep_reclaimable_bytes", value, reason=reason)

    def set_deleted(self, removed: Mapping[str, Mapping[str, int]]) -> None:
        """Per kind, ``{"keys": n, "bytes": b}`` removed (``gc.apply.ApplyResult.removed``)."""
        for kind, v in removed.items():
            self._set("regsweep_deleted_objects", v.get("keys", 0), kind=kind)
            self._set("regsweep_deleted_bytes", v.get("bytes", 0), kind=kind)

    def set_findings(self, findings: Mapping[str, int]) -> None:
        """Number of findings per kind (the audit feeds this)."""
        for kind, n in findings.items():
            self._set("regsweep_findings", n, kind=kind)

    def finish(self, *, success: bool, duration_seconds: float, now: datetime) -> None:
        """Record the outcome; ``now`` (timezone-aware) is the last-success time if it succeeded."""
        self.succeeded = success
        self._set("regsweep_run_duration_seconds", duration_seconds)
        self._set("regsweep_last_run_success", 1 if success else 0)
        if success:
            self._set(LAST_SUCCESS, now.timestamp())

    # -- output ------------------------------------------------------------------------------

    def exposition(self) -> str:
        """The metrics in the Prometheus text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()

    def write_textfile(self, path: str | Path) -> None:
        """Write the node_exporter textfile-collector format to ``path`` atomically (a
        temporary file renamed into place). After a failed run, the last-success time the file
        held before is kept."""
        p = Path(path)
        source: Collector = self.registry
        if self.succeeded is False and LAST_SUCCESS not in self._gauges:
            previous = _previous_success(p, self.job)
            if previous is not None:
                kept = GaugeMetricFamily(LAST_SUCCESS, SERIES[LAST_SUCCESS][0], labels=["job"])
                kept.add_metric([self.job], previous)
                source = _Plus(self.registry, kept)
        _write_to_textfile(str(p), source)

    def push(self, url: str, job: str | None = None, *, timeout: float = 30) -> None:
        """Push to the pushgateway at ``url`` under grouping key ``job`` (default: this run's
        job). A successful run replaces its group (PUT); a failed one only the series it sends
        (POST), so the group keeps its last-success time. Raises OSError (URLError) when the
        gateway cannot be reached or answers with an error."""
        group = job or self.job
        if self.succeeded is False:
            pushadd_to_gateway(url, job=group, registry=self.registry, timeout=timeout)
        else:
            push_to_gateway(url, job=group, registry=self.registry, timeout=timeout)


class _Plus(Collector):
    """The run's registry plus one more family, without changing the registry."""

    def __init__(self, registry: CollectorRegistry, extra: Metric) -> None:
        self.registry = registry
        self.extra = extra

    def collect(self) -> Iterable[Metric]:
        yield from self.registry.collect()
        yield self.extra


def _previous_success(path: Path, job: str) -> float | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        for family in text_string_to_metric_families(text):
            if family.name != LAST_SUCCESS:
                continue
            for s in family.samples:
                if s.labels.get("job") == job:
                    return float(s.value)
    except ValueError:  # not a metrics file we can read: start afresh
        return None
    return None
