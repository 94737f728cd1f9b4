"""``regsweep gc`` and ``regsweep apply``."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from regsweep.cli.common import (
    confirm,
    duration_callback,
    echo_json,
    human_bytes,
    inventory_option,
    open_from_options,
    store_options,
    workers_option,
)
from regsweep.cli.config_option import GC_SETTINGS, config_option
from regsweep.cli.metrics import metrics_options, note_apply, note_plan
from regsweep.cli.progress import TqdmProgress
from regsweep.cli.render import table
from regsweep.clock import utcnow
from regsweep.config import MODES
from regsweep.durations import format_duration
from regsweep.errors import SafetyRefusal

# The gc machinery (scanner, mark, plan, apply, retention) is imported by the commands that
# run it, not here: every command, and --help, imports this module (regsweep.cli.main).
if TYPE_CHECKING:
    from regsweep.gc.apply import ApplyResult
    from regsweep.gc.plan import Plan
    from regsweep.storage.base import ObjectStore


def render_plan(plan: Plan) -> str:
    s = plan.summary()
    lines = [
        f"gc plan {plan.run_id} for {plan.store} (now {plan.now:%Y-%m-%d %H:%M:%S}Z, grace "
        f"{format_duration(plan.settings.grace)}, upload grace "
        f"{format_duration(plan.settings.upload_grace)}, "
        f"{'delete untagged' if plan.settings.delete_untagged else 'keep untagged'})",
        "",
    ]
    if s:
        lines.append(
            table(
                ["kind", "candidates", "keys", "bytes"],
                [[k, v["count"], v["keys"], human_bytes(v["bytes"])] for k, v in sorted(s.items())],
            )
        )
        lines.append(f"total: {human_bytes(plan.total_bytes())}")
    else:
        lines.append("nothing to remove")
    repos = plan.by_repository()
    if repos:
        lines += ["", "per repository:"]
        rows = []
        for repo, v in repos.items():
            parts = ", ".join(
                f"{k.removesuffix('_keys')} {n}" for k, n in sorted(v.items()) if k != "bytes"
            )
            rows.append([repo, parts, human_bytes(v.get("bytes", 0))])
        lines.append(table(["repository", "keys", "bytes"], rows))
    if plan.protected:
        kept = ", ".join(f"{k} {n}" for k, n in sorted(plan.protected.items()))
        lines.append(f"\nkept only because they are younger than the grace period: {kept}")
    for repo, why in sorted(plan.unsafe_repos.items()):
        lines.append(f"kept whole (fail closed): {repo}: {why}")
    for r in plan.refusals:
        lines.append(f"REFUSED: {r}")
    return "\n".join(lines)


def render_result(res: ApplyResult) -> str:
    from regsweep.gc.apply import CACHE_WARNING  # see the note on imports at the top

    lines = [f"applied {res.run_id} in {res.mode} mode:"]
    for kind, v in sorted(res.removed.items()):
        lines.append(f"  {kind:<17} {v['keys']:>7} keys  {human_bytes(v['bytes'])}")
    lines.append(
        f"  freed {human_bytes(res.bytes_freed)}"
        + (
            " (moved to quarantine; `regsweep quarantine purge` frees it)"
            if res.mode == "quarantine"
            else ""
        )
    )
    for why, n in sorted(res.skipped.items()):
        lines.append(f"  skipped {n} candidates: {why}")
    for f in res.failures[:20]:
        lines.append(f"  FAILED: {f}")
    if len(res.failures) > 20:
        lines.append(f"  ... and {len(res.failures) - 20} more failures (see the deletion log)")
    lines.append(CACHE_WARNING)
    return "\n".join(lines)


def _apply(
    store: ObjectStore,
    plan: Plan,
    mode: str,
    as_json: bool,
    progress: TqdmProgress,
    extra: dict[str, Any] | None = None,
) -> int:
    from regsweep.gc.apply import apply_plan  # see the note on imports at the top

    res = apply_plan(store, plan, mode=mode, progress=progress)
    note_apply(res)
    if as_json:
        echo_json({**plan.to_json(), "applied": True, "result": res.to_json(), **(extra or {})})
    else:
        click.echo(render_result(res))
    return 1 if res.failures else 0


# gc --apply and apply take the same --mode.
mode_option = click.option(
    "--mode",
    type=click.Choice(MODES),
    default="quarantine",
    show_default=True,
    help="quarantine: move objects under regsweep/quarantine/<run-id>/ (restorable); delete: delete them.",
)


@click.command("gc")
@config_option(GC_SETTINGS)
@store_options
@click.option(
    "--delete-untagged",
    is_flag=True,
    help="Also remove manifests no tag points to (never index children or referrers of kept images).",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    help="Retention policy (YAML or TOML): remove the tags and untagged manifests it expires "
    "(implies --delete-untagged for what it does not keep).",
)
@click.option(
    "--grace",
    callback=duration_callback,
    default="24h",
    show_default=True,
    help="Nothing younger than this is removed (newest timestamp touching the object).",
)
@click.option(
    "--upload-grace",
    callback=duration_callback,
    default="168h",
    show_default=True,
    help="Uploads started more recently than this are kept.",
)
@click.option(
    "--max-delete-fraction",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Refuse (exit 3) if more than this fraction of blobs or blob bytes would go.",
)
@click.option(
    "--plan-out",
    type=click.Path(dir_okay=False),
    help="Save the plan as Parquet, to review or `regsweep apply` later.",
)
@click.option(
    "--snapshot-out", type=click.Path(file_okay=False), help="Also save the scan's snapshot here."
)
@click.option(
    "--apply", "do_apply", is_flag=True, help="Carry the plan out. Without it nothing is changed."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@mode_option
@inventory_option
@workers_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: counts and bytes per kind, run id, whether applied.",
)
@metrics_options("gc")
def gc_command(
    store: str | None,
    registry_config: str | None,
    layout_root: str | None,
    delete_untagged: bool,
    policy_file: str | None,
    grace: timedelta,
    upload_grace: timedelta,
    max_delete_fraction: float,
    plan_out: str | None,
    snapshot_out: str | None,
    do_apply: bool,
    yes: bool,
    mode: str,
    inventory: str | None,
    workers: int,
    as_json: bool,
) -> None:
    """Plan (and with --apply, carry out) a garbage collection of STORE.

    Marks everything the kept manifests need, in every repository, and plans the removal of
    the rest: unreferenced blobs, unneeded or dangling links, untagged manifests (with
    --delete-untagged), dangling tags, stale uploads. Without --apply it only prints the plan.
    Exit codes: 0 ok, 1 some objects failed, 2 usage error, 3 refused for safety.
    """
    # See the note on imports at the top.
    from regsweep.gc.lock import acquire_lock, release_lock
    from regsweep.gc.plan import GcSettings, new_run_id
    from regsweep.gc.planning import plan_gc
    from regsweep.scan.scanner import ScanOptions, scan

    policy = None
    if policy_file:
        from regsweep.cli.policy import render_retention, retention_json
        from regsweep.retention import load_policy

        policy = load_policy(policy_file)
    st = open_from_options(store, registry_config)
    settings = GcSettings(
        delete_untagged=delete_untagged or policy is not None,
        grace=grace,
        upload_grace=upload_grace,
        max_delete_fraction=max_delete_fraction,
    )
    run_id = new_run_id(utcnow())
    lock = None
    with TqdmProgress(enabled=False if as_json else None) as progress:
        try:
            now = utcnow()
            if do_apply:
                # Lock before scanning, and take "now" from the store's own clock (invariant 4).
                lock = acquire_lock(st, run_id)
                now = lock.service_now
            snap = scan(
                st,
                ScanOptions(workers=workers, layout_root=layout_root, inventory=inventory),
                progress=progress,
            )
            if snapshot_out:
                snap.write(snapshot_out)
            plan, retained = plan_gc(snap, st, policy, settings, now, run_id)
            extra = retention_json(snap, plan, retained) if retained is not None else {}
            plan.snapshot_dir = snapshot_out
            note_plan(plan)
            if plan_out:
                plan.write(plan_out)
            if not do_apply or plan.refusals:
                if as_json:
                    echo_json({**plan.to_json(), "applied": False, **extra})
                else:
                    click.echo(render_plan(plan))
                    if retained is not None:
                        click.echo("\n" + render_retention(snap, plan, retained, str(policy_file)))
                    if plan_out:
                        click.echo(f"\nplan saved to {plan_out}")
                    if not plan.refusals:
                        click.echo("\ndry run: nothing was changed (add --apply to carry it out)")
                if plan.refusals:
                    raise SafetyRefusal(plan.refusals[0] + " (nothing was changed)")
                return
            if not as_json:
                click.echo(render_plan(plan))
                if retained is not None:
                    click.echo("\n" + render_retention(snap, plan, retained, str(policy_file)))
            retained = None  # the policy's decisions and graph: nothing needs them any more
            confirm(yes, f"{mode} {plan.rows.num_rows} objects in {st.url}")
            code = _apply(st, plan, mode, as_json, progress, extra)
        finally:
            if lock is not None:
                release_lock(st, lock)
    sys.exit(code)


@click.command("apply")
@click.argument("plan_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--store", "store", help="Apply to this STORE instead of the one named in the plan.")
@click.option(
    "--registry-config",
    type=click.Path(dir_okay=False),
    help="Open the store from the registry's config.yml.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@mode_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@metrics_options("gc")
def apply_command(
    plan_file: str,
    store: str | None,
    registry_config: str | None,
    yes: bool,
    mode: str,
    as_json: bool,
) -> None:
    """Carry out a plan saved by `regsweep gc --plan-out`, re-checking every object first."""
    from regsweep.gc.plan import Plan  # see the note on imports at the top

    plan = Plan.read(plan_file)
    st = open_from_options(store or (None if registry_config else plan.store), registry_config)
    if plan.refusals:
        raise SafetyRefusal("the plan was refused when it was made: " + plan.refusals[0])
    if not as_json:
        click.echo(render_plan(plan))
    confirm(yes, f"{mode} {plan.rows.num_rows} objects in {st.url}")
    with TqdmProgress(enabled=False if as_json else None) as progress:
        code = _apply(st, plan, mode, as_json, progress)
    sys.exit(code)
