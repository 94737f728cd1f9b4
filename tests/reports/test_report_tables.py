"""The report tables agree with what the demo generator wrote and with gc; the datasets
accumulate one partition per snapshot and read back as one dataset; the CLI contract."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from report_helpers import Demo, file_bytes, run_cli, run_json

from imagegen import sample_image
from regsweep.audit.log import read_log
from regsweep.clock import utcnow
from regsweep.demo.generator import LayoutWriter
from regsweep.gc import plan as plan_module
from regsweep.gc.mark import mark, referrer_tag_subject
from regsweep.gc.plan import GcSettings, Plan, make_plan
from regsweep.layout.keys import tag_current_key, tag_index_key
from regsweep.reports import (
    SCHEMAS,
    TABLES,
    build_report,
    linear_forecast,
    load,
    read_table,
    snapshots,
    write_report,
)
from regsweep.reports.dataset import parse_snapshot_label, snapshot_label
from regsweep.reports.tables import reclaimable_by_reason
from regsweep.scan import scanner
from regsweep.scan.graph import Graph
from regsweep.scan.scanner import scan
from regsweep.scan.snapshot import rows as column_rows
from regsweep.storage.filesystem import FilesystemStore

REPO_ROOT = Path(__file__).resolve().parents[2]


def _report(root: Path, settings: GcSettings | None = None, **kw):  # type: ignore[no-untyped-def]
    store = FilesystemStore(root)
    return build_report(
        scan(store), settings=settings or GcSettings(), now=utcnow(), log=read_log(store), **kw
    )


# -- the numbers --------------------------------------------------------------------------------


def test_usage_adds_up_and_matches_what_the_demo_wrote(demo: Demo) -> None:
    r = _report(demo.root)
    s = r.tables["summary"].to_pylist()[0]
    repos = {row["repository"]: row for row in r.tables["repositories"].to_pylist()}
    blobs = r.tables["blobs"].to_pylist()
    expected_live = demo.summary.referenced_blobs()

    # Independent of the code under test: the generator knows which blobs are live.
    assert s["live_bytes"] == sum(demo.summary.blobs[d] for d in expected_live)
    assert s["stored_bytes"] == demo.summary.total_bytes
    assert s["live_blobs"] == len(expected_live)
    # Distinct manifests: one pushed to several repositories counts once.
    assert s["manifests"] == len({d for m in demo.summary.manifests.values() for d in m})
    assert (
        sum(r["exclusive_bytes"] for r in repos.values()) + s["shared_unique_bytes"]
        == (s["live_bytes"])
    )
    # The blobs table tells the same story.
    assert sum(b["size"] for b in blobs if b["repositories"] >= 1) == s["live_bytes"]
    assert sum(b["size"] for b in blobs if b["repositories"] >= 2) == s["shared_unique_bytes"]
    assert sum(b["size"] for b in blobs) == s["stored_bytes"]
    assert {b["digest"] for b in blobs if b["repositories"] >= 1} == expected_live
    assert s["logical_bytes"] == sum(r["total_bytes"] for r in repos.values())
    assert s["dedup_ratio"] == pytest.approx(s["logical_bytes"] / s["live_bytes"])
    assert s["dedup_ratio"] > 1  # the demo shares base layers across repositories
    for row in repos.values():
        assert row["shared_bytes"] == row["total_bytes"] - row["exclusive_bytes"]

    assert sorted(repos) == demo.summary.repositories
    for repo in demo.summary.repositories:
        assert repos[repo]["tags"] == len(demo.summary.tags[repo])
        assert repos[repo]["manifests"] == len(demo.summary.manifests[repo])
        untagged = set(demo.summary.untagged.get(repo, [])) - set(
            demo.summary.index_children.get(repo, [])
        )
        assert repos[repo]["untagged_manifests"] == len(untagged), repo
        assert repos[repo]["last_push"] is not None


def test_blob_kinds_and_tag_details(demo: Demo) -> None:
    r = _report(demo.root)
    kinds = {b["digest"]: b["kind"] for b in r.tables["blobs"].to_pylist()}
    first_seen = {b["digest"]: b["first_seen"] for b in r.tables["blobs"].to_pylist()}
    for digests in demo.summary.manifests.values():
        for d in digests:
            assert kinds[d] == "manifest", d
    for d in demo.summary.orphan_blobs:
        assert kinds[d] == "unknown"
    assert {"layer", "config"} <= set(kinds.values())
    assert all(t is not None for t in first_seen.values())

    tags = r.tables["tags"].to_pylist()
    assert {(t["repository"], t["tag"]): t["digest"] for t in tags} == {
        (repo, tag): d for repo, m in demo.summary.tags.items() for tag, d in m.items()
    }
    sizes: dict[str, set[int]] = defaultdict(set)
    for t in tags:
        mt = demo.summary.manifests[t["repository"]][t["digest"]]
        assert t["media_type"] == mt
        assert t["push_time"] is not None
        assert t["image_size"] > 0
        sizes[t["digest"]].add(t["image_size"])
        if ("index" in mt or "list" in mt) and referrer_tag_subject(t["tag"]) is None:
            # A platform index (a referrers-fallback index lists artifacts, no platforms).
            assert t["platforms"] and all(p.count("/") >= 1 for p in t["platforms"]), t
    assert all(len(v) == 1 for v in sizes.values())  # same digest, same size


def test_image_sizes_untagged_counts_and_last_pushes_match_the_rows(demo: Demo) -> None:
    """The tags' image sizes, the repositories' untagged manifests and last pushes are
    computed on the graph's places; here they are computed again row by row over the
    snapshot, with the graph's string closures: the same numbers."""
    snap = scan(FilesystemStore(demo.root))
    graph = Graph.from_snapshot(snap)
    r = build_report(snap, settings=GcSettings(), now=utcnow(), log=None)
    tags = column_rows(snap["tags"])
    revisions = column_rows(snap["revisions"])
    for t in r.tables["tags"].to_pylist():
        reach = graph.closure(t["repository"], [t["digest"]])
        assert t["image_size"] == sum(graph.blob_sizes.get(d, 0) for d in reach), t
    repos = {row["repository"]: row for row in r.tables["repositories"].to_pylist()}
    assert sum(row["untagged_manifests"] for row in repos.values()) > 0
    for repo, row in repos.items():
        tagged = {t["digest"] for t in tags if t["repository"] == repo and t["digest"]}
        mine = [x for x in revisions if x["repository"] == repo]
        targets = {x["target"] for x in mine if x["target"] is not None}
        assert row["untagged_manifests"] == len(targets - graph.closure(repo, tagged)), repo
        times = [x["last_modified"] for x in [*mine, *tags] if x["repository"] == repo]
        assert row["last_push"] == max(times), repo


