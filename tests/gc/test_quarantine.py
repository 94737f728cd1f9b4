"""Quarantine: ``gc --apply`` (default mode) moves objects under regsweep/quarantine/<run>/;
``quarantine restore`` gives back exactly the store that was there, ``quarantine purge``
deletes for good only what a fresh scan shows nothing references, and restores the rest.

What these prove:
- restore is exact: every file under docker/ comes back with the same bytes and mtime, and
  the same directories (on the filesystem);
- purge restores a quarantined blob that a manifest pushed since needs (even one whose data
  was never re-uploaded, as happens behind a registry's stale blob-descriptor cache), keeps
  one that a client uploaded again, and deletes the rest;
- through a real registry: re-pushing an image whose blobs are in quarantine, then purging,
  leaves it pullable;
- the commands' exit codes and JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gc_helpers import (
    assert_no_live_blob_lost,
    assert_pullable,
    blob_digests,
    contents,
    fs_dirs,
    fs_store,
    fs_tree,
    gc_cli,
    run_cli,
)

from imagegen import (
    LayoutWriter,
    RegistryClient,
    cosign_signature,
    cosign_tag,
    image_config,
    image_manifest,
    make_layer,
    sample_image,
    skopeo_copy_all,
)
from registry_fixtures import RegistryFactory
from regsweep.audit.log import read_log
from regsweep.demo import generate_demo
from regsweep.gc.apply import QUARANTINE_PREFIX
from regsweep.layout.keys import blob_data_key, layer_link_key, revision_link_key
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore

EXIT_USAGE = 2


def now() -> datetime:
    return datetime.now(UTC)


def quarantine_cli(*args: str, expect: int = 0) -> Any:
    res = run_cli(["quarantine", *args, "--json"])
    assert res.exit_code == expect, (res.exit_code, res.stdout[-2000:], res.stderr[-2000:])
    return json.loads(res.stdout) if expect == 0 else None


def quarantined_keys(store: ObjectStore, run_id: str) -> set[str]:
    return {o.key for o in store.iter_objects(f"{QUARANTINE_PREFIX}{run_id}/")}


def test_restore_gives_back_a_byte_identical_store(tmp_path: Path) -> None:
    store = fs_store(tmp_path / "store")
    generate_demo(store, now=now())
    # and a removed tag: a signature whose image went untagged
    w = LayoutWriter(store).at(now() - timedelta(days=5))
    old = sample_image("q:old")
    w.push("team/signed", old, ["latest"])
    w.push("team/signed", cosign_signature(old, "example/team/signed"), [cosign_tag(old.digest)])
    w.push("team/signed", sample_image("q:new"), ["latest"])
    files, dirs = fs_tree(store.root, "docker"), fs_dirs(store.root)

    doc = gc_cli(str(store.root), "--delete-untagged", "--apply", "--yes")
    run_id = doc["run_id"]
    assert doc["result"]["mode"] == "quarantine"
    moved = sum(v["keys"] for v in doc["result"]["removed"].values())
    assert {"tag", "tag_index", "revision", "layer_link", "blob", "upload"} <= set(
        doc["result"]["removed"]
    )
    assert fs_tree(store.root, "docker") != files
    assert len(quarantined_keys(store, run_id)) == moved

    (run,) = quarantine_cli("list", str(store.root))
    assert run["run_id"] == run_id and run["objects"] == moved
    assert run["bytes"] == doc["result"]["bytes_freed"]

    res = quarantine_cli("restore", str(store.root), run_id)
    assert res["restored"] == moved and res["failures"] == []
    assert fs_tree(store.root, "docker") == files  # bytes and mtimes
    assert fs_dirs(store.root) == dirs
    assert quarantine_cli("list", str(store.root)) == []
    assert {r["action"] for r in read_log(store).to_pylist()} == {"quarantined", "restored"}
    assert_no_live_blob_lost(store)

    # The store is really back: the same gc plans the same again.
    again = gc_cli(str(store.root), "--delete-untagged")
    assert again["summary"] == doc["summary"]


def test_purge_deletes_only_what_is_still_unreferenced(tmp_path: Path) -> None:
    store = fs_store(tmp_path / "store")
    w = LayoutWriter(store).at(now() - timedelta(days=10))
    gone_layers = [make_layer(f"purge:gone:{i}", 5_000) for i in range(3)]
    gone = image_manifest(image_config(gone_layers, created=now()), gone_layers)
    w.push("team/app", gone, ["v1"])
    w.push("team/app", sample_image("purge:app"), ["v1"])  # gone is untagged now
    originals = {b.digest: b.data for b in gone.blobs}

    doc = gc_cli(
        str(store.root), "--delete-untagged", "--max-delete-fraction", "0.9", "--apply", "--yes"
    )
    run_id = doc["run_id"]
    left = blob_digests(store)
    assert {gone.digest, *originals}.isdisjoint(left)

    # Since then, before the purge:
    # - a manifest that needs gone's first layer was accepted without that layer being uploaded
    #   or linked again (a registry whose blob-descriptor cache still said it existed): only
    #   the manifest and its new config were written; the layer's data and link are in
    #   quarantine;
    layer0, layer1 = gone_layers[0], gone_layers[1]
    cached = image_manifest(image_config([layer0], created=now()), [layer0])
    w2 = LayoutWriter(store)
    w2.push_blob("team/app", cached.blobs[0])
    w2.put_manifest("team/app", cached, "cached")
    # - a client uploaded gone's second layer again for a new image elsewhere.
    reuploaded = image_manifest(image_config([layer1], created=now()), [layer1])
    LayoutWriter(store).push("team/other", reuploaded, ["v1"])

    res = quarantine_cli("purge", str(store.root), run_id, "--yes")
    assert res["failures"] == []
    assert res["restored"] == 3 and res["already_present"] == 1
    moved = sum(v["keys"] for v in doc["result"]["removed"].values())
    assert res["purged"] == moved - 3

    # The needed layer is back, byte for byte; everything else of the run is gone for good.
    assert (
        store.read(blob_data_key(layer0.blob.digest), max_bytes=1 << 20)
        == originals[layer0.blob.digest]
    )
    assert_pullable(store, "team/app", "cached")
    assert_pullable(store, "team/other", "v1")
    assert_pullable(store, "team/app", "v1")
    left = blob_digests(store)
    assert {gone.digest, gone.blobs[0].digest, gone_layers[2].blob.digest}.isdisjoint(left)
    assert quarantined_keys(store, run_id) == set()
    actions = {(r["key"], r["action"]) for r in read_log(store).to_pylist()}
    assert (blob_data_key(layer0.blob.digest), "restored") in actions
    assert (layer_link_key("team/app", layer0.blob.digest), "restored") in actions
    assert (blob_data_key(gone.digest), "purged") in actions
    assert (revision_link_key("team/app", gone.digest), "purged") in actions
    assert_no_live_blob_lost(store)


def test_purge_restores_a_blob_that_only_a_link_names_again(tmp_path: Path) -> None:
    """A blob in quarantine that a ``_layers`` link names again (a client's upload linked it,
    its manifest not pushed yet) is restored: the link's digest, compared with the quarantined
    blob's, is text however the scan holds it."""
    store = fs_store(tmp_path / "store")
    w = LayoutWriter(store).at(now() - timedelta(days=10))
    layers = [make_layer("purge:linked:0", 4_000)]
    old = image_manifest(image_config(layers, created=now()), layers)
    w.push("team/app", old, ["v1"])
    w.push("team/app", sample_image("purge:linked:app"), ["v1"])  # old is untagged now
    layer = layers[0].blob
    doc = gc_cli(
        str(store.root), "--delete-untagged", "--max-delete-fraction", "0.9", "--apply", "--yes"
    )
    assert layer.digest not in blob_digests(store)

    store.write(layer_link_key("team/new", layer.digest), layer.digest.encode())
    res = quarantine_cli("purge", str(store.root), doc["run_id"], "--yes")
    assert res["failures"] == []
    assert store.read(blob_data_key(layer.digest), max_bytes=1 << 20) == layer.data
    assert old.digest not in blob_digests(store)  # the manifest itself is purged
    assert_no_live_blob_lost(store)


