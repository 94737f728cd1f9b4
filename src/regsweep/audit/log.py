"""The append-only deletion log (design.md invariant 8).

Each apply writes Parquet parts under ``regsweep/log/<run-id>/part-<n>.parquet`` in the store
itself, after every batch, so a crash loses at most the batch in flight and the history travels
with the data. Parts are never rewritten; reading the log concatenates them.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from regsweep.clock import utcnow
from regsweep.errors import ObjectNotFound
from regsweep.storage.base import ObjectStore

LOG_PREFIX = "regsweep/log/"

LOG_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("time", pa.timestamp("ms", tz="UTC")),
        ("mode", pa.string()),  # quarantine | delete | restore | purge
        (
            "action",
            pa.string(),
        ),  # deleted | quarantined | aborted | restored | skipped | failed | missing
        ("kind", pa.string()),
        ("reason", pa.string()),
        ("rule", pa.string()),
        ("repository", pa.string()),
        ("digest", pa.string()),
        ("key", pa.string()),
        ("quarantine_key", pa.string()),
        ("size", pa.int64()),
        ("etag", pa.string()),
        ("last_modified", pa.timestamp("ms", tz="UTC")),
        ("detail", pa.string()),
    ]
)


class DeletionLog:
    def __init__(self, store: ObjectStore, run_id: str, mode: str) -> None:
        self.store = store
        self.run_id = run_id
        self.mode = mode
        self.pending: list[dict[str, Any]] = []
        self.part = 0
        self.part_prefix = f"{LOG_PREFIX}{run_id}/"
        # Continue numbering after parts a previous attempt of this run wrote.
        existing = [o.key for o in store.iter_objects(self.part_prefix)]
        self.part = len(existing)

    def record(self, action: str, row: dict[str, Any], **extra: Any) -> None:
        fixed = {"run_id": self.run_id, "time": utcnow(), "mode": self.mode, "action": action}
        fields = {k: row.get(k) for k in LOG_SCHEMA.names if k in row and k not in fixed}
        self.pending.append({**fields, **fixed, **extra})

    def flush(self) -> None:
        if not self.pending:
            return
        cols = {name: [r.get(name) for r in self.pending] for name in LOG_SCHEMA.names}
        table = pa.table(cols, schema=LOG_SCHEMA)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        self.store.write(f"{self.part_prefix}part-{self.part:06d}.parquet", buf.getvalue())
        self.part += 1
        self.pending.clear()


def read_log(store: ObjectStore, run_id: str | None = None) -> pa.Table:
    """Every logged action (of one run, if given), oldest part first."""
    prefix = f"{LOG_PREFIX}{run_id}/" if run_id else LOG_PREFIX
    tables = []
    for obj in sorted(store.iter_objects(prefix), key=lambda o: o.key):
        if not obj.key.endswith(".parquet"):
            continue
        try:
            data = store.read(obj.key, max_bytes=1 << 30)
        except ObjectNotFound:
            continue
        tables.append(pq.read_table(io.BytesIO(data)).cast(LOG_SCHEMA))
    if not tables:
        return LOG_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def runs(log: pa.Table) -> list[dict[str, Any]]:
    """One summary per run: when, mode, counts per action, bytes removed."""
    out: dict[str, dict[str, Any]] = {}
    for r in log.to_pylist():
        e = out.setdefault(
            r["run_id"],
            {
                "run_id": r["run_id"],
                "first": r["time"],
                "last": r["time"],
                "modes": set(),
                "actions": {},
                "bytes": 0,
            },
        )
        e["first"] = min(e["first"], r["time"])
        e["last"] = max(e["last"], r["time"])
        e["modes"].add(r["mode"])
        e["actions"][r["action"]] = e["actions"].get(r["action"], 0) + 1
        if r["action"] in ("deleted", "quarantined") and r["size"]:
            e["bytes"] += r["size"]
    for e in out.values():
        e["modes"] = sorted(e["modes"])
    return sorted(out.values(), key=lambda e: e["first"] or datetime.min)