@pytest.mark.parametrize("small_parts", [False, True], ids=["parts", "small-parts"])
@pytest.mark.parametrize(
    "settings",
    [
        GcSettings(),
        GcSettings(delete_untagged=True),
        GcSettings(delete_untagged=True, grace=timedelta(0), upload_grace=timedelta(0)),
    ],
    ids=["default", "delete-untagged", "no-grace"],
)
def test_reclaimable_table_is_the_gc_plan_aggregated(
    demo: Demo, settings: GcSettings, small_parts: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Candidates, keys and bytes per reason, kind and repository, as counted from the plan's
    rows. With ``small_parts`` the plan's rows come in many parts (blob rows in scratch files
    a few at a time, Python rows flushed every three, so that candidates span flushes), which
    the report aggregates a part at a time."""
    if small_parts:
        monkeypatch.setattr(scanner, "_PART_ROWS", 4)
        monkeypatch.setattr(scanner, "_SPILL_ROWS", 4)
        monkeypatch.setattr(plan_module, "_PYTHON_ROWS", 3)
    store = FilesystemStore(demo.root)
    snap = scan(store)
    now = utcnow()
    r = build_report(snap, settings=settings, now=now)
    plan = make_plan(snap, mark(snap, delete_untagged=settings.delete_untagged), settings, now)
    if small_parts:
        assert len(list(plan.candidate_parts())) > 1
        assert len(list(r.parts("blobs"))) > 3
    expected: dict[tuple[str, str, str | None], list[Any]] = defaultdict(lambda: [set(), 0, 0])
    for row in plan.rows.to_pylist():
        e = expected[(row["reason"], row["kind"], row["repository"])]
        e[0].add(row["candidate"])
        e[1] += 1
        e[2] += row["size"] or 0
    got = {
        (row["reason"], row["kind"], row["repository"]): [
            row["candidates"],
            row["keys"],
            row["bytes"],
        ]
        for row in r.tables["reclaimable"].to_pylist()
    }
    assert got == {k: [len(c), n, b] for k, (c, n, b) in expected.items()}
    assert r.tables["summary"]["reclaimable_bytes"][0].as_py() == plan.total_bytes() > 0
    assert r.reclaimable_by_reason() == reclaimable_by_reason(plan)


def test_blobs_table_is_written_a_part_at_a_time(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan that keeps its blobs in scratch files in many parts gives a blobs table made
    and written a part at a time, whole and in order: the same rows as a scan in one part
    gives, and as the table built whole when asked for by name."""
    whole = _report(demo.root).tables["blobs"]
    monkeypatch.setattr(scanner, "_PART_ROWS", 4)
    monkeypatch.setattr(scanner, "_SPILL_ROWS", 4)
    r = _report(demo.root)
    assert len(list(r.parts("blobs"))) > 3
    write_report(r, tmp_path / "out")
    assert "blobs" not in r.tables  # written as it was made, never built whole
    assert read_table(tmp_path / "out", "blobs").drop_columns(["snapshot"]).equals(whole)
    assert r.tables["blobs"].equals(whole)
    assert len(list(r.parts("blobs"))) == 1  # built whole now, and kept


