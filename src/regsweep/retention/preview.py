"""What a retention run removes, per repository, for the ``gc --policy`` preview and ``--json``.

Joins the policy's decisions with the gc plan built from them: which tags go and why (rule,
rank), how many tags and untagged manifests stay or go, and the bytes freed. A blob is counted
for every repository whose removed manifests reached it (so a blob freed by two repositories'
expirations is shown under both; the plan's total counts it once).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc

from regsweep.gc.plan import Plan
from regsweep.retention.evaluate import RetentionResult
from regsweep.scan.graph import Graph, kind_is
from regsweep.scan.snapshot import Snapshot, column, one_array


@dataclass
class ExpiredTag:
    tag: str
    digest: str
    decided_by: str
    rule: str | None
    rank: int | None
    window: int | None


@dataclass
class RepoPreview:
    repository: str
    expired: list[ExpiredTag] = field(default_factory=list)
    kept_tags: int = 0
    untagged_removed: int = 0
    bytes_freed: int = 0
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "expired_tags": [
                {
                    "tag": e.tag,
                    "digest": e.digest,
                    "decided_by": e.decided_by,
                    "rule": e.rule,
                    "rank": e.rank,
                    "window": e.window,
                }
                for e in self.expired
            ],
            "kept_tags": self.kept_tags,
            "untagged_removed": self.untagged_removed,
            "bytes_freed": self.bytes_freed,
            "skipped": self.skipped,
        }


def preview(snap: Snapshot, plan: Plan, result: RetentionResult) -> dict[str, RepoPreview]:
    """Per-repository preview, sorted by repository name."""
    out: dict[str, RepoPreview] = {}

    def get(repo: str) -> RepoPreview:
        if repo not in out:
            out[repo] = RepoPreview(repo)
        return out[repo]

    # Column-wise first: a plan that empties a store has a row for most of its blobs and links,
    # and converting every row of every column was the largest part of a policy run.
    rows = plan.rows
    is_blob = kind_is(rows, "blob")
    tag_rows = rows.filter(kind_is(rows, "tag"))
    planned_tags = set(zip(column(tag_rows, "repository"), column(tag_rows, "tag"), strict=True))
    del tag_rows
    for row in result.decisions.to_pylist():
        if row["kind"] != "tag":
            continue
        p = get(row["repository"])
        if row["action"] == "delete" and (row["repository"], row["tag"]) in planned_tags:
            p.expired.append(
                ExpiredTag(
                    row["tag"],
                    row["digest"],
                    row["decided_by"],
                    row["rule"],
                    row["rank"],
                    row["window"],
                )
            )
        else:
            p.kept_tags += 1
    for repo, why in result.skipped.items():
        get(repo).skipped = why

    # Bytes: links and tags of the repository itself, plus blobs its removed manifests reach.
    removed_manifests: dict[str, set[str]] = defaultdict(set)
    others = rows.filter(pc.invert(is_blob))
    for repo, kind, digest, size, reason in zip(
        column(others, "repository"),
        column(others, "kind"),
        column(others, "digest"),
        column(others, "size"),
        column(others, "reason"),
        strict=True,
    ):
        if repo is None:
            continue
        if kind in ("tag", "revision") and digest is not None:
            removed_manifests[repo].add(digest)
        if kind == "revision" and reason == "untagged":
            get(repo).untagged_removed += 1
        if kind in ("tag", "tag_index", "revision", "layer_link"):
            get(repo).bytes_freed += size or 0
    del others
    if not removed_manifests:
        return dict(sorted(out.items()))
    # The planned blobs' sizes by their place in the graph, and each repository's closure on
    # places: no blob digest becomes a string.
    graph = Graph.from_snapshot(snap)
    blobs = rows.filter(is_blob)
    planned = np.zeros(len(graph.named), np.int64)
    at = graph.column_places(blobs["digest"])
    sizes = one_array(pc.fill_null(blobs["size"], 0)).to_numpy(zero_copy_only=False)
    planned[at[at >= 0]] = sizes[at >= 0]
    del blobs, at, sizes
    wanted = [(repo, d) for repo, digests in removed_manifests.items() for d in digests]
    roots: dict[str, list[int]] = defaultdict(list)
    for (repo, _), place in zip(
        wanted, graph.places_of(d for _, d in wanted).tolist(), strict=True
    ):
        roots[repo].append(place)
    for repo, places in roots.items():
        reach = graph.reach(np.array(places, np.int64), graph.alias_places(repo))
        get(repo).bytes_freed += int(planned[reach].sum())
    return dict(sorted(out.items()))
