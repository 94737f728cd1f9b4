"""``regsweep scan`` from the outside: click's CliRunner and a real ``python -m regsweep``
process, on a demo registry; every way STORE can be wrong ends with exit 2 and one line on
stderr; every command has help and is in the README."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from regsweep.cli.main import cli
from regsweep.scan.snapshot import SCHEMAS, TABLES, Snapshot

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
NO_LAYOUT = "no docker/registry/v2/ here"


# -- helpers ---------------------------------------------------------------------------------


@dataclass
class Proc:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any AWS/Azure settings of the developer's machine."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "AZURE_")) and k != "REGISTRY_STORAGE"
    }
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONWARNINGS="ignore",
    )
    env.update(extra)
    return env


def regsweep(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Proc:
    """``python -m regsweep ARGS`` in a real process."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "regsweep", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        cwd=cwd,
        timeout=120,
        check=False,
    )
    return Proc(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def assert_usage_error(proc: Proc | click.testing.Result, *needles: str) -> str:
    """Exit 2, nothing on stdout, exactly one line on stderr, no traceback; returns the line."""
    code = proc.returncode if isinstance(proc, Proc) else proc.exit_code
    assert code == 2, (code, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = lines[0]
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def assert_snapshot_dir(out: Path) -> Snapshot:
    """One Parquet file per table, each with the documented schema, and meta.json."""
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{t}.parquet" for t in TABLES] + ["meta.json"]
    )
    for t in TABLES:
        assert pq.read_schema(out / f"{t}.parquet").remove_metadata() == SCHEMAS[t], t
    meta = json.loads((out / "meta.json").read_text())
    assert meta["layout_root"] == "docker/registry/v2/"
    snap = Snapshot.read(out)
    assert meta["counts"] == snap.counts()
    return snap


# -- a demo registry -------------------------------------------------------------------------


@dataclass
class Demo:
    root: Path
    counts: dict[str, int]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    base = tmp_path_factory.mktemp("cli-demo")
    proc = regsweep("demo", str(base / "registry"), "--json", cwd=base)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (base / "registry" / "docker" / "registry" / "v2" / "blobs").is_dir()
    return Demo(base / "registry", summary["counts"])


def test_scan_with_clirunner(demo: Demo, tmp_path: Path) -> None:
    out = tmp_path / "snap"
    result = CliRunner().invoke(cli, ["scan", str(demo.root), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"snapshot written to {out}/" in result.stdout
    assert result.stderr == ""
    snap = assert_snapshot_dir(out)
    assert snap.counts() == demo.counts
    assert snap.meta["store"] == str(demo.root)


def test_scan_json_with_clirunner(demo: Demo, tmp_path: Path) -> None:
    out = tmp_path / "snap"
    result = CliRunner().invoke(cli, ["scan", str(demo.root), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["output"] == str(out)
    assert doc["meta"]["counts"] == demo.counts
    assert sorted(Path(f).name for f in doc["files"]) == sorted(
        [f"{t}.parquet" for t in TABLES] + ["meta.json"]
    )
    assert_snapshot_dir(out)


def test_scan_in_a_process(demo: Demo, tmp_path: Path) -> None:
    out = tmp_path / "snap"
    proc = regsweep("scan", f"file://{demo.root}", "-o", str(out), "--json", "--workers", "4")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bars when stderr is not a terminal
    doc = json.loads(proc.stdout)  # exactly one JSON document on stdout
    assert doc["meta"]["counts"] == demo.counts
    assert doc["meta"]["store"] == f"file://{demo.root}"
    snap = assert_snapshot_dir(out)
    assert snap.counts() == demo.counts

    text = regsweep("scan", str(demo.root), "-o", str(tmp_path / "text"))
    assert text.returncode == 0, text.stderr
    assert f"snapshot written to {tmp_path / 'text'}/" in text.stdout
    assert_snapshot_dir(tmp_path / "text")


def test_scan_with_the_registry_config(demo: Demo, tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "storage": {
                    "filesystem": {"rootdirectory": str(demo.root)},
                    "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}},
                },
                "http": {"addr": "127.0.0.1:5000"},
            }
        )
    )
    out = tmp_path / "snap"
    result = CliRunner().invoke(cli, ["scan", "--registry-config", str(config), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert assert_snapshot_dir(out).counts() == demo.counts

    both = regsweep("scan", str(demo.root), "--registry-config", str(config), "-o", str(out))
    assert_usage_error(both, "not both")
    missing = regsweep("scan", "--registry-config", str(tmp_path / "nope.yml"), "-o", str(out))
    assert_usage_error(missing, "no such file")


# -- STORE is wrong --------------------------------------------------------------------------


def test_store_without_a_layout(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    line = assert_usage_error(
        regsweep("scan", str(tmp_path / "empty"), "-o", str(tmp_path / "out")), NO_LAYOUT
    )
    assert "rootdirectory" in line
    assert not (tmp_path / "out").exists()


def test_store_that_is_the_v2_directory_itself(demo: Demo, tmp_path: Path) -> None:
    v2 = demo.root / "docker" / "registry" / "v2"
    line = assert_usage_error(regsweep("scan", str(v2), "-o", str(tmp_path / "out")), NO_LAYOUT)
    assert "STORE looks like the v2 directory itself" in line
    assert "point it at the directory that holds docker/" in line
    # The same through CliRunner (and one level up: docker/).
    result = CliRunner().invoke(cli, ["scan", str(demo.root / "docker"), "-o", str(tmp_path)])
    assert_usage_error(result, NO_LAYOUT, "docker/ directory")


def test_store_that_does_not_exist(tmp_path: Path) -> None:
    assert_usage_error(
        regsweep("scan", str(tmp_path / "no" / "such"), "-o", str(tmp_path / "out")),
        str(tmp_path / "no" / "such"),
    )
    assert_usage_error(
        regsweep("scan", f"file://{tmp_path}/no/such", "-o", str(tmp_path / "out")),
    )


@pytest.mark.parametrize(
    ("store", "needle"),
    [
        ("ftp://host/registry", "unknown STORE scheme 'ftp'"),
        ("gs://bucket", "unknown STORE scheme 'gs'"),
        ("s3://", "no bucket name"),
        ("azure://", "no container name"),
        ("file://", "has no path"),
    ],
)
def test_malformed_store(store: str, needle: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["scan", store, "-o", str(tmp_path / "out")])
    assert_usage_error(result, needle)


def test_missing_store(tmp_path: Path) -> None:
    assert_usage_error(regsweep("scan", "-o", str(tmp_path / "out")), "missing STORE")


@pytest.fixture(scope="module")
def unreachable_s3(tmp_path_factory: pytest.TempPathFactory) -> Proc:
    """One run against an S3 endpoint where nothing listens (shared: it is the slow one)."""
    out = tmp_path_factory.mktemp("unreachable") / "out"
    env = clean_env(
        AWS_ENDPOINT_URL="http://127.0.0.1:1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return regsweep("scan", "s3://bucket", "-o", str(out), env=env)


def test_unreachable_s3_endpoint(unreachable_s3: Proc) -> None:
    assert_usage_error(unreachable_s3, "s3://bucket", "cannot connect", "127.0.0.1:1")


def test_unreachable_s3_endpoint_fails_fast(unreachable_s3: Proc) -> None:
    assert unreachable_s3.seconds < 5


def test_s3_with_bad_credentials(moto_server_strict: str, tmp_path: Path) -> None:
    env = clean_env(
        AWS_ENDPOINT_URL=moto_server_strict,
        AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG1",
        AWS_SECRET_ACCESS_KEY="wrong",
        AWS_DEFAULT_REGION="us-east-1",
    )
    proc = regsweep("scan", "s3://bucket/pfx", "-o", str(tmp_path / "out"), env=env)
    assert_usage_error(proc, "s3://bucket/pfx", "access denied", "check credentials")
    assert proc.seconds < 10  # a 403 is not retried


# Only strings the SDK rejects before any request: nothing here may try to reach the internet.
@pytest.mark.parametrize("conn", ["nonsense", "=;="])
def test_azure_with_a_bad_connection_string(conn: str, tmp_path: Path) -> None:
    env = clean_env(AZURE_STORAGE_CONNECTION_STRING=conn)
    proc = regsweep("scan", "azure://container", "-o", str(tmp_path / "out"), env=env)
    assert_usage_error(proc, "azure://container")
    assert proc.seconds < 10


def test_azure_without_credentials(tmp_path: Path) -> None:
    proc = regsweep("scan", "azure://container", "-o", str(tmp_path / "out"))
    assert_usage_error(proc, "no Azure credentials", "AZURE_STORAGE_CONNECTION_STRING")


# -- help and docs ---------------------------------------------------------------------------


def command_paths(
    group: click.Group = cli, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        yield path, command
        if isinstance(command, click.Group):
            yield from command_paths(command, path)


ALL_COMMANDS = list(command_paths())


def test_there_are_commands() -> None:
    names = {" ".join(p) for p, _ in ALL_COMMANDS}
    assert {"scan", "demo", "gc", "apply", "quarantine", "quarantine list"} <= names


@pytest.mark.parametrize(
    "path", [p for p, _ in ALL_COMMANDS], ids=[" ".join(p) for p, _ in ALL_COMMANDS]
)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: "), result.stdout
    assert f" {' '.join(path)} " in result.stdout.splitlines()[0]
    command = dict(ALL_COMMANDS)[path]
    assert (command.help or "").strip(), f"regsweep {' '.join(path)} has no help text"


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in cli.commands:
        assert re.search(rf"^\s+{re.escape(name)}\b", result.stdout, re.MULTILINE), name


def test_readme_mentions_every_command() -> None:
    text = README.read_text()
    lines = text.splitlines()
    for path, _ in ALL_COMMANDS:
        head = f"regsweep {path[0]}"
        if len(path) == 1:
            assert head in text, f"README.md does not mention `{head}`"
        else:
            sub = path[-1]
            assert any(head in ln and re.search(rf"\b{re.escape(sub)}\b", ln) for ln in lines), (
                f"README.md does not mention `regsweep {' '.join(path)}`"
            )
