"""A registry written by real software is clean: Debian's docker-registry (Distribution 2.8)
receives pushes from skopeo and from its HTTP API (a multi-arch OCI index, a Docker manifest
list, an OCI referrer with its referrers-fallback index, a cosign signature tag, a nested
repository, cross-repository mounts, an overwritten tag, a manifest deleted through the API),
and the audit, digest scrub included, finds no error and no warning. Then real damage done to
the same store is found.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagegen import (
    RegistryClient,
    cosign_signature,
    cosign_tag,
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
from registry_fixtures import RegistryFactory, RegistryServer, S3Storage
from regsweep.audit.report import AuditOptions, AuditReport, run_audit
from regsweep.layout.keys import blob_data_key, layer_link_key
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore
from regsweep.storage.readonly import ReadOnlyStore
from regsweep.storage.s3 import S3Store

pytestmark = pytest.mark.e2e

MakeStore = Callable[..., ObjectStore]


def push_everything(reg: RegistryServer, tmp: Path) -> dict[str, str]:
    """Push a small registry with every feature; returns tag -> digest of what was pushed."""
    c = RegistryClient(reg.url)
    base = make_layer("e2e-base", 8_000)
    multi = index(
        [
            sample_image("e2e-amd64", base=[base]),
            sample_image("e2e-arm64", architecture="arm64"),
        ]
    )
    layout = write_oci_layout(tmp / "oci", {"v1": multi, "single": sample_image("e2e-single")})
    skopeo_copy(f"oci:{layout}:v1", f"docker://{reg.host}/team/app:v1")
    skopeo_copy(f"oci:{layout}:single", f"docker://{reg.host}/team/app:single")
    # a Docker manifest list over the HTTP API
    docker_list = index(
        [
            sample_image("e2e-list-amd64", docker=True),
            sample_image("e2e-list-arm64", docker=True, architecture="arm64"),
        ],
        docker=True,
    )
    c.push("team/tools", docker_list, ["v1"])
    # an OCI referrer of the index (by digest), its referrers-fallback index, a cosign tag
    sbom = referrer(
        multi,
        artifact_type="application/spdx+json",
        payload=json.dumps({"spdxVersion": "SPDX-2.3"}).encode(),
        payload_media_type="application/spdx+json",
    )
    c.push("team/app", sbom)
    c.push("team/app", referrers_index([sbom]), [referrers_tag(multi.digest)])
    c.push("team/app", cosign_signature(multi, f"{reg.host}/team/app"), [cosign_tag(multi.digest)])
    # a nested repository whose shared layer is mounted from its parent
    debug = sample_image("e2e-debug", base=[base], docker=True)
    c.push("team/app/debug", debug, ["latest"], mount_from="team/app")
    # the same image in another repository, every blob by cross-repository mount
    c.push("other/app", debug, ["v1"], mount_from="team/app/debug")
    # an overwritten tag (leaves an untagged manifest) and a manifest deleted through the API
    c.push("team/app/debug", sample_image("e2e-old"), ["edge"])
    c.push("team/app/debug", sample_image("e2e-new"), ["edge"])
    gone = sample_image("e2e-gone")
    c.push("team/app/debug", gone, ["gone"])
    c.delete_manifest("team/app/debug", gone.digest)
    # everything pulls back
    for ref in ("team/app:v1", "team/app/debug:latest", "other/app:v1", "team/tools:v1"):
        skopeo_copy_all(f"docker://{reg.host}/{ref}", f"dir:{tmp / 'pull' / ref.replace('/', '_')}")
    return {"multi": multi.digest, "base": base.blob.digest, "debug": debug.digest}


def not_info(report: AuditReport) -> list[tuple[str, str, str | None]]:
    return [(f.severity, f.kind, f.key) for f in report.findings if f.severity != "info"]


@pytest.mark.parametrize("backend", ["fs", "s3"])
def test_registry_written_by_docker_registry_and_skopeo_is_clean(
    backend: str,
    registry_server: RegistryFactory,
    store_factory: MakeStore,
    tmp_path: Path,
) -> None:
    store = store_factory(backend)
    if isinstance(store, FilesystemStore):
        reg = registry_server(root=store.root)
    else:
        assert isinstance(store, S3Store)
        reg = registry_server(
            s3=S3Storage(str(store.client.meta.endpoint_url), store.bucket),
            extra_storage={"redirect": {"disable": True}},  # blob HEADs answer 200, not 307
        )
    pushed = push_everything(reg, tmp_path)
    reg.stop()

    before = sorted((o.key, o.size, o.last_modified) for o in store.iter_objects(""))
    report = run_audit(
        ReadOnlyStore(store),
        AuditOptions(verify_digests=True, now=datetime.now(UTC)),
    )
    assert not_info(report) == [], report.findings
    assert report.exit_code == 0
    assert report.scrub is not None
    assert report.scrub.checked == report.counts["blobs"] > 20
    assert {v.status for v in report.scrub.verdicts} == {"ok"}
    assert sorted((o.key, o.size, o.last_modified) for o in store.iter_objects("")) == before
    # the deleted manifest left only unreferenced data behind
    assert {f.kind for f in report.findings} <= {"unreferenced-blobs"}

    if not isinstance(store, FilesystemStore):
        return
    # Now damage the real store the ways the audit is for: the shared base layer is lost
    # (every image using it is broken, in three repositories), and a link gets a newline.
    (store.root / blob_data_key(pushed["base"])).unlink()
    link = store.root / layer_link_key("team/app/debug", pushed["base"])
    link.write_bytes(link.read_bytes() + b"\n")  # a newline, as hand edits leave
    damaged = run_audit(ReadOnlyStore(store), AuditOptions(now=datetime.now(UTC)))
    errors = {(f.kind, f.repository, f.key) for f in damaged.errors}
    assert errors == {
        ("missing-blob", "team/app", blob_data_key(pushed["base"])),
        ("missing-blob", "team/app/debug", blob_data_key(pushed["base"])),
        ("missing-blob", "other/app", blob_data_key(pushed["base"])),
        ("malformed-link", "team/app/debug", layer_link_key("team/app/debug", pushed["base"])),
    }
    assert damaged.exit_code == 1
