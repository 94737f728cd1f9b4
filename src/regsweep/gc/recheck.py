"""Re-checks that apply makes right before it acts (design.md invariant 6).

- ``unchanged``: an object is still the one the plan saw (same size, and same ETag and not
  rewritten since where the store has ETags, else same mtime).
- ``referenced_digests``: a fresh listing of every repository's links, plus the references of
  manifests whose revision links were written since the plan, so that a blob linked or
  referenced again after the scan is not swept (the resurrection race, storage-layout.md §9.2).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from regsweep.errors import ObjectNotFound, ObjectTooLarge, StoreError
from regsweep.layout.digest import parse_link
from regsweep.layout.keys import Kind, blob_data_key, classify
from regsweep.layout.manifest import REF_MANIFEST, ParsedManifest, parse_manifest
from regsweep.storage.base import ObjectInfo, ObjectStore


def unchanged(info: ObjectInfo, row: dict[str, Any]) -> bool:
    if row.get("size") is not None and info.size != row["size"]:
        return False
    seen = row.get("last_modified")
    if row.get("etag") and info.etag:
        if info.etag != row["etag"]:
            return False
        # The same bytes written again since (a link pushed again with the same content, e.g.
        # after an inventory was taken) is a push the plan never saw. Service times have
        # one-second resolution, so only a later second counts.
        return seen is None or (info.last_modified - seen).total_seconds() < 1.0
    if seen is None:
        return True
    # Parquet keeps milliseconds: compare at that resolution.
    return bool(abs((info.last_modified - seen).total_seconds()) < 0.001)


# How far before the plan's "now" a link's time may be and still count as written after the
# plan. Object times come from the storage service's clock at one-second resolution (S3 and
# Azure truncate them), while "now" of a plan made without --apply comes from the planning
# host's clock: a push in the same second as "now", or under a few seconds or minutes of clock
# skew, would otherwise look older than the plan and its references would be swept. Counting
# too much as fresh only keeps more; links the plan itself saw (its own rows, unchanged) are
# never fresh, so recent untagged manifests can still be removed.
FRESH_SLACK = timedelta(minutes=5)


@dataclass
class CurrentReferences:
    linked: set[str]  # digests some link in some repository names right now
    fresh: set[str]  # everything reachable from manifests pushed or tagged since the plan


def referenced_digests(
    store: ObjectStore,
    root: str,
    since: datetime,
    executor: Executor,
    planned: Mapping[str, dict[str, Any]] | None = None,
) -> CurrentReferences:
    """List every repository's links again and read the manifests pushed or tagged since
    ``since`` (less ``FRESH_SLACK``). ``planned`` (key -> plan row) names links the plan saw:
    those are fresh only if they changed since."""
    since = since - FRESH_SLACK
    planned = planned or {}

    def is_fresh(obj: ObjectInfo) -> bool:
        if obj.last_modified < since:
            return False
        row = planned.get(obj.key)
        return row is None or not unchanged(obj, row)

    prefix = root + "repositories/"
    shards = list(store.iter_subdirs(prefix))
    futures = [executor.submit(lambda s: list(store.iter_objects(s)), s) for s in shards]
    refs: set[str] = set()
    fresh: set[str] = set()
    to_read: list[ObjectInfo] = []
    fresh_manifests: set[tuple[str, str]] = set()  # (digest, repository)
    linked_in: dict[str, set[str]] = defaultdict(set)  # repository -> its _layers digests
    for fut in futures:
        for obj in fut.result():
            rec = classify(obj.key[len(root) :])
            if rec.kind in (Kind.LAYER_LINK, Kind.REVISION_LINK, Kind.TAG_INDEX):
                if rec.digest:
                    refs.add(rec.digest)
                    if rec.kind is Kind.LAYER_LINK and rec.repo:
                        linked_in[rec.repo].add(rec.digest)
                if rec.kind is Kind.LAYER_LINK and not (rec.digest or "").startswith("sha256:"):
                    to_read.append(obj)  # alias link: its content names the stored blob
                if rec.kind is Kind.REVISION_LINK and rec.digest and rec.repo and is_fresh(obj):
                    fresh_manifests.add((rec.digest, rec.repo))
            elif rec.kind is Kind.TAG_CURRENT:
                to_read.append(obj)
    for obj in to_read:
        try:
            content = parse_link(store.read(obj.key, max_bytes=4096))
        except (StoreError, ObjectTooLarge):
            continue
        if content.digest:
            refs.add(content.digest)
            rec = classify(obj.key[len(root) :])
            if rec.kind is Kind.LAYER_LINK and rec.repo:
                linked_in[rec.repo].add(content.digest)
            # A tag names a manifest; an alias _layers link names a layer, never a manifest.
            if rec.kind is Kind.TAG_CURRENT and rec.repo and is_fresh(obj):
                fresh_manifests.add((content.digest, rec.repo))
    # Follow fresh manifests (and their children) through their references.
    parsed_cache: dict[str, ParsedManifest | None] = {}
    seen: set[tuple[str, str]] = set()
    stack = sorted(fresh_manifests)
    while stack:
        d, repo = stack.pop()
        if (d, repo) in seen:
            continue
        seen.add((d, repo))
        if d not in parsed_cache:
            try:
                data = store.read(blob_data_key(d, root), max_bytes=16 * 1024 * 1024)
                parsed_cache[d] = parse_manifest(data)
            except ObjectNotFound:
                parsed_cache[d] = None
            except (StoreError, ObjectTooLarge):
                raise StoreError(
                    f"cannot read manifest {d} pushed since the scan; refusing to sweep blobs"
                ) from None
        parsed = parsed_cache[d]
        if parsed is None:
            continue
        fresh.add(d)
        if parsed.problem is not None:
            # Fail closed, as mark does: a manifest we cannot understand may reference anything
            # linked in its repository.
            fresh |= linked_in.get(repo, set())
        for r in parsed.references:
            if r.kind == "subject":
                continue
            fresh.add(r.digest)
            if r.kind == REF_MANIFEST:
                stack.append((r.digest, repo))
    return CurrentReferences(linked=refs, fresh=fresh)
