"""End to end: images pushed with skopeo through Debian's docker-registry; the report's numbers
agree with what was pushed, with the gc plan, and with the bytes an actual gc frees; two report
runs on a changing registry read back as one dataset."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from report_helpers import file_bytes, run_json

from imagegen import (
    Blob,
    Manifest,
    RegistryClient,
    index,
    make_layer,
    sample_image,
    skopeo_copy,
    skopeo_copy_all,
    write_oci_layout,
)
from regsweep.gc.plan import Plan
from regsweep.reports import load

pytestmark = pytest.mark.e2e

BASE = [make_layer("report-e2e-base:0", 40_000), make_layer("report-e2e-base:1", 25_000)]
NO_GRACE = ["--grace", "0s", "--upload-grace", "0s", "--delete-untagged"]


def blobs_of(*manifests: Manifest) -> dict[str, int]:
    """Digest -> size of every blob the manifests need: themselves, configs, layers, children."""
    out: dict[str, int] = {}
    for top in manifests:
        for m in top.walk():
            out[m.digest] = m.blob.size
            for b in m.blobs:
                out[b.digest] = b.size
    return out


def push(reg_host: str, layout: Path, name: str, ref: str) -> None:
    skopeo_copy(f"oci:{layout}:{name}", f"docker://{reg_host}/{ref}")


def test_numbers_agree_with_the_push_the_plan_and_an_actual_gc(
    tmp_path: Path, registry_server
) -> None:
    root = tmp_path / "store"
    reg = registry_server(root=root)
    client = RegistryClient(reg.url)
    app_v1 = sample_image("report-e2e-app-v1", base=BASE)
    app_v2 = sample_image("report-e2e-app-v2", base=BASE)
    web = sample_image("report-e2e-web", base=BASE[:1])
    multi = index(
        [
            sample_image("report-e2e-m-amd64", base=BASE, architecture="amd64"),
            sample_image("report-e2e-m-arm64", architecture="arm64"),
        ]
    )
    tool = sample_image("report-e2e-tool", size=12_000)
    images = {"app-v1": app_v1, "app-v2": app_v2, "web": web, "multi": multi, "tool": tool}
    layout = write_oci_layout(tmp_path / "oci", images)

    push(reg.host, layout, "app-v1", "team/app:latest")
    push(reg.host, layout, "app-v2", "team/app:latest")  # app-v1 is now untagged
    push(reg.host, layout, "app-v2", "team/app:v2")
    push(reg.host, layout, "web", "team/web:1.0")
    push(reg.host, layout, "multi", "tools/multi:1")
    push(reg.host, layout, "tool", "tools/cli:1")
    for repo, tag, m in [
        ("team/app", "latest", app_v2),
        ("team/web", "1.0", web),
        ("tools/multi", "1", multi),
    ]:
        got = client.get_manifest(repo, tag).headers["Docker-Content-Digest"]
        assert got == m.digest, (repo, tag)  # skopeo pushed our bytes unchanged
    client.delete_manifest("tools/cli", tool.digest)  # its blobs stay behind: orphans
    orphan = Blob(b"report-e2e orphan blob " * 400)
    client.upload_blob("team/web", orphan)
    client.abandon_upload("team/app", b"x" * 5000)

    # What is live, computed from what we pushed, not by regsweep.
    reach = {
        "team/app": blobs_of(app_v1, app_v2),  # the untagged revision still counts
        "team/web": blobs_of(web),
        "tools/multi": blobs_of(multi),
        "tools/cli": {},
    }
    users: dict[str, int] = defaultdict(int)
    sizes: dict[str, int] = {}
    for blobs in reach.values():
        for d, size in blobs.items():
            users[d] += 1
            sizes[d] = size
    live = sum(sizes.values())
    shared_unique = sum(sizes[d] for d, n in users.items() if n >= 2)
    exclusive = {
        repo: sum(s for d, s in blobs.items() if users[d] == 1) for repo, blobs in reach.items()
    }

    reports = tmp_path / "reports"
    rep = run_json(
        ["report", root, "-o", reports, *NO_GRACE, "--snapshot-time", "2026-11-27T02:00:00Z"]
    )
    assert rep["live_bytes"] == live
    assert rep["shared_unique_bytes"] == shared_unique
    assert sum(exclusive.values()) + shared_unique == live
    repos = load(reports, "repositories").set_index("repository")
    for repo, blobs in reach.items():
        assert repos.loc[repo, "exclusive_bytes"] == exclusive[repo], repo
        assert repos.loc[repo, "total_bytes"] == sum(blobs.values()), repo
    assert repos["exclusive_bytes"].sum() + rep["shared_unique_bytes"] == rep["live_bytes"]
    assert repos.loc["team/app", "untagged_manifests"] == 1
    assert repos.loc["tools/multi", "untagged_manifests"] == 0  # children of a tagged index
    assert repos.loc["tools/multi", "manifests"] == 3
    blobs = load(reports, "blobs")
    assert blobs.loc[blobs["repositories"] >= 1, "size"].sum() == live
    assert blobs.loc[blobs["repositories"] >= 2, "size"].sum() == shared_unique
    by_digest = blobs.set_index("digest")
    assert by_digest.loc[orphan.digest, "kind"] == "unknown"
    assert by_digest.loc[orphan.digest, "repositories"] == 0
    assert by_digest.loc[multi.digest, "kind"] == "manifest"
    tags = load(reports, "tags").set_index(["repository", "tag"])
    assert list(tags.loc[("tools/multi", "1"), "platforms"]) == ["linux/amd64", "linux/arm64/v8"]
    assert tags.loc[("tools/multi", "1"), "image_size"] == sum(blobs_of(multi).values())
    assert tags.loc[("team/app", "v2"), "image_size"] == sum(blobs_of(app_v2).values())

    # Reclaimable == the plan gc makes with the same settings ...
    plan_file = tmp_path / "plan.parquet"
    planned = run_json(["gc", root, *NO_GRACE, "--plan-out", plan_file])
    assert planned["refusals"] == []
    assert rep["reclaimable_bytes"] == planned["bytes"]
    plan_rows = Plan.read(plan_file).rows.to_pandas()
    plan_groups = plan_rows.groupby(["reason", "kind"])["size"].sum().to_dict()
    reclaimable = load(reports, "reclaimable").groupby(["reason", "kind"])["bytes"].sum()
    assert reclaimable.to_dict() == plan_groups
    # ... and what we know is garbage: the orphan, the deleted image, app-v1's own blobs.
    kept = blobs_of(app_v2, web, multi)
    garbage = {orphan.digest: orphan.size, **blobs_of(tool), **blobs_of(app_v1)}
    garbage = {d: s for d, s in garbage.items() if d not in kept}
    assert rep["reclaimable_by_reason"]["unreferenced"] == sum(garbage.values())
    assert {"untagged", "stale-upload", "unneeded-link"} <= set(rep["reclaimable_by_reason"])

    # ... and what an actual gc frees, by its own count and measured on disk.
    reg.stop()
    before = file_bytes(root)
    prom = tmp_path / "gc.prom"
    applied = run_json(
        ["gc", root, *NO_GRACE, "--apply", "--yes", "--mode", "delete", "--metrics-file", prom]
    )
    result = applied["result"]
    assert result["failures"] == [] and result["skipped"] == {}
    assert result["bytes_freed"] == rep["reclaimable_bytes"]
    assert before - file_bytes(root) == rep["reclaimable_bytes"]
    assert "regsweep_deleted_bytes" in prom.read_text()

    after = run_json(
        ["report", root, "-o", reports, *NO_GRACE, "--snapshot-time", "2026-11-28T02:00:00Z"]
    )
    assert after["reclaimable_bytes"] == 0 and after["unreferenced_bytes"] == 0
    assert after["live_bytes"] == after["stored_bytes"] == sum(kept.values())
    (run,) = load(reports, "gc_runs", snapshot="latest").to_dict("records")
    assert run["run_id"] == applied["run_id"]
    assert run["bytes_removed"] == result["bytes_freed"]
    assert load(reports, "gc_runs", snapshot="2026-11-27T02-00-00Z").empty

    # Every kept image still pulls; the untagged one is gone.
    reg.start()
    for ref in ("team/app:latest", "team/web:1.0", "tools/multi:1"):
        skopeo_copy_all(f"docker://{reg.host}/{ref}", f"dir:{tmp_path / 'pull' / ref}")
    assert client.get_manifest("team/app", app_v1.digest).status_code == 404


def test_two_runs_on_a_changing_registry_give_two_partitions(
    tmp_path: Path, registry_server
) -> None:
    root = tmp_path / "store"
    reg = registry_server(root=root)
    first_img = sample_image("report-e2e-growth-1", base=BASE)
    second_img = sample_image("report-e2e-growth-2", base=BASE, size=30_000)
    layout = write_oci_layout(tmp_path / "oci", {"one": first_img, "two": second_img})
    reports = tmp_path / "reports"

    push(reg.host, layout, "one", "team/app:1")
    first = run_json(["report", root, "-o", reports, "--snapshot-time", "2026-11-27T02:00:00Z"])
    push(reg.host, layout, "two", "team/app:2")
    push(reg.host, layout, "two", "team/other:2")
    second = run_json(["report", root, "-o", reports, "--snapshot-time", "2026-11-28T02:00:00Z"])

    added = sum(s for d, s in blobs_of(second_img).items() if d not in blobs_of(first_img))
    assert second["stored_bytes"] - first["stored_bytes"] == added
    for table in ("repositories", "tags", "blobs", "summary"):
        df = pd.read_parquet(reports / table)  # plain pandas: one dataset, a snapshot column
        assert set(df["snapshot"].astype(str)) == {
            "2026-11-27T02-00-00Z",
            "2026-11-28T02-00-00Z",
        }, table
    tags = pd.read_parquet(reports / "tags")
    per_snapshot = tags.groupby(tags["snapshot"].astype(str))["tag"].count().to_dict()
    assert per_snapshot == {"2026-11-27T02-00-00Z": 1, "2026-11-28T02-00-00Z": 3}
    repos = load(reports, "repositories")
    growth = repos.pivot_table(index="snapshot", columns="repository", values="total_bytes")
    assert growth.loc[pd.Timestamp("2026-11-27T02:00:00Z"), "team/app"] == sum(
        blobs_of(first_img).values()
    )
    assert growth.loc[pd.Timestamp("2026-11-28T02:00:00Z"), "team/app"] == sum(
        blobs_of(first_img, second_img).values()
    )
    assert pd.isna(growth.loc[pd.Timestamp("2026-11-27T02:00:00Z"), "team/other"])
