"""`regsweep audit --metrics-file` writes findings by kind in the textfile-collector format."""

from pathlib import Path

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from regsweep.cli.main import cli


def test_audit_writes_findings_metrics(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    runner = CliRunner()
    assert runner.invoke(cli, ["demo", str(root), "--json"]).exit_code == 0
    prom = tmp_path / "audit.prom"
    result = runner.invoke(cli, ["audit", str(root), "--metrics-file", str(prom), "--json"])
    assert result.exit_code == 0, result.output
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    kinds = {s.labels["kind"] for s in families["regsweep_findings"].samples}
    assert "stale-upload" in kinds  # the demo registry has one stale upload
    assert all(s.labels["job"] == "audit" for s in families["regsweep_findings"].samples)
    assert families["regsweep_last_run_success"].samples[0].value == 1.0
