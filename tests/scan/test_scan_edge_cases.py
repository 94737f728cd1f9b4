"""Scanning edge cases of storage-layout.md §7, each run on the filesystem, S3 (moto) and Azure
(Azurite) through the ``store`` fixture.

Every test writes an exact layout (``LayoutWriter`` for what Distribution writes, ``store.write``
for what it would never write), scans it and asserts the exact rows and anomalies. A bad object
must become a ``problem`` and an anomaly, never abort the scan and never vanish.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from imagegen import Blob, LayoutWriter, Manifest, image_manifest, index, make_layer, sample_image
from regsweep.errors import LayoutError
from regsweep.layout.keys import (
    blob_data_key,
    layer_link_key,
    revision_link_key,
    tag_current_key,
    tag_index_key,
    upload_key,
)
from regsweep.scan.scanner import ScanOptions, scan
from regsweep.scan.snapshot import Snapshot
from regsweep.scan.snapshot import rows as decoded_rows
from regsweep.storage import filesystem
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore

V2 = "docker/registry/v2/"
MakeStore = Callable[..., ObjectStore]
STARTED = datetime(2026, 11, 20, 8, 30, 0, tzinfo=UTC)


# -- helpers ---------------------------------------------------------------------------------


def rows(snap: Snapshot, table: str, *cols: str) -> list[tuple[Any, ...]]:
    """The rows of ``table`` (with every key) restricted to ``cols``, sorted (None-safe)."""
    out = [tuple(r[c] for c in cols) for r in decoded_rows(snap.with_keys(table))]
    return sorted(out, key=repr)


def by(snap: Snapshot, table: str, col: str, value: Any) -> list[dict[str, Any]]:
    return [r for r in decoded_rows(snap.with_keys(table)) if r[col] == value]


def anomalies(snap: Snapshot, kind: str | None = None) -> list[dict[str, Any]]:
    return [r for r in decoded_rows(snap["anomalies"]) if kind is None or r["kind"] == kind]


def anomaly_keys(snap: Snapshot, kind: str) -> set[tuple[str, str, str | None, str]]:
    return {(a["kind"], a["severity"], a["repository"], a["key"]) for a in anomalies(snap, kind)}


def tiny(seed: str, *, docker: bool = False, architecture: str = "amd64") -> Manifest:
    return sample_image(seed, layers=1, size=64, docker=docker, architecture=architecture)


def put_raw_manifest(store: ObjectStore, repo: str, data: bytes, tag: str | None = None) -> str:
    """A manifest blob with arbitrary bytes, its revision link and optionally a tag."""
    blob = Blob(data)
    store.write(blob_data_key(blob.digest), data)
    store.write(revision_link_key(repo, blob.digest), blob.digest.encode())
    if tag is not None:
        store.write(tag_index_key(repo, tag, blob.digest), blob.digest.encode())
        store.write(tag_current_key(repo, tag), blob.digest.encode())
    return blob.digest


def k(rel: str) -> str:
    return V2 + rel


def uuid7(unix_ms: int) -> str:
    """A UUIDv7 whose first 48 bits are ``unix_ms`` (Distribution 3.1+ upload ids)."""
    value = (unix_ms << 80) | (0x7 << 76) | (0xABC << 64) | (0b10 << 62) | 0x0123456789ABCDEF
    u = uuid.UUID(int=value)
    assert u.version == 7
    return str(u)


def digests(items: Iterable[Manifest | Blob]) -> list[str]:
    return sorted(i.digest for i in items)


# -- repositories ----------------------------------------------------------------------------


def test_nested_link_only_and_upload_only_repositories(store: ObjectStore) -> None:
    w = LayoutWriter(store)
    parent, child = tiny("parent"), tiny("child", docker=True)
    w.push("a/b", parent, ["v1"])
    w.push("a/b/c", child, ["v1", "latest"])
    shared = make_layer("shared", 64).blob
    w.push_blob("links/only", shared)  # _layers only: D3 does not see it, D2 does
    w.stale_upload("uploads/only", str(uuid.UUID(int=1, version=4)), b"partial", STARTED)

    snap = scan(store)

    assert rows(
        snap,
        "repositories",
        "repository",
        "kind",
        "valid_name",
        "tags",
        "revisions",
        "layer_links",
        "uploads",
    ) == sorted(
        [
            ("a/b", "manifest-bearing", True, 1, 1, 2, 0),
            ("a/b/c", "manifest-bearing", True, 2, 1, 2, 0),
            ("links/only", "link-only", True, 0, 0, 1, 0),
            ("uploads/only", "upload-only", True, 0, 0, 0, 1),
        ],
        key=repr,
    )
    # The namespace "a" is not a repository, and a/b/c's links are not a/b's.
    assert rows(snap, "layer_links", "repository", "digest") == sorted(
        [("a/b", b.digest) for b in parent.blobs]
        + [("a/b/c", b.digest) for b in child.blobs]
        + [("links/only", shared.digest)],
        key=repr,
    )
    assert rows(snap, "revisions", "repository", "digest") == sorted(
        [("a/b", parent.digest), ("a/b/c", child.digest)]
    )
    assert rows(snap, "tags", "repository", "tag", "digest") == sorted(
        [
            ("a/b", "v1", parent.digest),
            ("a/b/c", "latest", child.digest),
            ("a/b/c", "v1", child.digest),
        ]
    )
    assert anomalies(snap) == []


def test_invalid_repository_names_are_reported_and_still_scanned(store: ObjectStore) -> None:
    w = LayoutWriter(store)
    bad_underscore, bad_upper, domain = tiny("u"), tiny("up"), tiny("dom")
    w.push("_bad/repo", bad_underscore, ["v1"])
    w.push("myorg/App", bad_upper, ["v1"])
    w.push("MyOrg/app", domain, ["v1"])  # upper case is legal in a first ("domain") component

    snap = scan(store)

    assert rows(snap, "repositories", "repository", "kind", "valid_name") == sorted(
        [
            ("MyOrg/app", "manifest-bearing", True),
            ("_bad/repo", "manifest-bearing", False),
            ("myorg/App", "manifest-bearing", False),
        ],
        key=repr,
    )
    assert anomaly_keys(snap, "invalid-repository-name") == {
        ("invalid-repository-name", "error", "_bad/repo", k("repositories/_bad/repo/")),
        ("invalid-repository-name", "error", "myorg/App", k("repositories/myorg/App/")),
    }
    # Fail closed: the links of an invalid name are scanned like any others.
    for repo, m in (("_bad/repo", bad_underscore), ("myorg/App", bad_upper)):
        assert {r["target"] for r in by(snap, "layer_links", "repository", repo)} == {
            b.digest for b in m.blobs
        }
        assert [
            (r["digest"], r["blob_present"]) for r in by(snap, "revisions", "repository", repo)
        ] == [(m.digest, True)]
        assert [(r["tag"], r["digest"]) for r in by(snap, "tags", "repository", repo)] == [
            ("v1", m.digest)
        ]
    assert {a["kind"] for a in anomalies(snap)} == {"invalid-repository-name"}


# -- tags --------------------------------------------------------------------------------------


TRAP_TAGS = ["v1", "v1-rc", "v1.0", "v10", "_underscore", "UPPER.case-1", "Latest", "latest"]


def test_tag_names_and_listing_order_traps(store: ObjectStore) -> None:
    """Each tag points to its own manifest, so a prefix match without "/" (``tags/v1`` matching
    ``tags/v1-rc``) or a component-wise merge of byte-ordered listings shows up as a wrong
    digest. Repositories ``math`` and ``math-voila`` are the same trap one level up."""
    w = LayoutWriter(store)
    manifests = {t: tiny(f"tag-{t}") for t in TRAP_TAGS}
    for t, m in manifests.items():
        w.push("team/app", m, [t])
    long_tag = "t" * 128
    w.push("team/app", manifests["v1"], [long_tag])
    # v1 moved: the history keeps both digests, current/link only the last.
    moved = tiny("tag-v1-moved")
    w.push("team/app", moved, ["v1"])
    w.push("math", tiny("math"), ["v1"])
    w.push("math-voila", tiny("math-voila"), ["v1", "v1-rc"])

    snap = scan(store)

    expected_tags = {("team/app", t, m.digest) for t, m in manifests.items() if t != "v1"}
    expected_tags |= {
        ("team/app", "v1", moved.digest),
        ("team/app", long_tag, manifests["v1"].digest),
    }
    expected_tags |= {
        ("math", "v1", tiny("math").digest),
        ("math-voila", "v1", tiny("math-voila").digest),
        ("math-voila", "v1-rc", tiny("math-voila").digest),
    }
    assert rows(snap, "tags", "repository", "tag", "digest") == sorted(expected_tags, key=repr)
    assert all(r["problem"] is None for r in decoded_rows(snap["tags"]))

    expected_history = expected_tags | {("team/app", "v1", manifests["v1"].digest)}
    assert rows(snap, "tag_history", "repository", "tag", "digest") == sorted(
        expected_history, key=repr
    )
    assert rows(snap, "repositories", "repository", "tags", "revisions") == [
        ("math", 1, 1),
        ("math-voila", 2, 1),
        ("team/app", len(TRAP_TAGS) + 1, len(TRAP_TAGS) + 1),
    ]
    assert anomalies(snap) == []


def test_invalid_tag_name_is_a_foreign_key(store: ObjectStore) -> None:
    m = tiny("x")
    LayoutWriter(store).push("app", m, ["ok"])
    bad = k("repositories/app/_manifests/tags/.hidden/current/link")
    store.write(bad, m.digest.encode())

    snap = scan(store)

    assert rows(snap, "tags", "tag") == [("ok",)]
    assert anomaly_keys(snap, "foreign-key") == {("foreign-key", "warning", "app", bad)}


# -- links -------------------------------------------------------------------------------------


def test_sha512_alias_link_targets_the_sha256_blob(store: ObjectStore) -> None:
    import hashlib

    w = LayoutWriter(store)
    blob = make_layer("aliased", 64).blob
    hex512 = hashlib.sha512(blob.data).hexdigest()
    w.push_blob("team/app/debug", blob)
    alias_key = k(f"repositories/team/app/debug/_layers/sha512/{hex512}/link")
    store.write(alias_key, blob.digest.encode())  # content: the canonical sha256 digest

    snap = scan(store)

    assert rows(
        snap, "layer_links", "digest", "target", "alias", "blob_present", "problem", "key"
    ) == sorted(
        [
            (
                blob.digest,
                blob.digest,
                False,
                True,
                None,
                layer_link_key("team/app/debug", blob.digest),
            ),
            (f"sha512:{hex512}", blob.digest, True, True, None, alias_key),
        ],
        key=repr,
    )
    alias = by(snap, "layer_links", "key", alias_key)[0]
    assert alias["resolved_by"] == "read"  # the path cannot tell a sha512 link's content
    assert anomalies(snap) == []


CORRUPT = {
    "empty": lambda d: b"",
    "whitespace": lambda d: d.encode() + b"\n",
    "doubled": lambda d: (d + d).encode(),
}


def upper_hex(digest: str) -> bytes:
    alg, hex_ = digest.split(":")
    return f"{alg}:{hex_.upper()}".encode()


def test_corrupt_link_files_are_read_leniently_and_reported(store: ObjectStore) -> None:
    """0-byte, newline-terminated and doubled links (§7.8): the problem is recorded,
    the target is recovered (from the content when it is clear, else from the path), and each one
    is a bad-link anomaly of severity error, because Distribution's GC aborts on it."""
    repo = "team/app"
    w = LayoutWriter(store)
    images = {p: tiny(f"corrupt-{p}") for p in CORRUPT}
    for m in images.values():
        w.push(repo, m)
    layers = {p: make_layer(f"corrupt-layer-{p}", 64).blob for p in CORRUPT}
    for b in layers.values():
        w.push_blob(repo, b)
    # A tag index entry (history) that lost its content; tagged first, as the push rewrites
    # the revision link.
    w.push(repo, images["empty"], ["v1"])
    hist = tag_index_key(repo, "v1", images["empty"].digest)
    store.write(hist, b"")
    bad_keys = {hist: "empty"}
    for problem, make in CORRUPT.items():
        rev = revision_link_key(repo, images[problem].digest)
        lay = layer_link_key(repo, layers[problem].digest)
        store.write(rev, make(images[problem].digest))
        store.write(lay, make(layers[problem].digest))
        bad_keys[rev] = problem
        bad_keys[lay] = problem

    snap = scan(store)

    assert rows(snap, "revisions", "digest", "target", "blob_present", "problem") == sorted(
        [(m.digest, m.digest, True, p) for p, m in images.items()], key=repr
    )
    assert rows(snap, "layer_links", "digest", "target", "blob_present", "problem") == sorted(
        [(b.digest, b.digest, True, p) for p, b in layers.items()]
        + [(b.digest, b.digest, True, None) for m in images.values() for b in m.blobs],
        key=repr,
    )
    assert rows(snap, "tag_history", "tag", "digest", "problem") == [
        ("v1", images["empty"].digest, "empty")
    ]
    assert rows(snap, "tags", "tag", "digest", "problem") == [("v1", images["empty"].digest, None)]
    # The target was recovered, so the manifests are still read.
    assert rows(snap, "manifests", "digest", "kind", "problem") == sorted(
        [(m.digest, "image", None) for m in images.values()], key=repr
    )
    assert anomaly_keys(snap, "bad-link") == {("bad-link", "error", repo, key) for key in bad_keys}
    assert {a["kind"] for a in anomalies(snap)} == {"bad-link"}
    details = {a["key"]: a["detail"] for a in anomalies(snap, "bad-link")}
    assert "is empty (0 bytes)" in details[hist]
    for key, problem in bad_keys.items():
        word = {"empty": "empty", "whitespace": "whitespace", "doubled": "twice"}[problem]
        assert word in details[key], (key, details[key])


