"""Plan: candidates minus safety filters, as a value a person can read, save and apply.

Planning is pure: it takes a Snapshot, a MarkResult, settings and an explicit ``now`` and
returns a Plan. Nothing here touches a store. Each row of the plan is one key to remove, with
the candidate it belongs to, a short stable ``reason`` and the ``phase`` that orders apply:

1. tags and untagged manifests (tag links, then tag-index entries, then the revision link)
2. ``_layers`` links
3. blob data (after re-checking that nothing references them again)
4. stale uploads (and, on S3, their incomplete multipart uploads)
5. leftover temp files

Links go before data, so a crash at any point leaves every kept image servable (invariant 6).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep.errors import UsageError
from regsweep.gc.mark import MarkResult, RepoPlaces
from regsweep.layout.digest_columns import SHA256_BYTES
from regsweep.python_gc import collector_paused
from regsweep.scan.graph import Graph, has_place, pylist
from regsweep.scan.snapshot import (
    DERIVED_KEYS,
    NO_TIME,
    Snapshot,
    as_dictionary,
    ascending,
    by_value,
    constant,
    decoded,
    epoch_ms,
    one_array,
    rows,
    value_ranks,
)
from regsweep.scan.spill import SpilledTable

PHASE_MANIFESTS, PHASE_LINKS, PHASE_BLOBS, PHASE_UPLOADS, PHASE_TMP = 1, 2, 3, 4, 5

# In memory, the text columns that repeat or that name blobs are dictionary-encoded. The blob
# phase's digest and ETag are dictionaries over the snapshot's own blobs columns, so a plan of
# millions of blobs adds 4 bytes per value instead of a copy of each string; as in the
# snapshot, the key of a blob or a link (``_layers``, revision, tag, tag index) in the
# standard shape is null (``_with_keys`` builds it). A plan file holds plain strings and every key (PLAN_FILE_SCHEMA): a dictionary
# over every blob of the store would be written whole.
_DICT = pa.dictionary(pa.int32(), pa.string())
# In memory, ``seq`` and ``candidate`` are 32-bit (a plan of millions of blobs has a value of
# each per row: 47 MiB less for 5.9M blobs); a plan file holds them as 64-bit integers.
PLAN_SCHEMA = pa.schema(
    [
        ("seq", pa.int32()),
        ("phase", pa.int8()),
        ("candidate", pa.int32()),  # rows of one candidate (a tag, a manifest, an upload) share it
        # blob | layer_link | revision | tag | tag_index | upload | multipart_upload | tmp
        ("kind", _DICT),
        ("reason", _DICT),
        ("rule", pa.string()),  # retention rule that decided it, when one did
        ("decided_by", pa.string()),  # rule | protect | guard | default (retention), else null
        ("rank", pa.int64()),  # the tag's rank position in the rule that decided it
        ("repository", _DICT),
        ("digest", _DICT),
        ("tag", pa.string()),
        ("key", _DICT),
        ("size", pa.int64()),
        ("last_modified", pa.timestamp("ms", tz="UTC")),
        ("etag", _DICT),  # for multipart uploads: the upload id
    ]
)


def _in_file(f: pa.Field) -> pa.Field:
    """A plan file's column: plain text for a dictionary, 64 bits for a 32-bit integer."""
    if f.type == _DICT:
        return pa.field(f.name, f.type.value_type)
    if f.type == pa.int32():
        return pa.field(f.name, pa.int64())
    return f


PLAN_FILE_SCHEMA = pa.schema([_in_file(f) for f in PLAN_SCHEMA])
_ENCODED = [f.name for f in PLAN_SCHEMA if f.type == _DICT]
_WRITE_ROWS = 1 << 18  # rows decoded at a time when a plan is written
_SLICE_ROWS = 1 << 14  # _layers links turned into Python values at a time


@dataclass(frozen=True, slots=True)
class TagRemoval:
    """A tag a retention policy removes, and why."""

    reason: str  # e.g. "retention"
    rule: str | None = None
    decided_by: str | None = None
    rank: int | None = None


@dataclass(frozen=True)
class GcSettings:
    """Safety settings with units in their types. The defaults are the safe preset."""

    delete_untagged: bool = False
    grace: timedelta = timedelta(hours=24)
    upload_grace: timedelta = timedelta(hours=168)
    max_delete_fraction: float = 0.5  # of blobs, or of blob bytes

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["grace"] = self.grace.total_seconds()
        d["upload_grace"] = self.upload_grace.total_seconds()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GcSettings:
        return cls(
            delete_untagged=bool(d["delete_untagged"]),
            grace=timedelta(seconds=d["grace"]),
            upload_grace=timedelta(seconds=d["upload_grace"]),
            max_delete_fraction=float(d["max_delete_fraction"]),
        )


