"""Re-checks that apply makes right before it acts (design.md invariant 6).

- ``unchanged``: an object is still the one the plan saw (same size, and same ETag where the
  store has ETags, else same mtime).
- ``referenced_digests``: a fresh listing of every repository's links, plus the references of
  manifests whose revision links were written since the plan, so that a blob linked or
  referenced again after the scan is not swept (the resurrection race, storage-layout.md §9.2).
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from regsweep.errors import ObjectNotFound, ObjectTooLarge, StoreError
from regsweep.layout.digest import parse_link
from regsweep.layout.keys import Kind, blob_data_key, classify
from regsweep.layout.manifest import REF_MANIFEST, parse_manifest
from regsweep.storage.base import ObjectInfo, ObjectStore


def unchanged(info: ObjectInfo, row: dict[str, Any]) -> bool:
    if row.get("size") is not None and info.size != row["size"]:
        return False
    if row.get("etag") and info.etag:
        return bool(info.etag == row["etag"])
    seen = row.get("last_modified")
    if seen is None:
        return True
    # Parquet keeps milliseconds: compare at that resolution.
    return bool(abs((info.last_modified - seen).total_seconds()) < 0.001)


@dataclass
class CurrentReferences:
    linked: set[str]  # digests some link in some repository names right now
    fresh: set[str]  # everything reachable from manifests pushed or tagged since the plan


def referenced_digests(
    store: ObjectStore, root: str, since: datetime, executor: Executor
) -> CurrentReferences:
    """List every repository's links again and read the manifests pushed since ``since``."""
    prefix = root + "repositories/"
    shards = list(store.iter_subdirs(prefix))
    futures = [executor.submit(lambda s: list(store.iter_objects(s)), s) for s in shards]
    refs: set[str] = set()
    fresh: set[str] = set()
    to_read: list[ObjectInfo] = []
    fresh_manifests: set[str] = set()
    for fut in futures:
        for obj in fut.result():
            rec = classify(obj.key[len(root) :])
            if rec.kind in (Kind.LAYER_LINK, Kind.REVISION_LINK, Kind.TAG_INDEX):
                if rec.digest:
                    refs.add(rec.digest)
                if rec.kind is Kind.LAYER_LINK and not (rec.digest or "").startswith("sha256:"):
                    to_read.append(obj)  # alias link: its content names the stored blob
                if rec.kind is Kind.REVISION_LINK and obj.last_modified >= since and rec.digest:
                    fresh_manifests.add(rec.digest)
            elif rec.kind is Kind.TAG_CURRENT:
                to_read.append(obj)
    for obj in to_read:
        try:
            content = parse_link(store.read(obj.key, max_bytes=4096))
        except (StoreError, ObjectTooLarge):
            continue
        if content.digest:
            refs.add(content.digest)
            if obj.last_modified >= since:
                fresh_manifests.add(content.digest)
    # Follow fresh manifests (and their children) through their references.
    seen: set[str] = set()
    stack = list(fresh_manifests)
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        try:
            data = store.read(blob_data_key(d, root), max_bytes=16 * 1024 * 1024)
        except ObjectNotFound:
            continue
        except (StoreError, ObjectTooLarge):
            raise StoreError(
                f"cannot read manifest {d} pushed since the scan; refusing to sweep blobs"
            ) from None
        parsed = parse_manifest(data)
        if parsed.problem is not None:
            raise StoreError(
                f"manifest {d} pushed since the scan is not understood ({parsed.problem}); "
                "refusing to sweep blobs"
            )
        fresh.add(d)
        for r in parsed.references:
            if r.kind == "subject":
                continue
            fresh.add(r.digest)
            if r.kind == REF_MANIFEST:
                stack.append(r.digest)
    return CurrentReferences(linked=refs, fresh=fresh)
