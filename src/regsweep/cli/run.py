"""``regsweep run [--config FILE]``: the scheduled job (``regsweep.jobs.run_job``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from regsweep.cli.common import echo_json, keep_pandas_unloaded
from regsweep.cli.progress import TqdmProgress
from regsweep.cli.render import table
from regsweep.clock import utcnow
from regsweep.config import CONFIG_ENV, SETTINGS, JobSettings, resolve_settings

# The job (scan, audit, gc, reports) is imported by the functions that run it, not here:
# every command, and --help, imports this module (regsweep.cli.main).
if TYPE_CHECKING:
    from regsweep.jobs import JobResult

F = TypeVar("F", bound=Callable[..., Any])

_FLAGS = {"delete_untagged": "keep-untagged", "dry_run": "no-dry-run"}


def setting_options(fn: F) -> F:
    """One option per setting of ``regsweep.config.SETTINGS``; None when not given, so the
    environment, the file and the default can fill it in that order."""
    for name in reversed(SETTINGS):
        s = SETTINGS[name]
        help_text = f"{s.help} [env {s.env}]"
        if name in _FLAGS:
            fn = click.option(f"{s.option}/--{_FLAGS[name]}", name, default=None, help=help_text)(
                fn
            )
        else:
            fn = click.option(s.option, name, default=None, metavar="VALUE", help=help_text)(fn)
    return fn


def render_result(res: JobResult) -> str:
    from regsweep.gc.apply import CACHE_WARNING  # see the note on imports at the top

    rows = []
    for s in res.steps:
        counts = ", ".join(f"{k} {v}" for k, v in s.counts.items())
        rows.append([s.name, s.status, f"{s.seconds:.1f}s", counts, s.error or ""])
    head = (
        f"run {res.run_id} on {res.store}"
        f"{' (dry run)' if res.dry_run else f' (mode {res.mode})'}: {res.status}, "
        f"exit code {res.exit_code}"
    )
    text = head + "\n" + table(["step", "status", "time", "counts", "error / reason"], rows)
    applied = next((s for s in res.steps if s.name == "apply"), None)
    if applied is not None and applied.counts.get("removed_keys"):
        text += "\n\n" + CACHE_WARNING
    return text


@click.command("run")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help=f"Configuration file (TOML or YAML) holding these settings [env {CONFIG_ENV}].",
)
@setting_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary of every step.")
def run_command(config_file: str | None, as_json: bool, **options: Any) -> None:
    """Run the scheduled job: scan once, audit, plan (with the policy), apply (quarantine by
    default; --dry-run only plans), purge quarantine runs older than quarantine_retention,
    write the report datasets and the metrics.

    Every setting is an option, an environment variable REGSWEEP_<NAME> and a key of the
    --config file; precedence: option > environment > file > default. A failing step does
    not stop the others. Exit codes: 0 every step ok, 1 a step failed or the audit found
    errors, 2 configuration error, 3 refused for safety (a brake, or the store is locked).
    """
    # See the note on imports at the top.
    from regsweep.jobs import new_run_id, run_job
    from regsweep.logs import setup_logging, teardown_logging

    settings: JobSettings = resolve_settings(options, config_file=config_file)
    keep_pandas_unloaded()
    run_id = new_run_id(utcnow())
    handler = setup_logging(settings.log_format, run_id)
    try:
        bars = None if settings.log_format == "text" and not as_json else False
        with TqdmProgress(enabled=bars) as progress:
            result = run_job(settings, progress=progress, run_id=run_id)
    finally:
        teardown_logging(handler)
    if as_json:
        echo_json(result.to_json())
    else:
        click.echo(render_result(result))
    sys.exit(result.exit_code)
