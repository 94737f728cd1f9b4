"""Reports: where the storage goes and how it grows, as Parquet datasets and Prometheus metrics.

- ``usage``: per-repository total, exclusive and shared bytes of a Snapshot;
- ``tables``: the report tables of one snapshot (``build_report``), schemas in ``SCHEMAS``;
- ``dataset``: write them partitioned by snapshot time, and read them back (``load``), which is
  all the notebooks use;
- ``forecast``: a linear capacity forecast; ``metrics``: Prometheus metrics of a run.

docs/reports.md documents every table and column.
"""

from regsweep.reports.dataset import load, load_plan, read_table, snapshots, write_report
from regsweep.reports.forecast import Forecast, linear_forecast
from regsweep.reports.tables import SCHEMAS, TABLES, Report, build_report

__all__ = [
    "SCHEMAS",
    "TABLES",
    "Forecast",
    "Report",
    "build_report",
    "linear_forecast",
    "load",
    "load_plan",
    "read_table",
    "snapshots",
    "write_report",
]
