"""Helpers of the report tests: the CLI in-process, and store measurements."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from regsweep.cli.main import cli
from regsweep.demo import DemoSummary


@dataclass
class Demo:
    """A generated demo registry: its filesystem root and what the generator wrote."""

    root: Path
    summary: DemoSummary


def run_cli(args: Sequence[object]) -> Result:
    """``regsweep ARGS`` in this process."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def run_json(args: Sequence[object], expect: int = 0) -> dict[str, Any]:
    """``regsweep ARGS --json``: check the exit code and that stdout is one JSON object."""
    res = run_cli([*args, "--json"])
    assert res.exit_code == expect, (res.exit_code, res.stdout[-3000:], res.stderr[-3000:])
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, res.stdout
    doc = json.loads(lines[0])
    assert isinstance(doc, dict)
    return doc


def file_bytes(root: Path, sub: str = "docker") -> int:
    """Sum of the sizes of every file under ``root/sub``."""
    total = 0
    for dirpath, _dirs, files in os.walk(root / sub):
        for name in files:
            total += (Path(dirpath) / name).stat().st_size
    return total


@dataclass
class Recorded:
    method: str
    path: str
    content_type: str | None
    body: str


@dataclass
class Gateway:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    status: int = 200
