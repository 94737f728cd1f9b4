"""``regsweep demo [DIR]``: make a realistic sample registry and run the main job on it."""

from __future__ import annotations

from pathlib import Path

import click

from regsweep.cli.common import echo_json, keep_pandas_unloaded
from regsweep.cli.gc import render_plan
from regsweep.cli.progress import TqdmProgress
from regsweep.cli.render import snapshot_summary, usage_summary
from regsweep.clock import utcnow


@click.command("demo")
@click.argument(
    "directory", required=False, default="demo-registry", type=click.Path(file_okay=False)
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False),
    help="Where to write the snapshot (default: DIR-reports/snapshot).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the generated content."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def demo_command(directory: str, output: str | None, seed: int, as_json: bool) -> None:
    """Create a sample registry in DIR (default ./demo-registry) and run the main job on it.

    The sample is written in exactly the layout Distribution writes: several repositories (one
    nested in another), shared base layers, a multi-arch index, overwritten tags that leave
    untagged manifests, an OCI referrer, a cosign signature tag, orphan blobs and a stale
    upload. If DIR already holds a registry it is used as it is. DIR can then be served by
    `docker-registry serve` with its filesystem rootdirectory set to DIR.
    """
    # Here, not at the top: every command, and --help, imports this module.
    from regsweep.demo import generate_demo
    from regsweep.gc.mark import mark
    from regsweep.gc.plan import GcSettings, make_plan
    from regsweep.reports.usage import usage
    from regsweep.scan.scanner import scan
    from regsweep.storage.filesystem import FilesystemStore

    keep_pandas_unloaded()
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    store = FilesystemStore(root)
    generated = not (root / "docker" / "registry" / "v2").exists()
    if generated:
        generate_demo(store, seed=seed, now=utcnow())
    out = Path(output) if output else Path(f"{str(root).rstrip('/')}-reports") / "snapshot"
    with TqdmProgress(enabled=False if as_json else None) as progress:
        snap = scan(store, progress=progress)
    snap.write(out)
    u = usage(snap)
    settings = GcSettings(delete_untagged=True)
    plan = make_plan(snap, mark(snap, delete_untagged=True), settings, utcnow())
    if as_json:
        echo_json(
            {
                "directory": str(root),
                "generated": generated,
                "snapshot": str(out),
                "counts": snap.counts(),
                "stored_bytes": u.stored_bytes,
                "live_bytes": u.live_bytes,
                "unreferenced_bytes": u.unreferenced_bytes,
                "repositories": u.repositories.to_pylist(),
                "gc_plan": plan.to_json(),
            }
        )
        return
    verb = "generated" if generated else "using existing"
    click.echo(f"{verb} demo registry in {root}/\n")
    click.echo(snapshot_summary(snap))
    click.echo(f"snapshot written to {out}/\n")
    click.echo(usage_summary(u))
    click.echo("\n" + render_plan(plan))
    click.echo(
        "\ndry run: nothing was changed. To carry it out:\n"
        f"  regsweep gc {root} --delete-untagged --apply"
    )
