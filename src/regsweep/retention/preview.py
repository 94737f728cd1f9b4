"""What a retention run removes, per repository, for the ``gc --policy`` preview and ``--json``.

Joins the policy's decisions with the gc plan built from them: which tags go and why (rule,
rank), how many tags and untagged manifests stay or go, and the bytes freed. A blob is counted
for every repository whose removed manifests reached it (so a blob freed by two repositories'
expirations is shown under both; the plan's total counts it once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep.gc.mark import rows_by_repository
from regsweep.gc.plan import Plan
from regsweep.retention.evaluate import RetentionResult
from regsweep.scan.graph import Graph, kind_is
from regsweep.scan.snapshot import Snapshot, by_value, column, decoded, one_array


@dataclass(slots=True)
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

    # Column-wise: a plan that empties a store has a row for most of its blobs and links, and
    # converting them (or every decision) to Python was the peak of a policy run.
    rows = plan.rows
    tag_rows = rows.select(["repository", "tag"]).filter(kind_is(rows, "tag"))
    planned_tags = set(zip(column(tag_rows, "repository"), column(tag_rows, "tag"), strict=True))
    del tag_rows
    decided = result.decisions.filter(pc.equal(result.decisions["kind"], "tag"))
    for repo, tag, digest, action, decided_by, rule, rank, window in zip(
        *(column(decided, name) for name in _DECIDED), strict=True
    ):
        p = get(repo)
        if action == "delete" and (repo, tag) in planned_tags:
            p.expired.append(ExpiredTag(tag, digest, decided_by, rule, rank, window))
        else:
            p.kept_tags += 1
    del decided, planned_tags
    for repo, why in result.skipped.items():
        get(repo).skipped = why

    # Bytes: links and tags of the repository itself, plus blobs its removed manifests reach.
    # First the rows of each repository's own tags, history entries, revisions and links
    # (each filter takes only the columns it reads: the rows' keys alone are ~100 bytes a row).
    mine = rows.select(["repository", "kind", "digest", "size", "reason"]).filter(
        pc.and_(
            pc.is_valid(rows["repository"]),
            by_value(rows["kind"], lambda v: pc.is_in(v, value_set=_REPOSITORY_KINDS)),
        )
    )
    by_repo = rows_by_repository(mine["repository"])
    sizes = one_array(pc.fill_null(mine["size"], 0)).to_numpy(zero_copy_only=False)
    untagged = _is(mine, "kind", "revision") & _is(mine, "reason", "untagged")
    for name, at in by_repo.items():
        p = get(name)
        p.bytes_freed += int(sizes[at].sum())
        p.untagged_removed += int(untagged[at].sum())
    # The manifests removed (a tag's or a revision's digest), as places, by repository.
    gone = (_is(mine, "kind", "tag") | _is(mine, "kind", "revision")) & np.asarray(
        one_array(pc.is_valid(mine["digest"])).to_numpy(zero_copy_only=False)
    )
    if not gone.any():
        return dict(sorted(out.items()))
    # The removed manifests' places (decoded first: a plan's dictionaries hold its links'
    # layers too), the planned blobs' sizes by place, and each repository's closure on places:
    # no blob digest becomes a string.
    graph = result.graph if result.graph is not None else Graph.from_snapshot(snap)
    removed = np.full(len(gone), -1, np.int64)
    removed[gone] = graph.column_places(decoded(mine["digest"].filter(pa.array(gone))))
    del mine
    planned = np.zeros(len(graph.named), np.int64)
    for part in plan.row_parts():  # a part at a time: the blob rows are mapped from scratch files
        blobs = part.select(["digest", "size"]).filter(kind_is(part, "blob"))
        at = graph.column_places(blobs["digest"])
        sizes = one_array(pc.fill_null(blobs["size"], 0)).to_numpy(zero_copy_only=False)
        planned[at[at >= 0]] = sizes[at >= 0]
        del part, blobs, at, sizes
    for name, at in by_repo.items():
        roots = removed[at]
        if (roots >= 0).any():
            reach = graph.reach(roots, graph.alias_places(name))
            get(name).bytes_freed += int(planned[reach].sum())
    return dict(sorted(out.items()))


_DECIDED = ("repository", "tag", "digest", "action", "decided_by", "rule", "rank", "window")
# The kinds of plan row that belong to a repository's own tags, revisions and links.
_REPOSITORY_KINDS = pa.array(["tag", "tag_index", "revision", "layer_link"])


def _is(table: pa.Table, name: str, value: str) -> np.ndarray:
    """Per row: the text column ``name`` is ``value`` (false where null)."""
    hit = pc.fill_null(by_value(table[name], lambda v: pc.equal(v, value)), False)
    return np.asarray(one_array(hit).to_numpy(zero_copy_only=False))
