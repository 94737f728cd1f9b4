"""Every finding kind of the audit, on the filesystem, S3 (moto) and Azure (Azurite).

``broken_registry`` writes one store holding a healthy repository next to one scenario per
finding kind (LayoutWriter for what Distribution writes, raw ``store.write`` for what it would
not). The audit must report exactly the expected (kind, severity, key) set: every kind is found,
and nothing healthy is reported. The audit runs through a ReadOnlyStore and the store's listing
is compared before and after: it never changes anything.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from imagegen import (
    Blob,
    Layer,
    LayoutWriter,
    Manifest,
    cosign_signature,
    cosign_tag,
    image,
    image_manifest,
    index,
    make_layer,
    referrer,
    referrers_index,
    referrers_tag,
    sample_image,
)
from regsweep.audit.checks import _Index, _most_common
from regsweep.audit.findings import KINDS, Finding
from regsweep.audit.report import AuditOptions, AuditReport, run_audit
from regsweep.demo.generator import generate_demo
from regsweep.gc.mark import mark
from regsweep.layout.keys import (
    blob_data_key,
    layer_link_key,
    repo_key,
    revision_link_key,
    tag_current_key,
    tag_index_key,
    upload_key,
)
from regsweep.scan.graph import Graph
from regsweep.scan.scanner import scan
from regsweep.scan.snapshot import column, rows
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore
from regsweep.storage.readonly import ReadOnlyStore
from regsweep.storage.s3 import S3Store
from services import start_multipart_upload

V2 = "docker/registry/v2/"
MakeStore = Callable[..., ObjectStore]
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=30)
Expected = set[tuple[str, str, str | None]]  # (kind, severity, key)


def tiny(seed: str, **kw: Any) -> Manifest:
    return sample_image(seed, layers=1, size=64, **kw)


def raw_manifest(store: ObjectStore, repo: str, data: bytes, tag: str) -> str:
    blob = Blob(data)
    store.write(blob_data_key(blob.digest), data)
    store.write(revision_link_key(repo, blob.digest), blob.digest.encode())
    store.write(tag_index_key(repo, tag, blob.digest), blob.digest.encode())
    store.write(tag_current_key(repo, tag), blob.digest.encode())
    return blob.digest


def remove(store: ObjectStore, *keys: str) -> None:
    outcomes = store.delete_many(list(keys))
    assert all(o.deleted for o in outcomes), outcomes


def listing(store: ObjectStore) -> list[tuple[str, int, datetime, str | None]]:
    return sorted((o.key, o.size, o.last_modified, o.etag) for o in store.iter_objects(""))


def triples(report: AuditReport) -> Expected:
    return {(f.kind, f.severity, f.key) for f in report.findings}


def of_kind(report: AuditReport, kind: str) -> list[Finding]:
    return [f for f in report.findings if f.kind == kind]


class Guard:
    """Wraps a store for the audit and records any mutating call (there must be none; the
    ReadOnlyStore inside run_audit refuses them before they reach here anyway)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.mutations: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("write", "delete_many", "move", "abort_incomplete_upload"):

            def refuse(*a: Any, **kw: Any) -> Any:
                self.mutations.append(name)
                raise AssertionError(f"the audit called {name}")

            return refuse
        return attr


@dataclass
class Broken:
    store: ObjectStore
    expected: Expected = field(default_factory=set)

    def expect(self, kind: str, severity: str, key: str | None) -> None:
        self.expected.add((kind, severity, key))


