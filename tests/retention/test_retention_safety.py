"""Safety of retention through the mark and plan phases (retention-policy.md §6.7 "Safety"),
and determinism: shuffled snapshot rows give a byte-identical plan."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
from retention_helpers import (
    NOW,
    Layout,
    decision,
    deleted_tags,
    evaluate,
    gc_plan,
    kept_tags,
    one_policy,
    tiny,
)

from imagegen import Blob, cosign_signature, cosign_tag, index, referrer
from regsweep.layout.keys import blob_data_key, revision_link_key
from regsweep.scan.snapshot import Snapshot

DAY = timedelta(days=1)
EXPIRE_OLD_AND_UNTAGGED = [
    {"name": "keep-v2", "action": "keep", "select": {"tags": {"any": ["exact:v2"]}}},
    {
        "name": "expire",
        "action": "delete",
        "select": {"state": "any"},
        "when": {"older_than": {"age": "7d"}},
    },
]


def _planned(plan, kind: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {
        r["digest"] if kind in ("revision", "blob") else r["tag"]
        for r in plan.rows.to_pylist()
        if r["kind"] == kind
    }


def test_kept_index_keeps_all_its_children(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    kept_children = [tiny("k-amd64"), tiny("k-arm64", architecture="arm64")]
    gone_children = [tiny("g-amd64"), tiny("g-arm64", architecture="arm64")]
    kept, gone = index(kept_children), index(gone_children)
    layout.push("app", gone, ["v1"], age=30 * DAY)
    layout.push("app", kept, ["v2"], age=20 * DAY)
    snap = layout.scan()
    result = evaluate(one_policy(EXPIRE_OLD_AND_UNTAGGED), layout, snap=snap)
    assert deleted_tags(result) == {"v1"} and kept_tags(result) == {"v2"}
    # Index children are never candidates: no decision rows for them.
    decided = {r["digest"] for r in result.decisions.to_pylist()}
    assert decided == {kept.digest, gone.digest}
    marked, plan = gc_plan(snap, result)
    revisions = _planned(plan, "revision")
    assert revisions == {gone.digest, *(c.digest for c in gone_children)}
    blobs = _planned(plan, "blob")
    for c in kept_children:
        assert c.digest not in blobs and not {b.digest for b in c.blobs} & blobs
        assert c.digest in marked.live_manifests["app"]
    for c in gone_children:
        assert c.digest in blobs and {b.digest for b in c.blobs} <= blobs
    assert _planned(plan, "tag") == {"v1"}
    assert not plan.refusals


def test_signatures_and_referrers_follow_their_subject(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    kept, gone = tiny("kept"), tiny("gone")
    layout.push("app", gone, ["v1"], age=30 * DAY)
    layout.push("app", kept, ["v2"], age=30 * DAY)
    for subject in (kept, gone):
        layout.push(
            "app",
            cosign_signature(subject, f"registry/app@{subject.digest}"),
            [cosign_tag(subject.digest)],
            age=30 * DAY,
        )
        sbom = referrer(
            subject,
            artifact_type="application/spdx+json",
            payload=f"sbom of {subject.digest}".encode(),
            payload_media_type="application/spdx+json",
        )
        layout.push("app", sbom, age=30 * DAY)  # untagged, with subject
    snap = layout.scan()
    result = evaluate(one_policy(EXPIRE_OLD_AND_UNTAGGED), layout, snap=snap)
    # Cosign tags and referrers are not candidates, whatever the rules say.
    assert deleted_tags(result) == {"v1"}
    assert {r["tag"] for r in result.decisions.to_pylist() if r["tag"]} == {"v1", "v2"}
    marked, plan = gc_plan(snap, result)
    assert _planned(plan, "tag") == {"v1", cosign_tag(gone.digest)}
    assert cosign_tag(kept.digest) in marked.kept_tags["app"]
    live = marked.live_manifests["app"]
    assert kept.digest in live and gone.digest not in live
    reasons = {r["tag"]: r["reason"] for r in plan.rows.to_pylist() if r["kind"] == "tag"}
    assert reasons == {"v1": "retention", cosign_tag(gone.digest): "orphan-referrer-tag"}
    planned_revisions = _planned(plan, "revision")
    assert len(live) == 3  # kept image, its signature, its SBOM referrer
    assert not live & planned_revisions


def test_legacy_sig_tags_do_not_count_toward_keep_n(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    images = [tiny(f"i{i}") for i in range(3)]
    for i, img in enumerate(images):
        layout.push("app", img, [f"build-{i}"], age=(10 - i) * DAY)
        # The signature is pushed later than every build: it would take the newest slots.
        sig = cosign_signature(img, f"registry/app:build-{i}")
        layout.push("app", sig, [cosign_tag(img.digest)], age=DAY)
    rules = [
        {
            "name": "keep-2",
            "action": "keep",
            "select": {"tags": {"any": ["glob:*"]}},
            "when": {"rank": {"top": 2, "by": "pushed"}},
        },
        {"name": "rest", "action": "delete", "select": {"tags": {"any": ["glob:*"]}}},
    ]
    result = evaluate(one_policy(rules), layout)
    assert kept_tags(result) == {"build-1", "build-2"}
    assert deleted_tags(result) == {"build-0"}
    assert decision(result, "build-2")["rank"] == 1 and decision(result, "build-2")["window"] == 3


def test_an_unparsable_manifest_keeps_the_whole_repository(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    layout.push("app", tiny("a"), ["old-1"], age=30 * DAY)
    layout.push("app", tiny("b"), ["old-2"], age=30 * DAY)
    layout.push("other", tiny("c"), ["old-3"], age=30 * DAY)
    bad = Blob(b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",')
    layout.store.write(blob_data_key(bad.digest), bad.data)
    layout.store.write(revision_link_key("app", bad.digest), bad.digest.encode())
    for key in (blob_data_key(bad.digest), revision_link_key("app", bad.digest)):
        layout.store.set_mtime(key, NOW - 30 * DAY)
    rules = [{"name": "all", "action": "delete", "select": {"state": "any"}}]
    snap = layout.scan()
    result = evaluate(one_policy(rules), layout, snap=snap)
    assert "read error" in result.skipped["app"]
    assert kept_tags(result, "app") == {"old-1", "old-2"}
    assert {decision(result, t)["rule"] for t in ("old-1", "old-2")} == {"on_read_error"}
    assert deleted_tags(result) == {"old-3"}
    _, plan = gc_plan(snap, result)
    assert not [r for r in plan.rows.to_pylist() if r["repository"] == "app"]


def test_an_unreadable_child_reached_only_through_its_index_keeps_the_repository(
    tmp_path: Path,
) -> None:
    """A platform manifest with no revision link of its own, that does not hash to its digest:
    found through the index's closure, the repository is kept whole and the reason names it."""
    layout = Layout(tmp_path / "store")
    children = [tiny("c-amd64"), tiny("c-arm64", architecture="arm64")]
    layout.push("app", index(children), ["old-1"], age=30 * DAY)
    layout.push("app", tiny("new"), ["new-1"], age=1 * DAY)
    bad = children[1]
    layout.store.delete_many([revision_link_key("app", bad.digest)])
    layout.store.write(blob_data_key(bad.digest), bad.blob.data + b"\n")
    rules = [{"name": "all", "action": "delete", "select": {"state": "any"}}]
    result = evaluate(one_policy(rules), layout)
    assert result.skipped["app"] == (
        f"read error: manifest {bad.digest}: digest-mismatch: content does not hash to its digest"
    )
    assert deleted_tags(result) == set()