def _right_size_wrong_content(store: ObjectStore) -> tuple[str, str, str, str, str]:
    """Two revision links of exactly 71 bytes that are wrong: one holds another valid digest,
    one has upper-case hex. Only a read (or an S3 ETag) can tell."""
    repo = "app"
    one, other, upper = tiny("one"), tiny("other"), tiny("upper")
    w = LayoutWriter(store)
    for m in (one, other, upper):
        w.push(repo, m)
    swapped = revision_link_key(repo, one.digest)
    store.write(swapped, other.digest.encode())
    shouting = revision_link_key(repo, upper.digest)
    store.write(shouting, upper_hex(upper.digest))
    return swapped, shouting, one.digest, other.digest, upper.digest


def test_verify_links_reads_links_whose_size_is_right(store: ObjectStore) -> None:
    swapped, shouting, one, other, upper = _right_size_wrong_content(store)

    snap = scan(store, ScanOptions(verify_links=True))

    assert rows(snap, "revisions", "key", "digest", "target", "resolved_by", "problem") == sorted(
        [
            (swapped, one, other, "read", f"content {other} differs from path"),
            (shouting, upper, upper, "read", "uppercase"),
            (revision_link_key("app", other), other, other, "read", None),
        ]
    )
    assert anomaly_keys(snap, "bad-link") == {
        ("bad-link", "error", "app", swapped),
        ("bad-link", "error", "app", shouting),
    }


