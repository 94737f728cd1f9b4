"""Where the storage goes: per-repository bytes from a Snapshot.

Definitions (stable; the README documents them):
- ``total_bytes``: unique bytes of every blob reachable from the repository's manifest revisions
  (manifest blobs, configs, layers, index children), counted once.
- ``exclusive_bytes``: the part of ``total_bytes`` no other repository reaches: what deleting the
  repository would free.
- ``shared_bytes``: ``total_bytes - exclusive_bytes``.
Across repositories, sum(exclusive) + ``shared_unique_bytes`` (bytes of the live blobs reached by
two or more repositories, each counted once) equals ``live_bytes``, the bytes of all live blobs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pyarrow as pa

from regsweep.scan.graph import Graph
from regsweep.scan.snapshot import Snapshot, column


@dataclass(frozen=True)
class UsageSummary:
    repositories: pa.Table
    stored_bytes: int  # every blob data object in the store
    stored_blobs: int
    live_bytes: int  # unique bytes reachable from any revision
    logical_bytes: int  # sum of total_bytes over repositories (what users think they use)
    unreferenced_bytes: int  # blobs nothing reaches (before any grace period)
    shared_unique_bytes: int = 0  # live blobs reached by >= 2 repositories, each counted once
    # digest -> how many repositories reach the blob (live blobs only)
    blob_repositories: Counter[str] = field(default_factory=Counter)

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.live_bytes if self.live_bytes else 1.0


def usage(snap: Snapshot) -> UsageSummary:
    graph = Graph.from_snapshot(snap)
    rev = snap["revisions"]
    roots: dict[str, set[str]] = defaultdict(set)
    for repo, target in zip(column(rev, "repository"), column(rev, "target"), strict=True):
        if target is not None:
            roots[repo].add(target)
    tags = snap["tags"]
    tag_count = Counter(column(tags, "repository"))
    reach: dict[str, set[str]] = {}
    for repo, r in roots.items():
        reach[repo] = {d for d in graph.closure(repo, r) if d in graph.blob_sizes}
    users: Counter[str] = Counter()
    for blobs in reach.values():
        users.update(blobs)
    rows: dict[str, list[object]] = {
        k: []
        for k in (
            "repository",
            "tags",
            "manifests",
            "total_bytes",
            "exclusive_bytes",
            "shared_bytes",
        )
    }
    all_repos = sorted(set(column(snap["repositories"], "repository")))
    for repo in all_repos:
        blobs = reach.get(repo, set())
        total = sum(graph.blob_sizes[b] for b in blobs)
        exclusive = sum(graph.blob_sizes[b] for b in blobs if users[b] == 1)
        rows["repository"].append(repo)
        rows["tags"].append(tag_count.get(repo, 0))
        rows["manifests"].append(len(roots.get(repo, ())))
        rows["total_bytes"].append(total)
        rows["exclusive_bytes"].append(exclusive)
        rows["shared_bytes"].append(total - exclusive)
    live = set(users)
    stored = graph.stored_bytes
    live_bytes = sum(graph.blob_sizes[b] for b in live)
    return UsageSummary(
        repositories=pa.table(rows),
        stored_bytes=stored,
        stored_blobs=graph.stored_blobs,
        live_bytes=live_bytes,
        logical_bytes=sum(rows["total_bytes"]),  # type: ignore[arg-type]
        unreferenced_bytes=stored - live_bytes,
        shared_unique_bytes=sum(graph.blob_sizes[b] for b, n in users.items() if n >= 2),
        blob_repositories=users,
    )
