"""The demo generator writes exactly what Distribution writes, and a real registry serves it."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from imagegen import (
    FIXED_TIME,
    LayoutWriter,
    Manifest,
    RegistryClient,
    cosign_signature,
    cosign_tag,
    image,
    index,
    make_layer,
    referrer,
    referrers_index,
    referrers_tag,
    sample_image,
    skopeo_copy,
    skopeo_copy_all,
    write_oci_layout,
)
from registry_fixtures import S3Storage
from regsweep.demo import DemoSummary, generate_demo
from regsweep.errors import UsageError
from regsweep.layout.digest import parse_link
from regsweep.layout.keys import Kind, classify
from regsweep.storage.filesystem import FilesystemStore

NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
V2 = "docker/registry/v2/"
LINK_KINDS = {Kind.LAYER_LINK, Kind.REVISION_LINK, Kind.TAG_CURRENT, Kind.TAG_INDEX}


def _generate(root: Path, seed: int = 0) -> DemoSummary:
    root.mkdir(parents=True, exist_ok=True)
    return generate_demo(FilesystemStore(root), seed=seed, now=NOW)


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under the v2 root: key -> (bytes, mtime in ns)."""
    out = {}
    for info in FilesystemStore(root).iter_objects(V2):
        path = root / info.key
        out[info.key[len(V2) :]] = (path.read_bytes(), path.stat().st_mtime_ns)
    return out


def _check_shapes(tree: dict[str, bytes]) -> set[Kind]:
    """Assert every key has a known shape and exactly Distribution's bytes; return the kinds."""
    kinds = set()
    for rel, data in tree.items():
        rec = classify(rel)
        assert rec.kind not in (Kind.FOREIGN, Kind.TMP), (rel, rec)
        kinds.add(rec.kind)
        if rec.kind in LINK_KINDS:
            assert len(data) == 71 and not data.endswith(b"\n"), (rel, data)
            assert parse_link(data).problem is None, rel
            if rec.kind != Kind.TAG_CURRENT:
                assert data.decode() == rec.digest, rel
        elif rec.kind == Kind.BLOB_DATA:
            assert "sha256:" + hashlib.sha256(data).hexdigest() == rec.digest, rel
        elif rec.name == "startedat":
            assert len(data) == 20
            datetime.strptime(data.decode(), "%Y-%m-%dT%H:%M:%SZ")
        elif rec.name is not None and rec.name.startswith("hashstates/sha256/"):
            assert len(data) == 108 and data.startswith(b"sha\x03"), rel
    return kinds


# --------------------------------------------------------------------------------------------
# (a) a real registry serves the generated store and skopeo pulls every tag


@pytest.mark.e2e
def test_demo_is_served_by_docker_registry_and_every_tag_pulls(
    tmp_path: Path, registry_server
) -> None:
    summary = _generate(tmp_path / "store")
    reg = registry_server(root=tmp_path / "store")
    client = RegistryClient(reg.url)

    assert sorted(client.catalog()) == summary.repositories
    for repo in summary.repositories:
        assert sorted(client.tags(repo)) == sorted(summary.tags[repo]), repo

    pulled = 0
    for repo, tags in summary.tags.items():
        for tag, digest in tags.items():
            dest = tmp_path / "pull" / f"{repo.replace('/', '_')}_{tag}"
            assert client.get_manifest(repo, tag).headers["Docker-Content-Digest"] == digest
            skopeo_copy_all(f"docker://{reg.host}/{repo}:{tag}", f"dir:{dest}")
            # skopeo 1.9 re-serialises an index whose descriptors carry artifactType, so the
            # top digest can change; the children it copied must be byte-exact.
            top = json.loads((dest / "manifest.json").read_bytes())
            for child in top.get("manifests", []):
                hex_ = child["digest"].split(":")[1]
                body = (dest / f"{hex_}.manifest.json").read_bytes()
                assert hashlib.sha256(body).hexdigest() == hex_, (repo, tag, hex_)
            pulled += 1
    assert pulled == sum(len(t) for t in summary.tags.values())

    for repo, digests in summary.untagged.items():
        for digest in digests:
            assert client.get_manifest(repo, digest).status_code == 200, (repo, digest)
    for digest in summary.orphan_blobs:
        for repo in summary.repositories:
            assert not client.blob_exists(repo, digest)

    # Distribution's own mark phase agrees: everything but the orphans is referenced.
    reg.stop()
    gc = reg.garbage_collect(dry_run=True)
    assert gc.deleted_blobs == set(summary.orphan_blobs)
    assert gc.deleted_manifests == set()
    assert gc.marked == len(summary.blobs) - len(summary.orphan_blobs)
    swept = reg.garbage_collect()
    assert swept.deleted_blobs == set(summary.orphan_blobs)
    for digest in summary.orphan_blobs:
        hex_ = digest.split(":")[1]
        assert not (tmp_path / "store" / V2 / f"blobs/sha256/{hex_[:2]}/{hex_}").exists()


