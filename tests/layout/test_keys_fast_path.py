"""classify's fast path for the common key shapes must agree with the general grammar on every
key, the common shapes and their near misses alike."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from regsweep.layout.classify_columns import split_kinds
from regsweep.layout.keys import _classify_general, classify
from regsweep.scan.scanner import _KEY_SHAPE
from regsweep.storage.columns import LISTING_SCHEMA

HEX = "ab" + "0123456789abcdef" * 3 + "0123456789abcd"
assert len(HEX) == 64

DIGEST_PATHS = [
    f"sha256/{HEX}",
    f"sha256/{HEX.upper()}",
    f"sha256/{HEX[:-1]}",
    f"sha256/{HEX}0",
    f"sha256/{HEX[:-1]}g",
    f"sha512/{HEX}{HEX}",
    f"tarsum/v1/sha256/{HEX}",
    f"sha256//{HEX}",
]
REPOS = [
    "r",
    "a/b/c",
    "",
    "_x",
    "a/_layers",
    "a/_manifests",
    "a/_uploads/x",
    "a/tags",
    "a/revisions",
    "Upper/x",
    "a//b",
]
TAGS = ["latest", "_layers", "_manifests", "v1.0", ".bad", "-bad", "a" * 129, "current", "index"]


def _keys() -> list[str]:
    keys: list[str] = []
    for dp in DIGEST_PATHS:
        alg, _, hex_ = dp.rpartition("/")
        for h2 in (hex_[:2], "zz", ""):
            keys.append(f"blobs/{alg}/{h2}/{hex_}/data")
        keys += [f"blobs/{dp}/data", f"blobs/{alg}/{hex_[:2]}/{hex_}/link", f"x/{dp}/data"]
    for repo, dp in itertools.product(REPOS, DIGEST_PATHS):
        base = f"repositories/{repo}"
        keys += [
            f"{base}/_layers/{dp}/link",
            f"{base}/_layers/{dp}/data",
            f"{base}/_manifests/revisions/{dp}/link",
            f"{base}/_manifests/revisions/{dp}/signatures/{dp}/link",
            f"{base}/_manifests/{dp}/link",
            f"{base}/revisions/{dp}/link",
            f"{base}/_uploads/{dp}/link",
        ]
        for tag in TAGS:
            keys += [
                f"{base}/_manifests/tags/{tag}/index/{dp}/link",
                f"{base}/_manifests/tags/{tag}/{dp}/link",
                f"{base}/tags/{tag}/index/{dp}/link",
            ]
    for repo, tag in itertools.product(REPOS, TAGS):
        base = f"repositories/{repo}"
        keys += [
            f"{base}/_manifests/tags/{tag}/current/link",
            f"{base}/_manifests/tags/{tag}/current/data",
            f"{base}/_manifests/tags/{tag}/current/link.5f0e8a44-1c41-4d2e-9c4a-8e1e7f4c2a11.tmp",
            f"{base}/_layers/tags/{tag}/current/link",
            f"{base}/x/tags/{tag}/current/link",
            f"{base}/_manifests/x/{tag}/current/link",
        ]
    keys += ["link", "data", "repositories/link", "blobs/data", "repositories/_layers/link"]
    return keys


@pytest.mark.parametrize("chunk", range(4))
def test_fast_path_agrees_with_general_grammar(chunk: int) -> None:
    keys = _keys()[chunk::4]
    assert len(keys) > 100
    for key in keys:
        assert classify(key) == _classify_general(key), key


def test_column_classifier_agrees_with_classify() -> None:
    """The scan classifies listings column-wise (layout/classify_columns.py); every key it
    claims must get the answer classify gives, and every key it leaves must be one that
    classify does not put in a common shape with a sha256 digest. The key the scan builds
    back from a claimed row's parts is the row's key."""
    keys = [*_keys(), "", "repositories/r/_layers/sha256/" + HEX + "/link/"]
    root = "docker/registry/v2/"
    listing = pa.Table.from_pydict(
        {
            "key": [root + k for k in keys],
            "size": list(range(len(keys))),
            "last_modified": [datetime(2024, 1, 1, tzinfo=UTC)] * len(keys),
            "etag": [None] * len(keys),
            "content_md5": [None] * len(keys),
        },
        schema=LISTING_SCHEMA,
    )
    common, rest = split_kinds(listing, len(root))
    claimed = 0
    for kind, table in common.items():
        # The scan holds no key for these rows: the key it builds back must be the listed one.
        built = _KEY_SHAPE[kind].keys(table, root)
        assert built.to_pylist() == table["key"].to_pylist(), kind
        for row in table.to_pylist():
            rec = classify(row["key"][len(root) :])
            assert (rec.kind, rec.repo, rec.tag, rec.digest) == (
                kind,
                row["repo"],
                row["tag"],
                row["digest"],
            ), row["key"]
            assert row["size"] == keys.index(row["key"][len(root) :])  # rows stay whole
            claimed += 1
    assert claimed + rest.num_rows == len(keys)
    assert {k: t.num_rows > 0 for k, t in common.items()} == dict.fromkeys(common, True)
    # The canonical shapes are all claimed (the rest is what classify decides one by one).
    canonical = {
        f"blobs/sha256/ab/{HEX}/data",
        *(f"repositories/{r}/_layers/sha256/{HEX}/link" for r in ("r", "a/b/c", "Upper/x")),
        f"repositories/a/tags/_manifests/revisions/sha256/{HEX}/link",
        f"repositories/r/_manifests/tags/v1.0/index/sha256/{HEX}/link",
        "repositories/a/b/c/_manifests/tags/_layers/current/link",
    }
    assert canonical <= set(keys)
    assert not canonical & {k[len(root) :] for k in rest["key"].to_pylist()}