def test_s3_link_with_right_size_but_wrong_etag_is_read(store_factory: MakeStore) -> None:
    """Without verify_links, S3 still catches them: the ETag is not md5(path digest)."""
    store = store_factory("s3")
    swapped, shouting, one, other, upper = _right_size_wrong_content(store)

    snap = scan(store)

    assert rows(snap, "revisions", "key", "digest", "target", "resolved_by", "problem") == sorted(
        [
            (swapped, one, other, "read", f"content {other} differs from path"),
            (shouting, upper, upper, "read", "uppercase"),
            (revision_link_key("app", other), other, other, "path", None),
        ]
    )
    assert anomaly_keys(snap, "bad-link") == {
        ("bad-link", "error", "app", swapped),
        ("bad-link", "error", "app", shouting),
    }


def test_empty_tag_current_link(store: ObjectStore) -> None:
    """A 0-byte current/link cannot be recovered from its path: digest null, problem empty."""
    m = tiny("tagged")
    LayoutWriter(store).push("app", m, ["v1", "ok"])
    key = tag_current_key("app", "v1")
    store.write(key, b"")

    snap = scan(store)

    assert rows(snap, "tags", "tag", "digest", "problem") == [
        ("ok", m.digest, None),
        ("v1", None, "empty"),
    ]
    # Its history still names the digest, for fail-closed marking.
    assert rows(snap, "tag_history", "tag", "digest", "problem") == [
        ("ok", m.digest, None),
        ("v1", m.digest, None),
    ]
    assert anomaly_keys(snap, "bad-link") == {("bad-link", "error", "app", key)}
    assert "tag current" in anomalies(snap, "bad-link")[0]["detail"]