# --------------------------------------------------------------------------------------------
# (b) determinism and the summary's own consistency


def test_same_seed_gives_byte_identical_trees(tmp_path: Path) -> None:
    one = _generate(tmp_path / "one")
    two = _generate(tmp_path / "two")
    assert one == two
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    other = _generate(tmp_path / "other", seed=1)
    assert set(other.blobs) != set(one.blobs)


def test_generate_refuses_a_store_that_holds_a_registry(tmp_path: Path) -> None:
    _generate(tmp_path / "store")
    with pytest.raises(UsageError):
        _generate(tmp_path / "store")


def test_demo_layout_shapes_content_and_times(tmp_path: Path) -> None:
    summary = _generate(tmp_path / "store")
    tree = _tree(tmp_path / "store")
    data = {k: v[0] for k, v in tree.items()}
    mtime = {k: datetime.fromtimestamp(v[1] / 1e9, UTC) for k, v in tree.items()}

    assert _check_shapes(data) == {
        Kind.BLOB_DATA,
        Kind.LAYER_LINK,
        Kind.REVISION_LINK,
        Kind.TAG_CURRENT,
        Kind.TAG_INDEX,
        Kind.UPLOAD_FILE,
    }
    assert summary.object_count == len(tree)
    blob_keys = {k for k in data if classify(k).kind == Kind.BLOB_DATA}
    assert {classify(k).digest for k in blob_keys} == set(summary.blobs)
    assert summary.total_bytes == sum(len(data[k]) for k in blob_keys)

    # Required content: nesting, both index kinds, referrers, cosign, dotted tags.
    assert {"library/base", "team/app", "team/app/debug", "tools/ci-runner"} <= set(
        summary.repositories
    )
    assert {"v1.2.0", "v1.2.0-rc1"} <= set(summary.tags["team/app"])
    runner = summary.tags["tools/ci-runner"]
    assert summary.manifests["tools/ci-runner"][runner["v2.4.1"]].endswith("image.index.v1+json")
    assert summary.manifests["library/base"][summary.tags["library/base"]["3.20"]].endswith(
        "manifest.list.v2+json"
    )
    subject = runner["v2.4.1"]
    assert referrers_tag(subject) in runner and cosign_tag(subject) in runner
    assert summary.referrers["tools/ci-runner"]
    assert all(summary.overwritten[r] for r in ("team/app", "library/base"))
    # Shared base layers: some layer is linked from every repository.
    shared = set.intersection(*(set(d) for d in summary.layer_links.values()))
    assert shared
    # Every tag's history holds its current digest; overwritten manifests only in history.
    for repo, hist in summary.tag_history.items():
        for tag, digests in hist.items():
            assert digests[-1] == summary.tags[repo][tag]
        in_history = {d for ds in hist.values() for d in ds}
        assert set(summary.overwritten.get(repo, [])) <= in_history

    # Layers are valid gzip'd tars of a few KiB to ~100 KiB.
    for rel, body in data.items():
        if classify(rel).kind == Kind.BLOB_DATA and body[:2] == b"\x1f\x8b":
            assert 1_000 < len(body) < 110_000, rel
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                assert tar.getmembers()

    # Times: spread over ~60 days; orphans, overwritten manifests and the upload beyond grace.
    assert all(NOW - timedelta(days=62) < t < NOW for t in mtime.values())
    assert max(mtime.values()) - min(mtime.values()) > timedelta(days=50)
    old = NOW - timedelta(hours=24)
    for digest in summary.orphan_blobs:
        hex_ = digest.split(":")[1]
        assert mtime[f"blobs/sha256/{hex_[:2]}/{hex_}/data"] < old
    for repo, digests in summary.overwritten.items():
        for digest in digests:
            key = f"repositories/{repo}/_manifests/revisions/sha256/{digest.split(':')[1]}/link"
            assert mtime[key] < old
    (upload,) = summary.stale_uploads
    assert upload.started_at < NOW - timedelta(hours=168)
    started = data[f"repositories/{upload.repository}/_uploads/{upload.upload_id}/startedat"]
    assert started == upload.started_at.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    # Write order: a tag's index entry is written before its current link.
    for repo, tags in summary.tags.items():
        for tag, digest in tags.items():
            base = f"repositories/{repo}/_manifests/tags/{tag}"
            entry = f"{base}/index/sha256/{digest.split(':')[1]}/link"
            assert mtime[entry] < mtime[f"{base}/current/link"]


# --------------------------------------------------------------------------------------------
# (c) the same pushes through a real registry and through LayoutWriter give the same layout


