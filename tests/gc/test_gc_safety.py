"""gc safety without a registry process: layouts written object by object in Distribution's
format (LayoutWriter), on a filesystem and on S3.

What these prove:
- brakes: a wrong root, an empty mark set, a live manifest with a missing blob, and going over
  --max-delete-fraction each exit 3 and change nothing;
- bad input: corrupt links and unparsable or unknown manifests never cost a referenced blob,
  and the rest of the store is still collected;
- crash safety at every single store operation of an apply, in both modes: kept images stay
  servable, and a rerun reaches the uninterrupted end state;
- races: a manifest pushed after the plan protects what it references even when the plan's
  clock runs ahead of the store's (or shares its second); the grace period, measured on the
  newest timestamp touching an object;
- the command's contract: --json, no change without --apply, the deletion log, the lock.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gc_backend import Backend
from gc_helpers import (
    EXIT_REFUSED,
    V2,
    Crash,
    CrashingStore,
    apply_cli,
    assert_no_live_blob_lost,
    assert_pullable,
    assert_servable,
    bad_links,
    blob_digests,
    contents,
    copy_fs_root,
    crash_points,
    fs_store,
    fs_tree,
    gc_cli,
    orphan_the_lock,
    run_cli,
)

from imagegen import (
    Blob,
    LayoutWriter,
    Manifest,
    cosign_signature,
    cosign_tag,
    image,
    index,
    make_layer,
    sample_image,
)
from regsweep.audit.log import read_log
from regsweep.demo import generate_demo
from regsweep.gc.apply import apply_plan
from regsweep.gc.lock import LOCK_KEY, acquire_lock, read_lock
from regsweep.gc.mark import mark
from regsweep.gc.plan import GcSettings, Plan, make_plan
from regsweep.layout.keys import (
    blob_data_key,
    layer_link_key,
    revision_link_key,
    tag_current_key,
    tag_index_key,
)
from regsweep.scan.scanner import scan
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore

DAYS_AGO = timedelta(days=10)


def now() -> datetime:
    return datetime.now(UTC)


def writer(store: ObjectStore, age: timedelta = DAYS_AGO) -> LayoutWriter:
    """A LayoutWriter whose objects are ``age`` old on a filesystem (other stores keep their
    own clock: tests there use --grace 0s after ``settle``)."""
    return LayoutWriter(store).at(now() - age)


def settle(backend: Backend) -> None:
    time.sleep(1.1 if backend.kind == "s3" else 0.02)


def snapshot_of(store: ObjectStore) -> dict[str, Any]:
    """Everything in the store, with mtimes on a filesystem."""
    if isinstance(store, FilesystemStore):
        return {k: v for k, v in fs_tree(store.root).items()}
    return dict(contents(store))


def image_blobs(m: Manifest) -> set[str]:
    out = set()
    for sub in m.walk():
        out.add(sub.digest)
        out |= {b.digest for b in sub.blobs}
    return out


# -- brakes ----------------------------------------------------------------------------------


def refused(backend: Backend, *args: str) -> dict[str, Any]:
    """Run ``gc --apply`` expecting exit 3, and check that nothing at all changed."""
    settle(backend)
    before = snapshot_of(backend.store)
    doc = gc_cli(
        backend.url,
        "--grace",
        "0s",
        "--apply",
        "--yes",
        "--mode",
        "delete",
        *args,
        env=backend.env,
        expect=EXIT_REFUSED,
    )
    assert doc["applied"] is False and doc["refusals"]
    assert snapshot_of(backend.store) == before
    return doc


def test_brake_wrong_root(backend: Backend) -> None:
    """Blobs but no repositories (STORE is the wrong rootdirectory, or a listing lost them):
    the mark set is empty, so nothing may go; on a filesystem also with an empty
    repositories/ directory."""
    w = writer(backend.store)
    for i in range(3):
        w.put_blob_data(make_layer(f"wrong-root:{i}", 2_000).blob)
    doc = refused(backend)
    assert "mark set is empty" in doc["refusals"][0]
    if backend.root is not None:
        (backend.root / V2 / "repositories").mkdir()
        doc = refused(backend)
        assert "mark set is empty" in doc["refusals"][0]


def test_brake_empty_mark_set(backend: Backend) -> None:
    """--delete-untagged on a store where nothing is tagged (everything was pushed by digest)."""
    w = writer(backend.store)
    for i in range(3):
        w.push(f"team/by-digest-{i}", sample_image(f"by-digest:{i}"))
    doc = refused(backend, "--delete-untagged")
    assert any("mark set is empty" in r for r in doc["refusals"])


def test_brake_missing_blob_of_live_manifest(backend: Backend) -> None:
    w = writer(backend.store)
    app = sample_image("missing:app")
    w.push("team/app", app, ["v1"])
    w.put_blob_data(Blob(b"an orphan that would otherwise go" * 10))
    (gone,) = backend.store.delete_many([blob_data_key(app.blobs[1].digest)])
    assert gone.deleted
    doc = refused(backend)
    assert "corruption" in doc["refusals"][0] and app.blobs[1].digest in doc["refusals"][0]


@pytest.mark.parametrize("by", ["count", "bytes"])
def test_brake_max_delete_fraction(backend: Backend, by: str) -> None:
    w = writer(backend.store)
    w.push("team/app", sample_image("fraction:app", layers=1, size=2_000), ["v1"])  # 3 blobs
    if by == "count":
        orphans = [Blob(f"small orphan {i}".encode() * 20) for i in range(4)]  # 4 of 7 blobs
    else:
        orphans = [make_layer("fraction:big", 60_000).blob]  # 1 of 4 blobs, most bytes
    for b in orphans:
        w.put_blob_data(b)
    doc = refused(backend)
    assert "--max-delete-fraction" in doc["refusals"][0]
    # A higher limit lets the same plan through.
    doc = gc_cli(
        backend.url,
        "--grace",
        "0s",
        "--max-delete-fraction",
        "0.99",
        "--apply",
        "--yes",
        "--mode",
        "delete",
        env=backend.env,
    )
    assert doc["applied"] is True
    assert {b.digest for b in orphans}.isdisjoint(blob_digests(backend.store))
    assert_no_live_blob_lost(backend.store)


# -- bad input -------------------------------------------------------------------------------


UNKNOWN_TYPE = "application/vnd.example.thing.v1+json"


def write_corrupt_store(store: ObjectStore) -> tuple[dict[str, Manifest], set[str], set[str]]:
    """A store with one kind of corruption per repository, plus a healthy repository with an
    untagged manifest and an orphan. Returns the images, the blobs something references that
    must all survive, and the blobs that must go."""
    w = writer(store)
    m: dict[str, Manifest] = {}

    def push(repo: str, name: str, *tags: str) -> Manifest:
        m[name] = sample_image(f"corrupt:{name}", layers=2, size=3_000)
        w.push(repo, m[name], tags)
        return m[name]

    e1 = push("bad/empty-rev", "e1", "v1")
    push("bad/empty-rev", "e2")  # untagged, nothing wrong with it: may go
    n1 = push("bad/newline-rev", "n1", "v1")
    d1 = push("bad/doubled-rev", "d1", "v1")
    l1 = push("bad/doubled-layer", "l1", "v1")
    push("bad/empty-tag", "t1", "v1")
    t2 = push("bad/empty-tag-no-history", "t2", "v1")
    push("bad/empty-tag-no-history", "t3")  # untagged, but the tag could have named it

    # The corruptions (storage-layout.md §1.4, §7.8), written with the store's own clock.
    store.write(revision_link_key("bad/empty-rev", e1.digest), b"")
    store.write(revision_link_key("bad/newline-rev", n1.digest), f"{n1.digest}\n".encode())
    store.write(revision_link_key("bad/doubled-rev", d1.digest), (d1.digest * 2).encode())
    store.write(
        layer_link_key("bad/doubled-layer", l1.blobs[1].digest), (l1.blobs[1].digest * 2).encode()
    )
    store.write(layer_link_key("bad/doubled-layer", l1.blobs[2].digest), b"")
    store.write(tag_current_key("bad/empty-tag", "v1"), b"")
    store.write(tag_current_key("bad/empty-tag-no-history", "v1"), b"")
    store.delete_many([tag_index_key("bad/empty-tag-no-history", "v1", t2.digest)])

    # A manifest that is not JSON, with layers linked in its repository that only it could
    # have referenced, next to an untagged image.
    garbage = Blob(b"{ this is not a manifest")
    hidden = [make_layer(f"corrupt:hidden:{i}", 3_000).blob for i in range(2)]
    for b in hidden:
        w.push_blob("bad/unparsable", b)
    w.put_blob_data(garbage)
    for key in (
        revision_link_key("bad/unparsable", garbage.digest),
        tag_index_key("bad/unparsable", "v1", garbage.digest),
        tag_current_key("bad/unparsable", "v1"),
    ):
        store.write(key, garbage.digest.encode())
    push("bad/unparsable", "u1")  # untagged

    # A manifest of a media type nobody knows, referencing blobs linked in its repository.
    strange = [make_layer(f"corrupt:strange:{i}", 3_000).blob for i in range(2)]
    unknown = Blob(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": UNKNOWN_TYPE,
                "parts": [b.descriptor("application/octet-stream") for b in strange],
            }
        ).encode()
    )
    for b in strange:
        w.push_blob("bad/unknown-type", b)
    w.put_manifest("bad/unknown-type", Manifest(unknown, UNKNOWN_TYPE), "v1")

    # The healthy rest: an untagged manifest and an orphan that gc must still collect.
    base = make_layer("corrupt:good-base", 3_000)
    m["g0"] = image([base, make_layer("corrupt:g0", 3_000)], created=now())
    m["g1"] = image([base, make_layer("corrupt:g1", 3_000)], created=now())
    w.push("good/app", m["g0"], ["v1"])
    w.push("good/app", m["g1"], ["v1"])
    orphan = Blob(b"an orphan " * 500)
    w.put_blob_data(orphan)

    keep: set[str] = {garbage.digest, unknown.digest, *(b.digest for b in hidden + strange)}
    for name in ("e1", "n1", "d1", "l1", "t1", "t2", "t3", "u1", "g1"):
        keep |= image_blobs(m[name])
    go = (image_blobs(m["g0"]) | image_blobs(m["e2"]) | {orphan.digest}) - keep
    return m, keep, go


def test_corrupt_links_and_manifests_fail_closed(backend: Backend) -> None:
    m, keep, go = write_corrupt_store(backend.store)
    settle(backend)
    snap = scan(backend.store)
    bad_before = bad_links(snap)
    assert len(bad_before) >= 8  # the scan sees every corruption

    doc = gc_cli(
        backend.url,
        "--delete-untagged",
        "--grace",
        "0s",
        "--apply",
        "--yes",
        "--mode",
        "delete",
        env=backend.env,
    )
    assert doc["applied"] is True and doc["result"]["failures"] == []
    left = blob_digests(backend.store)
    assert keep <= left, keep - left
    assert go.isdisjoint(left), go & left  # the healthy rest was collected all the same
    assert set(doc["unsafe_repositories"]) == {
        "bad/unparsable",
        "bad/unknown-type",
        "bad/empty-tag-no-history",
    }
    for repo, name in (("bad/unparsable", "u1"), ("bad/empty-tag-no-history", "t3")):
        backend.store.stat(revision_link_key(repo, m[name].digest))  # kept whole
    backend.store.stat(revision_link_key("bad/empty-tag", m["t1"].digest))
    assert_pullable(backend.store, "good/app", "v1")
    assert_no_live_blob_lost(backend.store, bad_before)


# -- crash safety ------------------------------------------------------------------------------


def crash_world(root: Path) -> tuple[FilesystemStore, dict[str, set[str]]]:
    """The demo registry plus a dangling tag (its manifest deleted through the API on S3, where
    Distribution 2.8's untag silently does nothing) and an orphan cosign tag. Returns the store
    and the tags a --delete-untagged gc keeps."""
    store = fs_store(root)
    generate_demo(store, now=now())
    w = writer(store, timedelta(days=5))
    gone = sample_image("crash:gone")
    w.push("team/app", gone, ["gone"])
    store.delete_many([revision_link_key("team/app", gone.digest)])
    old, new = sample_image("crash:old"), sample_image("crash:new")
    w.push("team/signed", old, ["latest"])
    w.push("team/signed", cosign_signature(old, "example/team/signed"), [cosign_tag(old.digest)])
    w.push("team/signed", new, ["latest"])
    kept = mark(scan(store), delete_untagged=True).kept_tags
    return store, kept


@pytest.mark.parametrize(("mode", "stride"), [("delete", 4), ("quarantine", 7)])
def test_crash_during_apply(tmp_path: Path, mode: str, stride: int) -> None:
    """Crash after k store operations, for k on both sides of every phase change and every
    ``stride``-th one in between."""
    base, kept = crash_world(tmp_path / "base")
    settings = GcSettings(delete_untagged=True)
    snap = scan(base)
    plan = make_plan(snap, mark(snap, delete_untagged=True), settings, now())
    assert plan.refusals == []
    kinds = set(plan.rows.column("kind").to_pylist())
    assert {"tag", "tag_index", "revision", "layer_link", "blob", "upload"} <= kinds

    clean = fs_store(tmp_path / "clean")
    copy_fs_root(base.root, clean.root)
    counter = CrashingStore(clean, after=None)
    apply_plan(counter, plan, mode=mode)
    n = len(counter.ops)
    want = contents(clean, V2)
    assert_no_live_blob_lost(clean)

    work = tmp_path / "work"
    ks = crash_points(counter.ops, stride)
    assert len(ks) >= n // stride
    for k in ks:
        copy_fs_root(base.root, work)
        store = FilesystemStore(work)
        crashing = CrashingStore(store, after=k)
        with pytest.raises(Crash):
            apply_plan(crashing, plan, mode=mode)
        # Whatever the moment, every kept image is still servable ...
        assert_no_live_blob_lost(store)
        for repo, tags in kept.items():
            for tag in tags:
                assert_pullable(store, repo, tag)
        # ... and a fresh run (the crashed process is gone) finishes the job.
        orphan_the_lock(store)
        doc = gc_cli(str(work), "--delete-untagged", "--apply", "--yes", "--mode", mode)
        assert doc["result"]["failures"] == []
        assert contents(store, V2) == want, f"crash before operation {k + 1} of {n}"
        assert read_lock(store) is None


# -- races and grace -------------------------------------------------------------------------


def test_push_after_plan_is_seen_despite_clock_skew(backend: Backend) -> None:
    """The plan's "now" comes from the planning host's clock; the store's times from the
    service, in whole seconds on S3. A manifest pushed after the plan must count as new even if
    the planning clock runs two minutes ahead (or the push lands in the plan's second)."""
    w = LayoutWriter(backend.store)
    app = sample_image("skew:app")
    w.push("team/app", app, ["v1"])
    old = sample_image("skew:old")  # pushed, then its manifest deleted: its layers are orphans
    w.push("team/app", old, ["tmp"])
    backend.store.delete_many(
        [
            revision_link_key("team/app", old.digest),
            tag_current_key("team/app", "tmp"),
            tag_index_key("team/app", "tmp", old.digest),
        ]
    )
    untagged = sample_image("skew:untagged")
    w.push("team/app", untagged)
    settle(backend)

    ahead = now() + timedelta(minutes=2)
    snap = scan(backend.store)
    plan = make_plan(
        snap,
        mark(snap, delete_untagged=True),
        GcSettings(True, grace=timedelta(0), max_delete_fraction=1.0),
        ahead,
    )
    planned = set(plan.rows.column("digest").to_pylist())
    assert {b.digest for b in old.blobs} <= planned and untagged.digest in planned

    # After the plan: a manifest in the same repository reuses old's layers; their links are
    # still there, so a client uploads nothing and only the revision and tag links are new.
    again = image([make_layer(f"skew:old:{i}", 8_000) for i in range(2)], created=now())
    assert {b.digest for b in again.blobs[1:]} == {b.digest for b in old.blobs[1:]}
    LayoutWriter(backend.store).push_blob("team/app", again.blobs[0])
    w.put_manifest("team/app", again, "again")

    res = apply_plan(backend.store, plan, mode="delete")
    assert res.skipped.get("referenced-since-scan", 0) >= 4  # 2 links, 2 blobs
    assert_pullable(backend.store, "team/app", "again")
    assert_pullable(backend.store, "team/app", "v1")
    # What the plan saw and nobody touched still goes, however recent: the untagged manifest.
    assert untagged.digest not in blob_digests(backend.store)
    assert old.blobs[0].digest not in blob_digests(backend.store)  # old's config
    assert_no_live_blob_lost(backend.store)


def test_grace_period_uses_the_newest_timestamp(tmp_path: Path) -> None:
    store = fs_store(tmp_path / "store")
    t = now()
    LayoutWriter(store).at(t - timedelta(days=30)).push(
        "team/app", sample_image("grace:app"), ["v1"]
    )
    old_orphan, young_orphan = Blob(b"old orphan " * 100), Blob(b"young orphan " * 100)
    LayoutWriter(store).at(t - timedelta(days=2)).put_blob_data(old_orphan)
    LayoutWriter(store).at(t - timedelta(hours=1)).put_blob_data(young_orphan)
    # Old data, linked again an hour ago (someone pushed it; no manifest yet).
    relinked = Blob(b"relinked " * 100)
    LayoutWriter(store).at(t - timedelta(days=20)).put_blob_data(relinked)
    LayoutWriter(store).at(t - timedelta(hours=1)).push_blob("team/app", relinked)
    # An old untagged manifest pushed again by digest an hour ago: it stays, servable.
    repushed = sample_image("grace:repushed")
    LayoutWriter(store).at(t - timedelta(days=20)).push("team/app", repushed)
    LayoutWriter(store).at(t - timedelta(hours=1)).put_manifest("team/app", repushed)
    # A multi-arch push in progress: platform manifests pushed by digest long ago (their
    # layers even longer ago), the index that lists them an hour ago, its tag not yet.
    children = [sample_image(f"grace:child:{a}", architecture=a) for a in ("amd64", "arm64")]
    LayoutWriter(store).at(t - timedelta(days=20)).push("team/multi", children[0])
    LayoutWriter(store).at(t - timedelta(days=20)).push("team/multi", children[1])
    in_progress = index(children)
    LayoutWriter(store).at(t - timedelta(hours=1)).put_manifest("team/multi", in_progress)
    # Uploads: one started 9 days ago, one 2 days ago (the upload grace is 7 days).
    LayoutWriter(store).at(t - timedelta(days=9)).stale_upload(
        "team/app", "11111111-2222-4333-8444-555555555555", b"x" * 100, t - timedelta(days=9)
    )
    LayoutWriter(store).at(t - timedelta(days=2)).stale_upload(
        "team/app", "21111111-2222-4333-8444-555555555555", b"y" * 100, t - timedelta(days=2)
    )

    doc = gc_cli(str(store.root), "--delete-untagged", "--apply", "--yes", "--mode", "delete")
    left = blob_digests(store)
    assert old_orphan.digest not in left
    assert {young_orphan.digest, relinked.digest} <= left
    assert image_blobs(repushed) <= left
    assert_servable(store, "team/app", repushed.digest)
    assert image_blobs(in_progress) <= left
    assert_servable(store, "team/multi", in_progress.digest)
    uploads = {
        o.key.split("/")[7] for o in store.iter_objects(V2 + "repositories/team/app/_uploads/")
    }
    assert uploads == {"21111111-2222-4333-8444-555555555555"}
    assert doc["protected_by_grace"]["blob"] >= 2
    assert doc["protected_by_grace"]["upload"] == 1
    assert_no_live_blob_lost(store)


def test_stale_temp_files_go_and_other_anomalies_stay(tmp_path: Path) -> None:
    """Interrupted writes (``*.<uuid>.tmp``) older than the grace period are planned and
    removed, in key order, each with its repository; a young one stays, and so does every
    other anomaly's object (a foreign key, a legacy signature link), however many there are."""
    store = fs_store(tmp_path / "store")
    t = now()
    app = sample_image("tmp:app")
    LayoutWriter(store).at(t - timedelta(days=30)).push("team/app", app, ["v1"])
    suffix = ".0198c0de-1111-7222-8333-444455556666.tmp"
    old_tmp = {
        tag_current_key("team/app", "v2") + suffix: "team/app",
        blob_data_key(Blob(b"half a layer").digest) + suffix: None,
        layer_link_key("team/other", app.blobs[0].digest) + suffix: "team/other",
    }
    young_tmp = tag_current_key("team/app", "v3") + suffix
    others = [f"{V2}repositories/team/app/_manifests/notes-{i}.txt" for i in range(50)]
    others.append(
        f"{V2}repositories/team/app/_manifests/revisions/sha256/{'a' * 64}/signatures/sha256/{'b' * 64}/link"
    )
    for key, when in [
        *((k, t - timedelta(days=3)) for k in [*old_tmp, *others]),
        (young_tmp, t - timedelta(hours=1)),
    ]:
        store.write(key, b"partial")
        store.set_mtime(key, when)

    doc = gc_cli(str(store.root), "--plan-out", str(tmp_path / "plan.parquet"))
    rows = Plan.read(tmp_path / "plan.parquet").rows.to_pylist()
    planned = [(r["key"], r["repository"]) for r in rows if r["kind"] == "tmp"]
    assert planned == sorted(old_tmp.items())
    assert {r["reason"] for r in rows if r["kind"] == "tmp"} == {"stale-tmp-file"}
    assert doc["protected_by_grace"]["tmp"] == 1

    gc_cli(str(store.root), "--apply", "--yes", "--mode", "delete")
    left = {o.key for o in store.iter_objects(V2)}
    assert not left & set(old_tmp)
    assert {young_tmp, *others} <= left
    assert_servable(store, "team/app", app.digest)


# -- the command's contract --------------------------------------------------------------------


def test_json_dry_run_changes_nothing(backend: Backend, tmp_path: Path) -> None:
    w = writer(backend.store)
    w.push("team/app", sample_image("json:old"), ["v1"])
    w.push("team/app", sample_image("json:new"), ["v1"])
    w.put_blob_data(Blob(b"orphan " * 50))
    settle(backend)
    before = snapshot_of(backend.store)
    plan_file = tmp_path / "plan.parquet"
    doc = gc_cli(
        backend.url,
        "--delete-untagged",
        "--grace",
        "0s",
        "--max-delete-fraction",
        "0.9",
        "--plan-out",
        str(plan_file),
        env=backend.env,
    )
    assert snapshot_of(backend.store) == before
    assert doc["applied"] is False and doc["run_id"] and doc["refusals"] == []
    assert set(doc["summary"]) == {"blob", "layer_link", "revision", "tag_index"}
    for v in doc["summary"].values():
        assert set(v) == {"count", "keys", "bytes"}
    plan = Plan.read(plan_file)
    assert plan.run_id == doc["run_id"]
    assert doc["bytes"] == plan.total_bytes() == sum(v["bytes"] for v in doc["summary"].values())
    assert doc["summary"]["blob"]["count"] == 1 + 4  # the orphan; old's manifest, config, 2 layers

    # The plain-text form says the same and also changes nothing.
    res = run_cli(
        ["gc", backend.url, "--delete-untagged", "--grace", "0s", "--max-delete-fraction", "0.9"],
        backend.env,
    )
    assert res.exit_code == 0 and "nothing was changed" in res.stdout
    assert snapshot_of(backend.store) == before


@pytest.mark.parametrize("mode", ["quarantine", "delete"])
def test_apply_writes_the_deletion_log(backend: Backend, tmp_path: Path, mode: str) -> None:
    w = writer(backend.store)
    w.push("team/app", sample_image("log:old"), ["v1"])
    w.push("team/app", sample_image("log:new"), ["v1"])
    w.put_blob_data(Blob(b"orphan " * 50))
    settle(backend)
    plan_file = tmp_path / "plan.parquet"
    doc = gc_cli(
        backend.url,
        "--delete-untagged",
        "--grace",
        "0s",
        "--max-delete-fraction",
        "0.9",
        "--plan-out",
        str(plan_file),
        "--apply",
        "--yes",
        "--mode",
        mode,
        env=backend.env,
    )
    assert doc["applied"] is True and doc["result"]["mode"] == mode
    plan = Plan.read(plan_file)
    log = read_log(backend.store, doc["run_id"]).to_pylist()
    action = "quarantined" if mode == "quarantine" else "deleted"
    assert sorted(r["key"] for r in log if r["action"] == action) == sorted(
        plan.rows.column("key").to_pylist()
    )
    by_key = {r["key"]: r for r in plan.rows.to_pylist()}
    for r in log:
        assert r["run_id"] == doc["run_id"] and r["mode"] == mode
        assert (r["kind"], r["reason"], r["size"]) == (
            by_key[r["key"]]["kind"],
            by_key[r["key"]]["reason"],
            by_key[r["key"]]["size"],
        )
        if mode == "quarantine":
            backend.store.stat(r["quarantine_key"])
    assert doc["result"]["bytes_freed"] == plan.total_bytes()
    assert read_lock(backend.store) is None
    assert_no_live_blob_lost(backend.store)


def test_lock_refuses_a_second_run(backend: Backend, tmp_path: Path) -> None:
    w = writer(backend.store)
    w.push("team/app", sample_image("lock:app"), ["v1"])
    w.put_blob_data(Blob(b"orphan " * 50))
    settle(backend)
    plan_file = tmp_path / "plan.parquet"
    gc_cli(backend.url, "--grace", "0s", "--plan-out", str(plan_file), env=backend.env)
    acquire_lock(backend.store, "another-run")  # a live process (this one) holds it
    before = snapshot_of(backend.store)

    res = run_cli(
        ["gc", backend.url, "--grace", "0s", "--apply", "--yes", "--mode", "delete"], backend.env
    )
    assert res.exit_code == EXIT_REFUSED and "locked by run another-run" in res.stderr
    apply_cli(plan_file, "--mode", "delete", env=backend.env, expect=EXIT_REFUSED)
    assert snapshot_of(backend.store) == before  # the other run's lock included

    backend.store.delete_many([LOCK_KEY])  # the other run finished
    doc = apply_cli(plan_file, "--mode", "delete", env=backend.env)
    assert doc["result"]["removed"]["blob"]["keys"] == 1
    assert_no_live_blob_lost(backend.store)
