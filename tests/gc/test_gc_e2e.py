"""gc against a real registry: Debian's docker-registry (Distribution 2.8) writes the layouts and
serves them back, skopeo pushes and pulls, on a filesystem and on S3 (moto).

What these prove:
- parity: without --delete-untagged, regsweep deletes exactly the blobs Distribution's own
  ``garbage-collect`` deletes on a copy of the same store;
- multi-arch: --delete-untagged keeps a tagged index's untagged children and their layers
  (``skopeo copy --all`` of every tag works afterwards), where Distribution 2.8's ``-m`` breaks
  the image;
- referrers: OCI subject referrers and cosign tags of kept images survive, those of removed
  images go;
- races: what is uploaded, pushed or re-linked between plan and apply is not deleted;
- crash safety: an apply that dies after k store operations leaves every kept image pullable,
  and a rerun reaches the same end state as an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from gc_backend import S3_PREFIX, Backend, copy_objects
from gc_helpers import (
    V2,
    Crash,
    CrashingStore,
    apply_cli,
    assert_no_live_blob_lost,
    blob_digests,
    contents,
    copy_fs_root,
    gc_cli,
    orphan_the_lock,
)

from imagegen import (
    FIXED_TIME,
    Blob,
    Manifest,
    RegistryClient,
    cosign_signature,
    cosign_tag,
    image_config,
    image_manifest,
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
from registry_fixtures import RegistryFactory, RegistryServer, S3Storage, run_garbage_collect
from regsweep.audit.log import read_log
from regsweep.errors import ObjectNotFound
from regsweep.gc.apply import apply_plan
from regsweep.gc.plan import Plan
from regsweep.layout.keys import blob_data_key, layer_link_key, revision_link_key, tag_current_key
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore
from regsweep.storage.s3 import S3Store
from services import unique_name

pytestmark = pytest.mark.e2e

SBOM = "application/spdx+json"


def sbom(subject: Manifest, name: str) -> Manifest:
    return referrer(
        subject,
        artifact_type=SBOM,
        payload=json.dumps({"spdxVersion": "SPDX-2.3", "name": name}).encode(),
        payload_media_type=SBOM,
    )


@dataclass
class World:
    """What ``populate`` pushed, and what a gc must keep."""

    m: dict[str, Manifest] = field(default_factory=dict)
    blobs: dict[str, Blob] = field(default_factory=dict)
    # repo -> tags that exist after any gc and must pull with every platform
    kept_tags: dict[str, list[str]] = field(default_factory=dict)

    def digests(self, *names: str) -> set[str]:
        """Every blob digest of the named manifests: own blob, config, layers, children."""
        out: set[str] = set()
        for name in names:
            for sub in self.m[name].walk():
                out.add(sub.digest)
                out |= {b.digest for b in sub.blobs}
        return out


def populate(reg: RegistryServer, tmp: Path) -> World:
    """Push a small but complete registry through ``reg``:

    team/app     v1 (Docker image), dev (moved: dev1 left untagged), tmp (deleted through the
                 API: its layers are orphans), an abandoned upload
    team/multi   v1: OCI index pushed by skopeo, untagged amd64/arm64 children;
                 v1-docker: Docker manifest list, untagged children
    team/signed  v1 = k with an SBOM referrer (by digest), a cosign .sig tag and a referrers-
                 fallback index; old moved from r to r2, so r, its SBOM and its .sig go
    lonely/blob  a blob uploaded and never used by a manifest
    """
    c = RegistryClient(reg.url)
    w = World()
    base = make_layer("base", 6_000)

    def push(repo: str, name: str, man: Manifest, *tags: str) -> None:
        w.m[name] = man
        c.push(repo, man, tags)

    push("team/app", "a1", sample_image("a1", base=[base], docker=True), "v1")
    push("team/app", "dev1", sample_image("dev1", base=[base]), "dev")
    push("team/app", "dev2", sample_image("dev2", base=[base]), "dev")
    push("team/app", "x", sample_image("x", base=[base]), "tmp")
    c.delete_manifest("team/app", w.m["x"].digest)
    c.abandon_upload("team/app", b"partial upload " * 64)

    w.m["multi"] = index(
        [
            sample_image("multi-amd64", base=[base]),
            sample_image("multi-arm64", architecture="arm64"),
        ]
    )
    layout = write_oci_layout(tmp / "oci", {"v1": w.m["multi"]})
    skopeo_copy(f"oci:{layout}:v1", f"docker://{reg.host}/team/multi:v1")
    push(
        "team/multi",
        "list",
        index(
            [
                sample_image("list-amd64", docker=True),
                sample_image("list-arm64", docker=True, architecture="arm64"),
            ],
            docker=True,
        ),
        "v1-docker",
    )

    k = sample_image("k")
    push("team/signed", "k", k, "v1")
    push("team/signed", "sbom_k", sbom(k, "k"))
    push("team/signed", "sig_k", cosign_signature(k, "example/team/signed"), cosign_tag(k.digest))
    push("team/signed", "refs_k", referrers_index([w.m["sbom_k"]]), referrers_tag(k.digest))
    r = sample_image("r")
    push("team/signed", "r", r, "old")
    push("team/signed", "sbom_r", sbom(r, "r"))
    push("team/signed", "sig_r", cosign_signature(r, "example/team/signed"), cosign_tag(r.digest))
    push("team/signed", "r2", sample_image("r2"), "old")

    w.blobs["lonely"] = Blob(b"lonely blob " * 300)
    c.upload_blob("lonely/blob", w.blobs["lonely"])

    w.kept_tags = {
        "team/app": ["v1", "dev"],
        "team/multi": ["v1", "v1-docker"],
        "team/signed": ["v1", cosign_tag(k.digest), referrers_tag(k.digest), "old"],
    }
    return w


@dataclass
class Golden:
    """One populated store per backend kind, pushed once per module; tests work on copies."""

    store: ObjectStore
    world: World


class Goldens:
    def __init__(self, request: pytest.FixtureRequest, tmp: pytest.TempPathFactory) -> None:
        self.request = request
        self.tmp = tmp
        self.registries = RegistryFactory(tmp)
        self.built: dict[str, Golden] = {}

    def get(self, kind: str) -> Golden:
        if kind not in self.built:
            store: ObjectStore
            if kind == "fs":
                root = self.tmp.mktemp("golden-fs")
                store = FilesystemStore(root)
                reg = self.registries(root=root)
            else:
                endpoint = self.request.getfixturevalue("moto_server")
                bucket = unique_name("golden")
                s3 = S3Store(bucket, S3_PREFIX, endpoint_url=endpoint)
                s3.client.create_bucket(Bucket=bucket)
                store = s3
                reg = self.registries(
                    s3=S3Storage(endpoint, bucket, rootdirectory="/" + S3_PREFIX),
                    extra_storage={"redirect": {"disable": True}},
                )
            world = populate(reg, self.tmp.mktemp("oci"))
            reg.stop()
            self.built[kind] = Golden(store, world)
        return self.built[kind]


@pytest.fixture(scope="module")
def goldens(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Goldens]:
    g = Goldens(request, tmp_path_factory)
    try:
        yield g
    finally:
        g.registries.stop_all()
        for golden in g.built.values():
            golden.store.close()


def fresh_world(
    backend: Backend, goldens: Goldens, registry_server: RegistryFactory
) -> tuple[World, RegistryServer]:
    """A copy of the golden store of ``backend``'s kind in ``backend.store``, served."""
    golden = goldens.get(backend.kind)
    if backend.kind == "fs":
        assert backend.root is not None and isinstance(golden.store, FilesystemStore)
        copy_fs_root(golden.store.root, backend.root)
    else:
        copy_objects(golden.store, backend.store)
    return golden.world, backend.serve(registry_server)


