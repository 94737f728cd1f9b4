"""Walk a store and build a Snapshot (design.md "scan"; storage-layout.md §9.1 steps 1-4).

The scan never aborts because one object is bad: every problem becomes a ``problem`` value on
its row and an entry in the ``anomalies`` table. It never writes to the store.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from regsweep import __version__
from regsweep.clock import utcnow
from regsweep.errors import ObjectNotFound, ObjectTooLarge, StoreError
from regsweep.layout.digest import EMPTY_MD5, is_valid_digest, parse_link
from regsweep.layout.keys import KeyRecord, Kind, classify, valid_repository_name
from regsweep.layout.manifest import (
    REF_MANIFEST,
    ParsedManifest,
    parse_manifest,
)
from regsweep.layout.root import find_layout_root
from regsweep.scan.inventory import open_inventory
from regsweep.scan.listing import Progress, list_incomplete_uploads, list_layout, no_progress
from regsweep.scan.snapshot import Snapshot, TableBuilder, table_from_columns
from regsweep.storage.base import IncompleteUpload, ObjectInfo, ObjectStore

LINK_READ_CAP = 4096  # a link is 71 bytes (sha256) or 135 (sha512); anything near this is corrupt
DEFAULT_MANIFEST_CAP = 4 * 1024 * 1024  # Distribution's PUT limit (maxManifestBodySize)
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
_LINK_PROBLEMS = {
    "empty": "is empty (0 bytes)",
    "whitespace": "has whitespace around its digest (e.g. a trailing newline)",
    "doubled": "holds its digest twice",
    "uppercase": "has upper-case hex",
    "unsupported-algorithm": "names an unsupported digest algorithm",
    "invalid": "does not hold a digest",
}
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class ScanOptions:
    """Knobs of a scan. The defaults suit a scheduled run."""

    max_manifest_bytes: int = DEFAULT_MANIFEST_CAP
    verify_links: bool = False  # read every link, even where the path already says the digest
    workers: int = 16
    layout_root: str | None = None  # force "docker/registry/v2/" or "/docker/registry/v2/"
    # An S3 or Azure inventory report to list from instead of listing the store (its
    # manifest's URL or local path; storage-layout.md §6). Content is still read from the store.
    inventory: str | None = None


@dataclass
class _Link:
    rec: KeyRecord
    obj: ObjectInfo
    target: str | None = None
    problem: str | None = None
    resolved_by: str | None = None


@dataclass
class _Upload:
    files: list[tuple[KeyRecord, ObjectInfo]] = field(default_factory=list)
    multipart: IncompleteUpload | None = None


def _etag_is_md5(etag: str | None) -> bool:
    return etag is not None and bool(_MD5_ETAG.match(etag))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class _Scan:
    def __init__(
        self, store: ObjectStore, options: ScanOptions, executor: Executor, progress: Progress
    ) -> None:
        self.store = store
        self.options = options
        self.executor = executor
        self.progress = progress
        self.root = ""
        self.blobs: dict[str, ObjectInfo] = {}
        self.layer_links: list[_Link] = []
        self.revisions: list[_Link] = []
        self.tags: list[_Link] = []
        self.history: list[_Link] = []
        self.uploads: dict[tuple[str, str], _Upload] = defaultdict(_Upload)
        self.repo_parts: dict[str, set[str]] = defaultdict(set)
        self.anomalies = TableBuilder("anomalies")
        self.manifests: dict[str, ParsedManifest] = {}
        self.manifest_sizes: dict[str, int | None] = {}

    # -- helpers -----------------------------------------------------------------------------

    def anomaly(
        self,
        kind: str,
        severity: str,
        detail: str,
        key: str | None = None,
        repo: str | None = None,
        obj: ObjectInfo | None = None,
    ) -> None:
        self.anomalies.add(
            kind=kind,
            severity=severity,
            repository=repo,
            key=key if key is not None else (obj.key if obj else None),
            size=obj.size if obj else None,
            last_modified=obj.last_modified if obj else None,
            detail=detail,
        )

    def pmap(self, fn: Callable[[_T], _R], items: Sequence[_T], phase: str) -> list[_R]:
        """Run ``fn`` over ``items`` on the executor in batches, keeping order, with progress."""
        self.progress(phase, 0, len(items))
        out: list[_R] = []
        batch = 256
        chunks = [items[i : i + batch] for i in range(0, len(items), batch)]
        futures = [self.executor.submit(lambda c: [fn(x) for x in c], c) for c in chunks]
        for fut, chunk in zip(futures, chunks, strict=True):
            out.extend(fut.result())
            self.progress(phase, len(chunk), None)
        return out

    # -- phases ------------------------------------------------------------------------------

    def run(self) -> Snapshot:
        scanned_at = utcnow()
        self.root = find_layout_root(self.store, self.options.layout_root)
        inventory = open_inventory(self.options.inventory) if self.options.inventory else None
        if inventory is not None:
            scanned_at = inventory.created_at  # the listing's time is the report's
        batches = (
            inventory.batches(self.store, self.root)
            if inventory is not None
            else list_layout(self.store, self.root, self.executor, self.progress)
        )
        for batch in batches:
            for obj in batch:
                self.classify(obj)
        for mpu in list_incomplete_uploads(self.store, self.root):
            self.add_multipart(mpu)
        self.resolve_links()
        self.read_manifests()
        tables = {
            "repositories": self.repositories_table(),
            "tags": self.link_table("tags", self.tags),
            "tag_history": self.link_table("tag_history", self.history),
            "revisions": self.link_table("revisions", self.revisions),
            "layer_links": self.link_table("layer_links", self.layer_links),
            "blobs": self.blobs_table(),
            "manifests": None,
            "references": None,
            "uploads": self.uploads_table(),
        }
        tables["manifests"], tables["references"] = self.manifest_tables()
        tables["anomalies"] = self.anomalies.build()
        meta: dict[str, Any] = {
            "store": self.store.url,
            "layout_root": self.root,
            "scanned_at": scanned_at.isoformat(),
            "regsweep_version": __version__,
            "max_manifest_bytes": self.options.max_manifest_bytes,
        }
        if inventory is not None:
            meta["inventory"] = inventory.meta()
        snap = Snapshot({k: v for k, v in tables.items() if v is not None}, meta)
        meta["counts"] = snap.counts()
        return snap

    def classify(self, obj: ObjectInfo) -> None:
        rel = obj.key[len(self.root) :]
        rec = classify(rel)
        if rec.repo:
            self.repo_parts[rec.repo]
        match rec.kind:
            case Kind.BLOB_DATA:
                assert rec.digest is not None
                self.blobs[rec.digest] = obj
            case Kind.LAYER_LINK:
                self.repo_parts[rec.repo or ""].add("_layers")
                self.layer_links.append(_Link(rec, obj))
            case Kind.REVISION_LINK:
                self.repo_parts[rec.repo or ""].add("_manifests")
                self.revisions.append(_Link(rec, obj))
            case Kind.TAG_CURRENT:
                self.repo_parts[rec.repo or ""].add("_manifests")
                self.tags.append(_Link(rec, obj))
            case Kind.TAG_INDEX:
                self.repo_parts[rec.repo or ""].add("_manifests")
                self.history.append(_Link(rec, obj))
            case Kind.UPLOAD_FILE:
                self.repo_parts[rec.repo or ""].add("_uploads")
                assert rec.repo is not None and rec.upload_id is not None
                self.uploads[(rec.repo, rec.upload_id)].files.append((rec, obj))
            case Kind.LEGACY_SIGNATURE:
                self.repo_parts[rec.repo or ""].add("_manifests")
                self.anomaly(
                    "legacy-signature",
                    "info",
                    "schema1 signature link from registry <= 2.4; nothing uses it",
                    repo=rec.repo,
                    obj=obj,
                )
            case Kind.TMP:
                self.anomaly("tmp-file", "warning", rec.detail or "", repo=rec.repo, obj=obj)
            case Kind.FOREIGN:
                self.anomaly("foreign-key", "warning", rec.detail or "", repo=rec.repo, obj=obj)

    def add_multipart(self, mpu: IncompleteUpload) -> None:
        rec = classify(mpu.key[len(self.root) :]) if mpu.key.startswith(self.root) else None
        if rec is None or rec.kind is not Kind.UPLOAD_FILE or rec.name != "data":
            self.anomaly(
                "foreign-multipart-upload",
                "warning",
                f"incomplete multipart upload {mpu.upload_id} outside any upload directory",
                key=mpu.key,
            )
            return
        assert rec.repo is not None and rec.upload_id is not None
        self.repo_parts[rec.repo].add("_uploads")
        self.uploads[(rec.repo, rec.upload_id)].multipart = mpu

    # -- links -------------------------------------------------------------------------------

    def _path_is_enough(self, link: _Link) -> bool:
        """A revision, tag-index or canonical ``_layers`` link says its digest in its path. Trust
        the path when the object has exactly the right size and, where the ETag is an MD5, the
        ETag matches; otherwise read it."""
        d = link.rec.digest
        if self.options.verify_links or d is None or not d.startswith("sha256:"):
            return False
        if link.obj.size != len(d):
            return False
        return not _etag_is_md5(link.obj.etag) or link.obj.etag == _md5(d)

    def resolve_links(self) -> None:
        to_read: list[_Link] = []
        for link in self.revisions + self.history + self.layer_links:
            if self._path_is_enough(link):
                link.target, link.resolved_by = link.rec.digest, "path"
            else:
                to_read.append(link)
        etag_map: dict[str, str] | None = None
        for link in self.tags:
            if not self.options.verify_links and _etag_is_md5(link.obj.etag):
                if etag_map is None:
                    etag_map = self._etag_candidates()
                found = etag_map.get(link.obj.etag or "")
                if found is not None:
                    link.target, link.resolved_by = found, "etag"
                    continue
            to_read.append(link)
        for link, result in zip(to_read, self.pmap(self._read_link, to_read, "links"), strict=True):
            link.target, link.problem = result
            link.resolved_by = "read"
        for link in self.revisions + self.history + self.layer_links + self.tags:
            self._judge_link(link)

    def _etag_candidates(self) -> dict[str, str]:
        # ETag of a single-PUT link == md5("sha256:<hex>") (storage-layout.md §6.3).
        digests = set(self.blobs) | {r.rec.digest for r in self.revisions if r.rec.digest}
        return {_md5(d): d for d in digests}

    def _read_link(self, link: _Link) -> tuple[str | None, str | None]:
        try:
            data = self.store.read(link.obj.key, max_bytes=LINK_READ_CAP)
        except ObjectTooLarge as e:
            return None, f"oversized ({e.size} bytes)"
        except ObjectNotFound:
            return None, "vanished during the scan"
        except StoreError as e:
            return None, f"read error: {e}"
        content = parse_link(data)
        return content.digest, content.problem

    def _judge_link(self, link: _Link) -> None:
        """Record deviations: unreadable content, and a path that disagrees with the content."""
        rec = link.rec
        path_digest = rec.digest
        if link.problem is None and link.obj.etag == EMPTY_MD5:
            link.problem = "empty"
        if link.target is None:
            if path_digest is not None and is_valid_digest(path_digest):
                # The path still tells the digest (§7.8): use it, but keep the problem on record.
                link.target = path_digest
                link.resolved_by = "path"
        elif (
            rec.kind is not Kind.TAG_CURRENT
            and path_digest is not None
            and link.target != path_digest
            and path_digest.startswith("sha256:")
        ):
            link.problem = link.problem or f"content {link.target} differs from path"
        if link.problem is not None:
            what = rec.kind.value.replace("_", " ")
            self.anomaly(
                "bad-link",
                "error",
                f"{what} {_LINK_PROBLEMS.get(link.problem, link.problem)}; Distribution cannot "
                "read it (its garbage-collect aborts on it)",
                repo=rec.repo,
                obj=link.obj,
            )

    # -- manifests ---------------------------------------------------------------------------

    def read_manifests(self) -> None:
        wanted: set[str] = set()
        for link in self.revisions + self.tags + self.history:
            for d in (link.rec.digest, link.target):
                if d is not None and d in self.blobs:
                    wanted.add(d)
        while wanted:
            batch = sorted(wanted - self.manifests.keys())
            results = self.pmap(self._read_manifest, batch, "manifests")
            wanted = set()
            for digest, parsed in zip(batch, results, strict=True):
                self.manifests[digest] = parsed
                # Follow children that exist as blobs even where no revision links them here:
                # nested indexes and cross-repository children still need reading.
                for ref in parsed.references:
                    if (
                        ref.kind == REF_MANIFEST
                        and ref.digest in self.blobs
                        and ref.digest not in self.manifests
                    ):
                        wanted.add(ref.digest)

    def _read_manifest(self, digest: str) -> ParsedManifest:
        obj = self.blobs[digest]
        cap = self.options.max_manifest_bytes
        try:
            data = self.store.read(obj.key, max_bytes=cap)
        except ObjectTooLarge as e:
            return ParsedManifest("unread", None, problem=f"too-large: {e.size} bytes > {cap}")
        except ObjectNotFound:
            return ParsedManifest("unread", None, problem="vanished during the scan")
        except StoreError as e:
            return ParsedManifest("unread", None, problem=f"read-error: {e}")
        alg, _, hex_ = digest.partition(":")
        if alg in ("sha256", "sha384", "sha512") and hashlib.new(alg, data).hexdigest() != hex_:
            parsed = parse_manifest(data)
            parsed.problem = "digest-mismatch: content does not hash to its digest"
            return parsed
        return parse_manifest(data)

    def manifest_tables(self) -> tuple[Any, Any]:
        digests = sorted(self.manifests)
        parsed = [self.manifests[d] for d in digests]
        for digest, p in zip(digests, parsed, strict=True):
            if p.problem is not None:
                self.anomaly(
                    "bad-manifest",
                    "error",
                    f"manifest {digest}: {p.problem}",
                    obj=self.blobs[digest],
                )
        mt = table_from_columns(
            "manifests",
            {
                "digest": digests,
                "size": [self.blobs[d].size for d in digests],
                "kind": [p.kind for p in parsed],
                "media_type": [p.media_type for p in parsed],
                "artifact_type": [p.artifact_type for p in parsed],
                "subject": [p.subject for p in parsed],
                "problem": [p.problem for p in parsed],
            },
        )
        parents = [d for d, p in zip(digests, parsed, strict=True) for _ in p.references]
        refs = [r for p in parsed for r in p.references]
        rt = table_from_columns(
            "references",
            {
                "parent": parents,
                "child": [r.digest for r in refs],
                "kind": [r.kind for r in refs],
                "media_type": [r.media_type for r in refs],
                "size": [r.size for r in refs],
                "platform": [r.platform for r in refs],
                "has_urls": [r.has_urls for r in refs],
                "artifact_type": [r.artifact_type for r in refs],
            },
        )
        return mt, rt

    # -- tables ------------------------------------------------------------------------------

    def link_table(self, name: str, links: Iterable[_Link]) -> Any:
        ordered = sorted(links, key=lambda x: x.obj.key)
        recs = [link.rec for link in ordered]
        objs = [link.obj for link in ordered]
        targets = [link.target for link in ordered]
        path_digests = [rec.digest for rec in recs]
        blobs = self.blobs
        return table_from_columns(
            name,
            {
                "repository": [rec.repo for rec in recs],
                "tag": [rec.tag for rec in recs],
                "digest": targets if name == "tags" else path_digests,
                "target": targets,
                "key": [o.key for o in objs],
                "size": [o.size for o in objs],
                "last_modified": [o.last_modified for o in objs],
                "etag": [o.etag for o in objs],
                "alias": [
                    d is not None and t is not None and d.split(":")[0] != t.split(":")[0]
                    for d, t in zip(path_digests, targets, strict=True)
                ],
                "blob_present": [t in blobs if t else False for t in targets],
                "resolved_by": [link.resolved_by for link in ordered],
                "problem": [link.problem for link in ordered],
            },
        )

    def blobs_table(self) -> Any:
        digests = sorted(self.blobs)
        objs = [self.blobs[d] for d in digests]
        return table_from_columns(
            "blobs",
            {
                "digest": digests,
                "key": [o.key for o in objs],
                "size": [o.size for o in objs],
                "last_modified": [o.last_modified for o in objs],
                "etag": [o.etag for o in objs],
            },
        )

    def repositories_table(self) -> Any:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for link in self.tags:
            counts[link.rec.repo or ""]["tags"] += 1
        for link in self.revisions:
            counts[link.rec.repo or ""]["revisions"] += 1
        for link in self.layer_links:
            counts[link.rec.repo or ""]["layer_links"] += 1
        for repo, _ in self.uploads:
            counts[repo]["uploads"] += 1
        t = TableBuilder("repositories")
        for repo in sorted(self.repo_parts):
            parts = self.repo_parts[repo]
            if not parts:
                continue  # only foreign keys mentioned it
            kind = (
                "manifest-bearing"
                if "_manifests" in parts
                else "link-only"
                if "_layers" in parts
                else "upload-only"
            )
            valid = valid_repository_name(repo)
            if not valid:
                self.anomaly(
                    "invalid-repository-name",
                    "error",
                    f"{repo!r} is not a valid repository name; Distribution ignores it",
                    key=f"{self.root}repositories/{repo}/",
                    repo=repo,
                )
            c = counts[repo]
            t.add(
                repository=repo,
                kind=kind,
                valid_name=valid,
                tags=c["tags"],
                revisions=c["revisions"],
                layer_links=c["layer_links"],
                uploads=c["uploads"],
            )
        return t.build()

    def uploads_table(self) -> Any:
        items = sorted(self.uploads.items())
        startedat = [next((o for r, o in u.files if r.name == "startedat"), None) for _, u in items]
        present = [o for o in startedat if o is not None]
        contents = dict(
            zip(
                [o.key for o in present],
                self.pmap(self._read_startedat, present, "uploads"),
                strict=True,
            )
        )
        t = TableBuilder("uploads")
        for ((repo, upload_id), u), st in zip(items, startedat, strict=True):
            times = [o.last_modified for _, o in u.files]
            if u.multipart:
                times.append(u.multipart.initiated)
            problem = None
            started, source = (contents.get(st.key) if st else None), "startedat"
            if st is None:
                problem = "no startedat"
            elif started is None:
                problem = "unparsable startedat"
            if started is None:
                started, source = _uuid7_time(upload_id), "uuid7"
            if started is None and u.multipart is not None:
                started, source = u.multipart.initiated, "multipart"
            if started is None:
                started, source = min(times), "mtime"
            data = next((o for r, o in u.files if r.name == "data"), None)
            files = sorted((o for _, o in u.files), key=lambda o: o.key)
            t.add(
                repository=repo,
                upload_id=upload_id,
                started_at=started,
                started_source=source,
                last_activity=max(times),
                data_size=data.size if data else None,
                keys=[o.key for o in files],
                key_sizes=[o.size for o in files],
                key_times=[o.last_modified for o in files],
                multipart_key=u.multipart.key if u.multipart else None,
                multipart_upload_id=u.multipart.upload_id if u.multipart else None,
                problem=problem,
            )
        return t.build()

    def _read_startedat(self, obj: ObjectInfo) -> datetime | None:
        try:
            text = self.store.read(obj.key, max_bytes=LINK_READ_CAP).decode("ascii").strip()
            return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except (StoreError, UnicodeDecodeError, ValueError):
            try:
                return datetime.fromisoformat(text).astimezone(UTC)
            except (ValueError, UnboundLocalError):
                return None


def _uuid7_time(upload_id: str) -> datetime | None:
    """Distribution 3.1+ upload ids are UUIDv7: the first 48 bits are Unix milliseconds."""
    try:
        u = uuid.UUID(upload_id)
    except ValueError:
        return None
    if u.version != 7:
        return None
    return datetime.fromtimestamp(int(u.hex[:12], 16) / 1000, tz=UTC)


def scan(
    store: ObjectStore,
    options: ScanOptions | None = None,
    *,
    executor: Executor | None = None,
    progress: Progress = no_progress,
) -> Snapshot:
    """Scan ``store`` and return its Snapshot. Raises LayoutError if it holds no v2 layout and
    StoreError if the service fails; any single bad object only becomes an anomaly."""
    options = options or ScanOptions()
    if executor is not None:
        return _Scan(store, options, executor, progress).run()
    with ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="scan") as pool:
        return _Scan(store, options, pool, progress).run()


__all__ = ["ScanOptions", "scan"]
