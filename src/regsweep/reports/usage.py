"""Where the storage goes: per-repository bytes from a Snapshot.

Definitions (stable; the README documents them):
- ``total_bytes``: unique bytes of every blob reachable from the repository's manifest revisions
  (manifest blobs, configs, layers, index children), counted once.
- ``exclusive_bytes``: the part of ``total_bytes`` no other repository reaches: what deleting the
  repository would free.
- ``shared_bytes``: ``total_bytes - exclusive_bytes``.
Across repositories, sum(exclusive) + ``shared_unique_bytes`` (bytes of the live blobs reached by
two or more repositories, each counted once) equals ``live_bytes``, the bytes of all live blobs.

Worked out on the graph's places (numpy arrays by digest), not sets of digest strings: a
closure of strings per repository held every live digest once per repository that reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep.gc.mark import rows_by_repository
from regsweep.scan.graph import NO_PLACES, Graph, pylist
from regsweep.scan.snapshot import Snapshot


@dataclass(frozen=True)
class UsageSummary:
    repositories: pa.Table
    stored_bytes: int  # every blob data object in the store
    stored_blobs: int
    live_bytes: int  # unique bytes reachable from any revision
    logical_bytes: int  # sum of total_bytes over repositories (what users think they use)
    unreferenced_bytes: int  # blobs nothing reaches (before any grace period)
    shared_unique_bytes: int = 0  # live blobs reached by >= 2 repositories, each counted once
    live_blobs: int = 0  # stored blobs reachable from any revision
    # Per place of ``named`` (the graph's digests): how many repositories reach the blob.
    named: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    users_at: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.live_bytes if self.live_bytes else 1.0


def usage(snap: Snapshot, graph: Graph | None = None) -> UsageSummary:
    """Per-repository bytes. ``graph`` is the snapshot's, when the caller has it."""
    if graph is None:
        graph = Graph.from_snapshot(snap)
    rev = snap["revisions"]
    # Each repository's revisions' targets, as sorted distinct places.
    target_at = graph.column_places(rev["target"])
    roots: dict[str, np.ndarray] = {}
    for repo, mine in rows_by_repository(rev["repository"]).items():
        at = np.unique(target_at[mine])
        if (at >= 0).any():
            roots[repo] = at[at >= 0]
    stored = graph.sizes >= 0
    reach: dict[str, np.ndarray] = {}
    users = np.zeros(len(graph.named), np.int32)
    for repo, at in roots.items():
        reached = graph.reach(at, graph.alias_places(repo))
        reach[repo] = reached = reached[stored[reached]]
        users[reached] += 1  # each place once per repository: reach is distinct
    tag_counts = {
        item["values"]: item["counts"]
        for item in pc.value_counts(snap["tags"]["repository"]).to_pylist()
    }
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
    sizes = graph.sizes
    for repo in sorted(set(pylist(snap["repositories"]["repository"]))):
        blobs = reach.get(repo, NO_PLACES)
        total = int(sizes[blobs].sum())
        exclusive = int(sizes[blobs[users[blobs] == 1]].sum())
        rows["repository"].append(repo)
        rows["tags"].append(tag_counts.get(repo, 0))
        rows["manifests"].append(len(roots.get(repo, ())))
        rows["total_bytes"].append(total)
        rows["exclusive_bytes"].append(exclusive)
        rows["shared_bytes"].append(total - exclusive)
    live = users > 0
    live_bytes = int(sizes[live].sum())
    stored_bytes = graph.stored_bytes
    return UsageSummary(
        repositories=pa.table(rows),
        stored_bytes=stored_bytes,
        stored_blobs=graph.stored_blobs,
        live_bytes=live_bytes,
        logical_bytes=sum(rows["total_bytes"]),  # type: ignore[arg-type]
        unreferenced_bytes=stored_bytes - live_bytes,
        shared_unique_bytes=int(sizes[users >= 2].sum()),
        live_blobs=int(live.sum()),
        named=graph.named,
        users_at=users,
    )