def pull_every_tag(
    reg: RegistryServer, w: World, dest: Path, extra: dict[str, list[str]] | None = None
) -> None:
    """``skopeo copy --all`` of every kept tag (and ``extra`` ones), and the registry lists
    them."""
    client = RegistryClient(reg.url)
    every = {repo: list(tags) for repo, tags in w.kept_tags.items()}
    for repo, tags in (extra or {}).items():
        every.setdefault(repo, []).extend(tags)
    for repo, tags in every.items():
        for tag in tags:
            out = dest / f"{repo.replace('/', '_')}-{tag}"
            skopeo_copy_all(f"docker://{reg.host}/{repo}:{tag}", f"dir:{out}")
        assert set(client.tags(repo)) >= set(tags), (repo, client.tags(repo))


def settle(backend: Backend) -> None:
    """Let the store's clock pass the last push (S3 times have one-second resolution), so
    --grace 0s sees every pushed object as older than "now"."""
    time.sleep(1.1 if backend.kind == "s3" else 0.02)


# -- parity ----------------------------------------------------------------------------------


def test_parity_with_distribution_garbage_collect(
    backend: Backend, goldens: Goldens, registry_server: RegistryFactory, tmp_path: Path
) -> None:
    w, reg = fresh_world(backend, goldens, registry_server)
    reg.stop()  # Distribution's garbage-collect wants a stopped registry
    before = blob_digests(backend.store)

    copy = backend.copy()
    d2 = run_garbage_collect(copy.registry_config_file())
    d2_deleted = before - blob_digests(copy.store)
    assert d2_deleted == d2.deleted_blobs  # what it printed is what it did

    settle(backend)
    doc = gc_cli(
        backend.url, "--grace", "0s", "--apply", "--yes", "--mode", "delete", env=backend.env
    )
    ours = before - blob_digests(backend.store)

    expected = w.digests("x") - w.digests("a1", "dev1", "dev2") | {w.blobs["lonely"].digest}
    assert d2_deleted == expected
    assert ours == d2_deleted
    assert doc["applied"] is True
    assert doc["summary"]["blob"]["count"] == len(ours)
    assert doc["result"]["removed"]["blob"]["keys"] == len(ours)
    assert_no_live_blob_lost(backend.store)

    reg.start()
    pull_every_tag(reg, w, tmp_path / "pulled")
    # untagged manifests are still there without --delete-untagged
    assert RegistryClient(reg.url).get_manifest("team/app", w.m["dev1"].digest).status_code == 200
    log = read_log(backend.store, doc["run_id"]).to_pylist()
    assert {r["digest"] for r in log if r["kind"] == "blob" and r["action"] == "deleted"} == ours


