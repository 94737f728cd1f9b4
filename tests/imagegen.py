"""Test images without downloads, and three ways to get them into a registry.

Content (re-exported from ``regsweep.demo.generator``, so tests and the demo share one builder):
``make_layer(seed, size)`` -> ``Layer`` (valid gzip'd tar, deterministic), ``image(layers, created=,
docker=, architecture=)`` -> ``Manifest`` (config + image manifest), ``index(children, docker=)``
(Docker manifest list or OCI index), ``referrer(subject, artifact_type=, payload=, ...)`` (OCI 1.1
artifact with ``subject`` and the empty config), ``referrers_index``, ``cosign_signature``,
``referrers_tag``/``cosign_tag``. A ``Manifest`` carries its bytes, media type, blobs (config
first) and children, so any of the pushers below can push it whole.

Pushers:
- ``RegistryClient(url)``: the registry HTTP API with ``requests`` (monolithic and chunked
  uploads, cross-repo mount, manifest PUT by tag or digest, DELETE, an abandoned upload).
- ``LayoutWriter(store)`` (also re-exported): writes straight into storage, no registry.
- ``write_oci_layout(dir, {tag: manifest})`` + ``skopeo_copy``: a real client pushes it::

      layout = write_oci_layout(tmp_path / "oci", {"v1": img})
      skopeo_copy(f"oci:{layout}:v1", f"docker://{reg.host}/team/app:v1")
      skopeo_copy_all(f"docker://{reg.host}/team/app:v1", f"dir:{tmp_path / 'pulled'}")
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

import requests

from registry_fixtures import require_binary
from regsweep.demo.generator import (
    EMPTY_CONFIG,
    EMPTY_DIGEST,
    Blob,
    Layer,
    LayoutWriter,
    Manifest,
    cosign_signature,
    cosign_tag,
    image,
    image_config,
    image_manifest,
    index,
    make_layer,
    referrer,
    referrers_index,
    referrers_tag,
    sha256_hashstate,
)
from regsweep.layout.manifest import DOCKER_LIST as MT_DOCKER_LIST
from regsweep.layout.manifest import DOCKER_V2 as MT_DOCKER_MANIFEST
from regsweep.layout.manifest import OCI_INDEX as MT_OCI_INDEX
from regsweep.layout.manifest import OCI_MANIFEST as MT_OCI_MANIFEST

__all__ = [
    "EMPTY_CONFIG",
    "EMPTY_DIGEST",
    "FIXED_TIME",
    "MANIFEST_ACCEPT",
    "MT_DOCKER_LIST",
    "MT_DOCKER_MANIFEST",
    "MT_OCI_INDEX",
    "MT_OCI_MANIFEST",
    "Blob",
    "Layer",
    "LayoutWriter",
    "Manifest",
    "RegistryClient",
    "cosign_signature",
    "cosign_tag",
    "image",
    "image_config",
    "image_manifest",
    "index",
    "make_layer",
    "referrer",
    "referrers_index",
    "referrers_tag",
    "sample_image",
    "sha256_hashstate",
    "skopeo_copy",
    "skopeo_copy_all",
    "write_oci_layout",
]

FIXED_TIME = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
MANIFEST_ACCEPT = ", ".join([MT_OCI_INDEX, MT_OCI_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST])


def sample_image(
    seed: str,
    *,
    layers: int = 2,
    size: int = 8_000,
    docker: bool = False,
    architecture: str = "amd64",
    base: Sequence[Layer] = (),
) -> Manifest:
    """A small image: ``base`` layers (to share blobs across images) plus ``layers`` new ones."""
    own = [make_layer(f"{seed}:{i}", size) for i in range(layers)]
    return image([*base, *own], created=FIXED_TIME, docker=docker, architecture=architecture)


class RegistryClient:
    """Minimal registry API client (no auth): enough to push, mount, tag, delete and abandon."""

    def __init__(self, url: str, *, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()

    def _abs(self, location: str) -> str:
        return urljoin(self.url + "/", location)

    def _check(self, resp: requests.Response, *expected: int) -> requests.Response:
        if resp.status_code not in expected:
            raise AssertionError(
                f"{resp.request.method} {resp.url} -> {resp.status_code}, expected {expected}: "
                f"{resp.text[:500]}"
            )
        return resp

    # --- blobs -------------------------------------------------------------------------------
    def start_upload(self, repo: str) -> str:
        """POST an upload; returns its absolute Location."""
        resp = self.http.post(f"{self.url}/v2/{repo}/blobs/uploads/", timeout=self.timeout)
        return self._abs(self._check(resp, 202).headers["Location"])

    def upload_blob(
        self,
        repo: str,
        blob: Blob | bytes,
        *,
        chunk_size: int | None = None,
        location: str | None = None,
    ) -> str:
        """Upload ``blob``: monolithic (POST, then PUT with the body) or, with ``chunk_size``,
        chunked (POST, PATCH per chunk with Content-Range, then an empty PUT). ``location``
        continues an upload already started (e.g. by a mount that fell back). Returns the
        digest."""
        blob = blob if isinstance(blob, Blob) else Blob(blob)
        location = location or self.start_upload(repo)
        if chunk_size is None:
            resp = self.http.put(
                location,
                params={"digest": blob.digest},
                data=blob.data,
                headers={"Content-Type": "application/octet-stream"},
                timeout=self.timeout,
            )
        else:
            for start in range(0, blob.size, chunk_size):
                chunk = blob.data[start : start + chunk_size]
                resp = self._check(
                    self.http.patch(
                        location,
                        data=chunk,
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Range": f"{start}-{start + len(chunk) - 1}",
                        },
                        timeout=self.timeout,
                    ),
                    202,
                )
                location = self._abs(resp.headers["Location"])
            resp = self.http.put(location, params={"digest": blob.digest}, timeout=self.timeout)
        self._check(resp, 201)
        return blob.digest

    def try_mount(self, repo: str, digest: str, from_repo: str) -> str | None:
        """Cross-repo mount (``POST ...?mount=<digest>&from=<repo>``). None if mounted (201);
        else the Location of the upload the registry started instead (202), as clients then
        upload into it."""
        resp = self.http.post(
            f"{self.url}/v2/{repo}/blobs/uploads/",
            params={"mount": digest, "from": from_repo},
            timeout=self.timeout,
        )
        self._check(resp, 201, 202)
        return self._abs(resp.headers["Location"]) if resp.status_code == 202 else None

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repo mount; True if mounted. On a fallback upload the upload is cancelled
        (DELETE); note Distribution 2.8 then still leaves ``hashstates/sha256/0`` behind."""
        location = self.try_mount(repo, digest, from_repo)
        if location is None:
            return True
        self._check(self.http.delete(location, timeout=self.timeout), 204)
        return False

    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self.http.head(f"{self.url}/v2/{repo}/blobs/{digest}", timeout=self.timeout)
        return self._check(resp, 200, 404).status_code == 200

    def abandon_upload(self, repo: str, data: bytes) -> str:
        """Start an upload and send one PATCH of ``data``, never finish it. Returns the id."""
        location = self.start_upload(repo)
        resp = self.http.patch(
            location,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=self.timeout,
        )
        return self._check(resp, 202).headers["Docker-Upload-UUID"]

    # --- manifests ---------------------------------------------------------------------------
    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        """PUT by tag or digest with the manifest's Content-Type; returns the digest the
        registry computed (and checks it matches)."""
        resp = self.http.put(
            f"{self.url}/v2/{repo}/manifests/{reference}",
            data=manifest.blob.data,
            headers={"Content-Type": manifest.media_type},
            timeout=self.timeout,
        )
        digest = self._check(resp, 201).headers["Docker-Content-Digest"]
        assert digest == manifest.digest, (digest, manifest.digest)
        return digest

    def get_manifest(self, repo: str, reference: str) -> requests.Response:
        resp = self.http.get(
            f"{self.url}/v2/{repo}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT},
            timeout=self.timeout,
        )
        return resp

    def delete_manifest(self, repo: str, digest: str) -> None:
        resp = self.http.delete(f"{self.url}/v2/{repo}/manifests/{digest}", timeout=self.timeout)
        self._check(resp, 202)

    def push(
        self,
        repo: str,
        manifest: Manifest,
        tags: Sequence[str] = (),
        *,
        mount_from: str | None = None,
        chunk_size: int | None = None,
    ) -> str:
        """Push the whole tree as a client does: for each manifest (children first), HEAD each
        blob and mount (from ``mount_from``) or upload the missing ones, then PUT the child by
        digest; finally PUT the top manifest once per tag (by digest if no tags)."""
        for m in manifest.walk():
            for blob in m.blobs:
                if self.blob_exists(repo, blob.digest):
                    continue
                location = None
                if mount_from is not None:
                    location = self.try_mount(repo, blob.digest, mount_from)
                    if location is None:
                        continue
                self.upload_blob(repo, blob, chunk_size=chunk_size, location=location)
            if m is not manifest:
                self.put_manifest(repo, m.digest, m)
        for ref in tags or [manifest.digest]:
            self.put_manifest(repo, ref, manifest)
        return manifest.digest

    # --- listing -----------------------------------------------------------------------------
    def catalog(self) -> list[str]:
        """Every repository, following the ``Link: <…>; rel="next"`` pages."""
        repos: list[str] = []
        url: str | None = f"{self.url}/v2/_catalog?n=100"
        while url is not None:
            resp = self._check(self.http.get(url, timeout=self.timeout), 200)
            repos += resp.json()["repositories"]
            nxt = resp.links.get("next")
            url = self._abs(nxt["url"]) if nxt else None
        return repos

    def tags(self, repo: str) -> list[str]:
        resp = self.http.get(f"{self.url}/v2/{repo}/tags/list", timeout=self.timeout)
        tags: list[str] = self._check(resp, 200).json()["tags"] or []
        return tags


