"""Manifest classification and reference edges for every media type of storage-layout.md §3."""

import json

from regsweep.layout.manifest import (
    ARTIFACT,
    IMAGE,
    INDEX,
    SCHEMA1,
    UNKNOWN,
    parse_manifest,
)


def d(c: str) -> str:
    return "sha256:" + c * 64


def desc(c, mt="application/octet-stream", **kw):
    return {"mediaType": mt, "digest": d(c), "size": 10, **kw}


def refs(p):
    return sorted((r.kind, r.digest) for r in p.references)


def test_docker_schema2():
    p = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": desc("1"),
                "layers": [desc("2"), desc("3")],
            }
        ).encode()
    )
    assert p.kind == IMAGE and p.problem is None
    assert refs(p) == [("config", d("1")), ("layer", d("2")), ("layer", d("3"))]


def test_oci_manifest_without_media_type_and_with_subject_and_artifact_type():
    p = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "artifactType": "application/vnd.example.sbom",
                "config": desc("4"),
                "layers": [desc("5")],
                "subject": desc("6"),
            }
        ).encode()
    )
    assert (
        p.kind == IMAGE
        and p.subject == d("6")
        and p.artifact_type == "application/vnd.example.sbom"
    )
    sub = [r for r in p.references if r.kind == "subject"]
    assert len(sub) == 1 and not sub[0].strong


def test_oci_index_without_media_type_with_platforms():
    p = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    desc(
                        "7",
                        "application/vnd.oci.image.manifest.v1+json",
                        platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
                    ),
                    desc("8", "application/vnd.oci.image.manifest.v1+json"),
                    desc("9", "application/vnd.in-toto+json"),
                ],
            }
        ).encode()
    )
    assert p.kind == INDEX and p.problem is None
    assert [(r.kind, r.platform) for r in p.references] == [
        ("manifest", "linux/arm64/v8"),
        ("manifest", None),
        ("blob", None),
    ]


def test_docker_manifest_list():
    p = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                "manifests": [desc("a", "application/vnd.docker.distribution.manifest.v2+json")],
            }
        ).encode()
    )
    assert p.kind == INDEX and refs(p) == [("manifest", d("a"))]


def test_schema1():
    p = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 1,
                "name": "x",
                "tag": "y",
                "fsLayers": [{"blobSum": d("b")}, {"blobSum": d("c")}],
            }
        ).encode()
    )
    assert p.kind == SCHEMA1 and refs(p) == [("layer", d("b")), ("layer", d("c"))]


def test_withdrawn_artifact_manifest():
    p = parse_manifest(
        json.dumps(
            {
                "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
                "schemaVersion": 2,
                "blobs": [desc("d")],
                "subject": desc("e"),
            }
        ).encode()
    )
    assert p.kind == ARTIFACT and ("blob", d("d")) in refs(p) and p.subject == d("e")


def test_foreign_layer_urls_are_flagged():
    p = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": desc("1"),
                "layers": [
                    desc(
                        "2",
                        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                        urls=["https://x"],
                    )
                ],
            }
        ).encode()
    )
    assert [r.has_urls for r in p.references] == [False, True]


def test_unknown_media_type_keeps_what_it_can_find_and_reports_a_problem():
    p = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/x-weird",
                "config": desc("1"),
                "layers": [desc("2")],
            }
        ).encode()
    )
    assert p.kind == UNKNOWN and p.problem.startswith("unknown-media-type")
    assert refs(p) == [("config", d("1")), ("layer", d("2"))]


def test_garbage_never_raises():
    for data in (b"", b"{", b"[]", b"\xff", b'{"schemaVersion": 3}', b"null"):
        p = parse_manifest(data)
        assert p.kind == UNKNOWN and p.problem


def test_hostile_json_is_unparsable_and_never_raises():
    """What Distribution's JSON decoder (Go) rejects is unparsable here too, so the manifest's
    repository is kept whole: invalid UTF-8, a UTF-16 document, NaN, nesting 5,000 deep."""
    for data in (
        b'{"schemaVersion": 2, "mediaType": "\xff"}',
        '{"schemaVersion": 2}'.encode("utf-16"),
        b'{"schemaVersion": NaN}',
        b"[" * 5000 + b"]" * 5000,
    ):
        p = parse_manifest(data)
        assert p.kind == UNKNOWN and p.problem and p.problem.startswith("unparsable"), data[:20]


def test_a_size_beyond_int64_is_no_size():
    big = {**desc("2"), "size": 2**64 - 1}
    p = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": desc("1"),
                "layers": [big, {**desc("3"), "size": 10**30}],
            }
        ).encode()
    )
    assert p.problem is None
    assert [r.size for r in p.references] == [10, None, None]


def test_invalid_descriptor_digest_is_a_problem():
    p = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": desc("1"),
                "layers": [{"digest": "sha256:XYZ", "size": 1}],
            }
        ).encode()
    )
    assert p.problem and "invalid digest" in p.problem