def test_links_to_missing_blobs(store: ObjectStore) -> None:
    m = tiny("gone")
    w = LayoutWriter(store)
    w.push("app", m, ["v1"])
    # A previous GC (or a partial copy) removed the manifest blob and its config.
    config = m.blobs[0]
    store.delete_many([blob_data_key(m.digest), blob_data_key(config.digest)])

    snap = scan(store)

    assert rows(snap, "revisions", "digest", "blob_present", "problem") == [(m.digest, False, None)]
    assert rows(snap, "layer_links", "digest", "blob_present") == sorted(
        [(config.digest, False), (m.blobs[1].digest, True)]
    )
    assert rows(snap, "tags", "tag", "digest", "problem") == [("v1", m.digest, None)]
    assert rows(snap, "blobs", "digest") == [(m.blobs[1].digest,)]
    assert snap["manifests"].num_rows == 0  # nothing to read
    assert anomalies(snap, "bad-link") == []  # well-formed links: dangling, not corrupt


# -- manifests ---------------------------------------------------------------------------------


def test_schema1_manifest(store: ObjectStore) -> None:
    w = LayoutWriter(store)
    l1, l2 = make_layer("s1-a", 64).blob, make_layer("s1-b", 64).blob
    w.push_blob("legacy/app", l1)
    w.push_blob("legacy/app", l2)
    doc = {
        "schemaVersion": 1,
        "name": "legacy/app",
        "tag": "old",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": l2.digest}, {"blobSum": l1.digest}],
        "history": [{"v1Compatibility": "{}"}, {"v1Compatibility": "{}"}],
    }
    digest = put_raw_manifest(store, "legacy/app", json.dumps(doc, indent=3).encode(), "old")

    snap = scan(store)

    assert rows(snap, "manifests", "digest", "kind", "media_type", "problem") == [
        (digest, "schema1", None, None)
    ]
    assert rows(snap, "references", "parent", "child", "kind") == sorted(
        [(digest, l1.digest, "layer"), (digest, l2.digest, "layer")]
    )
    assert anomalies(snap) == []


