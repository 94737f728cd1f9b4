"""``regsweep audit STORE`` (the same as ``regsweep audit check STORE``) and
``regsweep audit history STORE``."""

from __future__ import annotations

import re
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from regsweep.cli.common import (
    DEFAULT_MANIFEST_CAP,
    FINDINGS_FILE,
    duration_callback,
    echo_json,
    human_bytes,
    inventory_option,
    json_option,
    open_from_options,
    store_options,
    workers_option,
)
from regsweep.cli.metrics import metrics_options, note_findings
from regsweep.cli.progress import TqdmProgress
from regsweep.cli.render import table
from regsweep.errors import UsageError

# The audit machinery (and tqdm) is imported by the functions that use it, not here: every
# command, and --help, imports this module (regsweep.cli.main).
if TYPE_CHECKING:
    from regsweep.audit.findings import Finding
    from regsweep.audit.history import RunHistory
    from regsweep.audit.report import AuditReport
    from regsweep.audit.scrub import ScrubResult

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
PER_KIND = 5  # findings shown per kind in the text summary


def parse_size(text: str) -> int:
    """``1000``, ``500M``, ``10GiB``, ``1.5t`` -> bytes (binary multiples)."""
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 1000, 500M, 10G)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


class _AuditGroup(click.Group):
    """A group whose default subcommand is ``check``: ``regsweep audit STORE ...`` runs it, as
    the command-line contract (design.md) spells it; ``history`` is the other subcommand."""

    default_command = "check"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


class _AuditProgress(TqdmProgress):
    """The scan's bars, plus the scrub's bar in bytes (tqdm shows bytes per second)."""

    def __call__(self, phase: str, advance: int, total: int | None) -> None:
        if phase != "scrub" or not self.enabled:
            super().__call__(phase, advance, total)
            return
        bar = self.bars.get(phase)
        if total is not None:
            if bar is not None:
                bar.close()
            from tqdm import tqdm  # see the note on imports at the top

            bar = tqdm(
                total=total,
                desc="verifying digests",
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                leave=False,
            )
            self.bars[phase] = bar
        if bar is not None and advance:
            bar.update(advance)


@click.group("audit", cls=_AuditGroup)
def audit_group() -> None:
    """Check STORE for corruption and inconsistencies, or show its deletion history.

    \b
    regsweep audit STORE [options]     the checks (same as `regsweep audit check STORE`)
    regsweep audit history STORE       past gc runs from the deletion log

    The audit only reads: it opens the store read-only.
    """


@audit_group.command("check")
@store_options
@click.option(
    "--verify-digests",
    is_flag=True,
    help="Also read blob data and check that it hashes to its digest and has its size.",
)
@click.option(
    "--sample",
    type=click.FloatRange(0, 1),
    default=None,
    help="With --verify-digests: check this fraction of the blobs (chosen by digest, so the "
    "same blobs every run).  [default: 1]",
)
@click.option(
    "--max-bytes",
    callback=_size,
    metavar="N",
    help="With --verify-digests: read at most this many bytes this run (e.g. 500G); with "
    "--checkpoint, the next run continues where this one stopped.",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --verify-digests: a local file of finished blobs (JSON lines); a run with the "
    "same file skips them, so an interrupted scrub resumes.",
)
@click.option(
    "--upload-age",
    callback=duration_callback,
    default="168h",
    show_default=True,
    help="Uploads started longer ago than this are reported as stale.",
)
@click.option(
    "--max-manifest-bytes",
    type=int,
    default=DEFAULT_MANIFEST_CAP,
    show_default=True,
    help="Manifests larger than this are not read (reported as oversized).",
)
@click.option(
    "--verify-links/--trust-link-paths",
    default=True,
    show_default=True,
    help="Read every link file (the default), or trust those whose path and size (or S3 ETag) "
    "vouch for their content (faster on large stores).",
)
@inventory_option
@workers_option
@click.option(
    "--scrub-workers",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Blobs hashed in parallel by --verify-digests.",
)
@click.option(
    "--top",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="Findings shown in the text summary.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Write every finding to DIR/{FINDINGS_FILE}.",
)
@json_option
@metrics_options("audit")
def check_command(
    store: str | None,
    registry_config: str | None,
    layout_root: str | None,
    verify_digests: bool,
    sample: float | None,
    max_bytes: int | None,
    checkpoint: Path | None,
    upload_age: timedelta,
    max_manifest_bytes: int,
    verify_links: bool,
    inventory: str | None,
    workers: int,
    scrub_workers: int,
    top: int,
    output: Path | None,
    as_json: bool,
) -> None:
    """Check STORE for corruption and inconsistencies; never changes it.

    Reports missing blobs of live manifests, dangling tags, revisions and links, malformed
    link files, unparsable manifests, incomplete indexes, orphan referrers and signature tags,
    invalid or colliding names, foreign keys, stale uploads, untrustworthy timestamps and
    quarantined objects that are needed again; with --verify-digests, blob data that does not
    hash to its digest. Exit codes: 0 no errors (warnings allowed), 1 errors found, 2 usage
    error.
    """
    scrub_flags = [
        name
        for name, given in (
            ("--sample", sample is not None),
            ("--max-bytes", max_bytes is not None),
            ("--checkpoint", checkpoint is not None),
        )
        if given
    ]
    if scrub_flags and not verify_digests:
        raise UsageError(
            f"{', '.join(scrub_flags)}: add --verify-digests (they limit the digest scrub)"
        )
    # See the note on imports at the top.
    from regsweep.audit.report import AuditOptions, run_audit
    from regsweep.storage.readonly import ReadOnlyStore

    st = ReadOnlyStore(open_from_options(store, registry_config))
    options = AuditOptions(
        upload_age=upload_age,
        verify_digests=verify_digests,
        sample=1.0 if sample is None else sample,
        max_bytes=max_bytes,
        checkpoint=checkpoint,
        scrub_workers=scrub_workers,
        workers=workers,
        layout_root=layout_root,
        max_manifest_bytes=max_manifest_bytes,
        verify_links=verify_links,
        inventory=inventory,
    )
    with _AuditProgress(enabled=False if as_json else None) as progress:
        report = run_audit(st, options, progress)
    note_findings(Counter(f.kind for f in report.findings))
    path = report.write(output) if output is not None else None
    if as_json:
        echo_json({**report.to_json(), "output": str(path) if path else None})
    else:
        click.echo(render_report(report, top=top))
        if path is not None:
            click.echo(f"\n{len(report.findings)} findings written to {path}")
    sys.exit(report.exit_code)