@dataclass
class Plan:
    """What a gc run would remove. ``refusals`` non-empty means the brakes refuse to apply it."""

    run_id: str
    store: str
    layout_root: str
    now: datetime
    settings: GcSettings
    rows: pa.Table
    refusals: list[str] = field(default_factory=list)
    protected: dict[str, int] = field(default_factory=dict)  # kind -> kept only by grace
    unsafe_repos: dict[str, str] = field(default_factory=dict)
    snapshot_dir: str | None = None
    # How make_plan built ``rows``: that table and its segments, some of them rows in scratch
    # files (see row_parts). A copy with other rows (dataclasses.replace) keeps the pair, which
    # then no longer describes its rows.
    built_from: tuple[pa.Table, list[pa.Table | SpilledTable]] | None = field(
        default=None, repr=False, compare=False
    )

    def row_parts(self) -> Iterator[pa.Table]:
        """``rows`` a part at a time, in order. Rows in scratch files (the blob rows of a plan
        made from a scan) are mapped one part at a time: what reads every column of them
        (writing a plan file, applying it) then holds one part's pages, not all of them."""
        segments = self._segments()
        if segments is None:
            yield self.rows
            return
        for segment in segments:
            if isinstance(segment, SpilledTable):
                yield from segment.parts()
            else:
                yield segment

    def _segments(self) -> list[pa.Table | SpilledTable] | None:
        """The segments ``rows`` was built from (``built_from``), if they still describe it."""
        if self.built_from is None or self.built_from[0] is not self.rows:
            return None
        return self.built_from[1]

    def candidate_parts(self) -> Iterator[pa.Table]:
        """``rows`` in parts that share no candidate, for what counts candidates a part at a
        time: the rows held in memory as one table, then the rows in scratch files a part at
        a time, mapped (each of those rows is a candidate of its own, see ``_Rows.extend``)."""
        segments = self._segments()
        if segments is None:
            yield self.rows
            return
        held = [s for s in segments if not isinstance(s, SpilledTable)]
        if held:
            yield pa.concat_tables(held)
        for segment in segments:
            if isinstance(segment, SpilledTable):
                yield from segment.parts()

    # -- summaries ---------------------------------------------------------------------------

    def summary(self) -> dict[str, dict[str, int]]:
        """Per kind, in the order kinds first appear: candidates (``count``), keys and bytes.
        Added up in Arrow a slice of rows at a time (a plan can hold millions of blob rows,
        and a filtered copy of its columns was 100 MiB at 5.9M). Not with ``group_by``,
        whose import (Acero, datasets, Parquet) cost ~20 ms of every ``gc --json``."""
        rows = self.rows.select(["seq", "kind", "candidate", "size"]).unify_dictionaries()
        if rows.num_rows == 0:
            return {}
        starts = _candidate_starts(rows)
        if starts is not None:
            rows = rows.append_column("start", starts)
        names = rows["kind"].chunk(0).dictionary.to_pylist()
        first: dict[int, int] = {}
        totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])  # count, keys, bytes
        for batch in rows.to_batches(_SLICE_ROWS):
            codes = batch.column("kind").indices
            for code in pc.unique(codes).drop_null().to_pylist():
                part = batch.filter(pc.equal(codes, code))
                seq = pc.min(part.column("seq")).as_py()
                first[code] = min(first.get(code, seq), seq)
                t = totals[code]
                t[0] += pc.sum(part.column("start")).as_py() if starts is not None else 0
                t[1] += part.num_rows
                t[2] += pc.sum(part.column("size")).as_py() or 0
        if starts is None:  # not in seq order: candidates counted distinct, kind by kind
            codes_all = pa.chunked_array([c.indices for c in rows["kind"].chunks], pa.int32())
            for code, t in totals.items():
                mine = rows["candidate"].filter(pc.equal(codes_all, code))
                t[0] = pc.count_distinct(mine).as_py()
        return {
            names[code]: dict(zip(("count", "keys", "bytes"), totals[code], strict=True))
            for code in sorted(first, key=first.__getitem__)
        }

    def by_repository(self) -> dict[str, dict[str, int]]:
        rows = self.rows.select(["repository", "kind", "size"]).unify_dictionaries()
        g = (
            rows.filter(pc.is_valid(rows["repository"]))
            .group_by(["repository", "kind"], use_threads=False)
            .aggregate([([], "count_all"), ("size", "sum")])
        )
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for repo, k, n, b in zip(
            pylist(g["repository"]),
            pylist(g["kind"]),
            pylist(g["count_all"]),
            pylist(g["size_sum"]),
            strict=True,
        ):
            out[repo][f"{k}_keys"] += n
            out[repo]["bytes"] += b or 0
        return {r: dict(v) for r, v in sorted(out.items())}

    def total_bytes(self) -> int:
        return int(pc.sum(self.rows["size"]).as_py() or 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "store": self.store,
            "now": self.now.isoformat(),
            "settings": self.settings.to_json(),
            "summary": self.summary(),
            "bytes": self.total_bytes(),
            "protected_by_grace": self.protected,
            "unsafe_repositories": self.unsafe_repos,
            "refusals": self.refusals,
        }

    # -- persistence -------------------------------------------------------------------------

    def write(self, path: str | Path) -> None:
        meta = {
            "run_id": self.run_id,
            "store": self.store,
            "layout_root": self.layout_root,
            "now": self.now.isoformat(),
            "settings": self.settings.to_json(),
            "refusals": self.refusals,
            "protected": self.protected,
            "unsafe_repos": self.unsafe_repos,
            "snapshot_dir": self.snapshot_dir,
        }
        schema = PLAN_FILE_SCHEMA.with_metadata({"regsweep.plan": json.dumps(meta)})
        import pyarrow.parquet as pq  # here, not at the top: a plan-only run writes no file

        with pq.ParquetWriter(str(path), schema) as out:
            if not self.rows.num_rows:
                out.write_table(self.decoded_rows())
            for part in self.row_parts():
                for start in range(0, part.num_rows, _WRITE_ROWS):
                    out.write_table(self.decoded_rows(part.slice(start, _WRITE_ROWS)))

    def decoded_rows(self, rows: pa.Table | None = None) -> pa.Table:
        """The rows (or ``rows``, some of them) as a plan file holds them: plain string
        columns, and every key. In memory, the key of a blob or a link in the common shape is
        null, as in the snapshot (see ``snapshot.DERIVED_KEYS``)."""
        plain = (self.rows if rows is None else rows).cast(PLAN_FILE_SCHEMA)
        return _with_keys(plain, self.layout_root)

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        """A plan file read back. A file of more than one row group (``write`` makes one per
        ``_WRITE_ROWS`` rows at most) is read a row group at a time into scratch files and
        mapped, as the blob rows of a plan made from a scan are (see row_parts): read whole,
        applying a 1.2M-row plan file took 599 MiB, against 260 for ``gc --apply``."""
        import pyarrow.parquet as pq  # see write

        try:
            f = pq.ParquetFile(str(path), read_dictionary=_ENCODED)
            raw = (f.schema_arrow.metadata or {}).get(b"regsweep.plan")
            if raw is None:
                raise UsageError(f"{path}: not a regsweep plan (no plan metadata)")
            groups = (
                f.read_row_group(i).replace_schema_metadata(None).cast(PLAN_SCHEMA)
                for i in range(f.num_row_groups)
            )
            if f.num_row_groups <= 1:
                rows = pa.concat_tables([PLAN_SCHEMA.empty_table(), *groups])
                built_from = None
            else:
                spilled = SpilledTable(PLAN_SCHEMA, "plan")
                for group in groups:
                    spilled.append(group)
                rows = spilled.table()
                built_from = (rows, [spilled])
        except (OSError, pa.ArrowInvalid) as e:
            raise UsageError(f"{path}: cannot read plan file ({e})") from e
        meta = json.loads(raw)
        return cls(
            run_id=meta["run_id"],
            store=meta["store"],
            layout_root=meta["layout_root"],
            now=datetime.fromisoformat(meta["now"]),
            settings=GcSettings.from_json(meta["settings"]),
            rows=rows,
            refusals=list(meta.get("refusals", [])),
            protected=dict(meta.get("protected", {})),
            unsafe_repos=dict(meta.get("unsafe_repos", {})),
            snapshot_dir=meta.get("snapshot_dir"),
            built_from=built_from,
        )