def test_index_with_a_child_absent_from_the_store(store: ObjectStore) -> None:
    present, absent = tiny("amd"), tiny("arm", architecture="arm64")
    idx = index([present, absent])
    w = LayoutWriter(store)
    for b in present.blobs:
        w.push_blob("multi", b)
    w.put_manifest("multi", present)
    w.put_manifest("multi", idx, "v1")  # absent: no blob, no revision (D3 platforms: none)

    snap = scan(store)

    assert rows(snap, "manifests", "digest", "kind", "media_type", "problem") == sorted(
        [
            (idx.digest, "index", "application/vnd.oci.image.index.v1+json", None),
            (present.digest, "image", "application/vnd.oci.image.manifest.v1+json", None),
        ]
    )
    assert rows(snap, "references", "parent", "child", "kind", "platform") == sorted(
        [
            (idx.digest, present.digest, "manifest", "linux/amd64"),
            (idx.digest, absent.digest, "manifest", "linux/arm64/v8"),
        ]
        + [(present.digest, present.blobs[0].digest, "config", None)]
        + [(present.digest, b.digest, "layer", None) for b in present.blobs[1:]],
        key=repr,
    )
    assert rows(snap, "revisions", "digest", "blob_present") == sorted(
        [(idx.digest, True), (present.digest, True)]
    )
    assert anomalies(snap, "bad-manifest") == []


def test_manifest_over_the_size_cap_is_unread(store: ObjectStore) -> None:
    cap = 4096
    small = tiny("small")
    layer = make_layer("big", 64)
    config = Blob(b'{"architecture":"amd64","os":"linux"}')
    big = image_manifest(config, [layer], annotations={"pad": "x" * (2 * cap)})
    assert big.blob.size > cap > small.blob.size
    w = LayoutWriter(store)
    w.push("app", small, ["small"])
    w.push("app", big, ["big"])

    snap = scan(store, ScanOptions(max_manifest_bytes=cap))

    assert rows(snap, "manifests", "digest", "size", "kind", "media_type", "problem") == sorted(
        [
            (
                big.digest,
                big.blob.size,
                "unread",
                None,
                f"too-large: {big.blob.size} bytes > {cap}",
            ),
            (
                small.digest,
                small.blob.size,
                "image",
                "application/vnd.oci.image.manifest.v1+json",
                None,
            ),
        ],
        key=repr,
    )
    assert [r["parent"] for r in decoded_rows(snap["references"])].count(big.digest) == 0
    bad = anomalies(snap, "bad-manifest")
    assert [(a["severity"], a["key"]) for a in bad] == [("error", blob_data_key(big.digest))]
    assert "too-large" in bad[0]["detail"]


def test_unknown_media_type_and_unparsable_manifests(store: ObjectStore) -> None:
    layer, config = make_layer("unknown-l", 64).blob, Blob(b"{}")
    w = LayoutWriter(store)
    w.push_blob("odd", layer)
    w.push_blob("odd", config)
    custom = "application/vnd.example.custom+json"
    doc = {
        "schemaVersion": 2,
        "mediaType": custom,
        "config": config.descriptor("application/vnd.example.config"),
        "layers": [layer.descriptor("application/vnd.example.layer")],
    }
    unknown = put_raw_manifest(store, "odd", json.dumps(doc).encode(), "custom")
    garbage = put_raw_manifest(store, "odd", b'{"schemaVersion": 2, "mediaType": ', "broken")

    snap = scan(store)

    assert rows(snap, "manifests", "digest", "kind", "media_type", "problem") == sorted(
        [
            (unknown, "unknown", custom, f"unknown-media-type: {custom}"),
            (garbage, "unknown", None, "unparsable: JSONDecodeError"),
        ],
        key=repr,
    )
    # Whatever digests an unknown document names are kept as references (fail closed).
    assert rows(snap, "references", "parent", "child", "kind") == sorted(
        [(unknown, config.digest, "config"), (unknown, layer.digest, "layer")]
    )
    assert anomaly_keys(snap, "bad-manifest") == {
        ("bad-manifest", "error", None, blob_data_key(d)) for d in (unknown, garbage)
    }


# -- keys that are not the layout ------------------------------------------------------------


