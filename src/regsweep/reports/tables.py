"""The report tables: one snapshot of where the storage goes, as Arrow tables.

Column names and types are a stable interface (docs/reports.md documents every one; notebooks
and users' dashboards read them): add columns, never rename or retype one. Every table is
written once per snapshot (``dataset.py``), so the history of a store is the union of its
partitions. Byte counts build on ``usage.usage`` and reclaimable bytes on ``gc.plan.make_plan``
with the same settings a gc run would use, so the report cannot drift from what gc frees.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep.audit.log import runs
from regsweep.gc.mark import mark, rows_by_repository
from regsweep.gc.plan import GcSettings, Plan, make_plan
from regsweep.reports.usage import UsageSummary, usage
from regsweep.scan.graph import Graph, column_places, kind_is, pylist
from regsweep.scan.snapshot import (
    NO_TIME,
    Snapshot,
    column,
    decoded,
    epoch_ms,
    from_epoch_ms,
    one_array,
)

_TS = pa.timestamp("ms", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "summary": pa.schema(
        [
            ("store", pa.string()),
            ("scanned_at", _TS),
            ("repositories", pa.int64()),
            ("tags", pa.int64()),
            ("manifests", pa.int64()),
            ("blobs", pa.int64()),
            ("stored_bytes", pa.int64()),
            ("live_blobs", pa.int64()),
            ("live_bytes", pa.int64()),
            ("logical_bytes", pa.int64()),
            ("exclusive_bytes", pa.int64()),
            ("shared_unique_bytes", pa.int64()),
            ("unreferenced_bytes", pa.int64()),
            ("dedup_ratio", pa.float64()),
            ("reclaimable_bytes", pa.int64()),
            ("gc_refused", pa.bool_()),
            ("gc_delete_untagged", pa.bool_()),
            ("gc_grace_seconds", pa.float64()),
            ("gc_upload_grace_seconds", pa.float64()),
            ("anomalies", pa.int64()),
            ("gc_policy", pa.string()),
        ]
    ),
    "repositories": pa.schema(
        [
            ("repository", pa.string()),
            ("tags", pa.int64()),
            ("manifests", pa.int64()),
            ("untagged_manifests", pa.int64()),
            ("total_bytes", pa.int64()),
            ("exclusive_bytes", pa.int64()),
            ("shared_bytes", pa.int64()),
            ("last_push", _TS),
        ]
    ),
    "tags": pa.schema(
        [
            ("repository", pa.string()),
            ("tag", pa.string()),
            ("digest", pa.string()),
            ("media_type", pa.string()),
            ("platforms", pa.list_(pa.string())),
            ("image_size", pa.int64()),
            ("push_time", _TS),
        ]
    ),
    "blobs": pa.schema(
        [
            ("digest", pa.string()),
            ("size", pa.int64()),
            ("kind", pa.string()),  # layer | config | manifest | unknown
            ("repositories", pa.int64()),
            ("first_seen", _TS),
        ]
    ),
    "reclaimable": pa.schema(
        [
            ("reason", pa.string()),
            ("kind", pa.string()),
            ("repository", pa.string()),
            ("candidates", pa.int64()),
            ("keys", pa.int64()),
            ("bytes", pa.int64()),
        ]
    ),
    "gc_runs": pa.schema(
        [
            ("run_id", pa.string()),
            ("mode", pa.string()),
            ("started", _TS),
            ("finished", _TS),
            ("deleted", pa.int64()),
            ("quarantined", pa.int64()),
            ("aborted", pa.int64()),
            ("restored", pa.int64()),
            ("purged", pa.int64()),
            ("skipped", pa.int64()),
            ("missing", pa.int64()),
            ("failed", pa.int64()),
            ("bytes_removed", pa.int64()),
        ]
    ),
}

TABLES = tuple(SCHEMAS)
# Deletion-log actions counted per run (keys), as columns of ``gc_runs``.
GC_RUN_ACTIONS = (
    "deleted",
    "quarantined",
    "aborted",
    "restored",
    "purged",
    "skipped",
    "missing",
    "failed",
)

# A blob referenced in several roles takes the first of these (the OCI empty config ``{}`` is
# both a config and a layer of artifacts; a manifest is also a blob).
_KIND_ORDER = ("manifest", "config", "layer")
_REF_KIND = {"manifest": "manifest", "subject": "manifest", "config": "config", "layer": "layer"}


class _Tables(dict[str, pa.Table]):
    """A report's tables by name. A table made a part at a time (``later``: the blobs of a
    snapshot that keeps its blobs in scratch files) is built whole only when it is asked for
    by name, and then kept; ``Report.parts`` hands it out a part at a time instead, as it is
    made (so writing it holds one part)."""

    def __init__(
        self, tables: Mapping[str, pa.Table], later: Mapping[str, Callable[[], Iterator[pa.Table]]]
    ) -> None:
        super().__init__(tables)
        self.later = dict(later)

    def __missing__(self, name: str) -> pa.Table:
        if name not in self.later:
            raise KeyError(name)
        return self.build(name)

    def build(self, name: str) -> pa.Table:
        """Table ``name`` of ``later`` built whole, and kept."""
        table = pa.concat_tables([SCHEMAS[name].empty_table(), *self.later[name]()])
        self[name] = table
        return table


@dataclass(frozen=True)
class Report:
    """One snapshot's report: the tables plus the values they were computed from."""

    snapshot_time: datetime
    tables: dict[str, pa.Table]
    usage: UsageSummary
    plan: Plan

    def parts(self, name: str) -> Iterator[pa.Table]:
        """Table ``name`` a part at a time: as it is made, where it is made a part at a time
        and has not been built whole (see ``_Tables``); else the whole table as one part."""
        later = getattr(self.tables, "later", {})
        if name in later and name not in self.tables:
            yield from later[name]()
        else:
            yield self.tables[name]

    def reclaimable_by_reason(self) -> dict[str, int]:
        return _by_reason(self.tables["reclaimable"])

    def to_json(self, top: int = 10) -> dict[str, Any]:
        """The terminal summary as one JSON-able object (``regsweep report --json``)."""
        s = self.tables["summary"].to_pylist()[0]
        repos = sorted(
            self.tables["repositories"].to_pylist(),
            key=lambda r: (-r["exclusive_bytes"], r["repository"]),
        )
        return {
            "snapshot": self.snapshot_time.isoformat(),
            **{k: v.isoformat() if isinstance(v, datetime) else v for k, v in s.items()},
            "reclaimable_by_reason": self.reclaimable_by_reason(),
            "gc_refusals": list(self.plan.refusals),
            "top_repositories": [
                {k: r[k] for k in ("repository", "exclusive_bytes", "total_bytes", "shared_bytes")}
                for r in repos[:top]
            ],
        }


