"""``regsweep quarantine list|restore|purge``"""

from __future__ import annotations

import sys

import click

from regsweep.cli.common import (
    confirm,
    echo_json,
    human_bytes,
    json_option,
    open_from_options,
    store_options,
)
from regsweep.cli.render import table


@click.group("quarantine")
def quarantine_group() -> None:
    """Inspect, restore or purge what `gc --apply` moved to quarantine."""


@quarantine_group.command("list")
@store_options
@json_option
def list_command(
    store: str | None, registry_config: str | None, layout_root: str | None, as_json: bool
) -> None:
    """List quarantine runs of STORE with their object counts and bytes."""
    # Here, not at the top: every command, and --help, imports this module.
    from regsweep.gc.quarantine import list_runs

    runs = list_runs(open_from_options(store, registry_config))
    if as_json:
        echo_json([r.__dict__ for r in runs])
        return
    if not runs:
        click.echo("no quarantine runs")
        return
    click.echo(
        table(
            ["run", "objects", "bytes", "quarantined", "reasons"],
            [
                [
                    r.run_id,
                    r.objects,
                    human_bytes(r.bytes),
                    f"{r.first_quarantined:%Y-%m-%d %H:%M}" if r.first_quarantined else "-",
                    ", ".join(f"{k} {v}" for k, v in sorted(r.reasons.items())),
                ]
                for r in runs
            ],
        )
    )


@quarantine_group.command("restore")
@store_options
@click.argument("run_id")
@json_option
def restore_command(
    store: str | None,
    registry_config: str | None,
    layout_root: str | None,
    run_id: str,
    as_json: bool,
) -> None:
    """Move every object of quarantine RUN_ID back where it was."""
    # Here, not at the top: every command, and --help, imports this module.
    from regsweep.gc.quarantine import restore_run

    res = restore_run(open_from_options(store, registry_config), run_id)
    if as_json:
        echo_json(res.to_json())
    else:
        click.echo(
            f"restored {res.restored} objects of {run_id} ({res.already_present} were already back)"
        )
        for f in res.failures:
            click.echo(f"  FAILED: {f}")
    sys.exit(1 if res.failures else 0)


@quarantine_group.command("purge")
@store_options
@click.argument("run_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def purge_command(
    store: str | None,
    registry_config: str | None,
    layout_root: str | None,
    run_id: str,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete quarantine RUN_ID for good, after a fresh scan; restore anything referenced again."""
    # Here, not at the top: every command, and --help, imports this module.
    from regsweep.gc.quarantine import purge_run

    st = open_from_options(store, registry_config)
    confirm(yes, f"purge quarantine run {run_id} from {st.url}")
    res = purge_run(st, run_id)
    if as_json:
        echo_json(res.to_json())
    else:
        click.echo(
            f"purged {res.purged} objects ({human_bytes(res.bytes_purged)}) of {run_id}; "
            f"restored {res.restored} that are referenced again"
        )
        for f in res.failures:
            click.echo(f"  FAILED: {f}")
    sys.exit(1 if res.failures else 0)