# -- multi-arch and referrers ------------------------------------------------------------------


def test_delete_untagged_keeps_index_children_and_live_referrers(
    backend: Backend, goldens: Goldens, registry_server: RegistryFactory, tmp_path: Path
) -> None:
    w, reg = fresh_world(backend, goldens, registry_server)
    reg.stop()
    children = {c.digest for name in ("multi", "list") for c in w.m[name].children}
    child_blobs = w.digests("multi", "list") - {w.m["multi"].digest, w.m["list"].digest}
    assert len(children) == 4 and len(child_blobs) > 4

    # Distribution 2.8's -m queues the untagged children for deletion and sweeps their layers
    # (distribution#3004, #3178): its dry run says so ...
    dry = run_garbage_collect(reg.config_path, dry_run=True, delete_untagged=True)
    assert children <= dry.deleted_manifests
    shared = w.digests("a1")  # the amd64 child shares the base layer with a tagged image
    assert (child_blobs - children - shared) <= dry.deleted_blobs
    # ... and a real run on a copy breaks the image.
    broken = backend.copy()
    run_garbage_collect(broken.registry_config_file(), delete_untagged=True)
    broken_reg = broken.serve(registry_server)
    with pytest.raises(AssertionError, match=r"(?i)unknown|not found|404"):
        skopeo_copy_all(f"docker://{broken_reg.host}/team/multi:v1", f"dir:{tmp_path / 'b1'}")
    broken_reg.stop()

    settle(backend)
    before = blob_digests(backend.store)
    doc = gc_cli(
        backend.url, "--delete-untagged", "--grace", "0s", "--apply", "--yes", env=backend.env
    )
    assert doc["applied"] is True and doc["result"]["failures"] == []
    after = blob_digests(backend.store)
    removed = before - after

    # Multi-arch: the children and all their layers stay, linked in their repository.
    assert child_blobs <= after
    for child in children:
        backend.store.stat(revision_link_key("team/multi", child))
    for d in child_blobs - children:
        backend.store.stat(layer_link_key("team/multi", d))

    # Referrers: k's SBOM, signature and referrers index stay; r's go with r.
    k, r = w.m["k"], w.m["r"]
    kept = w.digests("k", "sbom_k", "sig_k", "refs_k", "r2")
    assert kept <= after
    gone = w.digests("r", "sbom_r", "sig_r") - kept
    assert gone <= removed
    # ... and that is all that went, besides dev1 (untagged), x's orphans and the lonely blob.
    assert removed == gone | (w.digests("dev1", "x") - w.digests("a1", "dev2")) | {
        w.blobs["lonely"].digest
    }
    log = read_log(backend.store, doc["run_id"]).to_pylist()
    sig_r_tag = tag_current_key("team/signed", cosign_tag(r.digest))
    assert any(
        row["key"] == sig_r_tag
        and row["reason"] == "orphan-referrer-tag"
        and row["action"] == "quarantined"
        for row in log
    )
    assert_no_live_blob_lost(backend.store)

    reg.start()
    client = RegistryClient(reg.url)
    tags = set(client.tags("team/signed"))
    assert cosign_tag(r.digest) not in tags
    assert {cosign_tag(k.digest), referrers_tag(k.digest), "v1", "old"} <= tags
    for name in ("sbom_k", "sig_k", "refs_k", "k"):
        assert client.get_manifest("team/signed", w.m[name].digest).status_code == 200
    for name in ("r", "sbom_r", "sig_r"):
        assert client.get_manifest("team/signed", w.m[name].digest).status_code == 404
    pull_every_tag(reg, w, tmp_path / "pulled")


