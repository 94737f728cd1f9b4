"""bench/run.py, the benchmark against Distribution's garbage-collect, runs end to end on tiny
stores: on the filesystem it compares the blob sets, on Azurite it counts requests and says why
Distribution did not run there (Debian's docker-registry has no azure driver)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from services import AZURITE_BIN, missing_tool, subprocess_env

RUN = Path(__file__).resolve().parents[2] / "bench" / "run.py"


def bench(backend: str, tmp_path: Path) -> str:
    if shutil.which("docker-registry") is None:
        missing_tool("docker-registry is not installed")
    args = [backend, "--repeat", "1", "--repos", "3", "--tags", "2", "--workdir", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, str(RUN), *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_bench_on_the_filesystem_compares_with_distribution(tmp_path: Path) -> None:
    out = bench("fs", tmp_path)
    for row in (
        "regsweep gc (plan) |",
        "regsweep gc --delete-untagged (plan) |",
        "distribution garbage-collect --dry-run |",
        "distribution garbage-collect --dry-run -m |",
        "floor: find ROOT -type f | wc -l |",
    ):
        assert row in out
    assert "- ratio plan / `--dry-run`: **" in out
    assert "- planned blob set equals Distribution's eligible set: **True**" in out


def test_bench_on_azurite_counts_requests(tmp_path: Path) -> None:
    if shutil.which("node") is None or not AZURITE_BIN.exists():
        missing_tool("Azurite is not installed (run `npm ci`)")
    out = bench("azure", tmp_path)
    header = next(line for line in out.splitlines() if line.startswith("median of"))
    assert header.endswith("| requests")
    row = next(line for line in out.splitlines() if line.startswith("regsweep gc (plan) |"))
    assert int(row.split("|")[-1]) > 0  # it listed and read through Azurite
    # Distribution runs when its build has the azure driver; otherwise the report says why.
    assert (
        "- ratio plan / `--dry-run`: **" in out
        or "- Distribution's `garbage-collect` not run: `" in out
    )
