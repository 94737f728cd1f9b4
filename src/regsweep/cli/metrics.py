"""``--metrics-file`` and ``--pushgateway`` for any command that is a job (gc, audit, report).

``@metrics_options("gc")`` (placed right above the command function) adds both options, times
the command, and after it finished, whatever its outcome, writes and pushes the run's metrics.
While it runs, the command (or helpers it calls) feeds the metrics through ``note_*``, which do
nothing when neither option was given. If the metrics cannot be written or pushed, a one-line
warning goes to stderr and a command that would have exited 0 exits 1 (finished with failures).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from regsweep.clock import utcnow
from regsweep.errors import RegsweepError

if TYPE_CHECKING:
    from regsweep.gc.apply import ApplyResult
    from regsweep.gc.plan import Plan
    from regsweep.reports.metrics import RunMetrics
    from regsweep.reports.usage import UsageSummary

F = TypeVar("F", bound=Callable[..., Any])
_KEY = "regsweep.metrics"


def current() -> RunMetrics | None:
    """The metrics of the command running now, or None if it was not asked for any."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None
    run = ctx.meta.get(_KEY)
    if run is None:
        return None
    # prometheus_client: only imported when a command was asked for metrics
    from regsweep.reports.metrics import RunMetrics

    return run if isinstance(run, RunMetrics) else None


def note_plan(plan: Plan) -> None:
    """Reclaimable bytes by reason, from the plan a gc (or report) run made."""
    if (run := current()) is not None:
        from regsweep.reports.tables import reclaimable_by_reason  # only with metrics

        run.set_reclaimable(reclaimable_by_reason(plan))


def note_apply(result: ApplyResult) -> None:
    """Objects and bytes an apply removed, by kind."""
    if (run := current()) is not None:
        run.set_deleted(result.removed)


def note_usage(u: UsageSummary) -> None:
    if (run := current()) is not None:
        run.set_usage(u)


def note_findings(findings: Mapping[str, int]) -> None:
    """Findings per kind (for the audit)."""
    if (run := current()) is not None:
        run.set_findings(findings)


def _exit_code(e: BaseException) -> int:
    if isinstance(e, SystemExit):
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if isinstance(e, click.exceptions.Exit):
        return e.exit_code
    if isinstance(e, RegsweepError | click.ClickException):
        return e.exit_code
    if isinstance(e, KeyboardInterrupt):
        return 130
    return 1


def _emit(run: RunMetrics, metrics_file: str | None, pushgateway: str | None) -> bool:
    ok = True
    if metrics_file:
        try:
            run.write_textfile(metrics_file)
        except OSError as e:
            click.echo(f"regsweep: warning: cannot write metrics to {metrics_file}: {e}", err=True)
            ok = False
    if pushgateway:
        try:
            run.push(pushgateway)
        except (OSError, ValueError) as e:
            click.echo(f"regsweep: warning: cannot push metrics to {pushgateway}: {e}", err=True)
            ok = False
    return ok


def metrics_options(job: str) -> Callable[[F], F]:
    """Decorator adding ``--metrics-file PATH`` and ``--pushgateway URL`` to a click command
    of ``job``; the command's own signature does not change."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def run(
            *args: Any,
            metrics_file: str | None = None,
            pushgateway: str | None = None,
            **kwargs: Any,
        ) -> Any:
            if not metrics_file and not pushgateway:
                return fn(*args, **kwargs)
            # prometheus_client: only imported when a command was asked for metrics
            from regsweep.reports.metrics import RunMetrics

            metrics = RunMetrics(job)
            click.get_current_context().meta[_KEY] = metrics
            started = time.monotonic()
            error: BaseException | None = None
            result: Any = None
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:  # re-raised below, once the metrics are out
                error = e
            code = 0 if error is None else _exit_code(error)
            metrics.finish(
                success=code == 0, duration_seconds=time.monotonic() - started, now=utcnow()
            )
            emitted = _emit(metrics, metrics_file, pushgateway)
            if error is not None and code != 0:
                raise error
            if not emitted:
                sys.exit(1)
            if error is not None:
                raise error
            return result

        run = click.option(
            "--pushgateway",
            metavar="URL",
            help=f"Push this run's metrics to a Prometheus pushgateway (grouping key job={job}).",
        )(run)
        run = click.option(
            "--metrics-file",
            type=click.Path(dir_okay=False),
            help="Write this run's metrics in the node_exporter textfile format (atomically); "
            "name it *.prom, one file per job.",
        )(run)
        return run  # type: ignore[return-value]

    return decorate
