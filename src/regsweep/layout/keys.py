"""The key grammar of a Distribution store (storage-layout.md §1.2, §1.6-§1.8).

``classify(rel)`` takes a key relative to the ``docker/registry/v2/`` root and says what it is.
Every key gets a record: a key that fits no rule is ``FOREIGN`` with a reason, never dropped.
Parsing is positional, so a tag named ``_x`` under ``_manifests/tags/`` is a tag, not a reserved
directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from regsweep.layout.digest import algorithm_from_path, is_valid_hex

RESERVED = ("_layers", "_manifests", "_uploads")

# reference v0.6.0 grammar; the first component may also be a "domain" (upper case allowed).
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
_DOMAIN_COMPONENT = re.compile(
    r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
# D3.1+ filesystem PutContent temp files: "<name>.<uuid>.tmp"; ours: ".<name>.regsweep-tmp".
_TMP = re.compile(r"(?:\.[0-9a-fA-F-]{32,36}\.tmp|\.regsweep-tmp)$")
_UUID = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$"
)


class Kind(StrEnum):
    BLOB_DATA = "blob_data"
    LAYER_LINK = "layer_link"
    REVISION_LINK = "revision_link"
    TAG_CURRENT = "tag_current"
    TAG_INDEX = "tag_index"
    UPLOAD_FILE = "upload_file"
    LEGACY_SIGNATURE = "legacy_signature"  # registry <= 2.4 schema1 signature links
    TMP = "tmp"
    FOREIGN = "foreign"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    kind: Kind
    repo: str | None = None
    tag: str | None = None
    digest: str | None = None  # the digest the *path* encodes, "<alg>:<hex>"
    upload_id: str | None = None
    name: str | None = None  # upload file name: data, startedat, hashstates/<alg>/<offset>
    detail: str | None = None  # why a key is FOREIGN, or a note on a valid one


def valid_repository_name(name: str) -> bool:
    """The router's grammar, with upper case allowed in a multi-component name's first part."""
    parts = name.split("/")
    if not parts or any(not p for p in parts):
        return False
    if len(parts) > 1 and not _PATH_COMPONENT.match(parts[0]):
        if not _DOMAIN_COMPONENT.match(parts[0]):
            return False
    elif not _PATH_COMPONENT.match(parts[0]):
        return False
    return all(_PATH_COMPONENT.match(p) for p in parts[1:])


def valid_tag(tag: str) -> bool:
    return bool(_TAG.match(tag))


def _digest_at(parts: list[str]) -> tuple[str | None, str | None]:
    """``<algpath...>/<hex>`` -> (digest, problem). The algorithm may span several components."""
    if len(parts) < 2:
        return None, "missing algorithm or hex"
    alg = algorithm_from_path(parts[:-1])
    hex_ = parts[-1]
    if not is_valid_hex(alg, hex_):
        if alg.startswith("tarsum."):
            return f"{alg}:{hex_}", None  # registry 2.0 data; resolved by link content
        return None, f"not a valid digest path: {alg}/{hex_}"
    return f"{alg}:{hex_}", None


def _foreign(reason: str, repo: str | None = None) -> KeyRecord:
    return KeyRecord(Kind.FOREIGN, repo=repo, detail=reason)


_HEX_DIGITS = "0123456789abcdef"


def _sha256_hex(hex_: str) -> bool:
    # strip() removes every leading and trailing hex digit: "" means all 64 are lower-case hex.
    return len(hex_) == 64 and not hex_.strip(_HEX_DIGITS)


def _plain_repo(parts: list[str]) -> str | None:
    """``parts`` joined as a repository name, or None when the general grammar must decide (no
    components, or a reserved one, which would end the name earlier)."""
    if not parts or "_layers" in parts or "_manifests" in parts or "_uploads" in parts:
        return None
    return "/".join(parts)


def _classify_common(rel: str, parts: list[str]) -> KeyRecord | None:
    """The five shapes that make up nearly every key of a store, with sha256 digests, checked
    directly; None for anything else (the general grammar then decides). Each answer is the one
    the general grammar gives: a test compares the two on every shape and its near misses."""
    n = len(parts)
    last = parts[-1]
    if last == "data":
        if n == 5 and parts[0] == "blobs" and parts[1] == "sha256":
            hex_ = parts[3]
            if _sha256_hex(hex_) and parts[2] == hex_[:2]:
                return KeyRecord(Kind.BLOB_DATA, digest="sha256:" + hex_)
        return None
    if last != "link" or parts[0] != "repositories" or n < 6:
        return None
    if parts[-3] == "sha256" and _sha256_hex(parts[-2]):
        digest = "sha256:" + parts[-2]
        above = parts[-4]
        if above == "_layers":
            repo = _plain_repo(parts[1:-4])
            return None if repo is None else KeyRecord(Kind.LAYER_LINK, repo=repo, digest=digest)
        if above == "revisions" and parts[-5] == "_manifests":
            repo = _plain_repo(parts[1:-5])
            return None if repo is None else KeyRecord(Kind.REVISION_LINK, repo=repo, digest=digest)
        if above == "index" and n >= 8 and parts[-6] == "tags" and parts[-7] == "_manifests":
            repo, tag = _plain_repo(parts[1:-7]), parts[-5]
            if repo is None or not valid_tag(tag):
                return None
            return KeyRecord(Kind.TAG_INDEX, repo=repo, tag=tag, digest=digest)
        return None
    if parts[-2] == "current" and parts[-4] == "tags" and parts[-5] == "_manifests":
        repo, tag = _plain_repo(parts[1:-5]), parts[-3]
        if repo is None or not valid_tag(tag):
            return None
        return KeyRecord(Kind.TAG_CURRENT, repo=repo, tag=tag)
    return None


def classify(rel: str) -> KeyRecord:
    """Classify a key relative to the v2 root (e.g. ``blobs/sha256/ab/ab…/data``)."""
    parts = rel.split("/")
    # Neither "data" nor "link" is a temp file name, so the common shapes skip that check.
    common = _classify_common(rel, parts)
    if common is not None:
        return common
    return _classify_general(rel)


def _classify_general(rel: str) -> KeyRecord:
    base = rel.rsplit("/", 1)[-1]
    if _TMP.search(base):
        return KeyRecord(Kind.TMP, repo=_repo_of(rel), detail="interrupted write (temp file)")
    parts = rel.split("/")
    if parts[0] == "blobs":
        return _classify_blob(parts)
    if parts[0] == "repositories":
        return _classify_repo_key(parts[1:])
    return _foreign("outside blobs/ and repositories/")


def _repo_of(rel: str) -> str | None:
    parts = rel.split("/")
    if parts[0] != "repositories":
        return None
    for i, p in enumerate(parts[1:], start=1):
        if p in RESERVED:
            return "/".join(parts[1:i]) or None
    return None


def _classify_blob(parts: list[str]) -> KeyRecord:
    # blobs/<algpath...>/<h2>/<hex>/data
    if len(parts) < 5 or parts[-1] != "data":
        return _foreign("not a blob data path")
    hex_, h2 = parts[-2], parts[-3]
    digest, problem = _digest_at([*parts[1:-3], hex_])
    if digest is None:
        return _foreign(problem or "invalid blob path")
    if h2 != hex_[:2]:
        return _foreign(f"blob fan-out directory {h2!r} does not match {hex_[:2]!r}")
    return KeyRecord(Kind.BLOB_DATA, digest=digest)


def _classify_repo_key(parts: list[str]) -> KeyRecord:
    # The repository boundary is the first reserved component. A "_x" component before it makes
    # the name invalid (Distribution ignores such a repository), but its links are still
    # classified under that name: fail closed means keeping whatever they protect (§7.1).
    for i, p in enumerate(parts):
        if p in RESERVED:
            if i == 0:
                return _foreign("reserved directory directly under repositories/")
            repo = "/".join(parts[:i])
            rest = parts[i + 1 :]
            if p == "_layers":
                return _link_digest(repo, Kind.LAYER_LINK, rest)
            if p == "_manifests":
                return _manifest_key(repo, rest)
            return _upload(repo, rest)
    for i, p in enumerate(parts):
        if p.startswith("_"):
            return _foreign(f"unknown reserved directory {p!r}", "/".join(parts[:i]) or None)
    return _foreign("no _layers, _manifests or _uploads component")


def _link_digest(repo: str, kind: Kind, parts: list[str]) -> KeyRecord:
    # <algpath...>/<hex>/link
    if len(parts) < 3 or parts[-1] != "link":
        return _foreign(f"not a {kind.value} path", repo)
    digest, problem = _digest_at(parts[:-1])
    if digest is None:
        return _foreign(problem or "invalid link path", repo)
    return KeyRecord(kind, repo=repo, digest=digest)


def _manifest_key(repo: str, rest: list[str]) -> KeyRecord:
    if not rest:
        return _foreign("file directly under _manifests", repo)
    if rest[0] == "revisions":
        body = rest[1:]
        if "signatures" in body:
            at = body.index("signatures")
            digest, _ = _digest_at(body[:at])
            sig = _link_digest(repo, Kind.LEGACY_SIGNATURE, body[at + 1 :])
            if sig.kind is Kind.LEGACY_SIGNATURE and digest is not None:
                return KeyRecord(Kind.LEGACY_SIGNATURE, repo=repo, digest=digest, detail=sig.digest)
            return _foreign("malformed legacy signature path", repo)
        return _link_digest(repo, Kind.REVISION_LINK, body)
    if rest[0] == "tags":
        if len(rest) < 3:
            return _foreign("malformed tag path", repo)
        tag = rest[1]
        if not valid_tag(tag):
            return _foreign(f"invalid tag name {tag!r}", repo)
        if rest[2:] == ["current", "link"]:
            return KeyRecord(Kind.TAG_CURRENT, repo=repo, tag=tag)
        if rest[2] == "index":
            rec = _link_digest(repo, Kind.TAG_INDEX, rest[3:])
            if rec.kind is Kind.TAG_INDEX:
                return KeyRecord(Kind.TAG_INDEX, repo=repo, tag=tag, digest=rec.digest)
            return rec
        return _foreign("unknown file under a tag", repo)
    return _foreign(f"unknown directory _manifests/{rest[0]}", repo)


def _upload(repo: str, rest: list[str]) -> KeyRecord:
    if len(rest) < 2:
        return _foreign("file directly under _uploads", repo)
    upload_id, name = rest[0], "/".join(rest[1:])
    if not _UUID.match(upload_id):
        return _foreign(f"upload id {upload_id!r} is not a UUID", repo)
    if name in ("data", "startedat") or (
        len(rest) == 4 and rest[1] == "hashstates" and rest[3].isdigit()
    ):
        return KeyRecord(Kind.UPLOAD_FILE, repo=repo, upload_id=upload_id, name=name)
    return _foreign("unknown file in an upload", repo)


# -- building keys (the inverse of classify) ---------------------------------------------------
# ``root`` is the layout root prefix, normally ``docker/registry/v2/``.

DEFAULT_ROOT = "docker/registry/v2/"


def _digest_path(digest: str) -> str:
    alg, hex_ = digest.split(":", 1)
    return f"{alg}/{hex_}"


def blob_data_key(digest: str, root: str = DEFAULT_ROOT) -> str:
    alg, hex_ = digest.split(":", 1)
    return f"{root}blobs/{alg}/{hex_[:2]}/{hex_}/data"


def repo_key(repo: str, root: str = DEFAULT_ROOT) -> str:
    return f"{root}repositories/{repo}/"


def layer_link_key(repo: str, digest: str, root: str = DEFAULT_ROOT) -> str:
    return f"{repo_key(repo, root)}_layers/{_digest_path(digest)}/link"


def revision_link_key(repo: str, digest: str, root: str = DEFAULT_ROOT) -> str:
    return f"{repo_key(repo, root)}_manifests/revisions/{_digest_path(digest)}/link"


def tag_current_key(repo: str, tag: str, root: str = DEFAULT_ROOT) -> str:
    return f"{repo_key(repo, root)}_manifests/tags/{tag}/current/link"


def tag_index_key(repo: str, tag: str, digest: str, root: str = DEFAULT_ROOT) -> str:
    return f"{repo_key(repo, root)}_manifests/tags/{tag}/index/{_digest_path(digest)}/link"


def upload_key(repo: str, upload_id: str, name: str, root: str = DEFAULT_ROOT) -> str:
    return f"{repo_key(repo, root)}_uploads/{upload_id}/{name}"