def broken_registry(store: ObjectStore) -> Broken:
    """One scenario per finding kind; returns the (kind, severity, key) each must produce."""
    b = Broken(store)
    w = LayoutWriter(store)

    # A healthy repository: no finding may mention it.
    w.push("good/app", tiny("good"), ["v1", "latest"])

    # missing-blob: a live image's layer data is gone (its dangling link is not reported
    # separately: the missing blob says it all).
    img = tiny("missing-layer")
    w.push("broken/layer", img, ["v1"])
    layer = img.blobs[1]
    remove(store, blob_data_key(layer.digest))
    b.expect("missing-blob", "error", blob_data_key(layer.digest))

    # missing-layer-link: the config is stored, but the repository lost its link to it.
    img = tiny("missing-link")
    w.push("broken/link", img, ["v1"])
    config = img.blobs[0]
    remove(store, layer_link_key("broken/link", config.digest))
    b.expect("missing-layer-link", "error", layer_link_key("broken/link", config.digest))

    # dangling-revision: untagged (warning) and tagged (error, with its dangling tag)
    img = tiny("dangling-untagged")
    w.push("dangle/rev", img)
    remove(store, blob_data_key(img.digest))
    b.expect("dangling-revision", "warning", revision_link_key("dangle/rev", img.digest))
    img = tiny("dangling-tagged")
    w.push("dangle/tagged", img, ["v1"])
    remove(store, blob_data_key(img.digest))
    b.expect("dangling-revision", "error", revision_link_key("dangle/tagged", img.digest))
    b.expect("dangling-tag", "error", tag_current_key("dangle/tagged", "v1"))

    # dangling-tag: the manifest was deleted through the API, the tag stayed (D2 + S3)
    img = tiny("dangling-tag")
    w.push("dangle/tag", img, ["v1"])
    remove(store, revision_link_key("dangle/tag", img.digest))
    b.expect("dangling-tag", "warning", tag_current_key("dangle/tag", "v1"))

    # dangling-layer-link: a link to a blob whose data is gone, needed by nothing
    lone = make_layer("dangling-link", 64).blob
    w.push_blob("dangle/link", lone)
    remove(store, blob_data_key(lone.digest))
    b.expect("dangling-layer-link", "warning", layer_link_key("dangle/link", lone.digest))

    # malformed-link: newline, doubled, empty, not a digest
    img = tiny("malformed")
    w.push("bad/links", img, ["v1", "v2"])
    cfg = img.blobs[0].digest
    store.write(revision_link_key("bad/links", img.digest), (img.digest + "\n").encode())
    store.write(layer_link_key("bad/links", cfg), (cfg + cfg).encode())
    store.write(tag_current_key("bad/links", "v1"), b"")
    store.write(tag_current_key("bad/links", "v2"), b"sha256:not-a-digest")
    for key in (
        revision_link_key("bad/links", img.digest),
        layer_link_key("bad/links", cfg),
        tag_current_key("bad/links", "v1"),
        tag_current_key("bad/links", "v2"),
    ):
        b.expect("malformed-link", "error", key)

    # unparsable-manifest
    d = raw_manifest(store, "bad/manifest", b'{"schemaVersion": 2, "mediaType": ', "v1")
    b.expect("unparsable-manifest", "error", blob_data_key(d))

    # oversized-manifest (the test's cap is 64 KiB)
    big = tiny("oversized")
    for blob in big.blobs:
        w.push_blob("bad/big", blob)
    body = json.loads(big.blob.data)
    body["annotations"] = {"padding": "x" * 70_000}
    d = raw_manifest(store, "bad/big", json.dumps(body).encode(), "v1")
    b.expect("oversized-manifest", "warning", blob_data_key(d))

    # digest-mismatch found by the scan: a manifest stored under another digest
    img = tiny("mismatch")
    for blob in img.blobs:
        w.push_blob("bad/digest", blob)
    fake = Blob(b"what the digest says")
    store.write(blob_data_key(fake.digest), img.blob.data)
    store.write(revision_link_key("bad/digest", fake.digest), fake.digest.encode())
    store.write(tag_current_key("bad/digest", "v1"), fake.digest.encode())
    b.expect("digest-mismatch", "error", blob_data_key(fake.digest))

    # size-mismatch: a layer truncated by one byte (its descriptor says one byte more)
    img = sample_image("truncated", layers=1, size=4000)
    w.push("bad/size", img, ["v1"])
    layer = img.blobs[1]
    store.write(blob_data_key(layer.digest), layer.data[:-1])
    b.expect("size-mismatch", "error", blob_data_key(layer.digest))

    # index-child-missing: an index pushed with only one of its platforms
    amd, arm = tiny("idx-amd64"), tiny("idx-arm64", architecture="arm64")
    idx = index([amd, arm])
    w.push("multi/partial", amd)
    w.put_manifest("multi/partial", idx, "v1")
    b.expect("index-child-missing", "warning", revision_link_key("multi/partial", arm.digest))

    # orphan-referrer and orphan-signature-tag: the subject was never pushed (or was deleted)
    gone = tiny("gone")
    sbom = referrer(
        gone, artifact_type="application/spdx+json", payload=b"{}", payload_media_type="x/y"
    )
    w.push("signed/app", sbom)
    w.push("signed/app", cosign_signature(gone, "example/signed/app"), [cosign_tag(gone.digest)])
    w.push("signed/app", referrers_index([sbom]), [referrers_tag(gone.digest)])
    b.expect("orphan-referrer", "warning", revision_link_key("signed/app", sbom.digest))
    for tag in (cosign_tag(gone.digest), referrers_tag(gone.digest)):
        b.expect("orphan-signature-tag", "warning", tag_current_key("signed/app", tag))
    # ...while the signatures of a present image are fine
    kept = tiny("kept")
    w.push("signed/app", kept, ["v1"])
    w.push("signed/app", cosign_signature(kept, "example/signed/app"), [cosign_tag(kept.digest)])

    # invalid-repository-name
    w.push("_bad/repo", tiny("invalid-name"), ["v1"])
    b.expect("invalid-repository-name", "error", V2 + "repositories/_bad/repo/")

    # case-collision: repositories and tags equal ignoring case
    w.push("case/app", tiny("case-lower"), ["latest", "Latest"])
    w.push("Case/app", tiny("case-upper"), ["v1"])
    b.expect("case-collision", "warning", repo_key("Case/app"))
    b.expect("case-collision", "warning", tag_current_key("case/app", "Latest"))

    # foreign-key, tmp-file, legacy-signature
    foreign = V2 + "repositories/good/app/_manifests/notes.txt"
    store.write(foreign, b"hand-written")
    b.expect("foreign-key", "warning", foreign)
    tmp = tag_current_key("good/app", "v1") + ".0198c0de-1234-7abc-8def-0123456789ab.tmp"
    store.write(tmp, b"sha256:")
    b.expect("tmp-file", "warning", tmp)
    good = tiny("good")
    legacy = (
        V2 + f"repositories/good/app/_manifests/revisions/sha256/{good.hex}/signatures/sha256/"
        f"{'5' * 64}/link"
    )
    store.write(legacy, b"sha256:" + b"5" * 64)
    b.expect("legacy-signature", "info", legacy)

    # stale-upload (a recent one is not reported)
    stale_id, fresh_id = str(uuid.uuid4()), str(uuid.uuid4())
    w.stale_upload("good/app", stale_id, b"partial data", OLD)
    w.stale_upload("good/app", fresh_id, b"in progress", NOW - timedelta(hours=1))
    b.expect("stale-upload", "info", V2 + f"repositories/good/app/_uploads/{stale_id}/")

    # S3 only: a stale upload whose data is an incomplete multipart upload, and a multipart
    # upload outside any upload directory
    if isinstance(store, S3Store):
        mpu_id = str(uuid.uuid4())
        store.write(
            upload_key("good/app", mpu_id, "startedat"), OLD.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        )
        start_multipart_upload(store, upload_key("good/app", mpu_id, "data"))
        b.expect("stale-multipart-upload", "warning", upload_key("good/app", mpu_id, "data"))
        stray = V2 + "repositories/good/app/_uploads/not-an-upload/data"
        start_multipart_upload(store, stray)
        b.expect("foreign-multipart-upload", "warning", stray)

    # quarantine-referenced: a gc run quarantined a blob a live image needs (found together
    # with the missing blob, whose action then says to restore the run)
    img = tiny("quarantined")
    w.push("q/app", img, ["v1"])
    qlayer = img.blobs[1]
    qkey = f"regsweep/quarantine/20261101T000000Z-test/{blob_data_key(qlayer.digest)}"
    store.move(blob_data_key(qlayer.digest), qkey)
    b.expect("quarantine-referenced", "error", qkey)
    b.expect("missing-blob", "error", blob_data_key(qlayer.digest))
    orphan_q = Blob(b"quarantined and unneeded")
    store.write(f"regsweep/quarantine/20261101T000000Z-test/{blob_data_key(orphan_q.digest)}", b"x")

    # unreferenced-blobs: one summary for data nothing references (several scenarios above
    # leave some, e.g. the layers of the dangling revisions)
    w.put_blob_data(Blob(b"orphan blob"))
    b.expect("unreferenced-blobs", "info", None)
    return b


