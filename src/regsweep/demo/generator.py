"""Build container images in memory and write them into a store in Distribution's exact layout.

Two layers of API:

- Builders (``make_layer``, ``image``, ``index``, ``referrer``, ``cosign_signature``, ...) return
  immutable ``Blob``/``Manifest`` values: the bytes a client would push. Tests reuse them to push
  the same content to a real registry over HTTP, so generated and real layouts can be compared.
- ``LayoutWriter`` writes those values the way Distribution 2.8/3.x handlers do (storage-layout.md
  §1.2, §1.4, §1.5, §5): blob data once, ``_layers`` links, manifest blob, revision link, tag index
  entry, then the tag's ``current/link``; every link is ``sha256:<hex>`` with no newline.

``generate_demo`` uses both to write a small but realistic registry: several repositories (one
nested in another), shared base layers, Docker and OCI images, a Docker manifest list and an OCI
index with untagged platform children, overwritten tags, referrers and cosign tags, orphan blobs
and a stale upload. Same seed and ``now`` give byte-identical objects and identical mtimes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import struct
import tarfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from regsweep.errors import UsageError
from regsweep.layout.keys import (
    DEFAULT_ROOT as ROOT,
)
from regsweep.layout.keys import (
    blob_data_key,
    layer_link_key,
    revision_link_key,
    tag_current_key,
    tag_index_key,
    upload_key,
)
from regsweep.layout.manifest import DOCKER_LIST as MT_DOCKER_LIST
from regsweep.layout.manifest import DOCKER_V2 as MT_DOCKER_MANIFEST
from regsweep.layout.manifest import OCI_INDEX as MT_OCI_INDEX
from regsweep.layout.manifest import OCI_MANIFEST as MT_OCI_MANIFEST
from regsweep.storage.base import ObjectStore

MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MT_COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

JsonObject = dict[str, object]


# --------------------------------------------------------------------------------------------
# Content builders


@dataclass(frozen=True, slots=True)
class Blob:
    """Bytes stored under their sha256 digest. The media type belongs to the descriptor that
    references a blob, not to the blob: the same layer is Docker in one manifest, OCI in another."""

    data: bytes
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", "sha256:" + hashlib.sha256(self.data).hexdigest())

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def descriptor(self, media_type: str, **extra: object) -> JsonObject:
        return {"mediaType": media_type, "digest": self.digest, "size": self.size, **extra}


EMPTY_CONFIG = Blob(b"{}")
assert EMPTY_CONFIG.digest == EMPTY_DIGEST


@dataclass(frozen=True, slots=True)
class Layer:
    """A gzip'd tar layer and the sha256 of its uncompressed tar (the config's diff_id)."""

    blob: Blob
    diff_id: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest ready to push: its own bytes, the blobs it references (config first) and, for
    an index, the child manifests. ``platform``/``artifact_type``/``annotations`` are what a
    parent index puts in the descriptor of this manifest."""

    blob: Blob
    media_type: str
    blobs: tuple[Blob, ...] = ()
    children: tuple[Manifest, ...] = ()
    platform: JsonObject | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    @property
    def digest(self) -> str:
        return self.blob.digest

    @property
    def hex(self) -> str:
        return self.blob.hex

    def descriptor(self) -> JsonObject:
        d = self.blob.descriptor(self.media_type)
        if self.platform is not None:
            d["platform"] = self.platform
        if self.artifact_type is not None:
            d["artifactType"] = self.artifact_type
        if self.annotations:
            d["annotations"] = self.annotations
        return d

    def walk(self) -> list[Manifest]:
        """This manifest and every manifest below it, children first (push order)."""
        out: list[Manifest] = []
        for child in self.children:
            out.extend(child.walk())
        out.append(self)
        return out


