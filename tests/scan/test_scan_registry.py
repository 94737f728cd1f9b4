"""End to end: real pushes into Debian's docker-registry (Distribution 2.8), then a scan.

The same images are pushed, with skopeo (from an OCI layout) and with the registry HTTP API, into
one registry on a filesystem root and one on S3 (moto, ``rootdirectory: /pfx``). The filesystem
layout is then copied into Azurite key by key (Distribution 2.8's Azure driver cannot reach
Azurite). The three snapshots must agree with each other, once timestamps, ETags, how links were
resolved and key prefixes are set aside, and apart from the one S3 difference storage-layout.md
§1.5/§2.2 documents: an abandoned upload's ``data`` is an incomplete multipart upload on S3.
They must also agree with what was pushed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from imagegen import (
    EMPTY_DIGEST,
    FIXED_TIME,
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
    write_oci_layout,
)
from registry_fixtures import RegistryFactory, S3Storage
from regsweep.layout.manifest import DOCKER_V2, OCI_INDEX, OCI_MANIFEST
from regsweep.scan.scanner import scan
from regsweep.scan.snapshot import TABLES, Snapshot
from regsweep.scan.snapshot import rows as decoded_rows
from regsweep.storage.azure import AzureStore
from regsweep.storage.filesystem import FilesystemStore
from regsweep.storage.s3 import S3Store

pytestmark = pytest.mark.e2e

ABANDONED = b"abandoned upload: 36 bytes of data!!"
assert len(ABANDONED) == 36
UNSTABLE = {"last_modified", "etag", "resolved_by", "key_times", "started_at", "last_activity"}


# -- what gets pushed ------------------------------------------------------------------------


@dataclass
class Pushed:
    """What was pushed, per repository, to compare a snapshot with."""

    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    history: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    revisions: dict[str, set[str]] = field(default_factory=dict)
    layer_links: dict[str, set[str]] = field(default_factory=dict)
    manifests: dict[str, Manifest] = field(default_factory=dict)
    upload_id: str = ""

    def add(self, repo: str, top: Manifest, tags: list[str]) -> None:
        for m in top.walk():
            self.revisions.setdefault(repo, set()).add(m.digest)
            self.layer_links.setdefault(repo, set()).update(b.digest for b in m.blobs)
            self.manifests[m.digest] = m
        for t in tags:
            self.tags.setdefault(repo, {})[t] = top.digest
            self.history.setdefault(repo, set()).add((t, top.digest))


BASE = make_layer("e2e-base", 4_000)
AMD = sample_image("e2e-amd64", layers=1, size=2_000, base=[BASE])
ARM = sample_image("e2e-arm64", layers=1, size=2_000, base=[BASE], architecture="arm64")
APP_INDEX = index([AMD, ARM])
SIGNATURE = cosign_signature(APP_INDEX, "127.0.0.1/team/app", seed="e2e")
SBOM = referrer(
    APP_INDEX,
    artifact_type="application/spdx+json",
    payload=b'{"spdxVersion":"SPDX-2.3","name":"e2e"}',
    payload_media_type="application/spdx+json",
)
SBOM_INDEX = referrers_index([SBOM])
DEBUG_OLD = image(
    [BASE, make_layer("e2e-debug-old", 2_000)], created=FIXED_TIME, docker=True
)  # docker schema2
DEBUG_NEW = image([BASE, make_layer("e2e-debug-new", 2_000)], created=FIXED_TIME, docker=True)
SKOPEO_ONE = sample_image("e2e-skopeo", layers=2, size=1_500)
SKOPEO_MULTI = index(
    [
        sample_image("e2e-skopeo-multi-amd", layers=1, size=1_500),
        sample_image("e2e-skopeo-multi-arm", layers=1, size=1_500, architecture="arm64"),
    ]
)


def push_everything(registry_url: str, registry_host: str, oci_dir: Path) -> Pushed:
    pushed = Pushed()
    client = RegistryClient(registry_url)

    # skopeo, from an OCI layout written by imagegen.
    layout = write_oci_layout(oci_dir, {"one": SKOPEO_ONE, "multi": SKOPEO_MULTI})
    for tag, top in (("v1", SKOPEO_ONE), ("multi", SKOPEO_MULTI)):
        src = "one" if top is SKOPEO_ONE else "multi"
        skopeo_copy(f"oci:{layout}:{src}", f"docker://{registry_host}/tools/skopeo:{tag}")
        pushed.add("tools/skopeo", top, [tag])

    # HTTP API: an OCI index whose two platform children are pushed by digest.
    client.push("team/app", APP_INDEX, ["v1.0"])
    pushed.add("team/app", APP_INDEX, ["v1.0"])
    # A cosign signature tag (no subject) and an OCI 1.1 referrer (subject) with its
    # referrers-fallback index.
    sig_tag = cosign_tag(APP_INDEX.digest)
    client.push("team/app", SIGNATURE, [sig_tag])
    pushed.add("team/app", SIGNATURE, [sig_tag])
    client.push("team/app", SBOM)
    pushed.add("team/app", SBOM, [])
    ref_tag = referrers_tag(APP_INDEX.digest)
    client.put_manifest("team/app", ref_tag, SBOM_INDEX)
    pushed.add("team/app", SBOM_INDEX, [ref_tag])

    # A Docker schema2 image in a nested repository; the base layer is mounted from team/app.
    assert client.mount_blob("team/app/debug", BASE.blob.digest, "team/app")
    client.push("team/app/debug", DEBUG_OLD, ["latest"], mount_from="team/app")
    pushed.add("team/app/debug", DEBUG_OLD, ["latest"])
    # Retag "latest": DEBUG_OLD stays as an untagged revision, in the tag's history.
    client.push("team/app/debug", DEBUG_NEW, ["latest"], mount_from="team/app")
    pushed.add("team/app/debug", DEBUG_NEW, ["latest"])

    # An upload that was started and got one PATCH, never committed.
    pushed.upload_id = client.abandon_upload("team/app", ABANDONED)
    assert client.tags("team/app/debug") == ["latest"]
    return pushed


# -- fixtures --------------------------------------------------------------------------------


@dataclass
class Run:
    pushed: dict[str, Pushed]  # "fs" | "s3" -> what that registry got
    snaps: dict[str, Snapshot]  # "fs" | "s3" | "azure"


def _copy_into(src: FilesystemStore, dst: AzureStore) -> int:
    objects = list(src.iter_objects(""))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda o: dst.write(o.key, src.read(o.key, max_bytes=o.size)), objects))
    return len(objects)


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
    moto_server: str,
    azurite: str,
) -> Iterator[Run]:
    registries = RegistryFactory(tmp_path_factory)
    bucket = f"e2e{uuid.uuid4().hex[:12]}"
    s3 = S3Store(bucket, "pfx", endpoint_url=moto_server)
    s3.client.create_bucket(Bucket=bucket)
    azure = AzureStore(f"e2e{uuid.uuid4().hex[:12]}", connection_string=azurite)
    azure.container_client.create_container()
    try:
        fs_root = tmp_path_factory.mktemp("e2e-fs-registry")
        fs_reg = registries(root=fs_root)
        # Without redirects: a blob HEAD would answer 307 to the S3 endpoint.
        s3_reg = registries(
            s3=S3Storage(moto_server, bucket, rootdirectory="/pfx"),
            extra_storage={"redirect": {"disable": True}},
        )
        pushed = {
            "fs": push_everything(fs_reg.url, fs_reg.host, tmp_path_factory.mktemp("oci-fs")),
            "s3": push_everything(s3_reg.url, s3_reg.host, tmp_path_factory.mktemp("oci-s3")),
        }
        registries.stop_all()  # scans run on a quiet store, as any maintenance should
        fs = FilesystemStore(fs_root)
        assert _copy_into(fs, azure) > 50
        snaps = {"fs": scan(fs), "s3": scan(s3), "azure": scan(azure)}
        yield Run(pushed, snaps)
    finally:
        registries.stop_all()
        s3.close()
        azure.close()


# -- normalising snapshots -------------------------------------------------------------------


def _strip_root(value: Any, root: str) -> Any:
    if isinstance(value, str) and value.startswith(root):
        return value[len(root) :]
    if isinstance(value, list):
        return [_strip_root(v, root) for v in value]
    return value


def normalised(snap: Snapshot) -> dict[str, list[dict[str, Any]]]:
    """Every table as sorted rows: no timestamps, ETags or ``resolved_by``; keys relative to the
    layout root; upload ids (random per registry) replaced by ``<id>``; and an upload's ``data``
    object, which S3 keeps as a multipart upload (compared separately), left out."""
    root = snap.meta["layout_root"]
    out: dict[str, list[dict[str, Any]]] = {}
    for name in TABLES:
        rows = []
        for row in decoded_rows(snap[name]):
            r = {c: _strip_root(v, root) for c, v in row.items() if c not in UNSTABLE}
            if name == "uploads":
                uid = r.pop("upload_id")
                pairs = [
                    (key.replace(uid, "<id>"), size)
                    for key, size in zip(r.pop("keys"), r.pop("key_sizes"), strict=True)
                    if not key.endswith("/data")
                ]
                r["files"] = pairs
                for c in ("data_size", "multipart_key", "multipart_upload_id"):
                    r.pop(c)
            rows.append(r)
        out[name] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return out


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_backends_agree(run: Run, kind: str) -> None:
    expected, got = normalised(run.snaps["fs"]), normalised(run.snaps[kind])
    assert {n for n, rows in expected.items() if not rows} == {"anomalies"}
    for name in TABLES:
        assert got[name] == expected[name], name


def test_upload_data_is_an_incomplete_multipart_upload_only_on_s3(run: Run) -> None:
    for kind in ("fs", "azure", "s3"):
        pushed = run.pushed["s3" if kind == "s3" else "fs"]
        (row,) = decoded_rows(run.snaps[kind]["uploads"])
        uid = pushed.upload_id
        base = f"docker/registry/v2/repositories/team/app/_uploads/{uid}/"
        assert (row["repository"], row["upload_id"], row["started_source"], row["problem"]) == (
            "team/app",
            uid,
            "startedat",
            None,
        )
        files = dict(zip(row["keys"], row["key_sizes"], strict=True))
        assert files[base + "startedat"] == 20
        assert files[base + "hashstates/sha256/0"] == 108
        assert files[base + f"hashstates/sha256/{len(ABANDONED)}"] == 108
        if kind == "s3":
            assert base + "data" not in files
            assert row["data_size"] is None
            assert row["multipart_key"] == base + "data"
            assert row["multipart_upload_id"]
        else:
            assert files[base + "data"] == len(ABANDONED)
            assert row["data_size"] == len(ABANDONED)
            assert row["multipart_key"] is None and row["multipart_upload_id"] is None


@pytest.mark.parametrize("kind", ["fs", "s3", "azure"])
def test_snapshot_matches_what_was_pushed(run: Run, kind: str) -> None:
    snap = run.snaps[kind]
    pushed = run.pushed["s3" if kind == "s3" else "fs"]
    assert snap.meta["layout_root"] == "docker/registry/v2/"

    assert decoded_rows(snap["repositories"]) == [
        {
            "repository": repo,
            "kind": "manifest-bearing",
            "valid_name": True,
            "tags": len(pushed.tags[repo]),
            "revisions": len(pushed.revisions[repo]),
            "layer_links": len(pushed.layer_links[repo]),
            "uploads": 1 if repo == "team/app" else 0,
        }
        for repo in sorted(pushed.revisions)
    ]
    assert {(r["repository"], r["tag"]): r["digest"] for r in decoded_rows(snap["tags"])} == {
        (repo, t): d for repo, tags in pushed.tags.items() for t, d in tags.items()
    }
    assert {
        (r["repository"], r["tag"], r["digest"]) for r in decoded_rows(snap["tag_history"])
    } == {(repo, t, d) for repo, entries in pushed.history.items() for t, d in entries}
    assert sorted(
        (r["repository"], r["digest"], r["target"], r["blob_present"])
        for r in decoded_rows(snap["revisions"])
    ) == sorted((repo, d, d, True) for repo, ds in pushed.revisions.items() for d in ds)
    # Manifests are never linked in _layers by 2.8; every config and layer is, per repository,
    # including the base layer mounted into the nested repository.
    assert sorted(
        (r["repository"], r["digest"], r["target"], r["alias"], r["blob_present"])
        for r in decoded_rows(snap["layer_links"])
    ) == sorted((repo, d, d, False, True) for repo, ds in pushed.layer_links.items() for d in ds)
    for link_table in ("tags", "tag_history", "revisions", "layer_links"):
        assert {r["problem"] for r in decoded_rows(snap[link_table])} == {None}, link_table

    every_blob = {b.digest: b.size for m in pushed.manifests.values() for b in m.blobs}
    every_blob |= {m.digest: m.blob.size for m in pushed.manifests.values()}
    assert {r["digest"]: r["size"] for r in decoded_rows(snap["blobs"])} == every_blob
    assert EMPTY_DIGEST in every_blob  # the cosign and referrer manifests' "{}" config

    kinds = {OCI_INDEX: "index", OCI_MANIFEST: "image", DOCKER_V2: "image"}
    assert {
        r["digest"]: (r["kind"], r["media_type"], r["subject"], r["problem"])
        for r in decoded_rows(snap["manifests"])
    } == {
        d: (kinds[m.media_type], m.media_type, APP_INDEX.digest if m is SBOM else None, None)
        for d, m in pushed.manifests.items()
    }
    assert {
        r["digest"]: r["artifact_type"]
        for r in decoded_rows(snap["manifests"])
        if r["artifact_type"]
    } == {SBOM.digest: "application/spdx+json"}

    assert sorted(
        (r["parent"], r["child"], r["kind"], r["platform"])
        for r in decoded_rows(snap["references"])
    ) == sorted(expected_references(pushed.manifests.values()))
    (ref_child,) = [r for r in decoded_rows(snap["references"]) if r["parent"] == SBOM_INDEX.digest]
    assert ref_child["artifact_type"] == "application/spdx+json"

    assert decoded_rows(snap["anomalies"]) == []


def expected_references(manifests: Any) -> list[tuple[str, str, str, str | None]]:
    out: list[tuple[str, str, str, str | None]] = []
    for m in manifests:
        if m.children:
            for c in m.children:
                platform = None
                if c.platform:
                    parts = [c.platform["os"], c.platform["architecture"]]
                    parts += [c.platform["variant"]] if "variant" in c.platform else []
                    platform = "/".join(parts)
                out.append((m.digest, c.digest, "manifest", platform))
            continue
        config, *layers = m.blobs
        out.append((m.digest, config.digest, "config", None))
        out += [(m.digest, b.digest, "layer", None) for b in layers]
        if m is SBOM:
            out.append((m.digest, APP_INDEX.digest, "subject", None))
    return out


def test_links_written_by_the_registry_need_no_reads(run: Run) -> None:
    """Distribution writes every link with one PutObject (one Put Blob on Azure), so a tag's
    current/link is resolved from the MD5 of its content, its ETag on S3 and its Content-MD5
    on Azure, and the other links from their paths."""
    expected = {"fs": "read", "azure": "content-md5", "s3": "etag"}
    for kind, snap in run.snaps.items():
        assert {r["resolved_by"] for r in decoded_rows(snap["tags"])} == {expected[kind]}, kind
        for name in ("revisions", "layer_links"):
            assert {r["resolved_by"] for r in decoded_rows(snap[name])} == {"path"}, (kind, name)


def test_platforms_of_the_pushed_index(run: Run) -> None:
    for snap in run.snaps.values():
        assert sorted(
            (r["child"], r["platform"])
            for r in decoded_rows(snap["references"])
            if r["parent"] == APP_INDEX.digest
        ) == sorted([(AMD.digest, "linux/amd64"), (ARM.digest, "linux/arm64/v8")])