def audit(store: ObjectStore, **kw: Any) -> AuditReport:
    options = AuditOptions(now=NOW, max_manifest_bytes=64 * 1024, **kw)
    return run_audit(ReadOnlyStore(Guard(store)), options)  # type: ignore[arg-type]


def test_every_finding_kind(store: ObjectStore) -> None:
    b = broken_registry(store)
    before = listing(store)
    guard = Guard(store)
    report = run_audit(
        ReadOnlyStore(guard),  # type: ignore[arg-type]
        AuditOptions(now=NOW, max_manifest_bytes=64 * 1024),
    )

    assert triples(report) == b.expected
    assert listing(store) == before and guard.mutations == []
    # Every kind of the catalogue that needs no digest scrub, timestamps or S3 is covered here.
    covered = {k for k, _, _ in b.expected}
    elsewhere = {"unreadable-blob", "untrustworthy-timestamps"}
    if not isinstance(store, S3Store):
        elsewhere |= {"stale-multipart-upload", "foreign-multipart-upload"}
    assert set(KINDS) - covered == elsewhere
    assert report.exit_code == 1
    for f in report.findings:
        assert f.detail and "\n" not in f.detail
        assert f.kind in KINDS
    # Nothing about the healthy repository, except the objects planted in it on purpose.
    planted = {"foreign-key", "tmp-file", "legacy-signature", "stale-upload"}
    planted |= {"stale-multipart-upload", "foreign-multipart-upload"}
    assert {f.kind for f in report.findings if f.repository == "good/app"} <= planted
    # The missing blob that is in quarantine says which run to restore.
    (q,) = [f for f in of_kind(report, "missing-blob") if f.repository == "q/app"]
    assert "quarantine restore" in q.action and "20261101T000000Z-test" in q.action