def reclaimable_by_reason(plan: Plan) -> dict[str, int]:
    """Bytes a plan would free, per reason (every key's size counted, links included)."""
    return _by_reason(_reclaimable(plan))


def _by_reason(t: pa.Table) -> dict[str, int]:
    """The ``bytes`` of a ``reclaimable`` table summed per reason."""
    out: Counter[str] = Counter()
    for reason, nbytes in zip(column(t, "reason"), column(t, "bytes"), strict=True):
        out[reason] += nbytes
    return dict(sorted(out.items()))


def build_report(
    snap: Snapshot,
    *,
    settings: GcSettings,
    now: datetime,
    log: pa.Table | None = None,
    snapshot_time: datetime | None = None,
    plan: Plan | None = None,
    policy: str | None = None,
) -> Report:
    """Every report table for ``snap``. Pure: nothing is read from a store.

    ``settings`` and ``now`` are what a gc run would use; the ``reclaimable`` table is exactly
    the plan that run would make (same mark, same grace, same brakes). ``log`` is the deletion
    log (``audit.log.read_log``) for the ``gc_runs`` table. ``snapshot_time`` labels the
    partition; it defaults to the scan's start time. A ``plan`` made elsewhere with the same
    settings (gc with a retention policy: ``gc.planning.plan_gc``) replaces the default one;
    ``policy`` names its policy file in ``summary.gc_policy``."""
    if now.tzinfo is None:
        raise ValueError("build_report needs a timezone-aware 'now'")
    when = (snapshot_time or snap.scanned_at).astimezone(UTC).replace(microsecond=0)
    graph = Graph.from_snapshot(snap)
    u = usage(snap, graph)
    if plan is None:
        marked = mark(snap, delete_untagged=settings.delete_untagged)
        plan = make_plan(snap, marked, settings, now)
    blobs = _blob_parts(snap, graph, u)
    tables = {
        "repositories": _repositories(snap, graph, u),
        "tags": _tags(snap, graph),
        "reclaimable": _reclaimable(plan),
        "gc_runs": _gc_runs(log),
    }
    tables["summary"] = _summary(snap, u, plan, tables["repositories"], policy)
    report_tables = _Tables(
        {name: tables[name] for name in TABLES if name in tables}, {"blobs": blobs}
    )
    # The blobs table, a row per stored blob, is made a part at a time as it is written where
    # the snapshot keeps its blobs in scratch files (~100 B a blob held whole: 1.2M blobs took
    # a report's peak from ~220 to ~480 MiB, 6M to 1.8 GiB); else here.
    if "blobs" not in snap.spilled:
        report_tables.build("blobs")
    return Report(when, report_tables, u, plan)


