"""Settings: option > environment variable > configuration file > default, in the library and
through ``regsweep run`` and ``regsweep gc --config``; errors exit 2 and name the key (and the
line)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from regsweep.cli.main import cli
from regsweep.config import SETTINGS, ConfigError, JobSettings, read_config_file, resolve_settings


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_precedence_option_over_env_over_file_over_default(tmp_path: Path) -> None:
    config = tmp_path / "regsweep.toml"
    config.write_text('store = "/srv/registry"\ngrace = "1h"\nupload_grace = "2h"\nworkers = 3\n')
    env = {"REGSWEEP_GRACE": "5h", "REGSWEEP_UPLOAD_GRACE": "6h"}
    s = resolve_settings({"grace": "9h"}, env, config)
    assert s.grace == timedelta(hours=9)  # option beats environment and file
    assert s.upload_grace == timedelta(hours=6)  # environment beats file
    assert s.workers == 3  # file beats default
    assert s.max_delete_fraction == 0.5 and s.mode == "quarantine"  # defaults
    assert s.sources["grace"] == "option --grace"
    assert s.sources["upload_grace"] == "environment variable REGSWEEP_UPLOAD_GRACE"
    assert s.sources["workers"] == f"{config}:4"
    assert "mode" not in s.sources
    # The config file may come from REGSWEEP_CONFIG; --config wins over it.
    assert resolve_settings({}, {"REGSWEEP_CONFIG": str(config)}).workers == 3
    other = tmp_path / "other.yaml"
    other.write_text("workers: 7\n")
    assert resolve_settings({}, {"REGSWEEP_CONFIG": str(config)}, other).workers == 7
    assert resolve_settings({}, {}) == JobSettings()


def test_every_setting_is_an_option_and_documented() -> None:
    help_text = invoke("run", "--help").stdout
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name, s in SETTINGS.items():
        assert s.option in help_text and s.env in help_text, name
        assert f"`{name}`" in readme and s.env in readme, name


def test_a_store_named_with_higher_precedence_wins(tmp_path: Path) -> None:
    config = tmp_path / "regsweep.yaml"
    config.write_text("registry_config: /etc/docker/registry/config.yml\n")
    s = resolve_settings({"store": "s3://bucket"}, {}, config)
    assert s.store == "s3://bucket" and s.registry_config is None
    with pytest.raises(ConfigError, match="give one of them"):
        resolve_settings({"store": "/a", "registry_config": "/b"}, {}, None)


def test_relative_paths_in_a_file_are_relative_to_it(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "regsweep.yaml"
    config.parent.mkdir()
    config.write_text("store: data\npolicy: policy.yaml\nreport_dir: /abs/reports\n")
    s = resolve_settings({}, {}, config)
    assert s.store == str(tmp_path / "etc" / "data")
    assert s.policy == str(tmp_path / "etc" / "policy.yaml")
    assert s.report_dir == "/abs/reports"
    assert resolve_settings({}, {}, _write(tmp_path, "s.toml", 'store = "s3://b/p"')).store == (
        "s3://b/p"
    )


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.yaml", "store: /x\n\ngarce: 24h\n", r"a\.yaml:3: garce: unknown setting"),
        ("b.yaml", "store: /x\nworkers: many\n", r"b\.yaml:2: workers: must be a whole number"),
        ("c.toml", 'store = "/x"\n\nmode = "shred"\n', r"c\.toml:3: mode: must be one of"),
        ("d.toml", 'store = "/x"\ngrace = 24\n', r"d\.toml:2: grace: must be a duration"),
        ("e.yaml", "- store\n", r"e\.yaml:1: expected a mapping"),
        ("f.toml", "store = \n", r"f\.toml: not valid TOML"),
        ("g.yaml", "max_delete_fraction: 2\n", r"g\.yaml:1: max_delete_fraction: must be"),
        ("h.yaml", "delete_untagged: maybe\n", r"h\.yaml:1: delete_untagged: must be true"),
    ],
)
def test_config_errors_name_the_key_and_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(ConfigError, match=message):
        resolve_settings({}, {}, path)
    result = invoke("run", "--config", str(path))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert name in result.stderr


def test_bad_environment_and_option_values_exit_2(tmp_path: Path, demo: Path) -> None:
    result = invoke("run", "--store", str(demo), env={"REGSWEEP_GRACE": "soon"})
    assert result.exit_code == 2
    assert "environment variable REGSWEEP_GRACE: grace: not a duration" in result.stderr
    result = invoke("run", "--store", str(demo), "--workers", "0")
    assert result.exit_code == 2 and "option --workers: workers:" in result.stderr
    result = invoke("run", "--config", str(tmp_path / "missing.toml"))
    assert result.exit_code == 2 and "cannot read the configuration file" in result.stderr
    result = invoke("run")
    assert result.exit_code == 2 and "store: no store given" in result.stderr
    bad_policy = _write(tmp_path, "policy.yaml", "version: 1\npolicies: 3\n")
    result = invoke("run", "--store", str(demo), "--policy", str(bad_policy))
    assert result.exit_code == 2 and "policy.yaml" in result.stderr


def run_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = invoke("run", "--dry-run", "--json", *args, env=env)
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout)
    assert isinstance(obj, dict)
    return obj


def test_precedence_through_the_command_line(tmp_path: Path, demo: Path) -> None:
    config = _write(tmp_path, "regsweep.toml", f'store = "{demo}"\ngrace = "1h"\nworkers = 2\n')
    s = run_json("--config", str(config))["settings"]
    assert s["grace"] == {"value": 3600.0, "from": f"{config}:2"}
    assert s["upload_grace"] == {"value": 168 * 3600.0, "from": "default"}
    s = run_json(env={"REGSWEEP_CONFIG": str(config), "REGSWEEP_GRACE": "2h"})["settings"]
    assert s["grace"] == {"value": 7200.0, "from": "environment variable REGSWEEP_GRACE"}
    assert s["workers"]["value"] == 2
    s = run_json("--grace", "3h", env={"REGSWEEP_CONFIG": str(config), "REGSWEEP_GRACE": "2h"})
    assert s["settings"]["grace"] == {"value": 10800.0, "from": "option --grace"}
    assert s["dry_run"] is True
    env = {"REGSWEEP_DELETE_UNTAGGED": "true", "REGSWEEP_PUSHGATEWAY": "http://u:p@127.0.0.1:9"}
    result = invoke(
        "run", "--dry-run", "--json", "--config", str(config), "--keep-untagged", env=env
    )
    assert result.exit_code == 1  # the metrics step failed: nothing listens on port 9
    s = json.loads(result.stdout)
    assert s["failed_steps"] == ["metrics"]
    assert s["settings"]["delete_untagged"]["value"] is False
    # No password in the summary, nor in the error.
    assert s["settings"]["pushgateway"]["value"] == "http://***@127.0.0.1:9"
    assert "cannot push metrics to http://***@127.0.0.1:9" in s["steps"][-1]["error"]
    assert "u:p" not in result.output


def test_gc_reads_the_same_file_with_config(tmp_path: Path, demo: Path) -> None:
    config = _write(tmp_path, "regsweep.yaml", f"store: {demo}\ngrace: 1h\ndelete_untagged: true\n")

    def gc(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        result = invoke("gc", "--json", *args, env=env)
        assert result.exit_code == 0, result.output
        obj = json.loads(result.stdout)
        assert obj["applied"] is False
        return dict(obj["settings"])

    assert gc("--config", str(config)) == {
        "delete_untagged": True,
        "grace": 3600.0,
        "upload_grace": 168 * 3600.0,
        "max_delete_fraction": 0.5,
    }
    assert gc("--config", str(config), env={"REGSWEEP_GRACE": "2h"})["grace"] == 7200.0
    assert gc("--config", str(config), "--grace", "3h", env={"REGSWEEP_GRACE": "2h"})["grace"] == (
        10800.0
    )
    # Without --config, gc does not read the environment: it is unchanged.
    assert gc(str(demo), env={"REGSWEEP_GRACE": "2h"})["grace"] == 86400.0
    # STORE on the command line replaces the file's store.
    assert gc("--config", str(config), str(demo))["delete_untagged"] is True
    bad = _write(tmp_path, "bad.yaml", f"store: {demo}\nmode: shred\n")
    result = invoke("gc", "--config", str(bad))
    assert result.exit_code == 2 and "bad.yaml:2: mode: must be one of" in result.stderr


def test_read_config_file_keeps_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "# comment\nstore: /x\n\nworkers: 4\n")
    values = read_config_file(path)
    assert values["store"].line == 2 and values["workers"].line == 4
    assert read_config_file(_write(tmp_path, "empty.yaml", "")) == {}