def test_findings_table_round_trips(store_factory: MakeStore, tmp_path: Any) -> None:
    store = store_factory("fs")
    broken_registry(store)
    report = audit(store)
    path = report.write(tmp_path / "out")
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    assert t.num_rows == len(report.findings)
    assert t.column_names == [
        "severity",
        "kind",
        "repository",
        "key",
        "detail",
        "action",
        "digest",
        "size",
    ]
    got = {(r["kind"], r["severity"], r["key"]) for r in t.to_pylist()}
    assert got == triples(report)
    js = report.to_json()
    assert js["exit_code"] == 1 and js["severities"]["error"] == len(report.errors)
    json.dumps(js)  # serialisable as it is


def test_a_healthy_generated_registry_has_no_errors_or_warnings(store: ObjectStore) -> None:
    """The demo registry (multi-arch indexes, referrers, cosign tags, nested repositories,
    shared layers, overwritten tags) is consistent: only informational findings."""
    from regsweep.demo.generator import generate_demo

    generate_demo(store, now=NOW)
    report = audit(store)
    assert [f for f in report.findings if f.severity != "info"] == []
    assert {f.kind for f in report.findings} == {"stale-upload", "unreferenced-blobs"}
    assert report.exit_code == 0


def test_the_unreferenced_summary_counts_what_nothing_live_needs(tmp_path: Any) -> None:
    """The unreferenced summary is counted on the graph's places; its count and bytes are
    those of the stored blobs no live manifest needs, counted row by row over the snapshot,
    and the audit's total of stored bytes is every blob's."""
    root = tmp_path / "registry"
    root.mkdir()
    generate_demo(FilesystemStore(root), now=NOW)
    report = audit(FilesystemStore(root))
    live = mark(report.snapshot).live_blobs
    blobs = rows(report.snapshot.with_keys("blobs"))
    orphans = [b for b in blobs if b["digest"] not in live]
    assert orphans and len(orphans) < len(blobs)
    (f,) = of_kind(report, "unreferenced-blobs")
    assert f.size == sum(b["size"] for b in orphans)
    assert f.detail.startswith(f"{len(orphans)} blobs ({f.size} bytes) ")
    assert report.blob_bytes == sum(b["size"] for b in blobs)


# -- untrustworthy timestamps ------------------------------------------------------------------


def _burst(store: ObjectStore, n: int) -> list[str]:
    """``n`` blobs written at once: within one or two seconds of the service clock."""
    blobs = [Blob(f"blob {i}".encode()) for i in range(n)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda x: store.write(blob_data_key(x.digest), x.data), blobs))
    return [blob_data_key(x.digest) for x in blobs]


