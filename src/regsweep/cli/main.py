"""The ``regsweep`` command: a thin click layer over the library.

Each command parses options, calls one library function, renders the result and returns an
exit code: 0 ok, 1 finished with failures or findings, 2 usage or configuration error,
3 refused for safety. Errors are one line, never a traceback.
"""

from __future__ import annotations

import sys

import click

from regsweep import __version__
from regsweep.errors import RegsweepError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RegsweepError as e:
            click.echo(f"regsweep: error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("regsweep: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="regsweep")
def cli() -> None:
    """Keep CNCF Distribution registry storage healthy: scan it, see where the bytes go, and
    (from the gc commands) delete what nothing needs, safely."""


def _register() -> None:
    from regsweep.cli.audit import audit_group
    from regsweep.cli.demo import demo_command
    from regsweep.cli.gc import apply_command, gc_command
    from regsweep.cli.policy import policy_group
    from regsweep.cli.quarantine import quarantine_group
    from regsweep.cli.report import report_command
    from regsweep.cli.run import run_command
    from regsweep.cli.scan import scan_command

    for command in (
        scan_command,
        gc_command,
        apply_command,
        quarantine_group,
        demo_command,
        report_command,
        policy_group,
        audit_group,
        run_command,
    ):
        cli.add_command(command)


_register()


def main() -> None:
    # click's own usage errors exit 2, which matches our contract.
    sys.exit(cli.main(standalone_mode=True))