def _shuffled(snap: Snapshot, seed: int) -> Snapshot:
    rng = random.Random(seed)
    tables = {}
    for name in snap.names():
        t = snap[name]
        order = list(range(t.num_rows))
        rng.shuffle(order)
        tables[name] = t.take(pa.array(order, type=pa.int64()))
    return Snapshot(tables, dict(snap.meta))


def test_shuffled_input_gives_a_byte_identical_plan(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    for repo in ("team/api", "team/web", "tools/ci"):
        for i in range(6):
            # Equal push times for half of them: ties must not depend on input order.
            age = (20 - (i // 2)) * DAY
            layout.push(repo, tiny(f"{repo}-{i}"), [f"ci-{i}", f"v1.{i}.0"], age=age)
        layout.push(repo, tiny(f"{repo}-untagged"), age=15 * DAY)
        layout.push(
            repo,
            index([tiny(f"{repo}-x"), tiny(f"{repo}-y", architecture="arm64")]),
            ["multi"],
            age=12 * DAY,
        )
    rules = [
        {
            "name": "keep-semver",
            "action": "keep",
            "select": {"tags": {"any": ["semver:>=1.3.0"]}},
            "when": {"rank": {"top": 2, "by": "semver"}},
        },
        {
            "name": "keep-ci",
            "action": "keep",
            "select": {"tags": {"any": ["glob:ci-*"]}},
            "when": {"rank": {"top": 3, "by": "pushed"}},
        },
        {
            "name": "expire",
            "action": "delete",
            "select": {"state": "any"},
            "when": {"older_than": {"age": "10d"}},
        },
    ]
    pf = one_policy(rules, sibling_keep=False)
    snap = layout.scan()
    outputs = []
    for seed in (None, 1, 2):
        s = snap if seed is None else _shuffled(snap, seed)
        result = evaluate(pf, layout, snap=s)
        _, plan = gc_plan(s, result, run_id="fixed-run")
        path = tmp_path / f"plan-{seed}.parquet"
        plan.write(path)
        outputs.append((path.read_bytes(), result.decisions))
    assert outputs[0][0] == outputs[1][0] == outputs[2][0]
    assert outputs[0][1].equals(outputs[1][1]) and outputs[0][1].equals(outputs[2][1])
    assert b"retention" in outputs[0][0]