def test_quarantine_commands_refuse_without_confirmation_or_run(tmp_path: Path) -> None:
    store = fs_store(tmp_path / "store")
    LayoutWriter(store).at(now() - timedelta(days=10)).push(
        "team/app", sample_image("qcli:app"), ["v1"]
    )
    LayoutWriter(store).at(now() - timedelta(days=10)).put_blob_data(make_layer("qcli:o", 900).blob)
    doc = gc_cli(str(store.root), "--max-delete-fraction", "0.9", "--apply", "--yes")
    assert_no_live_blob_lost(store)
    before = contents(store)
    res = run_cli(["quarantine", "purge", str(store.root), doc["run_id"]])
    assert res.exit_code == EXIT_USAGE and "--yes" in res.stderr
    res = run_cli(["quarantine", "restore", str(store.root), "no-such-run"])
    assert res.exit_code == EXIT_USAGE
    assert contents(store) == before


@pytest.mark.e2e
def test_purge_after_repush_through_a_registry(
    registry_server: RegistryFactory, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    reg = registry_server(root=root)
    client = RegistryClient(reg.url)
    old, new = sample_image("qe:old"), sample_image("qe:new")
    client.push("team/app", old, ["v1"])
    client.push("team/app", new, ["v1"])  # old is untagged now
    store = FilesystemStore(root)
    doc = gc_cli(
        str(root),
        "--delete-untagged",
        "--grace",
        "0s",
        "--max-delete-fraction",
        "0.9",
        "--apply",
        "--yes",
    )
    assert old.digest not in blob_digests(store)
    assert client.get_manifest("team/app", old.digest).status_code == 404

    # Someone pushes the old image again: the registry finds neither links nor data, so the
    # client uploads every blob again.
    client.push("team/app", old, ["back"])
    res = quarantine_cli("purge", str(root), doc["run_id"], "--yes")
    assert res["failures"] == [] and res["already_present"] >= 3  # manifest, config, layers
    assert {old.digest, *(b.digest for b in old.blobs)} <= blob_digests(store)
    assert quarantined_keys(store, doc["run_id"]) == set()
    for tag in ("v1", "back"):
        skopeo_copy_all(f"docker://{reg.host}/team/app:{tag}", f"dir:{tmp_path / tag}")
    assert_no_live_blob_lost(store)