def _scenario() -> list[tuple[str, Manifest, tuple[str, ...], dict[str, Any]]]:
    base = make_layer("real-vs-gen:base", 20_000)
    amd = image([base, make_layer("rvg:amd", 9_000)], created=FIXED_TIME)
    arm = image([base, make_layer("rvg:arm", 9_000)], created=FIXED_TIME, architecture="arm64")
    idx = index([amd, arm])
    debug = image([base, make_layer("rvg:debug", 5_000)], created=FIXED_TIME, docker=True)
    debug_rc = sample_image("rvg:debug-rc", layers=1, docker=True, base=[base])
    sig = cosign_signature(idx, "127.0.0.1/team/app")
    sbom = referrer(
        idx,
        artifact_type="application/spdx+json",
        payload=b'{"spdxVersion":"SPDX-2.3"}',
        payload_media_type="application/spdx+json",
    )
    return [
        ("team/app", idx, ("v1.0", "latest"), {"chunk_size": 4096}),
        ("team/app", sig, (cosign_tag(idx.digest),), {}),
        ("team/app", sbom, (), {}),
        ("team/app", referrers_index([sbom]), (referrers_tag(idx.digest),), {}),
        ("team/app/debug", debug, ("latest", "v1"), {"mount_from": "team/app"}),
        ("team/app/debug", debug_rc, ("v1-rc",), {"mount_from": "team/app"}),
        ("team/app/debug", debug_rc, ("latest",), {}),  # moves "latest"
    ]


@pytest.mark.e2e
def test_generated_layout_matches_a_real_registry_byte_for_byte(
    tmp_path: Path, registry_server
) -> None:
    reg = registry_server(root=tmp_path / "real")
    client = RegistryClient(reg.url)
    writer = LayoutWriter(FilesystemStore(_mkdir(tmp_path / "gen")))
    for repo, manifest, tags, opts in _scenario():
        client.push(repo, manifest, tags, **opts)
        writer.push(repo, manifest, tags)
    partial = random.Random("rvg:upload").randbytes(5000)
    upload_id = client.abandon_upload("team/app", partial)
    writer.stale_upload("team/app", upload_id, partial, NOW)
    assert client.mount_blob("team/app/debug", make_layer("rvg:amd", 9_000).blob.digest, "team/app")
    writer.push_blob("team/app/debug", make_layer("rvg:amd", 9_000).blob)
    reg.stop()

    real = {k: v[0] for k, v in _tree(tmp_path / "real").items()}
    gen = {k: v[0] for k, v in _tree(tmp_path / "gen").items()}
    assert _check_shapes(real) == _check_shapes(gen)
    assert sorted(real) == sorted(gen)
    differing = {k for k in real if real[k] != gen[k]}
    # Only the upload's start time (the real one is now, ours is NOW) may differ.
    assert differing <= {f"repositories/team/app/_uploads/{upload_id}/startedat"}
    # sha256_hashstate reproduces Go's marshalled digest state exactly.
    assert (
        real[f"repositories/team/app/_uploads/{upload_id}/hashstates/sha256/5000"]
        == gen[f"repositories/team/app/_uploads/{upload_id}/hashstates/sha256/5000"]
    )


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# (d) skopeo round trip through an S3-backed registry on moto


@pytest.mark.e2e
def test_skopeo_round_trip_through_s3_registry(
    tmp_path: Path, registry_server, moto_server: str
) -> None:
    bucket = "regsweep-demo-roundtrip"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    reg = registry_server(s3=S3Storage(moto_server, bucket, rootdirectory="/pfx"))

    base = make_layer("s3-rt:base", 30_000)
    multi = index(
        [
            sample_image("s3-rt:amd", base=[base]),
            sample_image("s3-rt:arm", base=[base], architecture="arm64"),
        ]
    )
    single = sample_image("s3-rt:single", base=[base])
    layout = write_oci_layout(tmp_path / "oci", {"v1.0": multi, "v1.0-single": single})
    for tag, top in (("v1.0", multi), ("v1.0-single", single)):
        skopeo_copy(f"oci:{layout}:{tag}", f"docker://{reg.host}/team/app:{tag}")
        dest = tmp_path / f"back-{tag}"
        skopeo_copy_all(f"docker://{reg.host}/team/app:{tag}", f"dir:{dest}")
        assert "sha256:" + hashlib.sha256((dest / "manifest.json").read_bytes()).hexdigest() == (
            top.digest
        )
        for m in top.walk():
            for blob in m.blobs:
                assert (dest / blob.hex).read_bytes() == blob.data

    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    assert keys and all(k.startswith("pfx/docker/registry/v2/") for k in keys)
    assert f"pfx/{V2}repositories/team/app/_manifests/tags/v1.0/current/link" in keys
    for key in keys:
        assert classify(key[len(f"pfx/{V2}") :]).kind is not Kind.FOREIGN, key