def _table(name: str, rows: Mapping[str, list[Any]]) -> pa.Table:
    schema = SCHEMAS[name]
    return pa.Table.from_arrays(
        [pa.array(rows[f.name], type=f.type) for f in schema], schema=schema
    )


def _columns(name: str) -> dict[str, list[Any]]:
    return {f.name: [] for f in SCHEMAS[name]}


_NO_ROWS = np.zeros(0, np.int64)


def _repositories(snap: Snapshot, graph: Graph, u: UsageSummary) -> pa.Table:
    """A row per repository; its untagged manifests counted on places (the revisions' targets
    no tag reaches), its last push the newest time of its revision and tag links."""
    rv, tg = snap["revisions"], snap["tags"]
    rev_at, tag_at = graph.column_places(rv["target"]), graph.column_places(tg["digest"])
    rev_rows, tag_rows = rows_by_repository(rv["repository"]), rows_by_repository(tg["repository"])
    rev_ms, tag_ms = epoch_ms(rv["last_modified"]), epoch_ms(tg["last_modified"])
    rows = _columns("repositories")
    for r in u.repositories.to_pylist():
        repo = r["repository"]
        revs, tags = rev_rows.get(repo, _NO_ROWS), tag_rows.get(repo, _NO_ROWS)
        # Untagged: no tag reaches it, directly or as a child of a tagged index.
        tagged = tag_at[tags]
        reached = graph.reach(tagged[tagged >= 0], graph.alias_places(repo))
        targets = np.unique(rev_at[revs])
        untagged = np.setdiff1d(targets[targets >= 0], reached, assume_unique=True)
        for k in (
            "repository",
            "tags",
            "manifests",
            "total_bytes",
            "exclusive_bytes",
            "shared_bytes",
        ):
            rows[k].append(r[k])
        rows["untagged_manifests"].append(len(untagged))
        newest = max(rev_ms[revs].max(initial=NO_TIME), tag_ms[tags].max(initial=NO_TIME))
        rows["last_push"].append(None if newest == NO_TIME else from_epoch_ms(int(newest)))
    return _table("repositories", rows)


