"""The same plan, apply, restore and delete on every backend: a filesystem, S3 (moto) and Azure
Blob Storage (Azurite), on layouts written by the demo generator and on a layout a real
docker-registry wrote, copied into each backend.

What these prove: on each backend the plan is the one the filesystem gets for the same layout;
apply removes exactly the planned keys and logs them; every kept image stays servable; restore
gives back the same bytes; delete mode frees the same; on S3 a stale upload's incomplete
multipart upload is aborted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gc_backend import cli_env
from gc_helpers import (
    V2,
    assert_no_live_blob_lost,
    assert_pullable,
    contents,
    copy_store,
    fs_tree,
    gc_cli,
    run_cli,
)

from imagegen import (
    RegistryClient,
    cosign_signature,
    cosign_tag,
    index,
    make_layer,
    sample_image,
    sha256_hashstate,
)
from registry_fixtures import RegistryFactory
from regsweep.audit.log import read_log
from regsweep.demo import generate_demo
from regsweep.gc.apply import QUARANTINE_PREFIX
from regsweep.gc.mark import mark
from regsweep.layout.keys import upload_key
from regsweep.scan.scanner import scan
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore
from services import start_multipart_upload

GC = ("--delete-untagged", "--grace", "0s")
MPU_UPLOAD = "0badcafe-0000-4000-8000-000000000001"


def settle(store: ObjectStore) -> None:
    """Object stores keep their own clock (one-second resolution): let it pass the writes."""
    time.sleep(0.02 if isinstance(store, FilesystemStore) else 1.1)


def planned(doc: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {k: v for k, v in doc["summary"].items() if k not in ("upload", "multipart_upload")}


def listing(store: ObjectStore) -> dict[str, int]:
    return {o.key: o.size for o in store.iter_objects(V2)}


def kept_tags(store: ObjectStore) -> dict[str, tuple[str, ...]]:
    return mark(scan(store), delete_untagged=True).kept_tags


def plan_apply_restore_delete(
    store: ObjectStore, env: dict[str, str], reference_store: FilesystemStore
) -> dict[str, Any]:
    """Apply (quarantine), check, restore, check, apply (delete), check; the plan must be the
    one the same gc makes of ``reference_store``, a filesystem copy of the same layout.
    Returns the quarantine run's JSON."""
    reference = gc_cli(str(reference_store.root), *GC)
    tags = kept_tags(reference_store)
    before = contents(store, V2)  # bytes: read once, to compare after the restore
    fs_before = fs_tree(store.root, "docker") if isinstance(store, FilesystemStore) else None

    doc = gc_cli(store.url, *GC, "--apply", "--yes", env=env)
    assert doc["applied"] is True and doc["result"]["failures"] == []
    assert planned(doc) == planned(reference)
    log = read_log(store, doc["run_id"]).to_pylist()
    moved = {r["key"] for r in log if r["action"] == "quarantined"}
    after = listing(store)
    assert moved == set(before) - set(after)
    assert {o.key for o in store.iter_objects(f"{QUARANTINE_PREFIX}{doc['run_id']}/")} == {
        r["quarantine_key"] for r in log if r["action"] == "quarantined"
    }
    for repo, repo_tags in tags.items():
        for tag in repo_tags:
            assert_pullable(store, repo, tag)
    assert_no_live_blob_lost(store)

    res = run_cli(["quarantine", "restore", store.url, doc["run_id"]], env)
    assert res.exit_code == 0, res.stderr
    assert contents(store, V2) == before
    if fs_before is not None:
        assert isinstance(store, FilesystemStore)
        assert fs_tree(store.root, "docker") == fs_before  # mtimes too

    settle(store)
    gone = gc_cli(store.url, *GC, "--apply", "--yes", "--mode", "delete", env=env)
    assert gone["result"]["failures"] == []
    assert {k: v["keys"] for k, v in gone["result"]["removed"].items()} == {
        k: v["keys"] for k, v in doc["result"]["removed"].items() if k != "multipart_upload"
    }
    assert listing(store) == after
    assert not any(store.iter_objects(f"{QUARANTINE_PREFIX}{gone['run_id']}/"))
    return doc


def test_demo_layout_on_every_backend(
    store: ObjectStore, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    t = datetime.now(UTC)
    generate_demo(store, now=t)
    reference_store = FilesystemStore(tmp_path)
    generate_demo(reference_store, now=t)
    mpu = None
    if type(store).__name__ == "S3Store":
        # On S3 an abandoned upload's data is an incomplete multipart upload, not an object.
        started = t - timedelta(days=9)
        for name, data in (
            ("startedat", started.strftime("%Y-%m-%dT%H:%M:%SZ").encode()),
            ("hashstates/sha256/0", sha256_hashstate(b"")),
        ):
            store.write(upload_key("team/app", MPU_UPLOAD, name), data)
        mpu = start_multipart_upload(store, upload_key("team/app", MPU_UPLOAD, "data"))
    settle(store)
    doc = plan_apply_restore_delete(store, cli_env(store, request), reference_store)
    assert {"blob", "layer_link", "revision", "tag_index", "upload"} <= set(doc["summary"])
    if mpu is not None:
        assert doc["summary"]["multipart_upload"]["count"] == 1
        assert doc["result"]["removed"]["multipart_upload"]["keys"] == 1
        assert list(store.iter_incomplete_uploads(V2)) == []


@pytest.fixture(scope="module")
def registry_layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A filesystem store written by a real docker-registry: tagged images sharing a layer, a
    moved tag, a manifest deleted through the API, a multi-arch index with untagged children,
    a signature of an image that went untagged, an abandoned upload."""
    factory = RegistryFactory(tmp_path_factory)
    root = tmp_path_factory.mktemp("registry-layout")
    reg = factory(root=root)
    try:
        c = RegistryClient(reg.url)
        base = make_layer("backends:base", 5_000)
        c.push("team/app", sample_image("backends:v1", base=[base]), ["v1"])
        c.push("team/app", sample_image("backends:dev1", base=[base]), ["dev"])
        c.push("team/app", sample_image("backends:dev2", base=[base]), ["dev"])
        gone = sample_image("backends:gone", base=[base])
        c.push("team/app", gone, ["gone"])
        c.delete_manifest("team/app", gone.digest)
        multi = index(
            [
                sample_image("backends:amd64", base=[base]),
                sample_image("backends:arm64", architecture="arm64"),
            ]
        )
        c.push("team/multi", multi, ["v1"])
        old = sample_image("backends:old")
        c.push("team/signed", old, ["latest"])
        c.push("team/signed", cosign_signature(old, "example"), [cosign_tag(old.digest)])
        c.push("team/signed", sample_image("backends:new"), ["latest"])
        c.abandon_upload("team/app", b"abandoned " * 50)
    finally:
        factory.stop_all()
    yield root


@pytest.mark.e2e
def test_registry_layout_copied_to_every_backend(
    store: ObjectStore, request: pytest.FixtureRequest, registry_layout: Path, tmp_path: Path
) -> None:
    reference_store = FilesystemStore(tmp_path)
    copy_store(FilesystemStore(registry_layout), reference_store)
    copy_store(FilesystemStore(registry_layout), store)
    settle(store)
    doc = plan_apply_restore_delete(store, cli_env(store, request), reference_store)
    assert {"blob", "layer_link", "revision", "tag", "tag_index"} <= set(doc["summary"])
