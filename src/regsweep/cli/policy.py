"""``regsweep policy check|import``, and the retention part of ``regsweep gc --policy``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from regsweep.cli.common import echo_json, human_bytes, open_from_options
from regsweep.cli.progress import TqdmProgress
from regsweep.cli.render import table
from regsweep.clock import utcnow
from regsweep.errors import UsageError

# The retention machinery, the scanner and yaml are imported by the functions that use them,
# not here: every command, and --help, imports this module (regsweep.cli.main).
if TYPE_CHECKING:
    from regsweep.gc.plan import Plan
    from regsweep.retention import Issue, RetentionResult
    from regsweep.scan.snapshot import Snapshot

# The names of regsweep.retention.IMPORTERS (tests/cli checks they are the same).
IMPORTER_NAMES = ("ecr", "gitlab")

PREVIEW_TAGS_PER_REPO = 50


def render_retention(snap: Snapshot, plan: Plan, result: RetentionResult, source: str) -> str:
    """Per repository: the tags that go and why (rule, rank), what stays, the bytes freed."""
    from regsweep.retention.preview import preview  # see the note on imports at the top

    repos = preview(snap, plan, result)
    lines = [f"retention policy {source} (evaluated at {result.now:%Y-%m-%d %H:%M:%S}Z):"]
    rows = [
        [
            r.repository,
            len(r.expired),
            r.kept_tags,
            r.untagged_removed,
            human_bytes(r.bytes_freed),
        ]
        for r in repos.values()
    ]
    if rows:
        lines.append(table(["repository", "tags go", "tags stay", "untagged go", "frees"], rows))
    else:
        lines.append("no repositories")
    for w in result.warnings:
        lines.append(f"warning: {w}")
    for r in repos.values():
        if r.skipped:
            lines.append(f"{r.repository}: left as it is: {r.skipped}")
        if not r.expired:
            continue
        lines.append(f"{r.repository}: tags that go")
        for e in r.expired[:PREVIEW_TAGS_PER_REPO]:
            why = e.rule or e.decided_by
            rank = f", rank {e.rank}/{e.window}" if e.rank is not None else ""
            lines.append(f"  {e.tag:<40} {e.digest[:19]}  {e.decided_by} {why}{rank}")
        if len(r.expired) > PREVIEW_TAGS_PER_REPO:
            lines.append(f"  ... and {len(r.expired) - PREVIEW_TAGS_PER_REPO} more (see --json)")
    return "\n".join(lines)


def retention_json(snap: Snapshot, plan: Plan, result: RetentionResult) -> dict[str, Any]:
    from regsweep.retention.preview import preview  # see the note on imports at the top

    return {
        "retention": {
            **result.summary(),
            "warnings": result.warnings,
            "repositories": {name: r.to_json() for name, r in preview(snap, plan, result).items()},
        }
    }


def _print_issues(source: str, issues: list[Issue]) -> None:
    for i in issues:
        label = "warning: " if i.severity == "warning" else ""
        where = f"{source}:{i.line}" if i.line else source
        field = f" {i.path}:" if i.path else ""
        click.echo(f"{where}:{field} {label}{i.message}", err=True)


@click.group("policy")
def policy_group() -> None:
    """Check retention policies and import them from other registries."""


@policy_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--store",
    "store",
    help="Also evaluate against this STORE (read only) and warn about mass deletions and ties.",
)
@click.option("--strict", is_flag=True, help="Exit 1 when there are warnings.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check_command(file: str, store: str | None, strict: bool, as_json: bool) -> None:
    """Validate FILE (YAML or TOML). Errors name the field and line and exit 2; dangerous but
    valid rules are warnings (exit 0, or 1 with --strict)."""
    # See the note on imports at the top.
    from regsweep.retention import (
        PolicyError,
        evaluate_policy,
        lint_policy,
        lint_result,
        load_policy,
    )
    from regsweep.scan.scanner import ScanOptions, scan

    try:
        pf = load_policy(file)
    except PolicyError as e:
        if as_json:
            echo_json({"valid": False, "errors": [_issue_json(i) for i in e.issues]})
        else:
            _print_issues(e.source, e.issues)
        sys.exit(2)
    warnings = lint_policy(pf)
    summary: dict[str, Any] | None = None
    if store:
        st = open_from_options(store, None)
        with TqdmProgress(enabled=False if as_json else None) as progress:
            snap = scan(st, ScanOptions(), progress=progress)
        result = evaluate_policy(pf, snap, st, utcnow())
        warnings += lint_result(pf, result)
        summary = result.summary()
    if as_json:
        out: dict[str, Any] = {"valid": True, "warnings": [_issue_json(i) for i in warnings]}
        if summary is not None:
            out["evaluation"] = summary
        echo_json(out)
    else:
        _print_issues(file, warnings)
        n = len(pf.policies)
        click.echo(
            f"{file}: valid ({n} {'policy' if n == 1 else 'policies'}, "
            f"{sum(len(p.rules) for p in pf.policies)} rules, {len(warnings)} warnings)"
        )
        if summary is not None:
            click.echo(
                f"tags: {summary['tags']['delete']} go, {summary['tags']['keep']} stay; "
                f"untagged: {summary['untagged']['delete']} go, {summary['untagged']['keep']} stay"
            )
    sys.exit(1 if strict and warnings else 0)


def _issue_json(i: Issue) -> dict[str, Any]:
    return {"path": i.path, "line": i.line, "message": i.message, "severity": i.severity}


@policy_group.command("import")
@click.option(
    "--from",
    "source_kind",
    type=click.Choice(sorted(IMPORTER_NAMES)),
    required=True,
    help="ecr: a lifecycle policy JSON; gitlab: cleanup-policy settings (API JSON or YAML).",
)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option(
    "--repository",
    default="glob:**",
    show_default=True,
    help="Repository pattern the imported policy applies to.",
)
@click.option(
    "--exact",
    is_flag=True,
    help="Turn off regsweep's own margins (min_age, guards) to reproduce the vendor exactly.",
)
def import_command(
    source_kind: str, file: str, output: str | None, repository: str, exact: bool
) -> None:
    """Convert FILE into a regsweep policy (YAML), printing what could not be carried over."""
    # See the note on imports at the top.
    import yaml

    from regsweep.retention import IMPORTERS, PolicyError

    try:
        text = Path(file).read_text()
    except OSError as e:
        raise UsageError(f"{file}: cannot read: {e.strerror}") from e
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"{file}: neither JSON nor YAML ({e})") from e
    try:
        imported = IMPORTERS[source_kind](doc, repository=repository, exact=exact, source=file)
    except PolicyError as e:
        _print_issues(e.source, e.issues)
        sys.exit(2)
    for w in imported.warnings:
        click.echo(f"{file}: warning: {w}", err=True)
    out = imported.to_yaml()
    if output:
        Path(output).write_text(out)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(out, nl=False)