def _tags(snap: Snapshot, graph: Graph) -> pa.Table:
    """A row per tag: its manifest's media type and platforms, and the size of its image (the
    blobs its manifest reaches in its repository), all looked up by place, column by column:
    a Python value per cell and a dict of sizes per (repository, place) were ~60 MiB at 177k
    tags, the peak of a report of a 1M-blob store and of the scheduled job's report step."""
    tg = snap["tags"]
    n = tg.num_rows
    at = graph.column_places(tg["digest"])
    named = one_array(pc.is_valid(tg["digest"])).to_numpy(zero_copy_only=False)
    # The image's size, reached once per repository and distinct place its tags name.
    size = np.zeros(n, np.int64)
    for repo, repo_rows in rows_by_repository(tg["repository"]).items():
        tagged = repo_rows[named[repo_rows]]
        if not len(tagged):
            continue
        aliases = graph.alias_places(repo)
        distinct, row_of = np.unique(at[tagged], return_inverse=True)
        sums = np.zeros(len(distinct), np.int64)
        for i, place in enumerate(distinct.tolist()):
            stored = graph.sizes[graph.reach(np.array([place]), aliases)]
            sums[i] = stored[stored >= 0].sum()
        size[tagged] = sums[row_of]
    # The media type of each tag's manifest: an index into its dictionary per place.
    m = snap["manifests"]
    media = one_array(m["media_type"])
    media = media if pa.types.is_dictionary(media.type) else media.dictionary_encode()
    media_at = np.full(len(graph.named), -1, np.int64)
    m_at = graph.column_places(m["digest"])
    media_at[m_at[m_at >= 0]] = np.asarray(pc.fill_null(media.indices, -1), np.int64)[m_at >= 0]
    media_row = np.where(named & (at >= 0), media_at[np.maximum(at, 0)], -1)
    # The platforms of each distinct place the tags name, spread to the rows by index.
    distinct = np.unique(at[named])
    platforms = _platforms(snap, graph, distinct)
    platform_row = np.searchsorted(distinct, at)
    columns = {
        "repository": decoded(tg["repository"]),
        "tag": decoded(tg["tag"]),
        "digest": decoded(tg["digest"]),
        "media_type": media.dictionary.cast(pa.string()).take(
            pa.array(media_row, pa.int64(), mask=media_row < 0)
        ),
        "platforms": platforms.take(pa.array(platform_row, pa.int64(), mask=~named)),
        "image_size": pa.array(size, pa.int64(), mask=~named),
        "push_time": tg["last_modified"],
    }
    schema = SCHEMAS["tags"]
    return pa.Table.from_arrays([columns[f.name].cast(f.type) for f in schema], schema=schema)