def write_oci_layout(directory: Path, images: Mapping[str, Manifest]) -> Path:
    """Write an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``) holding
    ``images`` under their tags (``org.opencontainers.image.ref.name``), for ``oci:DIR:TAG``.
    Tagged manifests must be OCI: skopeo 1.9's ``oci:`` transport ignores Docker media types."""
    for tag, top in images.items():
        if top.media_type not in (MT_OCI_MANIFEST, MT_OCI_INDEX):
            raise ValueError(f"{tag}: skopeo cannot read a {top.media_type} from an OCI layout")
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entries = []
    for tag, top in images.items():
        for m in top.walk():
            for blob in (*m.blobs, m.blob):
                path = blobs / blob.hex
                if not path.exists():
                    path.write_bytes(blob.data)
        entry = top.blob.descriptor(top.media_type)
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        entries.append(entry)
    doc = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries}
    (directory / "index.json").write_text(json.dumps(doc))
    return directory


def skopeo_copy(
    src: str, dst: str, *, all_images: bool = True, extra: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``skopeo copy`` (``--all`` by default); TLS checks are off for ``docker://`` ends, which
    are plain HTTP on loopback. Raises AssertionError with skopeo's output on failure."""
    binary = require_binary("skopeo")
    cmd = [binary, "copy", "--retry-times", "0"]
    if all_images:
        cmd.append("--all")
    if src.startswith("docker://"):
        cmd.append("--src-tls-verify=false")
    if dst.startswith("docker://"):
        cmd.append("--dest-tls-verify=false")
    cmd += [*extra, src, dst]
    for transport in ("dir:", "oci:"):  # skopeo wants the parent of a local destination
        if dst.startswith(transport):
            Path(dst[len(transport) :].split(":", 1)[0]).parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def skopeo_copy_all(src: str, dst: str) -> subprocess.CompletedProcess[str]:
    """Copy every image of ``src`` (all platforms of an index) to ``dst``, e.g. to pull back
    ``docker://127.0.0.1:PORT/repo:tag`` into ``dir:/tmp/x`` or ``oci:/tmp/x:tag``."""
    return skopeo_copy(src, dst, all_images=True)
