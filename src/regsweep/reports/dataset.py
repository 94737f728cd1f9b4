"""Report datasets on disk: one hive-style partition per snapshot, and the readers notebooks use.

Layout (``DIR`` is ``regsweep report -o DIR``)::

    DIR/<table>/snapshot=2026-11-27T02-00-00Z/part-0.parquet

pandas and pyarrow read ``DIR/<table>`` as one dataset with a ``snapshot`` column, so a daily
cron run accumulates history without any merging. The partition value is the snapshot time in
UTC, to the second, with ``-`` instead of ``:`` (safe in every file system and object store).
A partition is written to a temporary name first and renamed into place, so a reader never
sees a half-written part; writing the same snapshot again replaces it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from regsweep.errors import UsageError
from regsweep.reports.tables import SCHEMAS, TABLES, Report
from regsweep.scan.snapshot import compacted

if TYPE_CHECKING:
    import pandas as pd

PARTITION = "snapshot"
LABEL_FORMAT = "%Y-%m-%dT%H-%M-%SZ"
PART_NAME = "part-0.parquet"


def snapshot_label(when: datetime) -> str:
    """The partition value for ``when`` (timezone-aware): ``2026-11-27T02-00-00Z``."""
    if when.tzinfo is None:
        raise ValueError("snapshot times must be timezone-aware")
    return when.astimezone(UTC).strftime(LABEL_FORMAT)


def parse_snapshot_label(label: str) -> datetime:
    """Inverse of ``snapshot_label``."""
    return datetime.strptime(label, LABEL_FORMAT).replace(tzinfo=UTC)


def write_report(report: Report, directory: str | Path) -> list[Path]:
    """Write every table of ``report`` as ``DIR/<table>/snapshot=<label>/part-0.parquet``;
    returns the paths. ``summary`` is written last, so a snapshot with a summary is complete."""
    out = Path(directory)
    label = snapshot_label(report.snapshot_time)
    order = [t for t in TABLES if t != "summary"] + ["summary"]
    paths = []
    for name in order:
        part_dir = out / name / f"{PARTITION}={label}"
        part_dir.mkdir(parents=True, exist_ok=True)
        final = part_dir / PART_NAME
        # A leading "." hides the temporary file from dataset discovery while it is written.
        tmp = part_dir / f".{PART_NAME}.{os.getpid()}.tmp"
        # A part at a time, as Report.parts makes them: the blobs table of a large store is
        # never held whole (asking report.tables for it, even for its schema, would build it).
        with pq.ParquetWriter(tmp, SCHEMAS[name]) as writer:
            for part in report.parts(name):
                writer.write_table(compacted(part))
        os.replace(tmp, final)
        paths.append(final)
    return paths


def _table_dir(directory: str | Path, table: str) -> Path:
    if table not in SCHEMAS:
        raise UsageError(f"unknown report table {table!r} (one of: {', '.join(TABLES)})")
    return Path(directory) / table


def snapshots(directory: str | Path, table: str = "summary") -> list[datetime]:
    """The snapshot times with a partition of ``table`` under ``directory``, oldest first."""
    d = _table_dir(directory, table)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        name, sep, value = p.name.partition("=")
        if sep and name == PARTITION and (p / PART_NAME).is_file():
            try:
                out.append(parse_snapshot_label(value))
            except ValueError:
                continue
    return sorted(out)


def read_table(
    directory: str | Path, table: str, *, snapshot: str | datetime | None = None
) -> pa.Table:
    """``table`` across every snapshot (or one: a datetime, a label, or ``"latest"``) as an
    Arrow table in the documented schema plus a ``snapshot`` string column (the label).
    Columns a table gained after older partitions were written read as nulls there."""
    d = _table_dir(directory, table)
    schema = SCHEMAS[table].append(pa.field(PARTITION, pa.string()))
    if not d.is_dir():
        return schema.empty_table()
    dataset = ds.dataset(
        str(d),
        format="parquet",
        schema=schema,
        partitioning=ds.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive"),
    )
    flt = None
    if snapshot is not None:
        if snapshot == "latest":
            times = snapshots(directory, table)
            if not times:
                return schema.empty_table()
            label = snapshot_label(times[-1])
        elif isinstance(snapshot, datetime):
            label = snapshot_label(snapshot)
        else:
            label = snapshot
        flt = ds.field(PARTITION) == label
    return dataset.to_table(filter=flt)


def load(
    directory: str | Path, table: str, *, snapshot: str | datetime | None = None
) -> pd.DataFrame:
    """Read one report table (all snapshots, or one; see ``read_table``) as a DataFrame with a
    ``snapshot`` column of UTC timestamps, sorted by snapshot. The public reader the notebooks
    use; the columns are those of docs/reports.md."""
    import pandas as pd

    t = read_table(directory, table, snapshot=snapshot)
    df: pd.DataFrame = t.to_pandas()
    df[PARTITION] = pd.to_datetime(df[PARTITION].astype("string"), format=LABEL_FORMAT, utc=True)
    return df.sort_values(PARTITION, kind="stable").reset_index(drop=True)


def load_plan(path: str | Path) -> pd.DataFrame:
    """A plan saved by ``regsweep gc --plan-out`` as a DataFrame (one row per key to remove;
    columns as in ``gc.plan.PLAN_SCHEMA``). The plan's run id, store, time, settings and
    refusals are in ``df.attrs``. Read-only: nothing here can apply a plan."""
    from regsweep.gc.plan import Plan

    plan = Plan.read(path)
    df: pd.DataFrame = plan.decoded_rows().to_pandas()
    attrs: dict[str, Any] = {
        "run_id": plan.run_id,
        "store": plan.store,
        "now": plan.now,
        "settings": plan.settings.to_json(),
        "refusals": list(plan.refusals),
        "protected": dict(plan.protected),
        "unsafe_repositories": dict(plan.unsafe_repos),
    }
    df.attrs.update(attrs)
    return df