# Rows added one by one are held as Python values up to this many, then moved to Arrow: a
# plan that removes most of a store's tags, revisions and links has a row for each (~300 bytes
# of Python a row; 530k rows, 160 MiB, for a policy that empties a store of 94k manifests).
_PYTHON_ROWS = 1 << 15


class _Rows:
    """The plan's rows, column by column; ``last_modified`` is kept as epoch milliseconds."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {f.name: [] for f in PLAN_SCHEMA}
        self.candidate = 0
        self.seq = 0
        self.segments: list[pa.Table | SpilledTable] = []  # rows before ``cols``, in Arrow

    def new_candidate(self) -> int:
        self.candidate += 1
        return self.candidate

    def add(
        self, cand: int, phase: int, kind: str, reason: str, obj: dict[str, Any], **kw: Any
    ) -> None:
        t = obj.get("last_modified")
        self.append(
            cand,
            phase,
            kind,
            reason,
            obj["key"],
            obj.get("size"),
            None if t is None else _micros(t) // 1000,
            obj.get("etag"),
            **kw,
        )

    def append(
        self,
        cand: int,
        phase: int,
        kind: str,
        reason: str,
        key: str | None,
        size: int | None,
        millis: int | None,
        etag: str | None,
        *,
        rule: str | None = None,
        decided_by: str | None = None,
        rank: int | None = None,
        repository: str | None = None,
        digest: str | None = None,
        tag: str | None = None,
    ) -> None:
        c = self.cols
        c["seq"].append(self.seq)
        self.seq += 1
        c["phase"].append(phase)
        c["candidate"].append(cand)
        c["kind"].append(kind)
        c["reason"].append(reason)
        c["rule"].append(rule)
        c["decided_by"].append(decided_by)
        c["rank"].append(rank)
        c["repository"].append(repository)
        c["digest"].append(digest)
        c["tag"].append(tag)
        c["key"].append(key)
        c["size"].append(size)
        c["last_modified"].append(millis)
        c["etag"].append(etag)
        if len(c["seq"]) >= _PYTHON_ROWS:
            self._flush()

    def add_row(
        self, cand: int, phase: int, kind: str, reason: str, src: _Columns, i: int, **kw: Any
    ) -> None:
        """Row ``i`` of a snapshot table (its key, size, last_modified and etag)."""
        self.append(
            cand, phase, kind, reason, src.keys[i], src.sizes[i], src.millis[i], src.etags[i], **kw
        )

    def extend(self, columns: dict[str, pa.Array], n: int, *, spill: bool = False) -> None:
        """Append ``n`` rows given as Arrow columns (a column left out is all nulls), each its
        own candidate: a whole phase (or part of one) at once, with no Python value per row.
        With ``spill``, the rows are written to scratch files rather than held (see
        spill.py): a plan can have a row for most of a store's blobs."""
        self._flush()
        columns = {
            "seq": pa.array(np.arange(self.seq, self.seq + n, dtype=np.int32)),
            "candidate": pa.array(
                np.arange(self.candidate + 1, self.candidate + 1 + n, dtype=np.int32)
            ),
            **columns,
        }
        self.seq += n
        self.candidate += n
        rows = pa.Table.from_arrays(
            [_chunked(columns.get(f.name), f.type, n) for f in PLAN_SCHEMA], schema=PLAN_SCHEMA
        )
        if not spill:
            self.segments.append(rows)
            return
        if not self.segments or not isinstance(self.segments[-1], SpilledTable):
            self.segments.append(SpilledTable(PLAN_SCHEMA, "plan"))
        self.segments[-1].append(rows)

    def _flush(self) -> None:
        arrays = [
            pa.array(self.cols[f.name], type=pa.int64()).cast(f.type)
            if f.name == "last_modified"
            else pa.array(self.cols[f.name], type=f.type)
            for f in PLAN_SCHEMA
        ]
        self.segments.append(pa.Table.from_arrays(arrays, schema=PLAN_SCHEMA))
        self.cols = {f.name: [] for f in PLAN_SCHEMA}

    def table(self) -> pa.Table:
        self._flush()
        # Not combined: the blob phase alone can be millions of rows, and a copy doubles them.
        # Spilled rows are mapped, not read (a plan only looks at some of their columns).
        return pa.concat_tables(
            [s.table() if isinstance(s, SpilledTable) else s for s in self.segments]
        )