def test_foreign_keys_are_reported_never_dropped(store: ObjectStore) -> None:
    m = tiny("ok")
    LayoutWriter(store).push("team/app", m, ["v1"])
    hex_ = "ab" * 32
    foreign = {
        k("repositories/team/app/README.md"): None,
        k("repositories/team/app/_foo/bar"): "team/app",
        k(f"blobs/sha256/zz/{hex_}/data"): None,
        k("extra/notes.txt"): None,
        k("blobs/sha256/ab/stray"): None,
        k("repositories/team/app/_manifests/junk"): "team/app",
    }
    for key in foreign:
        store.write(key, b"not part of the layout")
    tmp = {
        k(
            f"repositories/team/app/_layers/sha256/{hex_}/link.0198c0de-1111-7222-8333-444455556666.tmp"
        ): "team/app",
        k(f"blobs/sha256/ab/{hex_}/data.0198c0de-1111-7222-8333-444455556666.tmp"): None,
    }
    for key in tmp:
        store.write(key, b"partial")

    snap = scan(store)

    assert anomaly_keys(snap, "foreign-key") == {
        ("foreign-key", "warning", repo, key) for key, repo in foreign.items()
    }
    assert anomaly_keys(snap, "tmp-file") == {
        ("tmp-file", "warning", repo, key) for key, repo in tmp.items()
    }
    details = {a["key"]: a["detail"] for a in anomalies(snap)}
    assert "'_foo'" in details[k("repositories/team/app/_foo/bar")]
    assert "fan-out" in details[k(f"blobs/sha256/zz/{hex_}/data")]
    assert "outside blobs/ and repositories/" in details[k("extra/notes.txt")]
    for key in foreign:
        assert by(snap, "anomalies", "key", key)[0]["size"] == len(b"not part of the layout")
    # "_foo" is never taken for a repository, nor is the namespace "team".
    assert rows(snap, "repositories", "repository") == [("team/app",)]
    assert rows(snap, "blobs", "digest") == sorted((b.digest,) for b in (*m.blobs, m.blob))


def test_files_directly_at_a_listing_level_are_reported(store: ObjectStore) -> None:
    LayoutWriter(store).push("team/app", tiny("ok"), ["v1"])
    stray = [
        k("notes.txt"),
        k("blobs/.DS_Store"),
        k("blobs/sha256/stray"),
        k("repositories/README"),
    ]
    for key in stray:
        store.write(key, b"x")

    snap = scan(store)

    assert {a["key"] for a in anomalies(snap, "foreign-key")} == set(stray)


# -- uploads -----------------------------------------------------------------------------------


def test_stale_uploads_and_uuid7_ids(store: ObjectStore) -> None:
    w = LayoutWriter(store)
    v4 = str(uuid.UUID(int=0x1234, version=4))
    w.stale_upload("team/app", v4, b"x" * 36, STARTED)
    # A Distribution 3.1+ upload (UUIDv7 id) that lost its startedat.
    ms = int(datetime(2026, 11, 21, 9, 15, 30, 250_000, tzinfo=UTC).timestamp() * 1000)
    v7 = uuid7(ms)
    store.write(upload_key("team/app", v7, "hashstates/sha256/0"), b"sha\x03" + bytes(104))
    store.write(upload_key("team/app", v7, "data"), b"")
    # An unparsable startedat falls back to the id's time too.
    v7b = uuid7(ms + 1000)
    store.write(upload_key("other", v7b, "startedat"), b"yesterday")

    snap = scan(store)

    got = {r["upload_id"]: r for r in decoded_rows(snap["uploads"])}
    assert set(got) == {v4, v7, v7b}
    assert (
        got[v4]["repository"],
        got[v4]["started_at"],
        got[v4]["started_source"],
        got[v4]["data_size"],
        got[v4]["problem"],
        got[v4]["multipart_upload_id"],
    ) == ("team/app", STARTED, "startedat", 36, None, None)
    assert got[v4]["keys"] == sorted(
        upload_key("team/app", v4, n)
        for n in ("data", "startedat", "hashstates/sha256/0", "hashstates/sha256/36")
    )
    assert got[v4]["key_sizes"] == [
        {"data": 36, "startedat": 20}.get(key.rsplit("/", 1)[-1], 108) for key in got[v4]["keys"]
    ]
    assert (got[v7]["started_at"], got[v7]["started_source"], got[v7]["problem"]) == (
        datetime.fromtimestamp(ms / 1000, tz=UTC),
        "uuid7",
        "no startedat",
    )
    assert got[v7]["data_size"] == 0
    assert (got[v7b]["repository"], got[v7b]["started_source"], got[v7b]["problem"]) == (
        "other",
        "uuid7",
        "unparsable startedat",
    )
    assert got[v7b]["started_at"] == datetime.fromtimestamp((ms + 1000) / 1000, tz=UTC)
    assert rows(snap, "repositories", "repository", "kind", "uploads") == [
        ("other", "upload-only", 1),
        ("team/app", "upload-only", 2),
    ]
    assert anomalies(snap) == []


