"""``regsweep run``: every step on the demo registry, a second run that finds nothing new, the
purge of old quarantine runs, isolation of a failing step, a lock refusal, a dry run through a
store that cannot change anything, and JSON logs that carry the run id."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from ops_helpers import Recording

from regsweep.audit.log import read_log
from regsweep.audit.report import run_audit
from regsweep.cli.main import cli
from regsweep.clock import utcnow
from regsweep.config import JobSettings
from regsweep.errors import StoreError
from regsweep.gc.lock import LOCK_KEY
from regsweep.gc.quarantine import list_runs
from regsweep.jobs import run_job
from regsweep.storage.base import DeleteOutcome, ObjectStore
from regsweep.storage.filesystem import FilesystemStore


def write_config(path: Path, root: Path, **extra: object) -> Path:
    lines = [
        f'store = "{root}"',
        "delete_untagged = true",
        'report_dir = "reports"',
        'metrics_file = "metrics/regsweep.prom"',
        'log_format = "json"',
    ]
    for k, v in extra.items():
        lines.append(f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")
    (path.parent / "metrics").mkdir(exist_ok=True)
    return path


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def summary(result: Result) -> dict[str, Any]:
    obj = json.loads(result.stdout)
    assert isinstance(obj, dict)
    return obj


def steps(s: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in s["steps"]}


def log_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stderr.splitlines() if line.strip()]


def assert_clean(root: Path) -> None:
    """restic's habit: after every apply, the audit finds no errors."""
    report = run_audit(FilesystemStore(root))
    assert report.errors == [], [f.to_json() for f in report.errors]


def test_run_does_every_step_and_a_second_run_deletes_nothing_new(
    demo: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "regsweep.toml", demo)
    first = invoke("run", "--config", str(config), "--json")
    assert first.exit_code == 0, first.output
    s1 = summary(first)
    by_name = steps(s1)
    assert list(by_name) == [
        "open",
        "lock",
        "scan",
        "audit",
        "plan",
        "apply",
        "purge",
        "report",
        "metrics",
    ]
    assert {v["status"] for v in by_name.values()} == {"ok"}, s1
    assert s1["failed_steps"] == [] and s1["status"] == "ok"
    assert by_name["apply"]["counts"]["removed_keys"] > 0
    assert by_name["plan"]["counts"]["candidates"] == by_name["apply"]["counts"]["removed_keys"]
    run_id = s1["run_id"]

    # Reports, metrics and the deletion log are written.
    reports = tmp_path / "reports"
    assert list((reports / "summary").glob("snapshot=*/part-0.parquet"))
    assert list((reports / "reclaimable").glob("snapshot=*/part-0.parquet"))
    prom = (tmp_path / "metrics" / "regsweep.prom").read_text()
    assert 'regsweep_last_run_success{job="run"} 1.0' in prom
    assert 'regsweep_deleted_objects{job="run",kind="blob"}' in prom
    assert "regsweep_findings" in prom and "regsweep_repository_bytes" in prom
    store = FilesystemStore(demo)
    logged = read_log(store, run_id).to_pylist()
    assert {r["action"] for r in logged} == {"quarantined"}
    assert len(logged) == by_name["apply"]["counts"]["removed_keys"]
    assert [r.run_id for r in list_runs(store)] == [run_id]
    assert not (demo / LOCK_KEY).exists()
    assert_clean(demo)

    # JSON log lines parse and carry the run id, a phase and counts.
    lines = log_lines(first)
    assert lines, first.stderr
    assert {line["run_id"] for line in lines} == {run_id}
    assert {"timestamp", "level", "run_id", "phase", "message", "counts"} <= set(lines[0])
    phases = {line["phase"] for line in lines}
    assert {"scan", "audit", "plan", "apply", "purge", "report", "metrics"} <= phases
    scanned = next(x for x in lines if x["phase"] == "scan" and x["message"] == "scan ok")
    assert scanned["counts"]["blobs"] > 0

    # A second run right after: nothing new to delete, the quarantine is too young to purge.
    second = invoke("run", "--config", str(config), "--json")
    assert second.exit_code == 0, second.output
    by_name2 = steps(summary(second))
    assert by_name2["plan"]["counts"]["candidates"] == 0
    assert by_name2["apply"]["counts"]["removed_keys"] == 0
    assert by_name2["purge"]["counts"]["runs_due"] == 0
    assert len(read_log(store).to_pylist()) == len(logged)
    assert [r.run_id for r in list_runs(store)] == [run_id]


def test_old_quarantine_runs_are_purged_after_a_recheck(demo: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "regsweep.yaml", demo)
    config.write_text(config.read_text().replace(" = ", ": "))  # the same settings, as YAML
    first = invoke("run", "--config", str(config), "--json")
    assert first.exit_code == 0, first.output
    quarantined = steps(summary(first))["apply"]["counts"]["removed_keys"]
    # The retention from the environment: every earlier run is old enough.
    second = invoke(
        "run", "--config", str(config), "--json", env={"REGSWEEP_QUARANTINE_RETENTION": "0s"}
    )
    assert second.exit_code == 0, second.output
    s2 = summary(second)
    purge = steps(s2)["purge"]
    assert purge["status"] == "ok"
    assert purge["counts"]["runs_due"] == 1 and purge["counts"]["runs_purged"] == 1
    assert purge["counts"]["purged"] == quarantined and purge["counts"]["restored"] == 0
    assert s2["settings"]["quarantine_retention"]["from"] == (
        "environment variable REGSWEEP_QUARANTINE_RETENTION"
    )
    assert list_runs(FilesystemStore(demo)) == []
    assert_clean(demo)


