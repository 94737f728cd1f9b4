"""Reports: where the storage goes and how it grows, as Parquet datasets and Prometheus metrics.

- ``usage``: per-repository total, exclusive and shared bytes of a Snapshot;
- ``tables``: the report tables of one snapshot (``build_report``), schemas in ``SCHEMAS``;
- ``dataset``: write them partitioned by snapshot time, and read them back (``load``), which is
  all the notebooks use;
- ``forecast``: a linear capacity forecast; ``metrics``: Prometheus metrics of a run.

docs/reports.md documents every table and column.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regsweep.reports.dataset import load, load_plan, read_table, snapshots, write_report
    from regsweep.reports.forecast import Forecast, linear_forecast
    from regsweep.reports.tables import SCHEMAS, TABLES, Report, build_report

# Imported on first use: ``dataset`` pulls in pyarrow.dataset (and with it pandas), about half
# a second that `regsweep gc` and `regsweep --help` should not pay for a submodule they never use.
_LAZY = {
    "load": "dataset",
    "load_plan": "dataset",
    "read_table": "dataset",
    "snapshots": "dataset",
    "write_report": "dataset",
    "Forecast": "forecast",
    "linear_forecast": "forecast",
    "SCHEMAS": "tables",
    "TABLES": "tables",
    "Report": "tables",
    "build_report": "tables",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