# -- races -----------------------------------------------------------------------------------


def test_pushes_between_plan_and_apply_are_kept(
    backend: Backend, goldens: Goldens, registry_server: RegistryFactory, tmp_path: Path
) -> None:
    w, reg = fresh_world(backend, goldens, registry_server)
    c = RegistryClient(reg.url)
    x = w.m["x"]  # deleted through the API: its config and own layers are orphans
    x_layers = [make_layer(f"x:{i}", 8_000) for i in range(2)]  # as sample_image made them
    assert [b.digest for b in x.blobs[2:]] == [layer.blob.digest for layer in x_layers]
    settle(backend)

    plan_file = tmp_path / "plan.parquet"
    doc = gc_cli(backend.url, "--grace", "0s", "--plan-out", str(plan_file), env=backend.env)
    planned = set(Plan.read(plan_file).rows.column("digest").to_pylist())
    assert doc["applied"] is False
    assert {x.digest, x.blobs[0].digest, *(layer.blob.digest for layer in x_layers)} <= planned
    assert w.blobs["lonely"].digest in planned

    # After the plan, before apply:
    # 1. a manifest in another repository reuses x's first layer: the client HEADs it there,
    #    gets 404 and uploads it, so the registry re-links the blob;
    reuse = image_manifest(
        image_config([x_layers[0]], created=FIXED_TIME, labels={"reuse": "1"}), [x_layers[0]]
    )
    c.push("team/other", reuse, ["v1"])
    # 2. a manifest in x's own repository uses x's second layer, whose _layers link is still
    #    there: the client's HEAD finds it, so nothing is uploaded and only the revision and tag
    #    links are written (the layer's link and data are unchanged since the plan);
    assert c.blob_exists("team/app", x_layers[1].blob.digest)
    again = image_manifest(
        image_config([x_layers[1]], created=FIXED_TIME, labels={"again": "1"}), [x_layers[1]]
    )
    c.push("team/app", again, ["again"])
    # 3. the lonely blob is uploaded again, into another repository, no manifest yet;
    c.upload_blob("team/upload", w.blobs["lonely"])
    # 4. a new blob is uploaded and not yet used.
    fresh = Blob(b"fresh upload " * 100)
    c.upload_blob("team/app", fresh)

    res = apply_cli(plan_file, "--mode", "delete", env=backend.env)
    skipped = {
        r["key"]
        for r in read_log(backend.store, res["run_id"]).to_pylist()
        if r["action"] == "skipped" and r["detail"] == "referenced-since-scan"
    }
    assert {
        blob_data_key(x_layers[0].blob.digest),
        blob_data_key(x_layers[1].blob.digest),
        blob_data_key(w.blobs["lonely"].digest),
        layer_link_key("team/app", x_layers[1].blob.digest),
    } <= skipped
    after = blob_digests(backend.store)
    for b in (*(layer.blob for layer in x_layers), w.blobs["lonely"], fresh):
        assert b.digest in after, b.digest
    # what nobody came back for is gone: x's manifest and config, the lonely blob's old link
    assert x.digest not in after
    assert x.blobs[0].digest not in after
    with pytest.raises(ObjectNotFound):
        backend.store.stat(layer_link_key("lonely/blob", w.blobs["lonely"].digest))
    assert_no_live_blob_lost(backend.store)
    pull_every_tag(reg, w, tmp_path / "pulled", {"team/other": ["v1"], "team/app": ["again"]})


