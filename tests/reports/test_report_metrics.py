"""Prometheus metrics: the textfile parses with prometheus_client's own parser and holds the named
series; pushes reach a (recording) pushgateway; failed runs keep the last-success time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from report_helpers import Demo, Gateway, run_cli, run_json

from regsweep.reports.metrics import LAST_SUCCESS, SERIES, RunMetrics

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def samples(text: str) -> Samples:
    """Metric name -> {sorted label items: value}, via prometheus_client's text parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def one(series: Samples, name: str, **labels: str) -> float:
    return series[name][tuple(sorted(labels.items()))]


def total(series: Samples, name: str) -> float:
    return sum(series.get(name, {}).values())


def jobs(series: Samples) -> set[str]:
    return {dict(k)["job"] for v in series.values() for k in v}


def _assert_named(series: Samples, names: Iterable[str]) -> None:
    missing = set(names) - set(series)
    assert not missing, missing


# -- the library --------------------------------------------------------------------------------


def test_textfile_parses_and_holds_every_series(tmp_path: Path) -> None:
    from regsweep.reports.usage import usage
    from regsweep.scan.scanner import scan
    from regsweep.storage.filesystem import FilesystemStore

    m = RunMetrics("audit")
    root = tmp_path / "empty"
    (root / "docker/registry/v2/repositories").mkdir(parents=True)
    m.set_usage(usage(scan(FilesystemStore(root))))
    m.set_reclaimable({"unreferenced": 1000, "untagged": 71})
    m.set_deleted({"blob": {"keys": 2, "bytes": 1000}, "revision": {"keys": 1, "bytes": 71}})
    m.set_findings({"missing-blob": 3, "bad-link": 0})
    now = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    m.finish(success=True, duration_seconds=12.5, now=now)
    path = tmp_path / "regsweep_audit.prom"
    m.write_textfile(path)
    series = samples(path.read_text())
    assert path.read_text() == m.exposition()
    _assert_named(series, set(SERIES) - {"regsweep_repository_bytes"})  # no repositories here
    assert jobs(series) == {"audit"}
    assert one(series, "regsweep_findings", job="audit", kind="missing-blob") == 3
    assert one(series, "regsweep_findings", job="audit", kind="bad-link") == 0
    assert one(series, "regsweep_reclaimable_bytes", job="audit", reason="untagged") == 71
    assert one(series, "regsweep_deleted_objects", job="audit", kind="blob") == 2
    assert one(series, "regsweep_deleted_bytes", job="audit", kind="revision") == 71
    assert one(series, "regsweep_run_duration_seconds", job="audit") == 12.5
    assert one(series, "regsweep_last_run_success", job="audit") == 1
    assert one(series, LAST_SUCCESS, job="audit") == now.timestamp()
    assert not list(tmp_path.glob("*.prom.*"))  # the temporary file was renamed into place


