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
    # First the rows of each repository's own tags, history entries, revisions and links, by
    # the codes of their repositories (each filter takes only the columns it reads: the rows'
    # keys alone are ~100 bytes a row).
    mine = rows.select(["repository", "kind", "digest", "size", "reason"]).filter(
        pc.and_(
            pc.is_valid(rows["repository"]),
            by_value(rows["kind"], lambda v: pc.is_in(v, value_set=_REPOSITORY_KINDS)),
        )
    )
    repo_names, repo_at = _codes(mine["repository"])
    n = len(repo_names)
    for name in repo_names[np.bincount(repo_at, minlength=n) > 0].tolist():
        get(name)
    sizes = one_array(pc.fill_null(mine["size"], 0)).to_numpy(zero_copy_only=False)
    freed = np.zeros(n, np.int64)
    np.add.at(freed, repo_at, sizes)
    untagged = np.bincount(
        repo_at[_is(mine, "kind", "revision") & _is(mine, "reason", "untagged")], minlength=n
    )
    for name, b, u in zip(repo_names.tolist(), freed.tolist(), untagged.tolist(), strict=True):
        if name in out:
            out[name].bytes_freed += b
            out[name].untagged_removed += u
    # The manifests removed (a tag's or a revision's digest), as places, by repository.
    gone = (_is(mine, "kind", "tag") | _is(mine, "kind", "revision")) & np.asarray(
        one_array(pc.is_valid(mine["digest"])).to_numpy(zero_copy_only=False)
    )
    if not gone.any():
        return dict(sorted(out.items()))
    # The removed manifests' places (decoded first: a plan's dictionaries hold its links'
    # layers too), the planned blobs' sizes by place, and each repository's closure on places:
    # no blob digest becomes a string.
    graph = Graph.from_snapshot(snap)
    removed = graph.column_places(decoded(mine["digest"].filter(pa.array(gone))))
    removed_repo = repo_at[gone]
    del mine
    planned = np.zeros(len(graph.named), np.int64)
    for part in plan.row_parts():  # a part at a time: the blob rows are mapped from scratch files
        blobs = part.select(["digest", "size"]).filter(kind_is(part, "blob"))
        at = graph.column_places(blobs["digest"])
        sizes = one_array(pc.fill_null(blobs["size"], 0)).to_numpy(zero_copy_only=False)
        planned[at[at >= 0]] = sizes[at >= 0]
        del part, blobs, at, sizes
    for code in np.unique(removed_repo).tolist():
        roots = np.unique(removed[removed_repo == code])
        name = str(repo_names[code])
        reach = graph.reach(roots, graph.alias_places(name))
        get(name).bytes_freed += int(planned[reach].sum())
    return dict(sorted(out.items()))


_DECIDED = ("repository", "tag", "digest", "action", "decided_by", "rule", "rank", "window")
# The kinds of plan row that belong to a repository's own tags, revisions and links.
_REPOSITORY_KINDS = pa.array(["tag", "tag_index", "revision", "layer_link"])


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A text column without nulls as (its distinct values, each row's index among them)."""
    encoded = one_array(col)
    if not pa.types.is_dictionary(encoded.type):
        encoded = encoded.dictionary_encode()
    values = np.array(encoded.dictionary.to_pylist(), object)
    return values, np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)


def _is(table: pa.Table, name: str, value: str) -> np.ndarray:
    """Per row: the text column ``name`` is ``value`` (false where null)."""
    hit = pc.fill_null(by_value(table[name], lambda v: pc.equal(v, value)), False)
    return np.asarray(one_array(hit).to_numpy(zero_copy_only=False))
