"""Options and helpers shared by the commands."""

from __future__ import annotations

import importlib.abc
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import click

from regsweep.durations import parse_duration
from regsweep.errors import SafetyRefusal, UsageError
from regsweep.storage.base import ObjectStore

# Option defaults the commands are defined with, kept equal to the library's own constants
# (tests/cli checks): importing the scanner or the audit (pyarrow, pandas) just to define the
# commands would slow every start of regsweep, --help included.
DEFAULT_MANIFEST_CAP = 4 * 1024 * 1024  # regsweep.scan.scanner.DEFAULT_MANIFEST_CAP
FINDINGS_FILE = "findings.parquet"  # regsweep.audit.report.FINDINGS_FILE

F = TypeVar("F", bound=Callable[..., Any])


def store_options(fn: F) -> F:
    """STORE argument, or ``--registry-config`` instead of it."""
    fn = click.option(
        "--registry-config",
        type=click.Path(dir_okay=False),
        help="Read the storage section of the registry's config.yml instead of STORE.",
    )(fn)
    fn = click.option(
        "--layout-root",
        help="Where docker/registry/v2/ starts, when a store holds both naming styles "
        "(docker/registry/v2/ or /docker/registry/v2/).",
    )(fn)
    return click.argument("store", required=False, metavar="STORE")(fn)


def duration_callback(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    """click callback: ``24h``, ``7d``, ``1h30m``, ``0s`` -> timedelta."""
    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def workers_option(fn: F) -> F:
    return click.option(
        "--workers",
        type=click.IntRange(1, 256),
        default=16,
        show_default=True,
        help="Parallel listing and reading threads. On a filesystem, at most one find "
        "process per core lists and one thread reads, as threads only contend there.",
    )(fn)


def inventory_option(fn: F) -> F:
    """``--inventory URL``: list from a cloud inventory report instead of listing STORE."""
    return click.option(
        "--inventory",
        metavar="URL",
        help="List STORE from an S3 Inventory manifest.json or an Azure Blob Inventory "
        "<rule>-manifest.json (s3://BUCKET/KEY, azure://CONTAINER/PATH or a local path; a "
        "URL ending in / or a directory: the newest report under it) instead of listing it; "
        "content is still read from STORE, and gc re-checks every object against STORE "
        "before it acts.",
    )(fn)


def json_option(fn: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON object instead of text."
    )(fn)


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == "pandas":
            raise ModuleNotFoundError("hidden from pyarrow's first check", name=fullname)
        return None


def keep_pandas_unloaded() -> None:
    """Make pyarrow's pandas check without loading pandas, in a command's own process.

    pyarrow's first conversion of Python values checks whether pandas is there by importing it:
    a quarter of a second of CPU, in the middle of a scan's listing, which keeps both cores busy
    (bench/RESULTS.md). No command hands pandas objects to pyarrow, so the check is made here,
    once, with pandas hidden. ``to_pandas`` and ``from_pandas`` (the notebook helpers in
    ``regsweep.reports.dataset``) still import pandas when called: they retry. But ``pa.array``
    and ``pa.table`` would then take a pandas object for a plain sequence, which is why only the
    command line calls this, never the library."""
    if "pandas" in sys.modules:
        return
    hide = _NoPandas()
    sys.meta_path.insert(0, hide)
    try:
        import pyarrow as pa

        pa.array([0])
    finally:
        sys.meta_path.remove(hide)


def open_from_options(store: str | None, registry_config: str | None) -> ObjectStore:
    from regsweep.storage import open_store, open_store_from_registry_config

    keep_pandas_unloaded()
    if store and registry_config:
        raise UsageError("give STORE or --registry-config, not both")
    if registry_config:
        return open_store_from_registry_config(registry_config)
    if not store:
        raise UsageError(
            "missing STORE (a path, file://PATH, s3://BUCKET[/PREFIX] or "
            "azure://CONTAINER[/PREFIX]) or --registry-config FILE"
        )
    return open_store(store)


def confirm(yes: bool, what: str) -> None:
    """Ask before changing a store, unless ``--yes``; refuse without a terminal to ask on."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to {what} without confirmation: add --yes")
    if not click.confirm(f"{what}?", default=False, err=True):
        raise SafetyRefusal("not confirmed; nothing was changed")


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=None, sort_keys=True, default=str))


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"