def test_one_timestamp_for_most_objects_is_reported(store: ObjectStore) -> None:
    keys = _burst(store, 64)
    if isinstance(store, FilesystemStore):
        # A filesystem keeps nanoseconds: a copy that set one time (cp without -p of a tar
        # extraction, a restore) is what this check is after.
        for k in keys:
            store.set_mtime(k, OLD)
    report = audit(store, timestamp_min_objects=32)
    (f,) = of_kind(report, "untrustworthy-timestamps")
    assert (f.severity, f.key, f.repository) == ("warning", V2, None)
    assert "copied" in f.detail
    # Below the minimum count (a small, freshly pushed registry), nothing is said.
    assert of_kind(audit(store, timestamp_min_objects=65), "untrustworthy-timestamps") == []


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.9])
def test_the_most_common_time_is_counted_across_arrays(share: float) -> None:
    """The most common value of several arrays, counted an array at a time: found, with its
    count over them all, where it makes ``share`` of them all (also where most arrays hold
    it only a few times), the smallest of equally common ones; none where no value makes
    ``share``. As counting every value at once says."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        values = rng.integers(0, int(rng.integers(1, 8)), size=int(rng.integers(0, 40)))
        cuts = np.sort(rng.integers(0, len(values) + 1, size=int(rng.integers(0, 5))))
        arrays = np.split(values, cuts)
        distinct, counts = np.unique(values, return_counts=True)
        if len(values) and counts.max() >= share * len(values):
            at = int(np.argmax(counts))  # the first of the most common
            want = (int(distinct[at]), int(counts[at]), len(values))
        else:
            want = (0, 0, len(values))
        assert _most_common(lambda arrays=arrays: iter(arrays), share) == want
    # A minority in two of the three arrays, counted in all three.
    spread = [np.array([1, 1, 1, 9]), np.array([2, 2, 2, 9]), np.full(6, 9)]
    assert _most_common(lambda: iter(spread), 0.5) == (9, 8, 14)


def test_spread_timestamps_are_trusted(store_factory: MakeStore) -> None:
    store = store_factory("fs")
    w = LayoutWriter(store).at(OLD)  # one second apart, as pushes over time are
    for i in range(12):
        w.push(f"spread/r{i}", tiny(f"spread-{i}"), ["v1"])
    report = audit(store, timestamp_min_objects=10)
    assert of_kind(report, "untrustworthy-timestamps") == []
    assert [f for f in report.findings if f.severity != "info"] == []


# -- details --------------------------------------------------------------------------------


def test_upload_age_is_configurable(store_factory: MakeStore) -> None:
    store = store_factory("fs")
    w = LayoutWriter(store)
    w.push("app", tiny("app"), ["v1"])
    uid = str(uuid.uuid4())
    w.stale_upload("app", uid, b"x", NOW - timedelta(hours=30))
    assert of_kind(audit(store), "stale-upload") == []  # default 168h
    (f,) = of_kind(audit(store, upload_age=timedelta(hours=24)), "stale-upload")
    assert f.key == V2 + f"repositories/app/_uploads/{uid}/"


def test_quarantined_layer_link_needed_again(store_factory: MakeStore) -> None:
    """A gc quarantined a repository's _layers link; the image was pushed again by digest
    without re-uploading (the blob is still there): the link is needed again."""
    store = store_factory("fs")
    w = LayoutWriter(store)
    img = tiny("relink")
    w.push("app", img, ["v1"])
    link = layer_link_key("app", img.blobs[1].digest)
    qkey = f"regsweep/quarantine/run-1/{link}"
    store.move(link, qkey)
    report = audit(store)
    assert ("quarantine-referenced", "error", qkey) in triples(report)
    assert ("missing-layer-link", "error", link) in triples(report)


def test_foreign_layers_with_urls_may_be_absent(store_factory: MakeStore) -> None:
    """A Docker foreign layer (with urls) is not required to exist (storage-layout.md §3.2)."""
    store = store_factory("fs")
    w = LayoutWriter(store)
    base = make_layer("foreign-base", 64)
    own = make_layer("own", 64)
    img = image([own], created=NOW)
    body = json.loads(img.blob.data)
    body["layers"].insert(
        0,
        {
            "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "digest": base.blob.digest,
            "size": base.blob.size,
            "urls": ["https://example.com/base.tar.gz"],
        },
    )
    for blob in img.blobs:
        w.push_blob("win/app", blob)
    raw_manifest(store, "win/app", json.dumps(body).encode(), "v1")
    report = audit(store)
    assert [f for f in report.findings if f.severity != "info"] == []


def test_sha512_alias_links_are_not_missing(store_factory: MakeStore) -> None:
    """A layer referenced by a sha512 digest is stored under its sha256 with an alias link
    (storage-layout.md §7.10): nothing is missing."""
    import hashlib

    store = store_factory("fs")
    w = LayoutWriter(store)
    layer = make_layer("alias", 64)
    sha512 = "sha512:" + hashlib.sha512(layer.blob.data).hexdigest()
    config = Blob(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}')
    m = image_manifest(config, [Layer(layer.blob, layer.diff_id)])
    body = json.loads(m.blob.data)
    body["layers"][0]["digest"] = sha512
    w.push_blob("alias/app", config)
    w.push_blob("alias/app", layer.blob)
    store.write(layer_link_key("alias/app", sha512), layer.blob.digest.encode())
    raw_manifest(store, "alias/app", json.dumps(body).encode(), "v1")
    report = audit(store)
    assert [f for f in report.findings if f.severity != "info"] == []


@pytest.mark.parametrize("bad", [b"", b"sha256:" + b"A" * 64])
def test_malformed_revision_link_is_one_finding(store_factory: MakeStore, bad: bytes) -> None:
    store = store_factory("fs")
    w = LayoutWriter(store)
    img = tiny("one")
    w.push("app", img, ["v1"])
    key = revision_link_key("app", img.digest)
    store.write(key, bad)
    report = audit(store)
    assert {(f.kind, f.key) for f in report.findings if f.severity != "info"} == {
        ("malformed-link", key)
    }


def test_index_rows_build_the_keys_the_snapshot_leaves_out(tmp_path: Any) -> None:
    """The audit holds revisions and tags as places and builds a row's key when a finding
    asks for it: the same keys as the snapshot's (``Snapshot.with_keys``)."""
    root = tmp_path / "registry"
    root.mkdir()
    generate_demo(FilesystemStore(root), now=datetime.now(UTC) - timedelta(days=3))
    snap = scan(FilesystemStore(root))
    ix = _Index.build(snap, Graph.from_snapshot(snap))
    for table in ("revisions", "tags"):
        keys = ix.keys(table, np.arange(snap[table].num_rows))
        assert snap[table]["key"].null_count == snap[table].num_rows  # all left out by the scan
        assert keys == column(snap.with_keys(table), "key"), table