def _json(obj: object, *, docker: bool) -> bytes:
    # Docker's tooling writes 3-space indented manifests, OCI tooling compact ones.
    if docker:
        return json.dumps(obj, indent=3).encode()
    return json.dumps(obj, separators=(",", ":")).encode()


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_layer(seed: str, size: int, *, files: int = 3) -> Layer:
    """A valid gzip'd tar of about ``size`` bytes (random content compresses to about itself),
    a pure function of ``seed``: fixed mtimes, owners and gzip header, so same seed, same bytes."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tag = hashlib.sha256(seed.encode()).hexdigest()[:12]
        for d in ("usr/", "usr/share/", f"usr/share/{tag}/"):
            ti = tarfile.TarInfo(d.rstrip("/"))
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            tar.addfile(ti)
        per_file = max(size // files, 16)
        for i in range(files):
            body = (f"# {seed} file {i}\n".encode() * 4) + rng.randbytes(per_file)
            ti = tarfile.TarInfo(f"usr/share/{tag}/part-{i:02d}.bin")
            ti.size, ti.mode, ti.mtime = len(body), 0o644, 1700000000
            tar.addfile(ti, io.BytesIO(body))
    raw = buf.getvalue()
    return Layer(
        Blob(gzip.compress(raw, compresslevel=6, mtime=0)),
        "sha256:" + hashlib.sha256(raw).hexdigest(),
    )


def image_config(
    layers: Sequence[Layer],
    *,
    created: datetime,
    architecture: str = "amd64",
    os: str = "linux",
    cmd: Sequence[str] = ("/bin/sh",),
    labels: dict[str, str] | None = None,
) -> Blob:
    """An image config JSON with ``architecture``, ``os``, ``created`` and ``rootfs.diff_ids``."""
    cfg: JsonObject = {
        "architecture": architecture,
        "os": os,
        "created": _rfc3339(created),
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": list(cmd),
            "Labels": dict(labels or {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": _rfc3339(created), "created_by": f"ADD layer {i} in /"}
            for i in range(len(layers))
        ],
    }
    if architecture == "arm64":
        cfg["variant"] = "v8"
    return Blob(json.dumps(cfg, separators=(",", ":"), sort_keys=True).encode())


def _platform(architecture: str, os: str) -> JsonObject:
    p: JsonObject = {"architecture": architecture, "os": os}
    if architecture == "arm64":
        p["variant"] = "v8"
    return p


def image_manifest(
    config: Blob,
    layers: Sequence[Layer],
    *,
    docker: bool = False,
    platform: JsonObject | None = None,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """A Docker schema2 (``docker=True``) or OCI image manifest over ``config`` and ``layers``."""
    layer_mt = MT_DOCKER_LAYER if docker else MT_OCI_LAYER
    body: JsonObject = {
        "schemaVersion": 2,
        "mediaType": MT_DOCKER_MANIFEST if docker else MT_OCI_MANIFEST,
        "config": config.descriptor(MT_DOCKER_CONFIG if docker else MT_OCI_CONFIG),
        "layers": [layer.blob.descriptor(layer_mt) for layer in layers],
    }
    if annotations and not docker:
        body["annotations"] = annotations
    return Manifest(
        blob=Blob(_json(body, docker=docker)),
        media_type=MT_DOCKER_MANIFEST if docker else MT_OCI_MANIFEST,
        blobs=(config, *(layer.blob for layer in layers)),
        platform=platform,
    )


def image(
    layers: Sequence[Layer],
    *,
    created: datetime,
    docker: bool = False,
    architecture: str = "amd64",
    os: str = "linux",
    labels: dict[str, str] | None = None,
) -> Manifest:
    """Config plus image manifest in one call; ``platform`` is set for use in an index."""
    config = image_config(layers, created=created, architecture=architecture, os=os, labels=labels)
    return image_manifest(config, layers, docker=docker, platform=_platform(architecture, os))


def index(
    children: Sequence[Manifest],
    *,
    docker: bool = False,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """A Docker manifest list (``docker=True``) or an OCI image index over ``children``."""
    mt = MT_DOCKER_LIST if docker else MT_OCI_INDEX
    body: JsonObject = {
        "schemaVersion": 2,
        "mediaType": mt,
        "manifests": [child.descriptor() for child in children],
    }
    if annotations and not docker:
        body["annotations"] = annotations
    return Manifest(blob=Blob(_json(body, docker=docker)), media_type=mt, children=tuple(children))


def referrer(
    subject: Manifest,
    *,
    artifact_type: str,
    payload: bytes,
    payload_media_type: str,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """An OCI 1.1 artifact: image manifest with ``artifactType``, the empty ``{}`` config, one
    payload layer and ``subject``. Push it by digest; list it in ``referrers_index``."""
    payload_blob = Blob(payload)
    body: JsonObject = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": EMPTY_CONFIG.descriptor(MT_OCI_EMPTY),
        "layers": [payload_blob.descriptor(payload_media_type)],
        "subject": subject.blob.descriptor(subject.media_type),
    }
    if annotations:
        body["annotations"] = annotations
    return Manifest(
        blob=Blob(_json(body, docker=False)),
        media_type=MT_OCI_MANIFEST,
        blobs=(EMPTY_CONFIG, payload_blob),
        artifact_type=artifact_type,
        annotations=annotations,
    )


def referrers_tag(digest: str) -> str:
    """The referrers-fallback tag of a subject: ``sha256-<hex>`` (distribution-spec)."""
    alg, hex_ = digest.split(":", 1)
    return f"{alg}-{hex_[:64]}"


def cosign_tag(digest: str, suffix: str = "sig") -> str:
    """Cosign's legacy tag for a subject: ``sha256-<hex>.sig`` (or ``.att``, ``.sbom``)."""
    return f"{referrers_tag(digest)}.{suffix}"


