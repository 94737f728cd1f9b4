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

from regsweep.gc.plan import Plan
from regsweep.retention.evaluate import RetentionResult
from regsweep.scan.graph import Graph
from regsweep.scan.snapshot import Snapshot, column


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

    planned_tags = {
        (r, t)
        for r, t, k in zip(
            column(plan.rows, "repository"),
            column(plan.rows, "tag"),
            column(plan.rows, "kind"),
            strict=True,
        )
        if k == "tag"
    }
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
    blob_rows: dict[str, int] = {}
    for repo, kind, digest, size, reason in zip(
        column(plan.rows, "repository"),
        column(plan.rows, "kind"),
        column(plan.rows, "digest"),
        column(plan.rows, "size"),
        column(plan.rows, "reason"),
        strict=True,
    ):
        if kind == "blob" and digest is not None:
            blob_rows[digest] = size or 0
            continue
        if repo is None:
            continue
        if kind in ("tag", "revision") and digest is not None:
            removed_manifests[repo].add(digest)
        if kind == "revision" and reason == "untagged":
            get(repo).untagged_removed += 1
        if kind in ("tag", "tag_index", "revision", "layer_link"):
            get(repo).bytes_freed += size or 0
    graph = Graph.from_snapshot(snap)
    for repo, digests in removed_manifests.items():
        reach = graph.closure(repo, digests)
        get(repo).bytes_freed += sum(blob_rows[d] for d in reach if d in blob_rows)
    return dict(sorted(out.items()))
