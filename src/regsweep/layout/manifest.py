"""Manifest parsing into reference edges (storage-layout.md §3).

Distribution stores no media type: a manifest is classified from its JSON, by ``mediaType``
first and then by shape. Parsing never raises. A manifest that cannot be understood comes back
with ``problem`` set, and callers must treat it as able to reference anything in its repository
(fail closed, design.md invariant 3). Whatever digests could still be found are returned as
references all the same.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import orjson

from regsweep.layout.digest import is_valid_digest

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_ARTIFACT = "application/vnd.oci.artifact.manifest.v1+json"

MANIFEST_MEDIA_TYPES = frozenset(
    {DOCKER_V2, DOCKER_LIST, DOCKER_V1, DOCKER_V1_SIGNED, OCI_MANIFEST, OCI_INDEX, OCI_ARTIFACT}
)
INDEX_MEDIA_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
IMAGE_MEDIA_TYPES = frozenset({DOCKER_V2, OCI_MANIFEST})

# Kinds of manifest.
IMAGE = "image"
INDEX = "index"
SCHEMA1 = "schema1"
ARTIFACT = "artifact"
UNKNOWN = "unknown"

# Kinds of reference. "subject" is weak: it never keeps its target alive (§3.4).
REF_CONFIG = "config"
REF_LAYER = "layer"
REF_MANIFEST = "manifest"
REF_BLOB = "blob"  # artifact blobs[], or a non-manifest descriptor inside an index
REF_SUBJECT = "subject"


# Not frozen: a scan makes one per descriptor of every manifest, and a frozen dataclass's
# __init__ costs about three times as much. Nothing changes a Reference after parsing.
@dataclass(slots=True)
class Reference:
    digest: str
    kind: str
    media_type: str | None = None
    size: int | None = None
    platform: str | None = None  # "os/arch[/variant]" for index entries
    has_urls: bool = False  # foreign / non-distributable: may legitimately be absent
    artifact_type: str | None = None

    @property
    def strong(self) -> bool:
        return self.kind != REF_SUBJECT


@dataclass(slots=True)
class ParsedManifest:
    kind: str
    media_type: str | None
    references: list[Reference] = field(default_factory=list)
    artifact_type: str | None = None
    subject: str | None = None
    problem: str | None = None  # None: fully understood. Else a short stable code + detail.


# A size that does not fit the snapshot's int64 column (no registry could have accepted it) is
# no size at all.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _platform(p: Any) -> str | None:
    if not isinstance(p, dict):
        return None
    parts = [str(p.get("os", "")), str(p.get("architecture", ""))]
    if p.get("variant"):
        parts.append(str(p["variant"]))
    return "/".join(parts) if any(parts) else None


class _Collector:
    def __init__(self) -> None:
        self.refs: list[Reference] = []
        self.problems: list[str] = []

    def descriptor(
        self,
        d: Any,
        kind: str,
        where: str,
        index: int | None = None,
        *,
        allow_platform: bool = False,
    ) -> None:
        """Record the descriptor ``d`` found at ``where`` (``where[index]`` in a list). A scan
        calls this for every descriptor of every manifest: the common case does a few dict
        lookups, and the problem texts are only built for a problem."""
        if not isinstance(d, dict):
            self.problems.append(f"{_at(where, index)} is not a descriptor")
            return
        digest = d.get("digest")
        if not isinstance(digest, str) or not is_valid_digest(digest):
            self.problems.append(f"{_at(where, index)} has an invalid digest {digest!r}")
            return
        mt = d.get("mediaType")
        if not isinstance(mt, str):
            mt = None
        else:
            if kind == REF_MANIFEST and mt not in MANIFEST_MEDIA_TYPES:
                # An index may list non-manifest descriptors; they are plain blob references.
                kind = REF_BLOB
            mt = sys.intern(mt)
        size = d.get("size")
        urls = d.get("urls")
        artifact_type = d.get("artifactType")
        self.refs.append(
            Reference(
                # Interned: a scan holds every reference until its tables are built, and
                # JSON gives a new string for each, where a store's references name a few
                # media types and share many digests (base layers: 40% of the references
                # on the benchmark store): 60 MiB less at 1M objects.
                sys.intern(digest),
                kind,
                mt,
                size if isinstance(size, int) and _INT64_MIN <= size <= _INT64_MAX else None,
                _platform(d.get("platform")) if allow_platform else None,
                isinstance(urls, list) and len(urls) > 0,
                artifact_type if isinstance(artifact_type, str) else None,
            )
        )

    def descriptors(self, items: Any, kind: str, where: str, **kw: bool) -> None:
        if items is None:
            return
        if not isinstance(items, list):
            self.problems.append(f"{where} is not a list")
            return
        for i, d in enumerate(items):
            self.descriptor(d, kind, where, i, **kw)


def _at(where: str, index: int | None) -> str:
    return where if index is None else f"{where}[{index}]"


def parse_manifest(data: bytes) -> ParsedManifest:
    """Classify a manifest blob and list what it references. Never raises."""
    try:
        # orjson, not json: three times as fast, and strict where Distribution (Go) is too:
        # invalid UTF-8, NaN and nesting deeper than 1024 are errors (json accepted the first
        # two, and raised RecursionError on the last).
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        return ParsedManifest(UNKNOWN, None, problem=f"unparsable: {e.__class__.__name__}")
    if not isinstance(doc, dict):
        return ParsedManifest(UNKNOWN, None, problem="unparsable: not a JSON object")

    # Interned, as a descriptor's: a scan holds every manifest's until its tables are built.
    mt = sys.intern(doc["mediaType"]) if isinstance(doc.get("mediaType"), str) else None
    version = doc.get("schemaVersion")
    c = _Collector()
    kind: str

    if version == 1 or (mt in (DOCKER_V1, DOCKER_V1_SIGNED)):
        kind = SCHEMA1
        layers = doc.get("fsLayers")
        if not isinstance(layers, list):
            c.problems.append("fsLayers is not a list")
        else:
            for i, layer in enumerate(layers):
                blob = layer.get("blobSum") if isinstance(layer, dict) else None
                # Very old blobSums can be tarsum digests; keep them, gc resolves them via links.
                if isinstance(blob, str) and (is_valid_digest(blob) or blob.startswith("tarsum.")):
                    c.refs.append(Reference(blob, REF_LAYER))
                else:
                    c.problems.append(f"fsLayers[{i}] has an invalid blobSum")
    elif version != 2:
        _salvage(doc, c)
        return ParsedManifest(UNKNOWN, mt, c.refs, problem=f"unknown-schema-version: {version!r}")
    elif mt in IMAGE_MEDIA_TYPES or (mt is None and not isinstance(doc.get("manifests"), list)):
        if mt is None and "blobs" in doc and "layers" not in doc:
            kind = ARTIFACT
            c.descriptors(doc.get("blobs"), REF_BLOB, "blobs")
        else:
            kind = IMAGE
            c.descriptor(doc.get("config"), REF_CONFIG, "config")
            c.descriptors(doc.get("layers"), REF_LAYER, "layers")
            if "layers" not in doc and mt == DOCKER_V2:
                c.problems.append("layers missing")
    elif mt in INDEX_MEDIA_TYPES or mt is None:
        kind = INDEX
        if not isinstance(doc.get("manifests"), list):
            c.problems.append("manifests is not a list")
        c.descriptors(doc.get("manifests"), REF_MANIFEST, "manifests", allow_platform=True)
    elif mt == OCI_ARTIFACT:
        kind = ARTIFACT
        c.descriptors(doc.get("blobs"), REF_BLOB, "blobs")
    else:
        _salvage(doc, c)
        return ParsedManifest(UNKNOWN, mt, c.refs, problem=f"unknown-media-type: {mt}")

    artifact_type = (
        sys.intern(doc["artifactType"]) if isinstance(doc.get("artifactType"), str) else None
    )
    subject: str | None = None
    if "subject" in doc:
        s = doc["subject"]
        if (
            isinstance(s, dict)
            and isinstance(s.get("digest"), str)
            and is_valid_digest(s["digest"])
        ):
            subject = s["digest"]
            c.descriptor(s, REF_SUBJECT, "subject")
        else:
            c.problems.append("subject is not a valid descriptor")
    problem = f"malformed: {'; '.join(c.problems)}" if c.problems else None
    return ParsedManifest(kind, mt, c.refs, artifact_type, subject, problem)


def _salvage(doc: dict[str, Any], c: _Collector) -> None:
    """Collect every digest a document of unknown type might reference, so fail-closed callers
    can at least keep those, without recording shape problems."""
    keep = c.problems
    c.problems = []
    if isinstance(doc.get("config"), dict):
        c.descriptor(doc["config"], REF_CONFIG, "config")
    for name, kind in (("layers", REF_LAYER), ("blobs", REF_BLOB), ("manifests", REF_MANIFEST)):
        if isinstance(doc.get(name), list):
            c.descriptors(doc[name], kind, name)
    c.problems = keep