def referrers_index(referrers: Sequence[Manifest]) -> Manifest:
    """The index a client keeps under ``referrers_tag(subject)`` listing the referrers."""
    return index(referrers)


def cosign_signature(subject: Manifest, reference: str, *, seed: str = "") -> Manifest:
    """A cosign-style signature manifest: empty config, a simplesigning payload layer with the
    signature annotation, and no ``subject`` (only the tag name links it to the image)."""
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": subject.digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()
    payload_blob = Blob(payload)
    fake_sig = hashlib.sha512(f"{seed}:{subject.digest}".encode()).digest()

    body: JsonObject = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": EMPTY_CONFIG.descriptor(MT_OCI_EMPTY),
        "layers": [
            payload_blob.descriptor(
                MT_COSIGN_SIMPLESIGNING,
                annotations={
                    "dev.cosignproject.cosign/signature": base64.b64encode(fake_sig).decode()
                },
            )
        ],
    }
    return Manifest(
        blob=Blob(_json(body, docker=False)),
        media_type=MT_OCI_MANIFEST,
        blobs=(EMPTY_CONFIG, payload_blob),
    )


# --------------------------------------------------------------------------------------------
# Upload hash state: Go's crypto/sha256 MarshalBinary, as Distribution stores it per offset.

_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)  # fmt: skip
_H0 = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


def _compress(h: list[int], block: bytes) -> list[int]:
    w = list(struct.unpack(">16I", block))
    for i in range(16, 64):
        s0 = _rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
        s1 = _rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & 0xFFFFFFFF)
    a, b, c, d, e, f, g, hh = h
    for i in range(64):
        t1 = hh + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _K[i] + w[i]
        t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        a, b, c, d, e, f, g, hh = (t1 + t2) & 0xFFFFFFFF, a, b, c, (d + t1) & 0xFFFFFFFF, e, f, g
    return [(x + y) & 0xFFFFFFFF for x, y in zip(h, (a, b, c, d, e, f, g, hh), strict=True)]


