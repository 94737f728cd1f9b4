"""Settings of a scheduled run, from a configuration file, the environment and the command line.

Every setting has one name (``grace``), which is its key in the file (TOML, or YAML with the
same flat keys), its environment variable (``REGSWEEP_GRACE``) and its option (``--grace``).
Precedence, highest first: command-line option > environment variable > configuration file >
default. The file is ``--config FILE`` or ``REGSWEEP_CONFIG``. Relative paths in a file are
relative to the file's directory. Every error names the key (and, for YAML and TOML, the line)
and is a ConfigError (exit code 2).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from regsweep.durations import parse_duration
from regsweep.errors import UsageError

CONFIG_ENV = "REGSWEEP_CONFIG"
ENV_PREFIX = "REGSWEEP_"
MODES = ("quarantine", "delete")  # of gc.apply, defined here: config must not import gc
LOG_FORMATS = ("text", "json")
NEVER = ("never", "off", "none")


class ConfigError(UsageError):
    """A setting that cannot be used: ``where: key: what is wrong`` (exit code 2)."""


@dataclass(frozen=True)
class JobSettings:
    """Everything ``regsweep run`` needs, with units in the types. The defaults are safe: a
    24-hour grace, quarantine rather than delete, and the brakes of ``gc``."""

    store: str | None = None
    registry_config: str | None = None
    layout_root: str | None = None
    inventory: str | None = None  # list from this inventory report instead (ScanOptions)
    policy: str | None = None
    grace: timedelta = timedelta(hours=24)
    upload_grace: timedelta = timedelta(hours=168)
    delete_untagged: bool = False
    mode: str = "quarantine"
    max_delete_fraction: float = 0.5
    quarantine_retention: timedelta | None = timedelta(days=7)  # None: never purge
    report_dir: str | None = None
    metrics_file: str | None = None
    pushgateway: str | None = None
    log_format: str = "text"
    workers: int = 16
    dry_run: bool = False
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


# -- parsing one value ----------------------------------------------------------------------

Parser = Callable[[object], Any]


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _duration(value: object) -> timedelta:
    if not isinstance(value, str):
        raise ValueError("must be a duration string such as 24h, 7d or 1h30m")
    return parse_duration(value)


def _retention(value: object) -> timedelta | None:
    if isinstance(value, str) and value.strip().lower() in NEVER:
        return None
    return _duration(value)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("must be true or false")


def _fraction(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number from 0 to 1")
    try:
        f = float(value) if isinstance(value, int | float | str) else float("nan")
    except ValueError:
        f = float("nan")
    if not 0 <= f <= 1:
        raise ValueError("must be a number from 0 to 1")
    return f


def _workers(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a whole number from 1 to 256")
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= 256:
        raise ValueError("must be a whole number from 1 to 256")
    return n


def _choice(*allowed: str) -> Parser:
    def parse(value: object) -> str:
        if not isinstance(value, str) or value.strip().lower() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value.strip().lower()

    return parse


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Parser
    help: str
    path: bool = False  # relative to the config file's directory

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "store",
            _text,
            "Storage root: a path, s3://BUCKET[/PREFIX] or azure://CONTAINER[/PREFIX].",
            path=True,
        ),
        Setting(
            "registry_config",
            _text,
            "The registry's config.yml, whose storage section names the store (instead of store).",
            path=True,
        ),
        Setting("layout_root", _text, "Where docker/registry/v2/ starts, if a store holds both."),
        Setting(
            "inventory",
            _text,
            "List the store from this S3 or Azure inventory report instead: its manifest, or "
            "a folder ending in / for the newest report under it.",
            path=True,
        ),
        Setting("policy", _text, "Retention policy file (YAML or TOML).", path=True),
        Setting("grace", _duration, "Nothing touched more recently is removed (default 24h)."),
        Setting(
            "upload_grace", _duration, "Uploads started more recently are kept (default 168h)."
        ),
        Setting(
            "delete_untagged", _bool, "Also remove manifests no tag points to (default false)."
        ),
        Setting("mode", _choice(*MODES), "quarantine (default) or delete."),
        Setting(
            "max_delete_fraction",
            _fraction,
            "Refuse if more than this fraction of blobs or bytes would go (default 0.5).",
        ),
        Setting(
            "quarantine_retention",
            _retention,
            "Purge quarantine runs older than this, after a fresh scan (default 7d; never: keep).",
        ),
        Setting("report_dir", _text, "Write the Parquet report datasets here.", path=True),
        Setting(
            "metrics_file", _text, "Write Prometheus metrics here (textfile format).", path=True
        ),
        Setting("pushgateway", _text, "Push Prometheus metrics to this pushgateway URL."),
        Setting("log_format", _choice(*LOG_FORMATS), "text (default) or json, one object a line."),
        Setting("workers", _workers, "Parallel listing and reading threads (default 16)."),
        Setting("dry_run", _bool, "Only plan: change nothing in the store (default false)."),
    )
}


# -- reading a file -------------------------------------------------------------------------


@dataclass(frozen=True)
class FileValue:
    value: object
    line: int | None


def _toml_line(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*=", re.MULTILINE)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def read_config_file(path: str | Path) -> dict[str, FileValue]:
    """The file's settings, each with its line, unparsed. Raises ConfigError for a file that
    cannot be read or parsed, that is not a flat table, or that holds an unknown key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the configuration file: {e.strerror or e}") from e
    values: dict[str, FileValue] = {}
    if p.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML: {e}") from e
        for key, value in data.items():
            values[key] = FileValue(value, _toml_line(text, key))
    else:
        import yaml  # here: every command imports this module, few read a YAML file

        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {' '.join(str(e).split())}") from e
        if root is None:
            return {}
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError(f"{p}:{root.start_mark.line + 1}: expected a mapping of settings")
        for key_node, value_node in root.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{p}:{line}: a key must be a plain name")
            try:
                value = yaml.safe_load(yaml.serialize(value_node))
            except yaml.YAMLError as e:
                raise ConfigError(f"{p}:{line}: {key_node.value}: {e}") from e
            values[str(key_node.value)] = FileValue(value, line)
    for key, fv in values.items():
        if key not in SETTINGS:
            where = f"{p}:{fv.line}" if fv.line else str(p)
            known = ", ".join(SETTINGS)
            raise ConfigError(f"{where}: {key}: unknown setting (known: {known})")
    return values


