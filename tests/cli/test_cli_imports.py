"""Start-up: the command modules import the heavy machinery only when a command runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

# What no command needs just to be defined (or to print its --help).
HEAVY = (
    "pandas",
    "pyarrow.dataset",
    "prometheus_client",
    "tqdm",
    "regsweep.jobs",
    "regsweep.audit.report",
    "regsweep.audit.checks",
    "regsweep.reports.dataset",
    "regsweep.reports.tables",
    "regsweep.retention",
    "regsweep.scan.scanner",
    "regsweep.gc.apply",
)


def _imported_after(code: str) -> set[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("args", [[], ["--help"], ["gc", "--help"], ["run", "--help"]])
def test_cli_start_up_imports_no_heavy_module(args: list[str]) -> None:
    code = (
        "from regsweep.cli.main import cli\n"
        f"try:\n    cli.main({args!r}, standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        if args
        else "import regsweep.cli.main"
    )
    assert _imported_after(code).isdisjoint(HEAVY), sorted(_imported_after(code) & set(HEAVY))


def test_a_gc_from_the_command_line_loads_neither_pandas_nor_acero(tmp_path: Path) -> None:
    """pyarrow's first conversion would import pandas (a quarter of a second of CPU in the
    middle of the listing); the command line makes that check with pandas hidden. The plan's
    summary does not group with Acero (~20 ms to import, with datasets and Parquet)."""
    from regsweep.demo import generate_demo
    from regsweep.storage.filesystem import FilesystemStore

    generate_demo(FilesystemStore(tmp_path), now=datetime.now(UTC))
    args = ["gc", str(tmp_path), "--grace", "0s", "--delete-untagged", "--json"]
    code = (
        "from regsweep.cli.main import cli\n"
        f"try:\n    cli.main({args!r}, standalone_mode=False)\nexcept SystemExit:\n    pass\n"
    )
    loaded = _imported_after(code)
    assert "regsweep.gc.plan" in loaded  # it did plan
    assert "pandas" not in loaded
    assert "pyarrow.acero" not in loaded


def test_pandas_conversions_still_work_after_the_hidden_check() -> None:
    code = """
from regsweep.cli.common import keep_pandas_unloaded
keep_pandas_unloaded()
import pyarrow as pa
table = pa.table({"d": pa.array(["x", "y", "x"]).dictionary_encode(), "n": [1, 2, 3]})
frame = table.to_pandas()
assert str(frame["d"].dtype) == "category", frame.dtypes
for back in (pa.Table.from_pandas(frame), pa.table(frame)):
    assert pa.types.is_dictionary(back.column("d").type), back.schema
    assert back.column("d").to_pylist() == ["x", "y", "x"]
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_jobs_does_not_import_the_report_writers() -> None:
    loaded = _imported_after("import regsweep.jobs")
    assert loaded.isdisjoint(
        {"pyarrow.dataset", "regsweep.reports.dataset", "regsweep.audit.report"}
    )


def test_option_defaults_match_the_library() -> None:
    from regsweep.audit.report import FINDINGS_FILE
    from regsweep.cli import common, policy
    from regsweep.config import MODES
    from regsweep.gc.apply import MODES as APPLY_MODES
    from regsweep.retention import IMPORTERS
    from regsweep.scan.scanner import DEFAULT_MANIFEST_CAP

    assert common.DEFAULT_MANIFEST_CAP == DEFAULT_MANIFEST_CAP
    assert common.FINDINGS_FILE == FINDINGS_FILE
    assert sorted(policy.IMPORTER_NAMES) == sorted(IMPORTERS)
    assert MODES == APPLY_MODES


def _memory_pool(env: dict[str, str]) -> str:
    probe = "import regsweep.cli, pyarrow\nprint(pyarrow.default_memory_pool().backend_name)"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env
    )
    return out.stdout.strip()


@pytest.mark.skipif(sys.platform != "linux", reason="jemalloc is the default on Linux only")
def test_cli_picks_jemalloc_unless_the_environment_says_otherwise() -> None:
    """The command line uses jemalloc (a lower peak RSS: bench/RESULTS.md); an operator's
    ARROW_DEFAULT_MEMORY_POOL wins."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    assert _memory_pool(env) == "jemalloc"
    assert _memory_pool({**env, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}) == "mimalloc"


def _kept_mib(probe: str, extra: dict[str, str]) -> int:
    """The MiB of anonymous memory ``probe`` (a script that prints it) finds still resident
    after freeing its columns, run under the command line's allocator settings (an
    operator's own JE_ARROW_MALLOC_CONF, ``extra``, wins)."""
    env = {k: v for k, v in os.environ.items() if k != "JE_ARROW_MALLOC_CONF"}
    env.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    out = subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        env={**env, **extra},
    )
    return int(out.stdout)


_DECAY_PROBE = """
import regsweep.cli, pyarrow as pa, pyarrow.compute as pc, numpy as np, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) >> 10
base = pa.array(np.arange(1 << 16))
pc.add(base, 1)
before = rss()
columns = [pc.add(base, i) for i in range(400)]  # 200 MiB in 512 KiB buffers
del columns
time.sleep(1.0)
for _ in range(200):
    pc.add(base, 1)  # jemalloc purges on allocation
print(rss() - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="jemalloc is the default on Linux only")
def test_cli_hands_freed_memory_back_within_a_second() -> None:
    """Columns a scan frees are handed back to the system within a second (jemalloc's decay
    as the command line sets it); an operator's JE_ARROW_MALLOC_CONF wins."""
    assert _kept_mib(_DECAY_PROBE, {}) < 50
    never_purge = {"JE_ARROW_MALLOC_CONF": "dirty_decay_ms:-1"}
    assert _kept_mib(_DECAY_PROBE, never_purge) > 150


_HUGE_PROBE = """
import regsweep.cli, pyarrow as pa, pyarrow.compute as pc, numpy as np
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) >> 10
base = pa.array(np.arange(1 << 18))  # 2 MiB columns
pc.add(base, 1)
before = rss()
columns = [pc.add(base, i) for i in range(100)]  # 200 MiB
del columns
print(rss() - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="jemalloc is the default on Linux only")
def test_cli_hands_freed_columns_of_a_mebibyte_or_more_back_at_once() -> None:
    """Columns of 1 MiB or more are handed back to the system as soon as they are freed,
    without waiting for jemalloc's decay (its arena for huge allocations); an operator's
    JE_ARROW_MALLOC_CONF wins."""
    assert _kept_mib(_HUGE_PROBE, {}) < 20
    arrows_own = {"JE_ARROW_MALLOC_CONF": "dirty_decay_ms:-1"}  # no huge arena, never purge
    assert _kept_mib(_HUGE_PROBE, arrows_own) > 150
