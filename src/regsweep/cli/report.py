"""``regsweep report STORE -o DIR``: usage datasets for capacity planning, and a summary."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from regsweep.cli.common import (
    duration_callback,
    echo_json,
    human_bytes,
    inventory_option,
    json_option,
    open_from_options,
    store_options,
    workers_option,
)
from regsweep.cli.metrics import metrics_options, note_plan, note_usage
from regsweep.cli.progress import TqdmProgress
from regsweep.cli.render import table, usage_summary
from regsweep.clock import utcnow
from regsweep.durations import format_duration

if TYPE_CHECKING:
    from regsweep.reports.tables import Report


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError as e:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}") from e
    if t.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no timezone (e.g. 2026-11-27T02:00:00Z)")
    return t


def render_report(report: Report, output: str, top: int) -> str:
    plan = report.plan
    s = plan.settings
    lines = [usage_summary(report.usage, top=top), ""]
    by_reason = report.reclaimable_by_reason()
    policy = report.tables["summary"]["gc_policy"][0].as_py()
    lines.append(
        f"reclaimable by gc (grace {format_duration(s.grace)}, upload grace "
        f"{format_duration(s.upload_grace)}, "
        f"{'delete untagged' if s.delete_untagged else 'keep untagged'}"
        f"{f', policy {policy}' if policy else ''}): "
        f"{human_bytes(plan.total_bytes())}"
    )
    if by_reason:
        lines.append(
            table(["reason", "bytes"], [[r, human_bytes(b)] for r, b in by_reason.items()])
        )
    for r in plan.refusals:
        lines.append(f"note: gc would refuse this plan: {r}")
    from regsweep.reports.dataset import snapshot_label  # pyarrow.dataset: only when reporting
    from regsweep.reports.tables import TABLES

    lines.append(
        f"\ndatasets written to {output}/ (snapshot={snapshot_label(report.snapshot_time)}, "
        f"{len(TABLES)} tables)"
    )
    return "\n".join(lines)


@click.command("report")
@store_options
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False),
    help="Dataset directory: DIR/<table>/snapshot=<time>/part-0.parquet; history accumulates.",
)
@click.option(
    "--delete-untagged",
    is_flag=True,
    help="Count untagged manifests as reclaimable, as `gc --delete-untagged` would.",
)
@click.option(
    "--grace",
    callback=duration_callback,
    default="24h",
    show_default=True,
    help="As for gc: what was touched more recently is not reclaimable.",
)
@click.option(
    "--upload-grace",
    callback=duration_callback,
    default="168h",
    show_default=True,
    help="As for gc: uploads started more recently are not reclaimable.",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False),
    help="As for gc: count the tags and untagged manifests a retention policy expires as "
    "reclaimable (implies --delete-untagged).",
)
@click.option(
    "--max-delete-fraction",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="As for gc: the summary notes whether gc's brakes would refuse the plan.",
)
@click.option(
    "--snapshot-time",
    callback=_time,
    metavar="ISO",
    help="Label the snapshot with this time (with a timezone, e.g. 2026-11-27T02:00:00Z) "
    "instead of the scan's start time.",
)
@click.option(
    "--top", type=click.IntRange(1), default=10, show_default=True, help="Repositories shown."
)
@inventory_option
@workers_option
@json_option
@metrics_options("report")
def report_command(
    store: str | None,
    registry_config: str | None,
    layout_root: str | None,
    output: str,
    delete_untagged: bool,
    grace: timedelta,
    upload_grace: timedelta,
    policy_file: str | None,
    max_delete_fraction: float,
    snapshot_time: datetime | None,
    top: int,
    inventory: str | None,
    workers: int,
    as_json: bool,
) -> None:
    """Scan STORE and write where its storage goes as Parquet datasets under DIR.

    Tables (docs/reports.md): summary, repositories (total, exclusive and shared bytes),
    tags, blobs, reclaimable (bytes the gc plan would free with the same --grace,
    --upload-grace, --delete-untagged and --policy) and gc_runs (from the deletion log). Each
    run adds a partition snapshot=<time>, so a daily run builds the history the notebooks plot.
    Only reads STORE. Prints total and unique bytes, the deduplication ratio, the top
    repositories by exclusive bytes and the reclaimable bytes.
    """
    # Here, not at the top: every command, and --help, imports this module.
    from regsweep.audit.log import read_log
    from regsweep.gc.plan import GcSettings, new_run_id
    from regsweep.gc.planning import plan_gc
    from regsweep.reports.tables import build_report
    from regsweep.scan.scanner import ScanOptions, scan
    from regsweep.storage.readonly import ReadOnlyStore

    policy = None
    if policy_file:
        from regsweep.retention import load_policy

        policy = load_policy(policy_file)
    st = ReadOnlyStore(open_from_options(store, registry_config))
    settings = GcSettings(
        delete_untagged=delete_untagged or policy is not None,
        grace=grace,
        upload_grace=upload_grace,
        max_delete_fraction=max_delete_fraction,
    )
    now = utcnow()
    with TqdmProgress(enabled=False if as_json else None) as progress:
        snap = scan(
            st,
            ScanOptions(workers=workers, layout_root=layout_root, inventory=inventory),
            progress=progress,
        )
    # The same plan `regsweep gc` makes with these settings (and policy).
    plan, _ = plan_gc(snap, st, policy, settings, now, new_run_id(now))
    report = build_report(
        snap,
        settings=settings,
        now=now,
        log=read_log(st),
        snapshot_time=snapshot_time,
        plan=plan,
        policy=policy_file,
    )
    from regsweep.reports.dataset import write_report  # pyarrow.dataset: only when reporting

    paths = write_report(report, output)
    note_usage(report.usage)
    note_plan(report.plan)
    if as_json:
        echo_json({**report.to_json(top), "output": output, "files": [str(p) for p in paths]})
    else:
        click.echo(render_report(report, output, top))