def test_s3_incomplete_multipart_upload(store_factory: MakeStore) -> None:
    """On S3 an abandoned upload's data is only an incomplete multipart upload (§2.2)."""
    store: Any = store_factory("s3")
    upload_id = str(uuid.UUID(int=0xFEED, version=4))
    data_key = upload_key("team/app", upload_id, "data")
    store.write(upload_key("team/app", upload_id, "startedat"), b"2026-11-20T08:30:00Z")
    store.write(upload_key("team/app", upload_id, "hashstates/sha256/0"), bytes(108))
    mpu = store.client.create_multipart_upload(Bucket=store.bucket, Key=store.full_key(data_key))
    store.client.upload_part(
        Bucket=store.bucket,
        Key=store.full_key(data_key),
        UploadId=mpu["UploadId"],
        PartNumber=1,
        Body=b"y" * 36,
    )
    # A multipart upload with no upload directory at all: reported, not dropped.
    stray_key = k("repositories/team/app/_layers/stray")
    stray = store.client.create_multipart_upload(Bucket=store.bucket, Key=store.full_key(stray_key))
    # An upload with no startedat whose id is UUIDv4: its age comes from the multipart upload.
    v4 = str(uuid.UUID(int=0xBEEF, version=4))
    v4_key = upload_key("team/app", v4, "data")
    v4_mpu = store.client.create_multipart_upload(Bucket=store.bucket, Key=store.full_key(v4_key))
    try:
        snap = scan(store)
    finally:
        for key, m in ((data_key, mpu), (stray_key, stray), (v4_key, v4_mpu)):
            store.client.abort_multipart_upload(
                Bucket=store.bucket, Key=store.full_key(key), UploadId=m["UploadId"]
            )

    got = {r["upload_id"]: r for r in decoded_rows(snap["uploads"])}
    assert set(got) == {upload_id, v4}
    row = got[upload_id]
    assert (
        row["started_at"],
        row["started_source"],
        row["data_size"],
        row["multipart_key"],
        row["multipart_upload_id"],
        row["problem"],
    ) == (STARTED, "startedat", None, data_key, mpu["UploadId"], None)
    assert row["keys"] == sorted(
        upload_key("team/app", upload_id, n) for n in ("startedat", "hashstates/sha256/0")
    )
    assert (got[v4]["started_source"], got[v4]["problem"], got[v4]["keys"]) == (
        "multipart",
        "no startedat",
        [],
    )
    assert got[v4]["multipart_upload_id"] == v4_mpu["UploadId"]
    assert rows(snap, "repositories", "repository", "kind", "uploads") == [
        ("team/app", "upload-only", 2)
    ]
    assert [(a["kind"], a["key"]) for a in anomalies(snap)] == [
        ("foreign-multipart-upload", stray_key)
    ]


# -- link resolution without reads (S3 ETags) ------------------------------------------------