def test_young_orphans_are_kept_by_the_grace_period(
    backend: Backend, goldens: Goldens, registry_server: RegistryFactory, tmp_path: Path
) -> None:
    w, _reg = fresh_world(backend, goldens, registry_server)
    settle(backend)
    before = contents(backend.store, V2)
    doc = gc_cli(
        backend.url, "--delete-untagged", "--apply", "--yes", "--mode", "delete", env=backend.env
    )  # default --grace 24h: everything was pushed seconds ago
    assert contents(backend.store, V2) == before
    assert doc["summary"] == {}
    assert doc["protected_by_grace"]["blob"] >= len(w.digests("x") - w.digests("a1"))
    assert doc["protected_by_grace"]["revision"] >= 1
    assert doc["protected_by_grace"]["upload"] == 1


# -- crash safety ----------------------------------------------------------------------------


def test_crash_during_apply_keeps_images_pullable_and_rerun_finishes(
    goldens: Goldens, registry_server: RegistryFactory, tmp_path: Path
) -> None:
    golden = goldens.get("fs")
    assert isinstance(golden.store, FilesystemStore)
    base_root, w = golden.store.root, golden.world
    plan_file = tmp_path / "plan.parquet"
    gc_cli(str(base_root), "--delete-untagged", "--grace", "0s", "--plan-out", str(plan_file))
    plan = Plan.read(plan_file)
    assert {"tag", "tag_index", "revision", "layer_link", "blob"} <= set(
        plan.rows.column("kind").to_pylist()
    )

    # The end state of an uninterrupted run, and how many store operations it makes.
    clean_root = tmp_path / "clean"
    copy_fs_root(base_root, clean_root)
    counter = CrashingStore(FilesystemStore(clean_root), after=None)
    apply_plan(counter, plan, mode="delete")
    n = len(counter.ops)
    want = contents(FilesystemStore(clean_root), V2)

    # One registry serves whatever is in serve_root; it has no cache, so swapping the files
    # under it between rounds is safe.
    serve_root = tmp_path / "serve"
    copy_fs_root(base_root, serve_root)
    server = registry_server(root=serve_root)
    # Crash right after each phase (and inside the biggest ones).
    ops = counter.ops
    ks = {i for i in range(1, n) if ops[i].category != ops[i - 1].category} | {n // 2, n - 2}
    assert len(ks) >= 5
    for k in sorted(ks):
        copy_fs_root(base_root, serve_root)
        store = FilesystemStore(serve_root)
        with pytest.raises(Crash):
            apply_plan(CrashingStore(store, after=k), plan, mode="delete")
        assert_no_live_blob_lost(store)
        pull_every_tag(server, w, tmp_path / f"pulled-{k}")
        # The process is gone; its lock stays behind. Re-applying the same plan finishes it.
        orphan_the_lock(store)
        apply_cli(plan_file, "--store", str(serve_root), "--mode", "delete")
        assert contents(store, V2) == want, f"after a crash at operation {k} of {n}"
        assert_no_live_blob_lost(store)
        pull_every_tag(server, w, tmp_path / f"pulled-{k}-rerun")