def _finding_lines(f: Finding) -> list[str]:
    where = "  ".join(x for x in (f.repository, f.key) if x)
    lines = [f"  {f.severity:<7}  {f.kind}  {where}".rstrip(), f"           {f.detail}"]
    if f.action:
        lines.append(f"           -> {f.action}")
    return lines


def render_scrub(s: ScrubResult) -> str:
    rate = human_bytes(s.bytes_per_second) + "/s"
    parts = [
        f"digest scrub: read {s.checked} of {s.planned} planned blobs "
        f"({human_bytes(s.bytes_read)} in {s.elapsed:.1f} s, {rate})"
    ]
    if s.resumed:
        parts.append(f"{s.resumed} finished in an earlier run (checkpoint)")
    if s.not_sampled:
        parts.append(f"{s.not_sampled} not in the sample")
    if s.deferred:
        parts.append(
            f"{s.deferred} ({human_bytes(s.deferred_bytes)}) over the --max-bytes budget, "
            "left for a later run"
        )
    return "; ".join(parts)


def render_report(report: AuditReport, *, top: int = 20) -> str:
    from regsweep.audit.findings import KINDS, count_by_kind  # see the note at the top

    c = report.counts
    sev = report.by_severity()
    lines = [
        f"audit of {report.store} (layout root {report.layout_root!r}): "
        f"{c.get('repositories', 0)} repositories, {c.get('tags', 0)} tags, "
        f"{c.get('manifests', 0)} manifests, {c.get('blobs', 0)} blobs "
        f"({human_bytes(report.blob_bytes)})",
        f"{sev['error']} errors, {sev['warning']} warnings, {sev['info']} info",
    ]
    kinds = count_by_kind(report.findings)
    if kinds:
        lines += [
            "",
            table(
                ["severity", "kind", "count", "meaning"],
                [[s, k, n, KINDS[k].summary if k in KINDS else ""] for (s, k), n in kinds.items()],
            ),
        ]
    if report.findings and top > 0:
        lines += ["", "top findings:"]
        shown: dict[str, int] = {}
        hidden: dict[str, int] = {}
        count = 0
        for f in report.findings:
            if count >= top or shown.get(f.kind, 0) >= PER_KIND:
                hidden[f.kind] = hidden.get(f.kind, 0) + 1
                continue
            shown[f.kind] = shown.get(f.kind, 0) + 1
            count += 1
            lines += _finding_lines(f)
        if hidden:
            more = ", ".join(f"{k} {n}" for k, n in hidden.items())
            lines.append(f"  ... and more not shown ({more}): use --json or -o DIR for all")
    if report.scrub is not None:
        lines += ["", render_scrub(report.scrub)]
    if not report.findings:
        lines += ["", "no findings: the store is consistent"]
    return "\n".join(lines)


@audit_group.command("history")
@store_options
@json_option
def history_command(
    store: str | None, registry_config: str | None, layout_root: str | None, as_json: bool
) -> None:
    """Past runs that changed STORE (gc apply, quarantine restore and purge), from its
    append-only deletion log: when, in which mode, what they removed, why and by which rule."""
    # See the note on imports at the top.
    from regsweep.audit.history import read_history
    from regsweep.storage.readonly import ReadOnlyStore

    runs = read_history(ReadOnlyStore(open_from_options(store, registry_config)))
    if as_json:
        echo_json({"runs": [r.to_json() for r in runs]})
        return
    click.echo(render_history(runs))


def render_history(runs: list[RunHistory]) -> str:
    if not runs:
        return "no runs in the deletion log"
    rows = []
    for r in runs:
        rows.append(
            [
                r.run_id,
                f"{r.first:%Y-%m-%d %H:%M:%S}Z" if r.first else "-",
                ",".join(r.modes),
                ", ".join(f"{k} {n}" for k, n in r.actions.items()),
                human_bytes(r.bytes_removed),
                ", ".join(f"{k} {n}" for k, n in r.reasons) or "-",
                ", ".join(f"{k} {n}" for k, n in r.rules) or "-",
            ]
        )
    return table(["run", "when", "mode", "actions", "removed", "top reasons", "top rules"], rows)