class _Columns:
    """Some columns of a snapshot table as Python lists (``pylist``), plus the ``key``,
    ``size``, ``etag`` and ``last_modified`` (as epoch milliseconds) of every row, for
    ``_Rows.add_row``."""

    def __init__(
        self,
        table: pa.Table,
        *names: str,
        derive: Callable[[_Columns, int], str] | None = None,
        shared: dict[tuple[int, ...], list[Any]] | None = None,
    ) -> None:
        # ``derive``: the key of a row the snapshot holds none for (``DERIVED_KEYS``), built
        # from its other columns, where the plan needs it (to order its rows by key).
        self.table = table
        self.derive = derive
        self.num_rows = table.num_rows
        self.names = names
        self.cols: dict[str, list[Any]] = {}
        # Strings converted for columns of one dictionary, shared by the tables given the same
        # dict (a snapshot's digest columns share one dictionary: see pylist, share_digests).
        self._shared = {} if shared is None else shared
        self._millis: list[int | None] | None = None
        self._keys: list[str | None] | None = None
        self._sizes: list[int | None] | None = None
        self._etags: list[str | None] | None = None

    @classmethod
    def of(
        cls,
        snap: Snapshot,
        table: str,
        *names: str,
        shared: dict[tuple[int, ...], list[Any]] | None = None,
    ) -> _Columns:
        """Table ``table`` (tags, tag_history or revisions) of ``snap``, its keys built as the
        snapshot builds them (``DERIVED_KEYS``) where it holds none."""
        shape, root = DERIVED_KEYS[table], snap.layout_root
        return cls(
            snap[table],
            *names,
            derive=lambda c, i: shape.key(root, *(c[name][i] for name in shape.columns)),
            shared=shared,
        )

    def __getitem__(self, name: str) -> list[Any]:
        # Converted when first asked for: a plan that removes no tag and no untagged manifest
        # never looks at the tag history (~25 MiB of lists and strings for 78k entries).
        if name not in self.cols:
            if name not in self.names:
                raise KeyError(name)
            self.cols[name] = pylist(self.table[name], self._shared)
        return self.cols[name]

    @property
    def millis(self) -> list[int | None]:
        # Only when a row is looked at for the grace period: an int per row of every tag,
        # history entry and revision was ~40 MiB at 400,000 tags.
        if self._millis is None:
            self._millis = _millis(self.table, "last_modified")
        return self._millis

    @property
    def keys(self) -> list[str | None]:
        """Every row's key as the snapshot holds it: None where it follows from the row's
        other columns. The plan keeps those null too (``_with_keys`` builds them): the keys of
        every tag, history entry and revision as strings were ~40 MiB at 94k manifests."""
        if self._keys is None:
            self._keys = pylist(self.table["key"])
        return self._keys

    def key(self, i: int) -> str:
        """Row ``i``'s key, built if the snapshot holds none (to order rows by key)."""
        key = self.keys[i]
        if key is None and self.derive is not None:
            return self.derive(self, i)
        return key  # type: ignore[return-value]

    @property
    def sizes(self) -> list[int | None]:
        if self._sizes is None:
            self._sizes = pylist(self.table["size"])
        return self._sizes

    @property
    def etags(self) -> list[str | None]:
        if self._etags is None:
            has = "etag" in self.table.column_names
            self._etags = pylist(self.table["etag"]) if has else [None] * self.num_rows
        return self._etags


def new_run_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


