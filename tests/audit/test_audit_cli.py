"""``regsweep audit`` and ``regsweep audit history`` from the command line: exit codes, the
text summary, ``--json``, ``-o DIR`` (findings.parquet), usage errors, and that the command never
changes the store. ``audit history`` shows a ``gc --apply`` run from the deletion log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from imagegen import LayoutWriter, make_layer, sample_image
from regsweep.audit.log import read_log
from regsweep.cli.audit import parse_size
from regsweep.cli.main import cli
from regsweep.demo.generator import generate_demo
from regsweep.layout.keys import blob_data_key
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore

MakeStore = Callable[..., ObjectStore]
NOW = datetime.now(UTC)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def listing(store: ObjectStore) -> list[tuple[str, int, datetime]]:
    return sorted((o.key, o.size, o.last_modified) for o in store.iter_objects(""))


@pytest.fixture
def demo(store_factory: MakeStore) -> FilesystemStore:
    store = store_factory("fs")
    assert isinstance(store, FilesystemStore)
    generate_demo(store, now=NOW)
    return store


def test_clean_store_exits_0_with_a_summary(demo: FilesystemStore) -> None:
    before = listing(demo)
    r = run("audit", str(demo.root))
    assert r.exit_code == 0, r.output
    assert "0 errors, 0 warnings" in r.stdout
    assert "stale-upload" in r.stdout and "top findings:" in r.stdout
    # `audit check STORE` is the same command, spelled out
    r2 = run("audit", "check", str(demo.root), "--verify-digests")
    assert r2.exit_code == 0, r2.output
    assert "digest scrub: read 55 of 55 planned blobs" in r2.stdout
    assert listing(demo) == before


def test_errors_exit_1_and_json_is_one_object(demo: FilesystemStore, tmp_path: Path) -> None:
    img = sample_image("broken", layers=1, size=500)
    LayoutWriter(demo).push("broken/app", img, ["v1"])
    demo.delete_many([blob_data_key(img.blobs[1].digest)])
    before = listing(demo)

    r = run("audit", "--json", str(demo.root), "-o", str(tmp_path / "out"))
    assert r.exit_code == 1
    doc = json.loads(r.stdout)  # exactly one JSON document
    assert doc["exit_code"] == 1 and doc["severities"]["error"] == 1
    (err,) = [f for f in doc["findings"] if f["severity"] == "error"]
    assert (err["kind"], err["repository"], err["key"]) == (
        "missing-blob",
        "broken/app",
        blob_data_key(img.blobs[1].digest),
    )
    assert {"severity": "error", "kind": "missing-blob", "count": 1} in doc["kinds"]
    assert doc["output"] == str(tmp_path / "out" / "findings.parquet")
    t = pq.read_table(doc["output"]).to_pylist()
    assert len(t) == len(doc["findings"])
    assert {(x["kind"], x["key"]) for x in t} == {(f["kind"], f["key"]) for f in doc["findings"]}
    text = run("audit", str(demo.root))
    assert text.exit_code == 1
    assert "1 errors" in text.stdout and "missing-blob" in text.stdout and "->" in text.stdout
    assert listing(demo) == before


def test_warnings_alone_exit_0(store_factory: MakeStore) -> None:
    store = store_factory("fs")
    w = LayoutWriter(store)
    w.push("app", sample_image("ok", layers=1, size=100), ["v1"])
    lone = make_layer("lone", 64).blob
    w.push_blob("app", lone)
    store.delete_many([blob_data_key(lone.digest)])  # a dangling _layers link: a warning
    r = run("audit", "--json", store.url)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["severities"] == {"error": 0, "warning": 1, "info": 0}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sample", "0.5"], "--verify-digests"),
        (["--checkpoint", "x.jsonl"], "--verify-digests"),
        (["--verify-digests", "--max-bytes", "ten"], "not a size"),
        (["--upload-age", "soon"], "not a duration"),
        (["--verify-digests", "--sample", "2"], "0<=x<=1"),
    ],
)
def test_usage_errors_exit_2(demo: FilesystemStore, args: list[str], message: str) -> None:
    r = run("audit", str(demo.root), *args)
    assert r.exit_code == 2
    assert message in r.stderr


def test_not_a_registry_exits_2(tmp_path: Path) -> None:
    r = run("audit", str(tmp_path))
    assert r.exit_code == 2
    assert r.stderr.startswith("regsweep: error:") and r.stderr.count("\n") == 1
    r = run("audit", "history", str(tmp_path / "missing"))
    assert r.exit_code == 2


def test_scrub_options_from_the_command_line(demo: FilesystemStore, tmp_path: Path) -> None:
    cp = tmp_path / "scrub.jsonl"
    r = run(
        "audit", str(demo.root), "--json", "--verify-digests", "--max-bytes", "100K",
        "--checkpoint", str(cp), "--scrub-workers", "2",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)["scrub"]
    assert 0 < first["bytes_read"] <= 100 * 1024 and first["deferred"] > 0
    r = run("audit", str(demo.root), "--json", "--verify-digests", "--checkpoint", str(cp))
    second = json.loads(r.stdout)["scrub"]
    assert second["resumed_from_checkpoint"] == first["checked"]
    assert second["checked"] == 55 - first["checked"] and second["deferred"] == 0
    r = run("audit", str(demo.root), "--json", "--verify-digests", "--sample", "0.25")
    sampled = json.loads(r.stdout)["scrub"]
    assert sampled["checked"] + sampled["not_sampled"] == 55 and sampled["not_sampled"] > 0


def test_parse_size() -> None:
    assert parse_size("1000") == 1000
    assert parse_size("100K") == 100 * 1024
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_size("2t") == 2 * 1024**4
    with pytest.raises(ValueError):
        parse_size("-1")


def test_history_shows_a_gc_apply_run(demo: FilesystemStore) -> None:
    r = run("audit", "history", str(demo.root))
    assert r.exit_code == 0 and "no runs" in r.stdout

    gc = run("gc", str(demo.root), "--apply", "--yes", "--json")
    assert gc.exit_code == 0, gc.output
    run_id = json.loads(gc.stdout)["run_id"]
    log = read_log(demo).to_pylist()
    quarantined = [x for x in log if x["action"] == "quarantined"]
    assert quarantined

    r = run("audit", "history", str(demo.root), "--json")
    assert r.exit_code == 0, r.output
    (h,) = json.loads(r.stdout)["runs"]
    assert h["run_id"] == run_id and h["modes"] == ["quarantine"]
    assert h["actions"]["quarantined"] == len(quarantined)
    assert h["bytes_removed"] == sum(x["size"] or 0 for x in quarantined)
    reasons: dict[str, int] = {}
    for x in quarantined:
        reasons[x["reason"]] = reasons.get(x["reason"], 0) + 1
    assert h["reasons"] == dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:5])
    assert "unreferenced" in h["reasons"]

    text = run("audit", "history", str(demo.root))
    assert run_id in text.stdout and "quarantine" in text.stdout and "unreferenced" in text.stdout

    # After every apply, the audit is clean (restic's habit): nothing kept lost anything, and
    # nothing in quarantine is needed.
    after = run("audit", str(demo.root), "--json", "--verify-digests")
    assert after.exit_code == 0, after.output
    doc: dict[str, Any] = json.loads(after.stdout)
    assert [f for f in doc["findings"] if f["severity"] != "info"] == []

    # A restore is a run too.
    restore = run("quarantine", "restore", str(demo.root), run_id)
    assert restore.exit_code == 0, restore.output
    runs = json.loads(run("audit", "history", str(demo.root), "--json").stdout)["runs"]
    assert [x["modes"] for x in runs] == [["quarantine"], ["restore"]]
    assert runs[1]["actions"]["restored"] == len(quarantined)