class _CountingReads:
    """A store proxy that records every key read."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.reads: list[str] = []

    def read(self, key: str, *, max_bytes: int) -> bytes:
        self.reads.append(key)
        return self.inner.read(key, max_bytes=max_bytes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_tag_links_resolved_by_their_md5_on_s3_and_azure_and_by_reading_elsewhere(
    store: ObjectStore, request: pytest.FixtureRequest
) -> None:
    """A tag link's MD5 (S3's ETag; Azure's Content-MD5, which a single Put Blob sets) names
    its content among the repository's manifests: no read. A link whose MD5 matches none (a
    trailing newline, a doubled digest, a manifest that is not there) is read."""
    kind = request.node.callspec.params["store"]
    m, n = tiny("etag-a"), tiny("etag-b")
    w = LayoutWriter(store)
    w.push("app", m, ["good", "newline", "doubled"])
    w.push("app", n, ["other"])
    store.write(tag_current_key("app", "newline"), m.digest.encode() + b"\n")
    store.write(tag_current_key("app", "doubled"), (m.digest * 2).encode())
    dangling = "sha256:" + "0" * 64  # no blob, no revision: no ETag candidate either
    store.write(tag_current_key("app", "dangling"), dangling.encode())

    counting = _CountingReads(store)
    snap = scan(counting)  # type: ignore[arg-type]

    good = {"s3": "etag", "azure": "content-md5"}.get(kind, "read")
    link_reads = sorted(key for key in counting.reads if key.endswith("/link"))
    tags_read = ["dangling", "doubled", "newline"] + ([] if good != "read" else ["good", "other"])
    assert link_reads == sorted(tag_current_key("app", t) for t in tags_read)
    assert rows(snap, "tags", "tag", "digest", "resolved_by", "problem") == sorted(
        [
            ("dangling", dangling, "read", None),
            ("doubled", m.digest, "read", "doubled"),
            ("good", m.digest, good, None),
            ("newline", m.digest, "read", "whitespace"),
            ("other", n.digest, good, None),
        ],
        key=repr,
    )
    # Revision, tag-index and _layers links are trusted from their path (right size and,
    # where the ETag is an MD5, the right ETag): no read at all.
    assert {r["resolved_by"] for r in decoded_rows(snap["revisions"])} == {"path"}
    assert {r["resolved_by"] for r in decoded_rows(snap["layer_links"])} == {"path"}
    assert anomaly_keys(snap, "bad-link") == {
        ("bad-link", "error", "app", tag_current_key("app", t)) for t in ("newline", "doubled")
    }


def test_tag_links_read_while_listing_go_each_to_its_own_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem's listing tells no MD5: its tag links are read while it runs, batch by
    batch, and each content is matched to its tag by the tag's row. Over a listing cut into
    many blocks (so many batches, the walkers' outputs interleaved), every tag gets its own
    manifest and no link is read twice."""
    monkeypatch.setattr(filesystem, "_BLOCK", 700)  # a few keys a block
    store = FilesystemStore(tmp_path)
    w = LayoutWriter(store)
    want = []
    for r, repo in enumerate(["MyOrg/app", "a", "b/c", "d-e/f_g", "z"]):
        for t in range(4):
            m = tiny(f"own-{r}-{t}")
            w.push(repo, m, [f"v{t}", f"w{t}"])
            want += [(repo, f"v{t}", m.digest), (repo, f"w{t}", m.digest)]
    counting = _CountingReads(store)
    snap = scan(counting)  # type: ignore[arg-type]
    assert rows(snap, "tags", "repository", "tag", "digest") == sorted(want, key=repr)
    tag_reads = [key for key in counting.reads if key.endswith("/current/link")]
    assert sorted(tag_reads) == sorted(tag_current_key(r, t) for r, t, _ in want)


# -- layout roots ------------------------------------------------------------------------------


class _LeadingSlash:
    """Presents a store to LayoutWriter so that every key gets a leading "/" (D2 Azure names)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url

    def write(self, key: str, data: bytes) -> Any:
        return self.inner.write("/" + key, data)


def test_azure_d2_names_with_a_leading_slash(store_factory: MakeStore) -> None:
    store = store_factory("azure")
    m = tiny("d2")
    LayoutWriter(_LeadingSlash(store)).push("team/app", m, ["v1"])  # type: ignore[arg-type]

    snap = scan(store)

    assert snap.meta["layout_root"] == "/docker/registry/v2/"
    assert rows(snap, "tags", "repository", "tag", "digest", "key") == [
        ("team/app", "v1", m.digest, "/" + tag_current_key("team/app", "v1"))
    ]
    assert rows(snap, "blobs", "digest", "key") == sorted(
        (b.digest, "/" + blob_data_key(b.digest)) for b in (*m.blobs, m.blob)
    )
    assert rows(snap, "manifests", "digest", "kind") == [(m.digest, "image")]
    assert anomalies(snap) == []


def test_azure_store_with_both_naming_styles(store_factory: MakeStore) -> None:
    store = store_factory("azure")
    old, new = tiny("old-d2"), tiny("new-d3")
    LayoutWriter(_LeadingSlash(store)).push("team/app", old, ["v1"])  # type: ignore[arg-type]
    LayoutWriter(store).push("team/app", new, ["v1"])

    with pytest.raises(LayoutError) as err:
        scan(store)
    assert "--layout-root" in str(err.value)
    assert "\n" not in str(err.value)

    d2 = scan(store, ScanOptions(layout_root="/docker/registry/v2/"))
    d3 = scan(store, ScanOptions(layout_root="docker/registry/v2/"))
    assert (d2.meta["layout_root"], d3.meta["layout_root"]) == (
        "/docker/registry/v2/",
        "docker/registry/v2/",
    )
    assert rows(d2, "tags", "tag", "digest") == [("v1", old.digest)]
    assert rows(d3, "tags", "tag", "digest") == [("v1", new.digest)]
    assert all(key.startswith("/") for (key,) in rows(d2, "blobs", "key"))
    assert not any(key.startswith("/") for (key,) in rows(d3, "blobs", "key"))


def test_store_without_a_layout(store: ObjectStore) -> None:
    store.write("something/else", b"x")
    with pytest.raises(LayoutError, match="no docker/registry/v2/ here"):
        scan(store)
