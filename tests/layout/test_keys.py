"""The key grammar of storage-layout.md §1.2, §1.6-§1.8, one case per rule and edge case."""

import pytest

from regsweep.layout.keys import Kind, classify, valid_repository_name, valid_tag

H = "ab" + "c" * 62
H512 = "d" * 128


@pytest.mark.parametrize(
    ("rel", "kind", "repo", "tag", "digest"),
    [
        (f"blobs/sha256/ab/{H}/data", Kind.BLOB_DATA, None, None, f"sha256:{H}"),
        (f"blobs/sha512/dd/{H512}/data", Kind.BLOB_DATA, None, None, f"sha512:{H512}"),
        (
            f"repositories/team/app/_layers/sha256/{H}/link",
            Kind.LAYER_LINK,
            "team/app",
            None,
            f"sha256:{H}",
        ),
        (
            f"repositories/team/app/debug/_layers/sha512/{H512}/link",
            Kind.LAYER_LINK,
            "team/app/debug",
            None,
            f"sha512:{H512}",
        ),
        (
            f"repositories/a/_manifests/revisions/sha256/{H}/link",
            Kind.REVISION_LINK,
            "a",
            None,
            f"sha256:{H}",
        ),
        (
            "repositories/a/b/_manifests/tags/latest/current/link",
            Kind.TAG_CURRENT,
            "a/b",
            "latest",
            None,
        ),
        (
            "repositories/a/_manifests/tags/_under/current/link",
            Kind.TAG_CURRENT,
            "a",
            "_under",
            None,
        ),
        (
            "repositories/a/_manifests/tags/v1.2.0-rc.1/current/link",
            Kind.TAG_CURRENT,
            "a",
            "v1.2.0-rc.1",
            None,
        ),
        (
            f"repositories/a/_manifests/tags/v1/index/sha256/{H}/link",
            Kind.TAG_INDEX,
            "a",
            "v1",
            f"sha256:{H}",
        ),
        (
            "repositories/MyOrg/app/_manifests/tags/UPPER/current/link",
            Kind.TAG_CURRENT,
            "MyOrg/app",
            "UPPER",
            None,
        ),
    ],
)
def test_valid_keys(rel, kind, repo, tag, digest):
    rec = classify(rel)
    assert (rec.kind, rec.repo, rec.tag, rec.digest) == (kind, repo, tag, digest)


def test_nested_repository_boundary_is_the_first_reserved_component():
    assert classify(f"repositories/team/app/_layers/sha256/{H}/link").repo == "team/app"
    assert classify(f"repositories/team/app/debug/_layers/sha256/{H}/link").repo == "team/app/debug"


@pytest.mark.parametrize(
    "name",
    ["data", "startedat", "hashstates/sha256/0", "hashstates/sha256/36"],
)
def test_upload_files(name):
    rec = classify(f"repositories/a/_uploads/eec02bc0-3870-4cfb-beb4-021a38f094c1/{name}")
    assert rec.kind is Kind.UPLOAD_FILE and rec.name == name and rec.repo == "a"


def test_upload_id_without_dashes_is_accepted():
    rec = classify("repositories/a/_uploads/eec02bc038704cfbbeb4021a38f094c1/startedat")
    assert rec.kind is Kind.UPLOAD_FILE


def test_tarsum_link_is_a_layer_link_with_a_tarsum_digest():
    rec = classify(f"repositories/a/_layers/tarsum/v1/sha256/{H}/link")
    assert rec.kind is Kind.LAYER_LINK and rec.digest == f"tarsum.v1+sha256:{H}"


def test_legacy_signature_link():
    rec = classify(f"repositories/a/_manifests/revisions/sha256/{H}/signatures/sha256/{H}/link")
    assert rec.kind is Kind.LEGACY_SIGNATURE and rec.digest == f"sha256:{H}"


@pytest.mark.parametrize(
    "rel",
    [
        f"repositories/a/_manifests/revisions/sha256/{H}/link.0198ea3c-1111-7222-8333-444455556666.tmp",
        f"blobs/sha256/ab/{H}/data.0198ea3c-1111-7222-8333-444455556666.tmp",
    ],
)
def test_tmp_files(rel):
    assert classify(rel).kind is Kind.TMP


@pytest.mark.parametrize(
    ("rel", "reason"),
    [
        ("scheduler-state.json", "outside"),
        (f"blobs/sha256/zz/{H}/data", "fan-out"),
        (f"blobs/sha256/ab/{H[:-1]}/data", "not a valid digest"),
        (f"blobs/blake3/ab/{H}/data", "not a valid digest"),
        (f"blobs/sha256/ab/{H}/extra", "not a blob data path"),
        ("repositories/a/_foo/x", "unknown reserved directory"),
        ("repositories/a/README", "no _layers"),
        ("repositories/a/_uploads/not-a-uuid/data", "not a UUID"),
        ("repositories/a/_manifests/tags/v1/current/other", "unknown file under a tag"),
        ("repositories/a/_manifests/tags/.bad/current/link", "invalid tag name"),
        ("repositories/a/_manifests/weird/x", "unknown directory"),
        (f"repositories/a/_layers/sha256/{H.upper()}/link", "not a valid digest"),
    ],
)
def test_foreign_keys_are_recorded_with_a_reason(rel, reason):
    rec = classify(rel)
    assert rec.kind is Kind.FOREIGN
    assert reason in (rec.detail or "")


def test_repository_with_invalid_name_is_still_classified():
    # Distribution skips it, so we must still see what it references (fail closed).
    rec = classify(f"repositories/_foo/bar/_layers/sha256/{H}/link")
    assert rec.kind is Kind.LAYER_LINK and rec.repo == "_foo/bar"
    assert not valid_repository_name("_foo/bar")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a", True),
        ("team/app/debug", True),
        ("a__b/c--d/e.f", True),
        ("MyOrg/app", True),
        ("myorg/App", False),
        ("App", False),
        ("_foo/bar", False),
        ("foo/-bar", False),
        ("a//b", False),
    ],
)
def test_repository_name_grammar(name, ok):
    assert valid_repository_name(name) is ok


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("latest", True),
        ("_under", True),
        ("UPPER.case-1", True),
        ("a" * 128, True),
        ("a" * 129, False),
        (".x", False),
        ("-x", False),
    ],
)
def test_tag_grammar(tag, ok):
    assert valid_tag(tag) is ok