@collector_paused
def make_plan(
    snap: Snapshot,
    marked: MarkResult,
    settings: GcSettings,
    now: datetime,
    *,
    run_id: str | None = None,
    extra_removed_tags: dict[str, dict[str, TagRemoval]] | None = None,
    graph: Graph | None = None,
) -> Plan:
    """Build the plan. ``extra_removed_tags`` (repo -> tag -> TagRemoval) lets retention add
    the tags it expires; the mark must have been computed with them as ``expired_tags``. A
    tag of a repository kept whole (fail closed) is never removed. ``graph`` is the snapshot's
    reference graph when the caller has it (by default the one ``marked`` carries, else built
    here)."""
    # Here, not at the top: the inventory reader pulls in pandas when imported.
    from regsweep.scan.inventory import inventory_time

    listed = inventory_time(snap.meta)
    if listed is not None and now > listed:
        # Listed from an inventory, a stale snapshot: nothing newer than its creation less the
        # grace is a candidate (storage-layout.md §6.3); apply re-checks the rest.
        now = listed
    if graph is None:
        graph = marked.graph if marked.graph is not None else Graph.from_snapshot(snap)
    cutoff = now - settings.grace
    cutoff_us = _micros(cutoff)
    upload_cutoff = now - settings.upload_grace
    out = _Rows()
    protected: dict[str, int] = defaultdict(int)
    # Per place: a blob the mark did not keep that stays (phase 3), because it is used at or
    # after the cutoff (its grace period) or, from phase 2 on, something that stays needs it.
    # Only where some stored blob is not kept (else phase 3 has nothing to decide), and found
    # first, while the plan holds little: after the phases of tags and links, with their
    # Python values, this pass over every link was the plan's peak (~15 MiB higher at 815k
    # links).
    spared: np.ndarray | None = None
    if not marked.uncertain and graph.stored_blobs > _live_stored(graph, marked.live_at):
        spared = _young_use(snap, graph, marked.live_at, cutoff_us)

    # Tags, tag history and revisions are read column by column, indexed by row number; only
    # the rows that go into the plan become dicts (converting whole tables was a hot spot),
    # and only the rows of candidates are indexed (a store can hold millions of tags).
    strings: dict[tuple[int, ...], list[Any]] = {}  # one string per digest for all three
    tg = _Columns.of(snap, "tags", "repository", "tag", "digest", shared=strings)
    hs = _Columns.of(snap, "tag_history", "repository", "tag", "digest", shared=strings)
    rv = _Columns.of(
        snap, "revisions", "repository", "digest", "target", "blob_present", shared=strings
    )

    def young(ms: list[int | None], idx: list[int]) -> bool:
        return any((t := ms[i]) is not None and t * 1000 >= cutoff_us for i in idx)

    # -- phase 1: tags --------------------------------------------------------------------
    removed_tags: dict[tuple[str, str], TagRemoval] = {}
    for repo, tmap in marked.removed_tags.items():
        for tag, reason in tmap.items():
            removed_tags[(repo, tag)] = TagRemoval(reason)
    for repo, tmap2 in (extra_removed_tags or {}).items():
        if repo in marked.unsafe_repos:
            continue
        for tag, removal in tmap2.items():
            removed_tags.setdefault((repo, tag), removal)
    tags: dict[tuple[str, str], list[int]] = defaultdict(list)  # of the removed tags
    if removed_tags:
        for i, key in enumerate(zip(tg["repository"], tg["tag"], strict=True)):
            if key in removed_tags:
                tags[key].append(i)
    history: dict[tuple[str, str], list[int]] = defaultdict(list)  # of the removed tags
    if removed_tags:
        for i, key in enumerate(zip(hs["repository"], hs["tag"], strict=True)):
            if key in removed_tags:
                history[key].append(i)
    for (repo, tag), removal in sorted(removed_tags.items()):
        reason, rule = removal.reason, removal.rule
        extra = {"rule": rule, "decided_by": removal.decided_by, "rank": removal.rank}
        tag_idx, hist_idx = tags.get((repo, tag), []), history.get((repo, tag), [])
        if young(tg.millis, tag_idx) or young(hs.millis, hist_idx):
            protected["tag"] += 1
            continue
        cand = out.new_candidate()
        # History first, current/link last: a run that stops in between leaves a tag that
        # still resolves and is still planned for removal next time, never a tag directory
        # without current/link (listed by the registry, unresolvable, and invisible to gc).
        for i in sorted(hist_idx, key=hs.key):
            out.add_row(
                cand,
                PHASE_MANIFESTS,
                "tag_index",
                reason,
                hs,
                i,
                repository=repo,
                tag=tag,
                digest=hs["digest"][i],
                **extra,
            )
        for i in tag_idx:
            out.add_row(
                cand,
                PHASE_MANIFESTS,
                "tag",
                reason,
                tg,
                i,
                repository=repo,
                tag=tag,
                digest=tg["digest"][i],
                **extra,
            )
    del tags, history

    # -- phase 1: manifests (revision links) ------------------------------------------------
    # On places (see Graph): whether each revision is kept is one lookup for them all, and
    # only the digests of revisions that may go become strings.
    rev_repo, rev_repos = rv["repository"], rv.table["repository"]
    rev_at = graph.column_places(rv.table["digest"])
    rev_target_at = graph.column_places(rv.table["target"])
    kept_rows = marked.manifests_at.rows_in(rev_repos, rev_at)
    kept_rows |= marked.manifests_at.rows_in(rev_repos, rev_target_at)
    rev_present = one_array(pc.fill_null(rv.table["blob_present"], False)).to_numpy(
        zero_copy_only=False
    )
    maybe_rows = np.flatnonzero(~(kept_rows & rev_present))
    untagged: list[tuple[str, str, str, int]] = []
    for r, d in zip(
        maybe_rows.tolist(),
        pylist(rv.table["digest"].take(pa.array(maybe_rows, pa.int64()))),
        strict=True,
    ):
        repo = rev_repo[r]
        if repo in marked.unsafe_repos:
            continue
        reason = "untagged" if rev_present[r] and not kept_rows[r] else "dangling-revision"
        untagged.append((repo, d, reason, r))
    del kept_rows, maybe_rows
    if untagged:
        # A tag that still exists and points here keeps it (it is not untagged after all).
        # Looked up for these revisions only: a set of every tag's (repository, digest) was
        # ~90 bytes a tag.
        maybe = {(repo, d) for repo, d, _, _ in untagged}
        still_tagged = {
            (repo, d)
            for repo, tag, d in zip(tg["repository"], tg["tag"], tg["digest"], strict=True)
            if (repo, d) in maybe and (repo, tag) not in removed_tags
        }
        untagged = [u for u in untagged if (u[0], u[1]) not in still_tagged]
        del maybe, still_tagged
    # The tag-index entries that name them, but for those of tags being removed (already in
    # the plan); in key order, as every phase.
    wanted = {(repo, d) for repo, d, _, _ in untagged}
    history_by_digest: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (repo, tag, d) in (
        enumerate(zip(hs["repository"], hs["tag"], hs["digest"], strict=True)) if wanted else ()
    ):
        if (repo, d) in wanted and (repo, tag) not in removed_tags:
            history_by_digest[(repo, d)].append(i)
    del wanted
    rev_cands: list[tuple[str, str, str, int, list[int]]] = []
    in_key_order = sorted(((rv.key(c[3]), c) for c in untagged), key=lambda kc: kc[0])
    for _, (repo, d, reason, r) in in_key_order:
        entries = history_by_digest.get((repo, d), [])
        if young(rv.millis, [r]) or young(hs.millis, entries):
            protected["revision"] += 1
            continue
        rev_cands.append((repo, d, reason, r, entries))
    del untagged, history_by_digest, in_key_order

    # Every manifest that stays (kept by the mark, or only by the grace period) keeps what it
    # needs in its repository: its children's revision links, its _layers links, its blobs.
    # Otherwise a young untagged manifest, e.g. the platform manifests and index of a push in
    # progress, would survive without the links and children it needs.
    # Only where it can differ from the mark's: when every root that stays is in the mark's
    # closure of the repository, so is its closure, and the checks below that use it (links
    # and blobs the mark did not keep) learn nothing from it. A repository with revisions
    # that go still needs its own, to protect those that what stays needs. (The roots are
    # gathered for those repositories only: a set per repository of every revision's digests
    # was ~60 bytes a revision.)
    leaving = {r for _, _, _, r, _ in rev_cands}
    leaving_repos = {repo for repo, *_ in rev_cands}
    # Repositories with a root that stays outside the mark's closure.
    in_reach = marked.reach_at.rows_in(rev_repos, rev_at)
    in_reach &= marked.reach_at.rows_in(rev_repos, rev_target_at) | (rev_target_at < 0)
    outside = {rev_repo[r] for r in np.flatnonzero(~in_reach).tolist()} - leaving_repos
    del in_reach
    staying: dict[str, list[int]] = defaultdict(list)
    if leaving_repos or outside:
        for r, repo in enumerate(rev_repo):
            if (repo in leaving_repos or repo in outside) and r not in leaving:
                staying[repo] += [x for x in (rev_at[r], rev_target_at[r]) if x >= 0]
    needed_after = RepoPlaces(
        {
            repo: graph.reach(np.array(roots, np.int64), graph.alias_places(repo))
            for repo, roots in staying.items()
        }
    )
    if spared is not None:
        spared[np.unique(needed_after.every_place())] = True

    for repo, d, reason, r, entries in rev_cands:
        if has_place(needed_after.get(repo), int(rev_at[r])):
            protected["revision"] += 1
            continue
        cand = out.new_candidate()
        for e in sorted(entries, key=hs.key):
            out.add_row(
                cand,
                PHASE_MANIFESTS,
                "tag_index",
                reason,
                hs,
                e,
                repository=repo,
                tag=hs["tag"][e],
                digest=d,
            )
        out.add_row(cand, PHASE_MANIFESTS, "revision", reason, rv, r, repository=repo, digest=d)
    # Phase 1's Python values of every tag, history entry and revision can go before the
    # phases that hold millions of rows.
    del tg, hs, rv, rev_repo, rev_repos, rev_at, rev_target_at, rev_present, rev_cands
    del leaving, staying

    # -- phase 2: _layers links -------------------------------------------------------------
    # Column by column, a slice of rows at a time: no row becomes a dict, and a store's
    # millions of links never all become Python values at once.
    # Whether a link is needed is found for a slice of links at once, on places.
    def plan_links(batch: pa.RecordBatch) -> None:
        # A function, so that a slice's Python values go with it: the last slice's (~8 MiB
        # of lists and strings at 16k links) stayed through phase 3, the plan's peak.
        ll = _Columns(pa.Table.from_batches([batch]), "repository", "digest", "target")
        needs = marked.links_needed(ll.table).tolist()
        repos = ll.table["repository"]
        after = needed_after.rows_in(repos, graph.column_places(ll.table["digest"]))
        after |= needed_after.rows_in(repos, graph.column_places(ll.table["target"]))
        for i, (repo, digest, target, present, t_ms, needed, needed_later) in enumerate(
            zip(
                ll["repository"],
                ll["digest"],
                ll["target"],
                pylist(ll.table["blob_present"]),
                ll.millis,
                needs,
                after.tolist(),
                strict=True,
            )
        ):
            if repo in marked.unsafe_repos:
                continue
            if not present and target is not None:
                reason = "dangling-link"
            elif needed:
                continue
            else:
                reason = "unneeded-link"
            if (t_ms is not None and t_ms * 1000 >= cutoff_us) or (
                reason == "unneeded-link" and needed_later
            ):
                protected["layer_link"] += 1
                continue
            out.add_row(
                out.new_candidate(),
                PHASE_LINKS,
                "layer_link",
                reason,
                ll,
                i,
                repository=repo,
                digest=digest,
            )

    for batch in _in_link_order(snap["layer_links"]):
        plan_links(batch)
        del batch

    # -- phase 3: blobs ---------------------------------------------------------------------
    # Column-wise: a store can hold millions of blobs that nothing references, so no Python
    # value per blob. A part of the blobs at a time (a scan leaves them on disk, see spill.py),
    # the rows of those that go written out too; in memory, one part, and no copy of their
    # digests beyond the plan's own rows. The blobs the mark did not keep, in digest order so
    # that the plan does not depend on the snapshot's row order (same input, same bytes).
    blob_candidates, totals = [0, 0], [0, 0]  # count, bytes
    spill = "blobs" in snap.spilled
    for part in snap.parts("blobs"):
        totals[0] += part.num_rows
        totals[1] += int(pc.sum(part["size"]).as_py() or 0)
        if marked.uncertain:
            continue
        # Each blob's place in the graph (-1: nothing names it), found once per digest of the
        # part's dictionary and among the graph's digests in the part's range only; what the
        # mark and the grace period decided is then a flag per place. Value sets of the live
        # blobs' digests (text, and a hash table per part) were the plan's peak.
        at = graph.column_places(part["digest"])
        unkept = ~_at_places(marked.live_at, at)
        if not unkept.any():
            continue
        if spared is None:  # (made first wherever a stored blob is not kept)
            raise AssertionError("a stored blob not kept, and no pass found its last use")
        # Kept by the grace period: its own time or a later use is at or after the cutoff.
        # Compared per blob as stored (milliseconds) and as booleans: an integer per blob in
        # microseconds was 48 MB a column at 6M blobs.
        own_ms = part["last_modified"].cast(pa.int64())
        young = pc.fill_null(pc.greater_equal(own_ms, -(-cutoff_us // 1000)), False)
        keep = one_array(young).to_numpy(zero_copy_only=False) | _at_places(spared, at)
        del own_ms, young, at
        if kept := int((unkept & keep).sum()):
            protected["blob"] += kept
        go = pa.chunked_array([unkept & ~keep])
        del unkept, keep
        blobs = _rows_of(part, go, ["digest", "key", "etag", "size", "last_modified"])
        del go, part
        n = len(blobs["key"])
        if not n:
            continue
        if spill:
            # The part's columns are memory-mapped: the rows get text of their own.
            blobs = {name: _detached(col) for name, col in blobs.items()}
        blob_candidates[0] += n
        blob_candidates[1] += int(pc.sum(blobs["size"]).as_py() or 0)
        columns = {
            "phase": constant(PHASE_BLOBS, n, pa.int8()),
            "kind": constant("blob", n, _DICT),
            "reason": constant("unreferenced", n, _DICT),
            **blobs,
        }
        out.extend(columns, n, spill=spill)
        del blobs, columns

    # -- phase 4: uploads -------------------------------------------------------------------
    for up in sorted(rows(snap["uploads"]), key=lambda u: (u["repository"], u["upload_id"])):
        if up["started_at"] >= upload_cutoff or up["last_activity"] >= cutoff:
            protected["upload"] += 1
            continue
        cand = out.new_candidate()
        for k, size, t in zip(up["keys"], up["key_sizes"], up["key_times"], strict=True):
            out.add(
                cand,
                PHASE_UPLOADS,
                "upload",
                "stale-upload",
                {"key": k, "size": size, "last_modified": t},
                repository=up["repository"],
            )
        if up["multipart_key"]:
            out.add(
                cand,
                PHASE_UPLOADS,
                "multipart_upload",
                "stale-multipart-upload",
                {
                    "key": up["multipart_key"],
                    "etag": up["multipart_upload_id"],
                    "last_modified": up["started_at"],
                },
                repository=up["repository"],
            )

    # -- phase 5: temp files ----------------------------------------------------------------
    # Picked out in Arrow: a stale inventory can list hundreds of thousands of links that
    # have vanished since, each an anomaly, and as Python rows they were ~630 MiB at 800k.
    anomalies = snap["anomalies"]
    tmp_files = anomalies.filter(pc.equal(anomalies["kind"], "tmp-file"))
    for a in sorted(rows(tmp_files), key=lambda a: a["key"] or ""):
        if a["last_modified"] is None or a["last_modified"] >= cutoff:
            protected["tmp"] += 1
            continue
        out.add(
            out.new_candidate(), PHASE_TMP, "tmp", "stale-tmp-file", a, repository=a["repository"]
        )

    table = out.table()
    plan = Plan(
        run_id=run_id or new_run_id(now),
        store=str(snap.meta.get("store")),
        layout_root=str(snap.meta.get("layout_root")),
        now=now,
        settings=settings,
        rows=table,
        protected=dict(protected),
        unsafe_repos=dict(marked.unsafe_repos),
        built_from=(table, out.segments),
    )
    plan.refusals = brakes(
        snap,
        marked,
        plan,
        [],
        (blob_candidates[0], blob_candidates[1]),
        blob_totals=(totals[0], totals[1]),
    )
    return plan


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


def _millis(table: pa.Table, name: str) -> list[int | None]:
    """A timestamp[ms] column as integers: converting to datetime objects costs ten times more."""
    return table.column(name).cast(pa.int64()).to_pylist()  # type: ignore[no-any-return]


def _in_link_order(links: pa.Table) -> Iterable[pa.RecordBatch]:
    """``_layers`` links, ``_SLICE_ROWS`` at a time, by repository and digest (as a scan writes
    them), so that the plan does not depend on the snapshot's row order. Arrow cannot sort a
    table by dictionary columns: rows are ordered by the ranks of their values instead, and
    only when they are not in order already."""
    repo, digest = (value_ranks(links[name]) for name in ("repository", "digest"))
    later = (repo[1:] > repo[:-1]) | ((repo[1:] == repo[:-1]) & (digest[1:] > digest[:-1]))
    in_order = bool(later.all())
    del later
    if in_order:
        # (The ranks let go first: this generator's frame holds them while the plan runs.)
        del repo, digest
        yield from links.to_batches(max_chunksize=_SLICE_ROWS)
        return
    order = np.lexsort((digest, repo))  # stable: equal rows keep their order
    del repo, digest
    for start in range(0, len(order), _SLICE_ROWS):
        yield from links.take(order[start : start + _SLICE_ROWS]).to_batches()


def _rows_of(table: pa.Table, picked: pa.ChunkedArray, names: list[str]) -> dict[str, Any]:
    """Columns ``names`` of the rows of ``table`` (blobs) where ``picked`` is true, in digest
    order. Text columns come as dictionaries over ``table``'s own values (see PLAN_SCHEMA), so
    only their indices are new; other columns are copied."""
    if not ascending(table["digest"]):
        # A snapshot that was not sorted by the scan (built elsewhere): copy the rows.
        table = table.filter(picked)
        table = table.take(pc.sort_indices(decoded(table["digest"])))
        picked = pa.chunked_array([np.ones(table.num_rows, dtype=bool)])
    rows = np.flatnonzero(picked.to_numpy(zero_copy_only=False))
    # A column with no value (a filesystem's ETags, the keys a scan leaves null) is one
    # shared chunk of nulls, not a null per row.
    empty = [name for name in names if table[name].null_count == table.num_rows]
    names = [name for name in names if name not in empty]
    parts: dict[str, list[pa.Array]] = {name: [] for name in names}
    start = 0
    for batch in table.select(names).to_batches():
        lo, hi = np.searchsorted(rows, [start, start + batch.num_rows])
        at = pa.array(rows[lo:hi] - start, pa.int32())
        start += batch.num_rows
        for name, col in zip(names, batch.columns, strict=True):
            parts[name].append(_take_shared(col, at))
    return {
        **{name: _chunked(None, PLAN_SCHEMA.field(name).type, len(rows)) for name in empty},
        **{
            name: pa.chunked_array(chunks, type=PLAN_SCHEMA.field(name).type)
            for name, chunks in parts.items()
        },
    }


def _take_shared(col: pa.Array, at: pa.Array) -> pa.Array:
    """``col.take(at)``, as a dictionary over ``col``'s values when they are text."""
    if pa.types.is_dictionary(col.type):
        return pa.DictionaryArray.from_arrays(col.indices.take(at), col.dictionary)
    if not pa.types.is_string(col.type):
        return col.take(at)
    if col.null_count:
        # Arrow cannot combine dictionaries that hold nulls (a take across chunks does), so
        # a column with some nulls is copied.
        return col.take(at).dictionary_encode()
    return pa.DictionaryArray.from_arrays(at, col)


# The snapshot table whose rows each kind of plan row stands for: a row's key, where the plan
# holds none, is built as the snapshot builds that table's (their columns have the same names).
_KEYS_OF_KIND = {
    "blob": DERIVED_KEYS["blobs"],
    "layer_link": DERIVED_KEYS["layer_links"],
    "revision": DERIVED_KEYS["revisions"],
    "tag": DERIVED_KEYS["tags"],
    "tag_index": DERIVED_KEYS["tag_history"],
}


def _with_keys(rows: pa.Table, root: str) -> pa.Table:
    """Plan rows (plain strings) with the keys the plan left null built: a blob's from its
    digest, a link's (``_layers``, revision, tag, tag index) from its repository, tag and
    digest, as the scan builds them (snapshot.DERIVED_KEYS)."""
    key = one_array(rows["key"])
    if not key.null_count:
        return rows
    kind = one_array(rows["kind"])
    missing = pc.is_null(key)
    for name, shape in _KEYS_OF_KIND.items():
        these = pc.and_(missing, pc.fill_null(pc.equal(kind, name), False))
        if pc.any(these).as_py():
            key = pc.if_else(these, shape.keys(rows, root), key)
    return rows.set_column(rows.schema.get_field_index("key"), "key", key)


def _candidate_starts(rows: pa.Table) -> pa.ChunkedArray | None:
    """Per row: the first of its candidate's rows of its kind, when the rows are in ``seq``
    order (as make_plan writes them: a candidate's rows of one kind follow each other), so
    that counting candidates per kind is a sum; None otherwise. ``count_distinct`` hashes every
    candidate id, about 90 MiB for a plan of 5.9M blobs. ``kind`` must have one dictionary."""
    if rows.num_rows == 0 or not ascending(rows["seq"]):
        return None
    kind = pa.chunked_array([c.indices for c in rows["kind"].chunks], pa.int32())
    cand = rows["candidate"]
    # Booleans (summed as counts): a bit a row, not the 8 bytes of an integer.
    changed = pc.or_(pc.not_equal(cand[1:], cand[:-1]), pc.not_equal(kind[1:], kind[:-1]))
    return pa.chunked_array([pa.array([True]), *changed.chunks], pa.bool_())


def _chunked(values: pa.Array | pa.ChunkedArray | None, type_: pa.DataType, n: int) -> Any:
    """``values`` (``n`` nulls when None) as a ChunkedArray of ``type_``."""
    if values is None:
        return constant(None, n, type_)
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values])
    return values.cast(type_)


def _at_places(flags: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Per place of ``at``, its flag (False for -1, no place)."""
    out = np.zeros(len(at), bool)
    named = at >= 0
    out[named] = flags[at[named]]
    return out


def _live_stored(graph: Graph, live_at: np.ndarray) -> int:
    """How many of the stored blobs the graph names the mark kept."""
    return int(np.count_nonzero((graph.sizes >= 0) & live_at))


def _young_use(snap: Snapshot, graph: Graph, live_at: np.ndarray, cutoff_us: int) -> np.ndarray:
    """Per place: a blob the mark did not keep whose last use (a link or manifest that uses
    it, not its own time) is at or after ``cutoff_us``. Only a blob something names can have
    such a use: the graph holds exactly those."""
    young: np.ndarray = _last_use_ms(snap, graph) >= -(-cutoff_us // 1000)
    young &= (graph.sizes >= 0) & ~live_at
    return young


def _last_use_ms(snap: Snapshot, graph: Graph) -> np.ndarray:
    """Per place of the graph, the newest time (epoch milliseconds, ``NO_TIME`` if none) of a
    use of the blob: a ``_layers`` link whose content is it (or, null or empty, whose path
    names it), a revision or tag link of it or of a manifest that references it directly
    (storage-layout.md §5 ``blob_last_activity``, less the blob's own time). On places, as
    numpy: a dict of digest strings here was ~120 MiB of a policy run's plan at 1M objects,
    where most blobs are not kept."""
    last = np.full(len(graph.named), NO_TIME, np.int64)
    # A slice of links at a time: a place and a time per link, as int64 arrays, for the
    # millions of links of a large store were ~75 MiB at 10M objects.
    links = snap["layer_links"].select(["digest", "target", "last_modified"])
    for batch in links.to_batches(_SLICE_ROWS):
        digest, target, times = (pa.chunked_array([c]) for c in batch.columns)
        by_target = _non_empty(target)
        at = np.where(by_target, graph.column_places(target), graph.column_places(digest))
        _latest(last, at, times)
    manifest = np.full(len(graph.named), NO_TIME, np.int64)
    for name, col in (("revisions", "target"), ("tags", "digest"), ("tag_history", "digest")):
        # A slice at a time too: a place, a time and their known ones per row of 256k
        # revisions at once were ~7 MiB over the plan's level.
        for batch in snap[name].select([col, "last_modified"]).to_batches(_SLICE_ROWS):
            digest, times = (pa.chunked_array([c]) for c in batch.columns)
            _latest(manifest, graph.column_places(digest), times)
    np.maximum(last, manifest, out=last)
    # Over every strong edge (not a subject), parent to child: the parent's links use the child.
    # A slice of parents at a time: each edge's parent and its time at once, as int32 and int64
    # arrays, were ~15 MiB at 1.2M references, at the plan's peak.
    starts, children = graph.edges_at
    for first in range(0, len(starts) - 1, _SLICE_ROWS):
        ends = starts[first : first + _SLICE_ROWS + 1]
        parents = np.repeat(np.arange(first, first + len(ends) - 1), np.diff(ends))
        _latest(last, children[ends[0] : ends[-1]], manifest[parents])
    return last


def _non_empty(digests: pa.ChunkedArray) -> np.ndarray:
    """Per row of the digest column ``digests``: it is neither null nor empty. Digests held as
    their bytes (share_digests) are never empty; asking of each the snapshot's one dictionary
    of them as text, for each slice of links, was ~40 MiB at the plan's peak."""
    if pa.types.is_dictionary(digests.type) and digests.type.value_type == SHA256_BYTES:
        valid = pc.is_valid(digests)
    else:
        valid = pc.fill_null(by_value(digests, lambda v: pc.not_equal(v, "")), False)
    return np.asarray(one_array(valid).to_numpy(zero_copy_only=False), bool)


def _latest(out: np.ndarray, at: np.ndarray, times: pa.ChunkedArray | np.ndarray) -> None:
    """``out[at[i]] = max(out[at[i]], times[i])`` where both are known (place >= 0, time
    not null); ``times`` a timestamp column (as milliseconds) or milliseconds already."""
    if not isinstance(times, np.ndarray):
        times = epoch_ms(times)
    known = (at >= 0) & (times != NO_TIME)
    np.maximum.at(out, at[known], times[known])


def _detached(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column of a plan's blob rows with no buffer of the blobs' part: text (a dictionary
    over the part's values) copied and encoded over only its own values."""
    if not pa.types.is_dictionary(col.type) or col.null_count == len(col):
        return col
    return pa.chunked_array([as_dictionary(one_array(decoded(col)))], col.type)


def brakes(
    snap: Snapshot,
    marked: MarkResult,
    plan: Plan,
    blob_rows: list[dict[str, Any]],
    blob_candidates: tuple[int, int],
    *,
    blob_totals: tuple[int, int] | None = None,
) -> list[str]:
    """Invariant 5: reasons to refuse (exit 3) before anything is changed. ``blob_candidates``
    is the count and bytes of the blobs the plan deletes; ``blob_totals`` (count, bytes of
    every blob) stands in for ``blob_rows`` when the caller has no rows."""
    out: list[str] = []
    if blob_totals is None:
        blob_totals = (len(blob_rows), sum(b["size"] for b in blob_rows))
    total, total_bytes = blob_totals
    if total and not marked.live_at.any():
        out.append(
            f"the mark set is empty while {total} blobs exist: is STORE the right root? "
            "(no repository references anything)"
        )
    for m in marked.missing[:5]:
        out.append(
            f"corruption: {m.repository} manifest {m.manifest} needs {m.kind} {m.blob}, whose "
            "blob data is missing (run `regsweep audit`)"
        )
    if len(marked.missing) > 5:
        out.append(f"... and {len(marked.missing) - 5} more missing blobs of live manifests")
    for u in marked.uncertain[:5]:
        out.append(f"cannot tell what a link protects: {u}")
    n, nbytes = blob_candidates
    limit = plan.settings.max_delete_fraction
    if total and n / total > limit:
        out.append(
            f"{n} of {total} blobs ({n / total:.0%}) would go, over --max-delete-fraction {limit}"
        )
    elif total_bytes and nbytes / total_bytes > limit:
        out.append(
            f"{nbytes} of {total_bytes} blob bytes ({nbytes / total_bytes:.0%}) would go, over "
            f"--max-delete-fraction {limit}"
        )
    return out
