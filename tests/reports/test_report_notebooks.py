"""The notebooks are committed without outputs, read only through regsweep.reports, and run
headless (nbclient) against reports of the demo registry and a saved gc plan, drawing their
figures."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from report_helpers import Demo, run_json

from imagegen import sample_image
from regsweep.demo.generator import LayoutWriter
from regsweep.storage.filesystem import FilesystemStore

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["capacity_planning.ipynb", "gc_review.ipynb"]
ALLOWED_IMPORTS = {"os", "datetime", "matplotlib.pyplot", "pandas", "regsweep.reports"}
# Nothing that could reach a store, delete, or carry a secret.
FORBIDDEN = [
    "apply_plan",
    "delete_many",
    "open_store",
    "ObjectStore",
    "regsweep.gc",
    "regsweep.storage",
    "regsweep.cli",
    "boto3",
    "botocore",
    "azure",
    "AWS_",
    "AZURE_",
    "subprocess",
    "shutil",
    "requests",
    "password",
    "secret",
    "token",
    "os.remove",
    "unlink",
    "rmtree",
]


def _code(cell: nbformat.NotebookNode) -> str:
    # IPython magics (%matplotlib inline) are not Python.
    return "\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {i} has outputs"
            assert cell.execution_count is None, f"{name} cell {i} has an execution count"


@pytest.mark.parametrize("name", NAMES)
def test_reads_only_through_regsweep_reports(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [_code(c) for c in nb.cells if c.cell_type == "code"]
    imported: set[str] = set()
    for src in code:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module or "")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                # pandas/pyarrow readers would bypass regsweep.reports
                assert not node.func.attr.startswith("read_"), (name, node.func.attr)
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS
    text = "\n".join(code)
    for word in FORBIDDEN:
        assert word.lower() not in text.lower(), (name, word)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "os.environ.get(" in params[0].source


@pytest.fixture
def demo_reports(demo: Demo, tmp_path: Path) -> tuple[Path, Path]:
    """Reports of the demo registry at three daily snapshots, growing in between, and a plan."""
    out = tmp_path / "reports"
    writer = LayoutWriter(FilesystemStore(demo.root))
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    for day in range(3):
        if day:
            img = sample_image(f"notebook-growth-{day}", layers=2, size=30_000)
            writer.push(f"team/growth-{day}", img, ["v1"])
        when = (t0 + timedelta(days=day)).isoformat()
        run_json(["report", demo.root, "-o", out, "--delete-untagged", "--snapshot-time", when])
    plan = tmp_path / "plan.parquet"
    run_json(["gc", demo.root, "--delete-untagged", "--plan-out", plan])
    return out, plan


def _execute(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    nbformat.write(nb, tmp_path / f"executed-{name}")  # for a look when a test fails
    return nb


def _figures(nb: nbformat.NotebookNode) -> int:
    return sum(
        1
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    )


def _text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
    )


def test_notebooks_run_headless_and_draw_their_figures(
    demo_reports: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports, plan = demo_reports
    monkeypatch.setenv("REGSWEEP_REPORTS", str(reports))
    monkeypatch.setenv("REGSWEEP_PLAN", str(plan))
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the notebooks must still select inline output

    capacity = _execute("capacity_planning.ipynb", tmp_path)
    assert _figures(capacity) == 4  # growth, top consumers, dedup over time, forecast
    text = _text(capacity)
    assert "3 snapshot(s)" in text
    assert "reached around" in text  # stored bytes grew between the snapshots

    review = _execute("gc_review.ipynb", tmp_path)
    assert _figures(review) == 3  # by reason, per repository, ages
    assert "keys," in _text(review) and "REFUSED" not in _text(review)


def test_capacity_notebook_with_a_single_snapshot(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = tmp_path / "reports"
    run_json(["report", demo.root, "-o", reports])
    monkeypatch.setenv("REGSWEEP_REPORTS", str(reports))
    monkeypatch.setenv("REGSWEEP_CAPACITY_BYTES", str(10 * 1024**2))
    nb = _execute("capacity_planning.ipynb", tmp_path)
    assert _figures(nb) == 4
    assert "first-seen times" in _text(nb)  # the forecast falls back to blob push times