def test_reclaimable_equals_what_gc_frees(demo: Demo, tmp_path: Path) -> None:
    root = demo.root
    flags = ["--delete-untagged"]
    reported = run_json(["report", root, "-o", tmp_path / "reports", *flags])
    planned = run_json(["gc", root, *flags, "--plan-out", tmp_path / "plan.parquet"])
    assert reported["reclaimable_bytes"] == planned["bytes"] > 0
    plan = Plan.read(tmp_path / "plan.parquet")
    by_reason: dict[str, int] = defaultdict(int)
    for row in plan.rows.to_pylist():
        by_reason[row["reason"]] += row["size"] or 0
    assert reported["reclaimable_by_reason"] == dict(by_reason)

    before = file_bytes(root)
    applied = run_json(["gc", root, *flags, "--apply", "--yes", "--mode", "delete"])
    assert applied["result"]["failures"] == [] and applied["result"]["skipped"] == {}
    assert applied["result"]["bytes_freed"] == reported["reclaimable_bytes"]
    assert before - file_bytes(root) == reported["reclaimable_bytes"]

    after = run_json(["report", root, "-o", tmp_path / "reports", *flags])
    assert after["reclaimable_bytes"] == 0
    freed_blob_bytes = reported["reclaimable_by_reason"]["unreferenced"]
    assert after["stored_bytes"] == reported["stored_bytes"] - freed_blob_bytes
    assert after["unreferenced_bytes"] == 0 and after["live_bytes"] == after["stored_bytes"]
    runs = load(tmp_path / "reports", "gc_runs", snapshot="latest")
    assert list(runs["run_id"]) == [applied["run_id"]]
    run = runs.iloc[0]
    assert run["mode"] == "delete"
    assert run["bytes_removed"] == applied["result"]["bytes_freed"]
    assert run["deleted"] == sum(v["keys"] for v in applied["result"]["removed"].values())
    assert run["failed"] == run["skipped"] == 0