def sha256_hashstate(data: bytes) -> bytes:
    """The 108-byte state Go's sha256 digester marshals after hashing ``data``: ``sha\\x03``,
    eight big-endian state words, the pending partial block zero-padded to 64 bytes, and the
    length. Distribution writes it to ``_uploads/<id>/hashstates/sha256/<len(data)>``."""
    h = list(_H0)
    full = len(data) - len(data) % 64
    for off in range(0, full, 64):
        h = _compress(h, data[off : off + 64])
    pending = data[full:]
    return (
        b"sha\x03"
        + struct.pack(">8I", *h)
        + pending
        + bytes(64 - len(pending))
        + struct.pack(">Q", len(data))
    )


# --------------------------------------------------------------------------------------------
# Layout writer


@runtime_checkable
class SupportsSetMtime(Protocol):
    def set_mtime(self, key: str, when: datetime) -> None: ...


class LayoutWriter:
    """Writes pushes into ``store`` object by object, in the order Distribution writes them.

    It models a client that HEADs before it uploads (a blob already linked in the repository is
    skipped) and a registry that writes blob data only when absent but rewrites links on every
    push. Each write gets the next timestamp of the push (``when`` plus one second per object)
    when the store can back-date objects; other stores keep their own clock."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._data: set[str] = set()
        self._links: set[tuple[str, str]] = set()
        self._bytes: dict[str, int] = {}
        self._when: datetime | None = None
        self.keys: set[str] = set()  # every key written (links are rewritten in place)

    @property
    def blob_sizes(self) -> dict[str, int]:
        """Digest -> size of every blob data object written so far."""
        return dict(self._bytes)

    @property
    def layer_links(self) -> dict[str, set[str]]:
        """Repository -> digests linked in its ``_layers`` so far."""
        out: dict[str, set[str]] = {}
        for repo, digest in self._links:
            out.setdefault(repo, set()).add(digest)
        return out

    def _put(self, key: str, data: bytes) -> None:
        self.store.write(key, data)
        self.keys.add(key)
        if self._when is not None and isinstance(self.store, SupportsSetMtime):
            self.store.set_mtime(key, self._when)
            self._when += timedelta(seconds=1)

    def _link(self, key: str, digest: str) -> None:
        self._put(key, digest.encode("ascii"))  # exactly "sha256:<hex>": 71 bytes, no newline

    def at(self, when: datetime) -> LayoutWriter:
        """Set the time of the next writes (only used by stores that can back-date)."""
        self._when = when
        return self

    def put_blob_data(self, blob: Blob) -> None:
        """Blob data, written only once per digest (commit skips the move if it exists)."""
        if blob.digest not in self._data:
            self._put(blob_data_key(blob.digest), blob.data)
            self._data.add(blob.digest)
            self._bytes[blob.digest] = blob.size

    def push_blob(self, repo: str, blob: Blob) -> None:
        """An upload (or cross-repo mount) into ``repo``: data if absent, then the _layers link."""
        if (repo, blob.digest) in self._links:
            return  # the client's HEAD found it linked: nothing is written
        self.put_blob_data(blob)
        self._link(layer_link_key(repo, blob.digest), blob.digest)
        self._links.add((repo, blob.digest))

    def put_manifest(self, repo: str, manifest: Manifest, tag: str | None = None) -> None:
        """One manifest PUT: manifest blob if absent, revision link, then (for a tag) the tag
        index entry and ``current/link``. Referenced blobs must have been pushed already."""
        self.put_blob_data(manifest.blob)
        self._link(revision_link_key(repo, manifest.digest), manifest.digest)
        if tag is not None:
            self._link(tag_index_key(repo, tag, manifest.digest), manifest.digest)
            self._link(tag_current_key(repo, tag), manifest.digest)

    def push(self, repo: str, manifest: Manifest, tags: Sequence[str] = ()) -> None:
        """A full client push: for each manifest (children first) its blobs, then the manifest
        by digest; finally the top manifest once per tag (or once by digest if no tag)."""
        for m in manifest.walk():
            for blob in m.blobs:
                self.push_blob(repo, blob)
            if m is not manifest:
                self.put_manifest(repo, m)
        if not tags:
            self.put_manifest(repo, manifest)
        for tag in tags:
            self.put_manifest(repo, manifest, tag)

    def stale_upload(self, repo: str, upload_id: str, data: bytes, started: datetime) -> None:
        """An upload that was started (POST) and got one PATCH of ``data``, never committed."""
        self._put(upload_key(repo, upload_id, "startedat"), _rfc3339(started).encode())
        self._put(upload_key(repo, upload_id, "data"), data)
        self._put(upload_key(repo, upload_id, "hashstates/sha256/0"), sha256_hashstate(b""))
        self._put(
            upload_key(repo, upload_id, f"hashstates/sha256/{len(data)}"), sha256_hashstate(data)
        )


# --------------------------------------------------------------------------------------------
# The demo registry


@dataclass(frozen=True, slots=True)
class StaleUpload:
    repository: str
    upload_id: str
    started_at: datetime
    size: int


@dataclass(slots=True)
class DemoSummary:
    """What ``generate_demo`` wrote, for checking a scan against it. Digests are
    ``sha256:<hex>``; every mapping and list is sorted."""

    repositories: list[str]
    tags: dict[str, dict[str, str]]  # repository -> tag -> manifest digest
    manifests: dict[str, dict[str, str]]  # repository -> digest -> media type (every revision)
    untagged: dict[str, list[str]]  # repository -> revisions no tag points to now
    # untagged manifests listed by a tagged index: platform children, and the referrers a
    # referrers-fallback index lists (so a referrer can be in both this and ``referrers``)
    index_children: dict[str, list[str]]
    referrers: dict[str, list[str]]  # untagged manifests whose subject is a kept manifest
    overwritten: dict[
        str, list[str]
    ]  # untagged, only in tag history: what gc --delete-untagged may remove
    tag_history: dict[str, dict[str, list[str]]]  # repository -> tag -> every digest it pointed to
    layer_links: dict[str, list[str]]  # repository -> digests linked in _layers
    blobs: dict[
        str, int
    ]  # every blob data object (layers, configs, manifests, orphans): digest -> size
    orphan_blobs: list[str]  # blob data nothing links to or references
    stale_uploads: list[StaleUpload]
    total_bytes: int  # sum of blob data sizes
    object_count: int  # distinct objects in the store, all kinds

    def referenced_blobs(self) -> set[str]:
        """Every blob that some revision in some repository needs (all but the orphans)."""
        return set(self.blobs) - set(self.orphan_blobs)


def _days(now: datetime, days: float, hour: int = 0) -> datetime:
    t = now - timedelta(days=days)
    return t.replace(hour=hour, minute=17, second=3, microsecond=0)


def generate_demo(store: ObjectStore, *, seed: int = 0, now: datetime) -> DemoSummary:
    """Write a realistic small registry into an empty ``store`` and describe it.

    About 450 KB in 55 blobs and ~160 objects. On S3 Distribution would keep the stale upload's
    ``data`` as an incomplete multipart upload; the demo writes it as a plain object everywhere.
    Byte-identical output for the same ``seed`` and ``now`` assumes the same zlib build.

    The history spans about 60 days before ``now``; orphans and overwritten manifests are days
    old (beyond a 24h grace), the stale upload started 9 days before ``now`` (beyond the 168h
    upload grace). Raises UsageError if ``store`` already holds ``docker/registry/v2/`` objects:
    the demo never writes into a real registry."""
    if now.tzinfo is None:
        raise UsageError("generate_demo needs a timezone-aware 'now'")
    if next(iter(store.iter_objects(ROOT)), None) is not None:
        raise UsageError(f"{store.url}: already holds a registry; the demo needs an empty store")
    now = now.astimezone(UTC)
    rng = random.Random(f"regsweep-demo:{seed}")

    built: dict[str, Layer] = {}

    def layer(name: str, lo: int = 0, hi: int = 0) -> Layer:
        if name not in built:
            built[name] = make_layer(f"{seed}:{name}", rng.randint(lo, hi))
        return built[name]

    w = LayoutWriter(store)
    tags: dict[str, dict[str, str]] = {}
    history: dict[str, dict[str, list[str]]] = {}
    revisions: dict[str, dict[str, str]] = {}
    children: dict[str, set[str]] = {}
    referrer_digests: dict[str, set[str]] = {}

    def push(repo: str, m: Manifest, *tag_names: str) -> None:
        w.push(repo, m, tag_names)
        for sub in m.walk():
            revisions.setdefault(repo, {})[sub.digest] = sub.media_type
            if sub is not m:
                children.setdefault(repo, set()).add(sub.digest)
        for t in tag_names:
            tags.setdefault(repo, {})[t] = m.digest
            hist = history.setdefault(repo, {}).setdefault(t, [])
            if m.digest not in hist:
                hist.append(m.digest)

    base_os = layer("base-os-amd64", 70_000, 100_000)
    base_os_arm = layer("base-os-arm64", 60_000, 90_000)
    base_upd = layer("base-3.20-update-amd64", 20_000, 40_000)
    base_upd_arm = layer("base-3.20-update-arm64", 20_000, 40_000)
    app_deps = layer("app-deps", 30_000, 50_000)
    debug_tools = layer("debug-tools", 20_000, 35_000)

    # library/base: a single-arch Docker image, then a Docker manifest list, and a moving "edge".
    base_319 = image([base_os], created=_days(now, 61), docker=True)
    w.at(_days(now, 60, 9))
    push("library/base", base_319, "3.19", "latest")
    base_320 = index(
        [
            image([base_os, base_upd], created=_days(now, 46), docker=True),
            image(
                [base_os_arm, base_upd_arm],
                created=_days(now, 46),
                docker=True,
                architecture="arm64",
            ),
        ],
        docker=True,
    )
    w.at(_days(now, 45, 10))
    push("library/base", base_320, "3.20", "latest")

    # team/app: Docker images built on the base; "dev" and "latest" move.
    def app_image(build: str, created: datetime) -> Manifest:
        code = layer(f"app-code-{build}", 4_000, 12_000)
        labels = {"org.opencontainers.image.version": build}
        return image([base_os, app_deps, code], created=created, docker=True, labels=labels)

    app_110 = app_image("1.1.0", _days(now, 53))
    w.at(_days(now, 52, 14))
    push("team/app", app_110, "v1.1.0", "latest")
    dev_1 = app_image("dev-1", _days(now, 31))
    w.at(_days(now, 30, 11))
    push("team/app", dev_1, "dev")
    dev_2 = app_image("dev-2", _days(now, 22))
    w.at(_days(now, 21, 16))
    push("team/app", dev_2, "dev")
    w.at(_days(now, 20, 8))
    push("team/app", dev_2, "v1.2.0-rc1")  # re-tag by digest: no new data, fresh links
    app_120 = app_image("1.2.0", _days(now, 15))
    w.at(_days(now, 14, 13))
    push("team/app", app_120, "v1.2.0", "latest", "dev")

    # team/app/debug: nested inside team/app, mounts the app's layers.
    debug = image(
        [base_os, app_deps, layer("app-code-1.2.0"), debug_tools],
        created=_days(now, 13),
        docker=True,
    )
    w.at(_days(now, 12, 15))
    push("team/app/debug", debug, "v1.2.0", "latest")

    # tools/ci-runner: OCI multi-arch indexes with untagged platform children, signed, with an SBOM.
    def runner(version: str, created: datetime) -> Manifest:
        amd = layer(f"runner-{version}-amd64", 10_000, 30_000)
        arm = layer(f"runner-{version}-arm64", 10_000, 30_000)
        return index(
            [
                image([base_os, amd], created=created),
                image([base_os_arm, arm], created=created, architecture="arm64"),
            ],
            annotations={"org.opencontainers.image.version": version},
        )

    runner_230 = runner("2.3.0", _days(now, 41))
    w.at(_days(now, 40, 10))
    push("tools/ci-runner", runner_230, "v2.3.0", "latest")
    runner_241 = runner("2.4.1", _days(now, 8))
    w.at(_days(now, 7, 9))
    push("tools/ci-runner", runner_241, "v2.4.1", "latest")
    sig = cosign_signature(runner_241, "registry.example/tools/ci-runner", seed=str(seed))
    w.at(_days(now, 7, 10))
    push("tools/ci-runner", sig, cosign_tag(runner_241.digest))
    sbom = referrer(
        runner_241,
        artifact_type="application/spdx+json",
        payload=json.dumps(
            {"spdxVersion": "SPDX-2.3", "name": "ci-runner-2.4.1", "packages": []},
            separators=(",", ":"),
        ).encode(),
        payload_media_type="application/spdx+json",
        annotations={"org.opencontainers.image.created": _rfc3339(_days(now, 6, 11))},
    )
    w.at(_days(now, 6, 11))
    push("tools/ci-runner", sbom)  # by digest: untagged
    referrer_digests.setdefault("tools/ci-runner", set()).add(sbom.digest)
    w.at(_days(now, 6, 11).replace(minute=18))
    push("tools/ci-runner", referrers_index([sbom]), referrers_tag(runner_241.digest))

    # library/base:edge, rebuilt nightly-ish: the first build is left untagged.
    edge_a = image(
        [base_os, layer("base-edge-a", 8_000, 20_000)], created=_days(now, 11), docker=True
    )
    w.at(_days(now, 10, 3))
    push("library/base", edge_a, "edge")
    edge_b = image(
        [base_os, layer("base-edge-b", 8_000, 20_000)], created=_days(now, 4), docker=True
    )
    w.at(_days(now, 3, 3))
    push("library/base", edge_b, "edge")

    # Orphans: blob data whose manifests and links were removed long ago.
    orphans = [
        layer("orphan-layer", 15_000, 25_000).blob,
        image_config([], created=_days(now, 39), labels={"orphan": "yes"}),
    ]
    w.at(_days(now, 38, 2))
    for blob in orphans:
        w.put_blob_data(blob)

    # A stale upload: POST + one PATCH, never committed.
    started = _days(now, 9).replace(hour=10, minute=0, second=0)
    upload_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    upload_data = rng.randbytes(rng.randint(3_000, 6_000))
    w.at(started)
    w.stale_upload("team/app", upload_id, upload_data, started)

    # --- summary -------------------------------------------------------------------------
    untagged: dict[str, list[str]] = {}
    overwritten: dict[str, list[str]] = {}
    for repo, revs in revisions.items():
        current = set(tags.get(repo, {}).values())
        loose = sorted(d for d in revs if d not in current)
        untagged[repo] = loose
        protected = children.get(repo, set()) | referrer_digests.get(repo, set())
        overwritten[repo] = [d for d in loose if d not in protected]
    blob_sizes = w.blob_sizes
    return DemoSummary(
        repositories=sorted(revisions),
        tags={r: dict(sorted(t.items())) for r, t in sorted(tags.items())},
        manifests={r: dict(sorted(m.items())) for r, m in sorted(revisions.items())},
        untagged=dict(sorted(untagged.items())),
        index_children={r: sorted(c) for r, c in sorted(children.items())},
        referrers={r: sorted(c) for r, c in sorted(referrer_digests.items())},
        overwritten=dict(sorted(overwritten.items())),
        tag_history={r: dict(sorted(h.items())) for r, h in sorted(history.items())},
        layer_links={r: sorted(d) for r, d in sorted(w.layer_links.items())},
        blobs=dict(sorted(blob_sizes.items())),
        orphan_blobs=sorted(b.digest for b in orphans),
        stale_uploads=[StaleUpload("team/app", upload_id, started, len(upload_data))],
        total_bytes=sum(blob_sizes.values()),
        object_count=len(w.keys),
    )