def _platforms(snap: Snapshot, graph: Graph, places: np.ndarray) -> pa.Array:
    """Per place of ``places`` (distinct, sorted): the platforms an index lists its children
    as, else those an image is listed as, sorted; null if none. On places and numpy: a dict
    of sets of platform strings per index and per child was ~20 MiB of Python objects at
    43k platform references, the peak of a report of a 1M-blob store and of the scheduled
    job's report step."""
    refs = snap["references"]
    refs = refs.filter(pc.and_(kind_is(refs, "manifest"), pc.is_valid(refs["platform"])))
    # Each reference's platform as its rank among the distinct platforms, sorted as Python
    # sorts strings (by code point: UTF-8's byte order).
    encoded = one_array(decoded(refs["platform"])).dictionary_encode()
    by_text = pc.array_sort_indices(encoded.dictionary)
    words = encoded.dictionary.take(by_text)
    rank = np.empty(len(words), np.int64)
    rank[np.asarray(by_text, np.int64)] = np.arange(len(words))
    ranks = rank[np.asarray(encoded.indices, np.int64)]
    width = max(len(words), 1)

    def named(at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # (place, rank) of each distinct platform a place of ``places`` has, by place and rank
        # (a place is -1 where the graph has none: it stays a key of its own, as in a dict).
        keep = np.isin(at, places)
        pairs = np.unique((at[keep] + 1) * width + ranks[keep])
        return pairs // width - 1, pairs % width

    parent, child = (graph.column_places(refs[c]).astype(np.int64) for c in ("parent", "child"))
    of_index, index_rank = named(parent)
    of_image, image_rank = named(child)
    image = ~np.isin(of_image, of_index)  # an index's children's platforms come first
    at = np.concatenate([of_index, of_image[image]])
    ranked = np.concatenate([index_rank, image_rank[image]])
    order = np.lexsort((ranked, at))
    counts = np.bincount(np.searchsorted(places, at[order]), minlength=len(places))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    values = words.take(pa.array(ranked[order])) if len(order) else pa.array([], pa.string())
    return pa.ListArray.from_arrays(
        pa.array(offsets), values.cast(pa.string()), mask=pa.array(counts == 0)
    )


def _blob_parts(snap: Snapshot, graph: Graph, u: UsageSummary) -> Callable[[], Iterator[pa.Table]]:
    """The blobs table (every stored blob with its role and how many repositories reach it)
    a part of the snapshot's blobs at a time, column by column, each time the result is
    called: a Python row per blob was ~3 GiB for the 6M blobs of a 10M-object store. What it
    keeps between calls is a role and a count per named digest (numpy, by place) and the
    graph's dictionary of them, which the snapshot shares."""
    # The role of each named digest, by place: the first of manifest, config, layer it plays.
    role = np.full(len(graph.named), len(_KIND_ORDER), np.int8)  # "unknown"
    refs = snap["references"]
    ref_kind = one_array(refs["kind"]).dictionary_encode() if refs.num_rows else None
    sources: list[tuple[np.ndarray, np.ndarray | int]] = [
        (graph.column_places(snap["manifests"]["digest"]), 0),
        (graph.column_places(snap["revisions"]["target"]), 0),
    ]
    if ref_kind is not None:
        kinds = ref_kind.dictionary.to_pylist()
        rank_of = np.array([_KIND_ORDER.index(_REF_KIND.get(k, "layer")) for k in kinds], np.int8)
        codes = np.asarray(ref_kind.indices.fill_null(-1).to_numpy(zero_copy_only=False))
        layer = np.int8(_KIND_ORDER.index("layer"))  # what a reference of no known kind is
        ranks = np.where(codes >= 0, rank_of[np.maximum(codes, 0)], layer).astype(np.int8)
        sources.append((graph.column_places(refs["child"]), ranks))
    for at, r in sources:
        known = at >= 0
        np.minimum.at(role, at[known], r[known] if isinstance(r, np.ndarray) else np.int8(r))
    del sources, refs, ref_kind
    named, users_at = graph.named, u.users_at  # not the graph: it can go before the parts
    names = pa.array([*_KIND_ORDER, "unknown"])

    def parts() -> Iterator[pa.Table]:
        for part in snap.parts("blobs", ("digest", "size", "last_modified")):
            digest = part["digest"]
            at = column_places(digest, named)
            kind = np.full(len(at), len(_KIND_ORDER), np.int8)
            kind[at >= 0] = role[at[at >= 0]]
            repositories = np.zeros(len(at), np.int64)
            repositories[at >= 0] = users_at[at[at >= 0]]
            columns = {
                "digest": digest,
                "size": part["size"],
                "kind": pa.chunked_array([names.take(pa.array(kind))]),
                "repositories": pa.chunked_array([pa.array(repositories)]),
                "first_seen": part["last_modified"],
            }
            del part, digest, at, kind, repositories
            # A slice at a time, the digests decoded only there: a snapshot's part can be
            # hundreds of thousands of rows (an inventory's), and one decoded whole, with
            # the rows around it, was ~130 MiB of a 10M-object report's peak.
            n = len(columns["size"])
            for start in range(0, n, _BLOB_SLICE) if n else ():
                rows = {name: col.slice(start, _BLOB_SLICE) for name, col in columns.items()}
                rows["digest"] = decoded(rows["digest"])
                yield pa.Table.from_arrays(
                    [rows[f.name].cast(f.type) for f in SCHEMAS["blobs"]],
                    schema=SCHEMAS["blobs"],
                )

    return parts


_BLOB_SLICE = 1 << 17  # rows of the blobs table made at once (see _blob_parts)


def _reclaimable(plan: Plan) -> pa.Table:
    """The plan's candidates, keys and bytes per reason, kind and repository, aggregated in
    Arrow: a plan that deletes most of a store has a row per blob (a Python value per row and
    column was ~300 MiB of a report at 2M objects). A part of the rows at a time, in parts no
    candidate spans (``Plan.candidate_parts``), so that their counts add up: the blob rows a
    plan keeps in scratch files are then mapped a part at a time, not all at once."""
    totals: dict[tuple[str, str, str | None], list[int]] = {}
    for part in plan.candidate_parts():
        if not part.num_rows:
            continue
        g = (
            part.select(["reason", "kind", "repository", "candidate", "size"])
            .unify_dictionaries()
            .group_by(["reason", "kind", "repository"], use_threads=False)
            .aggregate([("candidate", "count_distinct"), ([], "count_all"), ("size", "sum")])
        )
        for reason, kind, repo, cands, keys, nbytes in zip(
            pylist(g["reason"]),
            pylist(g["kind"]),
            pylist(g["repository"]),
            pylist(g["candidate_count_distinct"]),
            pylist(g["count_all"]),
            pylist(g["size_sum"]),
            strict=True,
        ):
            total = totals.setdefault((reason, kind, repo), [0, 0, 0])
            total[0] += cands
            total[1] += keys
            total[2] += nbytes or 0
    out = _columns("reclaimable")
    for (reason, kind, repo), (cands, keys, nbytes) in sorted(
        totals.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")
    ):
        out["reason"].append(reason)
        out["kind"].append(kind)
        out["repository"].append(repo)
        out["candidates"].append(cands)
        out["keys"].append(keys)
        out["bytes"].append(nbytes)
    return _table("reclaimable", out)


def _gc_runs(log: pa.Table | None) -> pa.Table:
    rows = _columns("gc_runs")
    if log is None or log.num_rows == 0:
        return _table("gc_runs", rows)
    for r in runs(log):
        rows["run_id"].append(r["run_id"])
        rows["mode"].append(",".join(r["modes"]))
        rows["started"].append(r["first"])
        rows["finished"].append(r["last"])
        for action in GC_RUN_ACTIONS:
            rows[action].append(r["actions"].get(action, 0))
        rows["bytes_removed"].append(r["bytes"])
    return _table("gc_runs", rows)


def _distinct(col: pa.ChunkedArray) -> int:
    """The number of distinct values of ``col`` but null, counted by Arrow: a set of the
    Python strings of every revision's target was ~40 MiB at 256k revisions, at the peak of
    the report (and of ``regsweep run``'s report step)."""
    values = pc.unique(col)
    return int(len(values) - values.null_count)


def _summary(
    snap: Snapshot, u: UsageSummary, plan: Plan, repositories: pa.Table, policy: str | None
) -> pa.Table:
    rows = _columns("summary")
    values: dict[str, Any] = {
        "store": str(snap.meta.get("store")),
        "scanned_at": snap.scanned_at,
        "repositories": repositories.num_rows,
        "tags": snap["tags"].num_rows,
        "manifests": _distinct(snap["revisions"]["target"]),
        "blobs": u.stored_blobs,
        "stored_bytes": u.stored_bytes,
        "live_blobs": u.live_blobs,
        "live_bytes": u.live_bytes,
        "logical_bytes": u.logical_bytes,
        "exclusive_bytes": sum(column(repositories, "exclusive_bytes")),
        "shared_unique_bytes": u.shared_unique_bytes,
        "unreferenced_bytes": u.unreferenced_bytes,
        "dedup_ratio": u.dedup_ratio,
        "reclaimable_bytes": plan.total_bytes(),
        "gc_refused": bool(plan.refusals),
        "gc_delete_untagged": plan.settings.delete_untagged,
        "gc_grace_seconds": plan.settings.grace.total_seconds(),
        "gc_upload_grace_seconds": plan.settings.upload_grace.total_seconds(),
        "anomalies": snap["anomalies"].num_rows,
        "gc_policy": policy,
    }
    for k, v in values.items():
        rows[k].append(v)
    return _table("summary", rows)