def test_only_measured_series_are_exported() -> None:
    m = RunMetrics("gc")
    m.finish(success=True, duration_seconds=1, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert set(samples(m.exposition())) == {
        "regsweep_run_duration_seconds",
        "regsweep_last_run_success",
        LAST_SUCCESS,
    }
    with pytest.raises(ValueError, match="unknown job"):
        RunMetrics("backup")


def test_a_failed_run_keeps_the_last_success_time(tmp_path: Path) -> None:
    path = tmp_path / "gc.prom"
    ok = RunMetrics("gc")
    t0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    ok.finish(success=True, duration_seconds=3, now=t0)
    ok.write_textfile(path)
    failed = RunMetrics("gc")
    failed.finish(success=False, duration_seconds=4, now=datetime(2026, 11, 27, 2, 0, tzinfo=UTC))
    failed.write_textfile(path)
    series = samples(path.read_text())
    assert one(series, "regsweep_last_run_success", job="gc") == 0
    assert one(series, "regsweep_run_duration_seconds", job="gc") == 4
    assert one(series, LAST_SUCCESS, job="gc") == t0.timestamp()
    # The run's own registry is unchanged: a push would not carry the kept value.
    assert LAST_SUCCESS not in samples(failed.exposition())
    # A file that is not metrics is replaced, not an error.
    path.write_text("garbage {{{\n")
    failed.write_textfile(path)
    assert LAST_SUCCESS not in samples(path.read_text())


def test_push_puts_on_success_and_posts_on_failure(pushgateway: Gateway) -> None:
    ok = RunMetrics("report")
    ok.set_reclaimable({"unreferenced": 5})
    ok.finish(success=True, duration_seconds=1, now=datetime(2026, 1, 1, tzinfo=UTC))
    ok.push(pushgateway.url)
    failed = RunMetrics("report")
    failed.finish(success=False, duration_seconds=2, now=datetime(2026, 1, 2, tzinfo=UTC))
    failed.push(pushgateway.url, job="nightly-report")
    first, second = pushgateway.requests
    assert (first.method, first.path) == ("PUT", "/metrics/job/report")
    assert (second.method, second.path) == ("POST", "/metrics/job/nightly-report")
    assert one(
        samples(first.body), "regsweep_reclaimable_bytes", job="report", reason="unreferenced"
    )
    assert LAST_SUCCESS in samples(first.body)
    assert LAST_SUCCESS not in samples(second.body)  # the gateway keeps the previous one


# -- the commands -------------------------------------------------------------------------------


def test_report_metrics_file_holds_the_named_series(demo: Demo, tmp_path: Path) -> None:
    prom = tmp_path / "regsweep_report.prom"
    doc = run_json(["report", demo.root, "-o", tmp_path / "out", "--metrics-file", prom])
    series = samples(prom.read_text())
    _assert_named(
        series,
        [
            "regsweep_repository_bytes",
            "regsweep_storage_bytes",
            "regsweep_dedup_ratio",
            "regsweep_reclaimable_bytes",
            "regsweep_run_duration_seconds",
            "regsweep_last_run_success",
            LAST_SUCCESS,
        ],
    )
    assert jobs(series) == {"report"}
    for repo in demo.summary.repositories:
        for t in ("total", "exclusive", "shared"):
            one(series, "regsweep_repository_bytes", job="report", repository=repo, type=t)
    exclusive = sum(
        v for k, v in series["regsweep_repository_bytes"].items() if ("type", "exclusive") in k
    )
    assert exclusive == doc["exclusive_bytes"]
    assert one(series, "regsweep_storage_bytes", job="report", state="live") == doc["live_bytes"]
    assert (
        one(series, "regsweep_storage_bytes", job="report", state="shared")
        == (doc["shared_unique_bytes"])
    )
    assert total(series, "regsweep_reclaimable_bytes") == doc["reclaimable_bytes"]
    assert one(series, "regsweep_last_run_success", job="report") == 1
    assert one(series, LAST_SUCCESS, job="report") > 0


def test_report_pushes_to_the_pushgateway(demo: Demo, tmp_path: Path, pushgateway: Gateway) -> None:
    doc = run_json(["report", demo.root, "-o", tmp_path / "out", "--pushgateway", pushgateway.url])
    (req,) = pushgateway.requests
    assert (req.method, req.path) == ("PUT", "/metrics/job/report")
    assert req.content_type and req.content_type.startswith("text/plain")
    series = samples(req.body)
    assert total(series, "regsweep_reclaimable_bytes") == doc["reclaimable_bytes"]
    assert {dict(k)["repository"] for k in series["regsweep_repository_bytes"]} == set(
        demo.summary.repositories
    )


def test_gc_refusal_still_exports_metrics(demo: Demo, tmp_path: Path, pushgateway: Gateway) -> None:
    prom = tmp_path / "gc.prom"
    args = ["gc", demo.root, "--delete-untagged", "--metrics-file", prom]
    run_json(args)  # a dry run that succeeds: last success set
    before = samples(prom.read_text())
    refused = run_cli(
        [*args, "--max-delete-fraction", "0.01", "--pushgateway", pushgateway.url, "--json"]
    )
    assert refused.exit_code == 3, refused.output
    after = samples(prom.read_text())
    assert one(after, "regsweep_last_run_success", job="gc") == 0
    assert one(after, LAST_SUCCESS, job="gc") == one(before, LAST_SUCCESS, job="gc")
    assert total(after, "regsweep_reclaimable_bytes") > 0
    (req,) = pushgateway.requests
    assert (req.method, req.path) == ("POST", "/metrics/job/gc")
    assert LAST_SUCCESS not in samples(req.body)


def test_gc_apply_exports_deleted_objects_and_bytes(demo: Demo, tmp_path: Path) -> None:
    prom = tmp_path / "gc.prom"
    doc = run_json(
        ["gc", demo.root, "--apply", "--yes", "--mode", "delete", "--metrics-file", prom]
    )
    series = samples(prom.read_text())
    removed = doc["result"]["removed"]
    assert total(series, "regsweep_deleted_bytes") == doc["result"]["bytes_freed"] > 0
    for kind, v in removed.items():
        assert one(series, "regsweep_deleted_objects", job="gc", kind=kind) == v["keys"]
        assert one(series, "regsweep_deleted_bytes", job="gc", kind=kind) == v["bytes"]
    assert total(series, "regsweep_reclaimable_bytes") == doc["bytes"]


def test_metrics_failures_warn_and_exit_1(demo: Demo, tmp_path: Path, pushgateway: Gateway) -> None:
    pushgateway.status = 500
    res = run_cli(["report", demo.root, "-o", tmp_path / "out", "--pushgateway", pushgateway.url])
    assert res.exit_code == 1
    assert "cannot push metrics" in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "out" / "summary").is_dir()  # the datasets were written anyway
    res = run_cli(
        ["report", demo.root, "-o", tmp_path / "out", "--metrics-file", tmp_path / "no/such/x.prom"]
    )
    assert res.exit_code == 1 and "cannot write metrics" in res.stderr


def test_commands_without_metrics_options_are_unchanged(demo: Demo, tmp_path: Path) -> None:
    for command in ("gc", "apply", "report"):
        res = run_cli([command, "--help"])
        assert res.exit_code == 0
        assert "--metrics-file" in res.stdout and "--pushgateway" in res.stdout
    assert run_cli(["gc", demo.root, "--max-delete-fraction", "0.01"]).exit_code == 3
    assert not list(tmp_path.glob("*.prom"))