def test_findings_of_one_kind_in_one_repository(store_factory: MakeStore) -> None:
    """Several findings of a kind in one repository and in several: each once, with what
    its detail says gathered from the whole repository (the checks compare column-wise and
    make strings only for what they report)."""
    store = store_factory("fs")
    w = LayoutWriter(store)
    shared = make_layer("shared-layer", 64)
    first = image([shared, make_layer("own-1", 64)], created=OLD)
    second = image([shared, make_layer("own-2", 64)], created=OLD)
    for repo in ("many/a", "many/b"):
        w.push(repo, first, ["one"])
        w.push(repo, second, ["two"])
        # Both images need the shared layer: one missing-layer-link per repository.
        remove(store, layer_link_key(repo, shared.blob.digest))
    # A manifest whose data is gone, tagged twice and listed by an index of its repository.
    amd, arm = tiny("gone-amd64"), tiny("gone-arm64", architecture="arm64")
    w.push("many/a", amd, ["v1", "v2"])
    w.push("many/a", arm)
    w.put_manifest("many/a", index([amd, arm]), "multi")
    remove(store, blob_data_key(amd.digest))
    # Two indexes listing the same platform image, which their repository lacks.
    left, right = tiny("lacking-amd64"), tiny("lacking-arm64", architecture="arm64")
    for blob in right.blobs:
        w.push_blob("many/b", blob)
    w.push("many/b", left)
    w.put_manifest("many/b", index([left, right]), "i1")
    w.put_manifest("many/b", index([left, right], docker=True), "i2")
    # Three spellings of one tag.
    w.push("many/b", tiny("cased"), ["rc", "RC", "Rc"])
    report = audit(store)

    missing = of_kind(report, "missing-layer-link")
    assert sorted(f.key for f in missing) == [
        layer_link_key(repo, shared.blob.digest) for repo in ("many/a", "many/b")
    ]
    (dangling,) = of_kind(report, "dangling-revision")
    assert dangling.key == revision_link_key("many/a", amd.digest)
    assert dangling.severity == "error"
    assert "tag(s) v1, v2 point to it" in dangling.detail
    assert "index(es) sha256:" in dangling.detail and "list it" in dangling.detail
    assert {(f.key, f.severity) for f in of_kind(report, "dangling-tag")} == {
        (tag_current_key("many/a", tag), "error") for tag in ("v1", "v2")
    }
    (child,) = of_kind(report, "index-child-missing")
    assert child.key == revision_link_key("many/b", right.digest)
    assert "its data is not in the store at all" in child.detail
    (cased,) = [f for f in of_kind(report, "case-collision") if f.repository == "many/b"]
    assert cased.key == tag_current_key("many/b", "RC")
    assert "tags RC, Rc, rc of many/b" in cased.detail
