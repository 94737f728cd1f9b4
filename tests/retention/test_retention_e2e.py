"""End to end on a real registry: skopeo pushes semver release tags, CI build tags, a multi-arch
index, a cosign signature and an overwritten tag (an untagged image) through Debian's
``docker-registry``; ``regsweep gc ROOT --policy FILE --grace 0s --apply --yes`` runs with the
registry stopped; served again, every kept tag pulls with ``skopeo copy --all``, every expired
tag is gone from tags/list, and the blobs only expired images used are gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from imagegen import (
    MANIFEST_ACCEPT,
    Manifest,
    cosign_signature,
    cosign_tag,
    index,
    make_layer,
    sample_image,
    skopeo_copy,
    skopeo_copy_all,
    write_oci_layout,
)
from registry_fixtures import RegistryFactory
from regsweep.layout.keys import blob_data_key, tag_current_key, tag_index_key
from services import subprocess_env

pytestmark = pytest.mark.e2e

REPO = "team/app"
DAY = timedelta(days=1)
POLICY = """
version: 1
settings:
  min_age: 1d
  guards: {max_delete_fraction: null, keep_newest_per_repo: 1}
protect:
  tags: ["exact:latest", "exact:nightly"]
policies:
  - name: team
    repositories: ["glob:team/**"]
    rules:
      - name: keep-2-releases
        action: keep
        select: {tags: {any: ["semver:>=0.0.0"]}}
        when: {rank: {top: 2, by: semver, prereleases: exclude}}
      - name: keep-3-ci
        action: keep
        select: {tags: {any: ["glob:ci-*"]}}
        when: {rank: {top: 3, by: pushed}}
      - name: expire
        action: delete
        select: {state: any}
        when: {older_than: {age: 14d}}
"""


def _blobs(m: Manifest) -> set[str]:
    out = {m.digest}
    for x in m.walk():
        out |= {x.digest} | {b.digest for b in x.blobs}
    return out


def test_gc_policy_on_a_real_registry(registry_server: RegistryFactory, tmp_path: Path) -> None:
    reg = registry_server()
    assert reg.root is not None
    base = make_layer("e2e-base", 4_000)

    def img(seed: str, arch: str = "amd64") -> Manifest:
        return sample_image(seed, layers=1, size=3_000, base=[base], architecture=arch)

    release = {t: img(f"rel-{t}") for t in ("v1.8.0", "v1.9.3", "v1.10.0", "v2.0.0-rc.1")}
    release["v2.0.0"] = index([img("v2-amd64"), img("v2-arm64", "arm64")])
    ci = {f"ci-{n}": img(f"ci-{n}") for n in range(101, 106)}
    ci["ci-101"] = index([img("ci101-amd64"), img("ci101-arm64", "arm64")])
    nightly_old, nightly = img("nightly-1"), img("nightly-2")
    sig_kept = cosign_signature(release["v2.0.0"], f"{reg.host}/{REPO}:v2.0.0")
    sig_gone = cosign_signature(release["v1.8.0"], f"{reg.host}/{REPO}:v1.8.0")
    sig_kept_tag, sig_gone_tag = (
        cosign_tag(release["v2.0.0"].digest),
        cosign_tag(release["v1.8.0"].digest),
    )
    images = {
        **release,
        **ci,
        "latest": release["v2.0.0"],
        "nightly-old": nightly_old,
        "nightly": nightly,
        sig_kept_tag: sig_kept,
        sig_gone_tag: sig_gone,
    }
    layout = write_oci_layout(tmp_path / "oci", images)
    for tag in [*release, *ci, "latest", sig_kept_tag, sig_gone_tag]:
        skopeo_copy(f"oci:{layout}:{tag}", f"docker://{reg.host}/{REPO}:{tag}")
    # "nightly" is pushed twice: the first image is left untagged.
    skopeo_copy(f"oci:{layout}:nightly-old", f"docker://{reg.host}/{REPO}:nightly")
    skopeo_copy(f"oci:{layout}:nightly", f"docker://{reg.host}/{REPO}:nightly")
    reg.stop()

    # Back-date everything by 30 days; CI builds were pushed 19..15 days ago, one a day.
    root = Path(reg.root)
    old = time.time() - 30 * 86400
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))
    for n in range(101, 106):
        t = time.time() - (20 - (n - 100)) * 86400
        tag = f"ci-{n}"
        for key in (tag_current_key(REPO, tag), tag_index_key(REPO, tag, ci[tag].digest)):
            os.utime(root / key, (t, t))

    policy_file = tmp_path / "policy.yml"
    policy_file.write_text(POLICY)
    args = ["gc", str(root), "--policy", str(policy_file), "--grace", "0s", "--apply", "--yes"]
    proc = subprocess.run(
        [sys.executable, "-m", "regsweep", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["applied"] is True and not doc["result"]["failures"]
    expired = {e["tag"]: e["rule"] for e in doc["retention"]["repositories"][REPO]["expired_tags"]}
    assert expired == {
        "v1.8.0": "expire",
        "v1.9.3": "expire",
        "v2.0.0-rc.1": "expire",
        "ci-101": "expire",
        "ci-102": "expire",
    }

    reg.start()
    kept = {"v1.10.0", "v2.0.0", "latest", "nightly", "ci-103", "ci-104", "ci-105", sig_kept_tag}
    gone = {*expired, sig_gone_tag}
    listed = set(requests.get(f"{reg.url}/v2/{REPO}/tags/list", timeout=10).json()["tags"])
    assert listed == kept
    for tag in sorted(kept):
        skopeo_copy_all(f"docker://{reg.host}/{REPO}:{tag}", f"dir:{tmp_path / 'pull' / tag}")

    still_needed = set().union(*(_blobs(images[t]) for t in kept))
    only_expired = (
        set().union(*(_blobs(images[t]) for t in gone)) | _blobs(nightly_old)
    ) - still_needed
    assert base.blob.digest in still_needed and base.blob.digest not in only_expired
    assert len(only_expired) > 20
    for d in only_expired:
        assert not (root / blob_data_key(d)).exists(), d
    for d in still_needed:
        assert (root / blob_data_key(d)).exists(), d
    # The expired multi-arch index took its children with it; the kept one kept its children.
    for child in ci["ci-101"].children:
        r = requests.head(
            f"{reg.url}/v2/{REPO}/manifests/{child.digest}",
            headers={"Accept": MANIFEST_ACCEPT},
            timeout=10,
        )
        assert r.status_code == 404
    for child in release["v2.0.0"].children:
        r = requests.head(
            f"{reg.url}/v2/{REPO}/manifests/{child.digest}",
            headers={"Accept": MANIFEST_ACCEPT},
            timeout=10,
        )
        assert r.status_code == 200
