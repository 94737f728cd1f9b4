"""``regsweep scan STORE -o DIR``"""

from __future__ import annotations

import click

from regsweep.cli.common import (
    DEFAULT_MANIFEST_CAP,
    echo_json,
    inventory_option,
    json_option,
    open_from_options,
    store_options,
    workers_option,
)
from regsweep.cli.progress import TqdmProgress
from regsweep.cli.render import snapshot_summary


@click.command("scan")
@store_options
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for the snapshot (one Parquet file per table, plus meta.json).",
)
@click.option(
    "--verify-links",
    is_flag=True,
    help="Read every link file, even where its path tells the digest.",
)
@click.option(
    "--max-manifest-bytes",
    type=int,
    default=DEFAULT_MANIFEST_CAP,
    show_default=True,
    help="Manifests larger than this are not read; they are kept whole (fail closed).",
)
@inventory_option
@workers_option
@json_option
def scan_command(
    store: str | None,
    registry_config: str | None,
    layout_root: str | None,
    output: str,
    verify_links: bool,
    max_manifest_bytes: int,
    inventory: str | None,
    workers: int,
    as_json: bool,
) -> None:
    """Walk STORE and write a snapshot of everything in it as Parquet.

    STORE is the registry's storage root, the place that holds docker/registry/v2/: a path,
    file://PATH, s3://BUCKET[/PREFIX] or azure://CONTAINER[/PREFIX]. The scan only reads; a bad
    object becomes an anomaly in the snapshot, it never stops the scan.
    """
    # Here, not at the top: every command, and --help, imports this module.
    from regsweep.scan.scanner import ScanOptions, scan

    st = open_from_options(store, registry_config)
    options = ScanOptions(
        max_manifest_bytes=max_manifest_bytes,
        verify_links=verify_links,
        workers=workers,
        layout_root=layout_root,
        inventory=inventory,
    )
    with TqdmProgress(enabled=None if not as_json else False) as progress:
        snap = scan(st, options, progress=progress)
    paths = snap.write(output)
    if as_json:
        echo_json({"output": output, "meta": snap.meta, "files": [str(p) for p in paths]})
    else:
        click.echo(snapshot_summary(snap))
        click.echo(f"snapshot written to {output}/ ({len(paths)} files)")
