"""bench/phase_peaks.py: each phase's peak RSS from the kernel's high-water mark."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from regsweep.demo.generator import generate_demo
from regsweep.storage.filesystem import FilesystemStore
from services import subprocess_env

PEAKS = Path(__file__).resolve().parents[2] / "bench" / "phase_peaks.py"


def test_phase_peaks_reports_each_phase_and_keeps_the_commands_output(tmp_path: Path) -> None:
    """A plan of the demo store under the script: its JSON as the command prints it, and a
    peak in KB for each phase that ran, none above the whole run's and none below the RSS a
    Python process with regsweep loaded needs."""
    (tmp_path / "reg").mkdir()
    generate_demo(FilesystemStore(tmp_path / "reg"), seed=3, now=datetime(2026, 11, 20, tzinfo=UTC))
    proc = subprocess.run(
        [sys.executable, str(PEAKS), "gc", str(tmp_path / "reg"), "--grace", "0s", "--json"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    )
    assert json.loads(proc.stdout)["store"] == str(tmp_path / "reg")
    lines = [re.fullmatch(r"\s*(\d+) KB  (.+)", line) for line in proc.stderr.splitlines()]
    peaks = {m.group(2): int(m.group(1)) for m in lines if m}
    whole = peaks.pop("(the whole run)")
    assert {"_Scan.gather", "_Scan.resolve_links", "Graph.from_snapshot", "make_plan"} <= set(peaks)
    assert all(10_000 < kb <= whole for kb in peaks.values())