POLICY = """
version: 1
settings: {guards: {max_delete_fraction: 0.9}}
policies:
  - name: all
    repositories: ["glob:**"]
    rules:
      - {name: old, action: delete, select: {state: any}, when: {older_than: {age: 30d}}}
"""


def test_reclaimable_with_a_retention_policy_equals_gc_with_it(demo: Demo, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    reported = run_json(["report", demo.root, "-o", tmp_path / "out", "--policy", policy])
    planned = run_json(["gc", demo.root, "--policy", policy])
    plain = run_json(["report", demo.root, "-o", tmp_path / "plain", "--delete-untagged"])
    assert reported["reclaimable_bytes"] == planned["bytes"] > plain["reclaimable_bytes"]
    assert "retention" in reported["reclaimable_by_reason"]
    assert reported["gc_policy"] == str(policy) and reported["gc_delete_untagged"] is True
    assert plain["gc_policy"] is None


def test_gc_runs_counts_quarantine_runs(demo: Demo, tmp_path: Path) -> None:
    applied = run_json(["gc", demo.root, "--apply", "--yes"])
    r = _report(demo.root)
    (run,) = r.tables["gc_runs"].to_pylist()
    assert run["run_id"] == applied["run_id"]
    assert run["mode"] == "quarantine"
    assert run["quarantined"] == sum(v["keys"] for v in applied["result"]["removed"].values())
    assert run["bytes_removed"] == applied["result"]["bytes_freed"] > 0
    assert run["started"] <= run["finished"]


# -- the datasets -------------------------------------------------------------------------------


def test_two_runs_on_a_changing_registry_read_as_one_dataset(demo: Demo, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    t1 = datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC)
    t2 = t1 + timedelta(days=1)
    first = run_json(["report", demo.root, "-o", out, "--snapshot-time", t1.isoformat()])
    img = sample_image("report-growth", layers=2, size=20_000)
    LayoutWriter(FilesystemStore(demo.root)).push("team/new", img, ["v1"])
    second = run_json(["report", demo.root, "-o", out, "--snapshot-time", "2026-11-28T02:00:00Z"])
    added = img.blob.size + sum(b.size for b in img.blobs)
    assert second["stored_bytes"] - first["stored_bytes"] == added

    for table in TABLES:
        parts = sorted(p.name for p in (out / table).iterdir())
        assert parts == ["snapshot=2026-11-27T02-00-00Z", "snapshot=2026-11-28T02-00-00Z"], table

    # Plain pandas and pyarrow, no regsweep code: one dataset with a snapshot column.
    df = pd.read_parquet(out / "repositories")
    assert set(df["snapshot"].astype(str)) == {"2026-11-27T02-00-00Z", "2026-11-28T02-00-00Z"}
    new = df[df["repository"] == "team/new"]
    assert list(new["snapshot"].astype(str)) == ["2026-11-28T02-00-00Z"]
    assert int(new["total_bytes"].iloc[0]) == added
    table = ds.dataset(out / "summary", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 2 and "snapshot" in table.column_names

    summary = load(out, "summary")
    assert list(summary["snapshot"]) == [pd.Timestamp(t1), pd.Timestamp(t2)]
    assert str(summary["snapshot"].dtype).startswith("datetime64") and "UTC" in str(
        summary["snapshot"].dtype
    )
    assert list(summary["stored_bytes"]) == [first["stored_bytes"], second["stored_bytes"]]
    assert snapshots(out) == [t1, t2]
    latest = load(out, "repositories", snapshot="latest")
    assert set(latest["snapshot"]) == {pd.Timestamp(t2)}
    assert "team/new" in set(latest["repository"])
    assert len(load(out, "tags", snapshot=t1)) == sum(len(t) for t in demo.summary.tags.values())


def test_partition_label_defaults_to_the_scan_time_and_rewrites_replace(
    demo: Demo, tmp_path: Path
) -> None:
    r = _report(demo.root)
    paths = write_report(r, tmp_path / "out")
    label = snapshot_label(r.snapshot_time)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", label)
    scanned = datetime.fromisoformat(str(r.tables["summary"]["scanned_at"][0].as_py()))
    assert parse_snapshot_label(label) == scanned.replace(microsecond=0)
    assert {p.parent.name for p in paths} == {f"snapshot={label}"}
    assert paths[-1].parts[-3] == "summary"  # written last: marks a complete snapshot
    write_report(r, tmp_path / "out")  # same snapshot again: replaced, not duplicated
    assert len(load(tmp_path / "out", "summary")) == 1
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]


def test_written_files_have_the_documented_schemas(demo: Demo, tmp_path: Path) -> None:
    paths = write_report(_report(demo.root), tmp_path / "out")
    for p in paths:
        table = p.parts[-3]
        assert pq.read_schema(p).remove_metadata() == SCHEMAS[table], table


def test_docs_document_every_column() -> None:
    doc = (REPO_ROOT / "docs" / "reports.md").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    assert "docs/reports.md" in readme
    for table, schema in SCHEMAS.items():
        m = re.search(rf"^### `{table}`.*?(?=^### |^## )", doc, re.M | re.S)
        assert m, f"docs/reports.md has no section for {table}"
        documented = set()
        for line in m.group(0).splitlines():
            if line.startswith("| ") and not line.startswith("| column") and "---" not in line:
                documented |= {c.strip() for c in line.split("|")[1].split(",")}
        assert documented == set(schema.names), (table, documented ^ set(schema.names))


def test_older_partitions_read_new_columns_as_null(demo: Demo, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_report(_report(demo.root, snapshot_time=datetime(2026, 1, 2, tzinfo=UTC)), out)
    old = out / "repositories" / "snapshot=2026-01-01T00-00-00Z"
    old.mkdir()
    legacy = pa.table({"repository": ["legacy/repo"], "total_bytes": pa.array([5], pa.int64())})
    pq.write_table(legacy, old / "part-0.parquet")
    t = read_table(out, "repositories")
    assert t.schema.names == [*SCHEMAS["repositories"].names, "snapshot"]
    df = load(out, "repositories")
    row = df[df["repository"] == "legacy/repo"].iloc[0]
    assert row["total_bytes"] == 5 and pd.isna(row["exclusive_bytes"])


def test_load_of_an_empty_directory_and_an_unknown_table(tmp_path: Path) -> None:
    df = load(tmp_path, "repositories")
    assert df.empty and "snapshot" in df.columns and "exclusive_bytes" in df.columns
    assert snapshots(tmp_path) == []
    assert load(tmp_path, "summary", snapshot="latest").empty
    with pytest.raises(Exception, match="unknown report table"):
        load(tmp_path, "nope")


# -- the command --------------------------------------------------------------------------------


def test_report_text_summary(demo: Demo, tmp_path: Path) -> None:
    res = run_cli(["report", demo.root, "-o", tmp_path / "out", "--top", "2"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "deduplication ratio" in out and "reclaimable by gc" in out
    assert "library/base" in out and "... and 2 more repositories" in out
    assert "datasets written to" in out


def test_report_json_has_the_summary_fields(demo: Demo, tmp_path: Path) -> None:
    doc = run_json(["report", demo.root, "-o", tmp_path / "out", "--top", "3"])
    for k in (*SCHEMAS["summary"].names, "snapshot", "reclaimable_by_reason", "gc_refusals"):
        assert k in doc, k
    tops = doc["top_repositories"]
    assert len(tops) == 3
    assert [t["exclusive_bytes"] for t in tops] == sorted(
        (t["exclusive_bytes"] for t in tops), reverse=True
    )
    assert len(doc["files"]) == len(TABLES)


def test_report_refusal_is_noted_not_fatal(demo: Demo, tmp_path: Path) -> None:
    doc = run_json(
        [
            "report",
            demo.root,
            "-o",
            tmp_path / "out",
            "--delete-untagged",
            "--max-delete-fraction",
            "0.01",
        ]
    )
    assert doc["gc_refused"] is True and doc["gc_refusals"]
    assert doc["reclaimable_bytes"] > 0


@pytest.mark.parametrize(
    "args",
    [
        ["--snapshot-time", "2026-11-27T02:00:00"],  # no timezone
        ["--snapshot-time", "yesterday"],
        ["--grace", "soon"],
    ],
)
def test_report_usage_errors_exit_2(demo: Demo, tmp_path: Path, args: list[str]) -> None:
    res = run_cli(["report", demo.root, "-o", tmp_path / "out", *args])
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "out").exists()


def test_report_output_must_be_a_directory(demo: Demo, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    res = run_cli(["report", demo.root, "-o", tmp_path / "file"])
    assert res.exit_code == 2 and "is a file" in res.stderr


def test_report_has_help() -> None:
    res = run_cli(["report", "--help"])
    assert res.exit_code == 0
    for opt in ("--output", "--json", "--metrics-file", "--pushgateway", "--snapshot-time"):
        assert opt in res.stdout


# -- the forecast -------------------------------------------------------------------------------


def test_linear_forecast() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    times = [t0 + timedelta(days=d) for d in range(5)]
    fc = linear_forecast(times, [100.0 + 10 * d for d in range(5)], 200.0)
    assert fc.slope_bytes_per_day == pytest.approx(10)
    assert fc.reaches_at == t0 + timedelta(days=10)
    assert fc.at(t0 + timedelta(days=20)) == pytest.approx(300)
    assert linear_forecast(times, [5.0] * 5, 10.0).reaches_at is None
    assert linear_forecast(times, [1.0, 2, 3, 4, 5], 1e300).reaches_at is None  # overflow
    with pytest.raises(ValueError):
        linear_forecast([t0, t0], [1.0, 2.0], 3.0)


def test_tag_platforms_are_those_the_references_give(demo: Demo) -> None:
    """A tag's platforms are those its index lists its children as, else those its image is
    listed as in any index (a platform image tagged on its own), sorted; none for an image no
    index lists. Checked against the references, row by row, after tagging each index's
    first child directly."""
    store = FilesystemStore(demo.root)
    refs = column_rows(scan(store)["references"])
    listed = [r for r in refs if r["kind"] == "manifest" and r["platform"] is not None]
    assert listed
    children: dict[str, set[str]] = defaultdict(set)
    listed_as: dict[str, set[str]] = defaultdict(set)
    for r in listed:
        children[r["parent"]].add(r["platform"])
        listed_as[r["child"]].add(r["platform"])
    repo_of = {d: repo for repo, m in demo.summary.manifests.items() for d in m}
    tagged = 0
    for parent in children:
        child = next(r["child"] for r in listed if r["parent"] == parent)
        repo = repo_of[parent]
        store.write(tag_current_key(repo, f"child-{tagged}"), child.encode())
        store.write(tag_index_key(repo, f"child-{tagged}", child), child.encode())
        tagged += 1
    tags = _report(demo.root).tables["tags"].to_pylist()
    assert sum(t["tag"].startswith("child-") for t in tags) == tagged
    for t in tags:
        found = children.get(t["digest"]) or listed_as.get(t["digest"])
        assert t["platforms"] == (sorted(found) if found else None), t
    assert any(t["tag"].startswith("child-") and t["platforms"] for t in tags)
    assert any(t["platforms"] is None for t in tags)