class RefusesChanges:
    """A store whose deletes and moves fail (as with credentials that may only read and write
    the lock): apply fails object by object; the other steps still run."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def move(self, key: str, to_key: str) -> None:
        raise StoreError(f"{self.url}: access denied while moving {key}")

    def delete_many(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        if keys == [LOCK_KEY]:
            return self.inner.delete_many(keys)
        return [DeleteOutcome(k, deleted=False, error="access denied") for k in keys]


def test_a_failing_step_does_not_hide_the_others(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "regsweep.jobs.open_job_store",
        lambda settings: RefusesChanges(FilesystemStore(str(settings.store))),
    )
    config = write_config(tmp_path / "regsweep.toml", demo)
    before = sorted(p.relative_to(demo) for p in (demo / "docker").rglob("*"))
    result = invoke("run", "--config", str(config), "--json")
    assert result.exit_code == 1, result.output
    s = summary(result)
    assert s["failed_steps"] == ["apply"] and s["status"] == "failed"
    by_name = steps(s)
    assert by_name["apply"]["status"] == "failed"
    assert "access denied" in by_name["apply"]["error"]
    assert by_name["apply"]["counts"]["failures"] > 0
    for name in ("scan", "audit", "plan", "purge", "report", "metrics"):
        assert by_name[name]["status"] == "ok", by_name[name]
    assert sorted(p.relative_to(demo) for p in (demo / "docker").rglob("*")) == before
    prom = (tmp_path / "metrics" / "regsweep.prom").read_text()
    assert 'regsweep_last_run_success{job="run"} 0.0' in prom
    errors = [x for x in log_lines(result) if x["level"] == "error"]
    assert [x["phase"] for x in errors] == ["apply"] and "error" in errors[0]


class ScanFails:
    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def iter_subdirs(self, prefix: str) -> Iterator[str]:
        raise StoreError(f"{self.url}: listing {prefix} failed (HTTP 500)")


def test_later_steps_that_need_a_failed_one_are_skipped_with_the_reason(
    demo: Path, tmp_path: Path
) -> None:
    settings = JobSettings(
        store=str(demo),
        report_dir=str(tmp_path / "reports"),
        metrics_file=str(tmp_path / "m.prom"),
    )
    res = run_job(settings, store=ScanFails(FilesystemStore(demo)))  # type: ignore[arg-type]
    by_name = {s.name: s for s in res.steps}
    assert by_name["scan"].status == "failed" and "HTTP 500" in (by_name["scan"].error or "")
    for name in ("audit", "plan", "apply", "report"):
        assert by_name[name].status == "skipped", name
    assert by_name["audit"].error == "needs scan"
    assert by_name["purge"].status == "ok" and by_name["metrics"].status == "ok"
    assert res.exit_code == 1 and res.to_json()["failed_steps"] == ["scan"]
    assert not (demo / LOCK_KEY).exists()  # released although nothing was applied


def test_a_locked_store_is_a_safety_refusal(demo: Path, tmp_path: Path) -> None:
    store = FilesystemStore(demo)
    held = {
        "run_id": "other-run",
        "owner": "someone",
        "host": "another-host",
        "pid": 1,
        "acquired": utcnow().isoformat(),
        "expires": "2999-01-01T00:00:00+00:00",
    }
    store.write(LOCK_KEY, json.dumps(held).encode())
    config = write_config(tmp_path / "regsweep.toml", demo)
    result = invoke("run", "--config", str(config), "--json")
    assert result.exit_code == 3, result.output
    by_name = steps(summary(result))
    assert by_name["lock"]["status"] == "refused" and "other-run" in by_name["lock"]["error"]
    assert by_name["plan"]["status"] == "skipped" and by_name["apply"]["status"] == "skipped"
    assert by_name["scan"]["status"] == "ok" and by_name["report"]["status"] == "skipped"
    assert by_name["audit"]["status"] == "ok"
    assert json.loads(store.read(LOCK_KEY, max_bytes=4096))["run_id"] == "other-run"


def test_a_dry_run_never_changes_the_store(demo: Path, tmp_path: Path) -> None:
    # An old quarantine run, so the purge step has something it would purge.
    first = run_job(JobSettings(store=str(demo), delete_untagged=True))
    assert first.exit_code == 0
    store = Recording(FilesystemStore(demo))
    settings = JobSettings(
        store=str(demo),
        dry_run=True,
        delete_untagged=True,
        quarantine_retention=None,
        report_dir=str(tmp_path / "reports"),
    )
    res = run_job(settings, store=store)
    assert store.attempts == []
    assert res.exit_code == 0, res.to_json()
    by_name = {s.name: s for s in res.steps}
    assert by_name["lock"].status == "skipped" and by_name["apply"].status == "skipped"
    assert by_name["report"].status == "ok"
    # With a retention every run is due for: the purge lists them and purges nothing.
    res = run_job(replace(settings, quarantine_retention=timedelta(0)), store=store)
    assert store.attempts == []
    purge = {s.name: s for s in res.steps}["purge"]
    assert purge.status == "skipped" and purge.counts == {"runs_due": 1}
    assert res.exit_code == 0