# -- resolving ------------------------------------------------------------------------------


def _resolve_path(value: Any, base: Path) -> Any:
    if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
        return str(base / value)
    return value


def resolve_settings(
    options: Mapping[str, object | None],
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
    *,
    names: frozenset[str] | None = None,
) -> JobSettings:
    """Resolve every setting (or only ``names``): ``options`` (None = not given) over the
    environment over ``config_file`` (default: ``$REGSWEEP_CONFIG``) over the default.
    ``JobSettings.sources`` records where each value that is not a default came from."""
    env = os.environ if environ is None else environ
    path = config_file or env.get(CONFIG_ENV) or None
    file_values = read_config_file(path) if path else {}
    base = Path(path).resolve().parent if path else Path.cwd()
    for key in options:
        if key not in SETTINGS:
            raise ConfigError(f"{key}: unknown setting")
    resolved: dict[str, Any] = {}
    sources: dict[str, str] = {}
    levels: dict[str, int] = {}  # 3 option, 2 environment, 1 file
    for name, s in SETTINGS.items():
        if names is not None and name not in names:
            continue
        raw: object | None = options.get(name)
        where, level = f"option {s.option}", 3
        if raw is None and env.get(s.env, "").strip():
            raw, where, level = env[s.env], f"environment variable {s.env}", 2
        if raw is None and name in file_values:
            fv = file_values[name]
            raw, level = fv.value, 1
            where = f"{path}:{fv.line}" if fv.line else str(path)
        if raw is None:
            continue
        try:
            value = s.parse(raw)
        except ValueError as e:
            raise ConfigError(f"{where}: {name}: {e}") from e
        if level == 1 and s.path:
            value = _resolve_path(value, base)
        resolved[name] = value
        sources[name] = where
        levels[name] = level
    both = "store" in resolved and "registry_config" in resolved
    # Two ways to name the store: the one given with higher precedence wins.
    if both and levels["store"] != levels["registry_config"]:
        loser = min(("store", "registry_config"), key=lambda k: levels[k])
        del resolved[loser], sources[loser]
    if "store" in resolved and "registry_config" in resolved:
        raise ConfigError(
            f"store ({sources['store']}) and registry_config ({sources['registry_config']}): "
            "give one of them"
        )
    known = {f.name for f in fields(JobSettings)}
    return JobSettings(**{k: v for k, v in resolved.items() if k in known}, sources=sources)


__all__ = [
    "CONFIG_ENV",
    "SETTINGS",
    "ConfigError",
    "JobSettings",
    "Setting",
    "read_config_file",
    "resolve_settings",
]
