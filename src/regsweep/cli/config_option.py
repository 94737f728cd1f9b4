"""``--config FILE`` for commands other than ``run`` (``regsweep gc --config FILE``).

``@config_option(GC_SETTINGS)``, placed right below ``@click.command``, adds ``--config``. When
it is given, every mapped parameter the command line left at its default is filled from the
environment (``REGSWEEP_<NAME>``) or the file, in that order: option > environment > file >
default, as for ``regsweep run``. Without ``--config`` the command is unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from regsweep.config import CONFIG_ENV, resolve_settings

F = TypeVar("F", bound=Callable[..., Any])

# gc's parameter name -> setting name. ``dry_run``, ``report_dir`` and ``quarantine_retention``
# do not apply to gc: it only applies with an explicit --apply.
GC_SETTINGS: dict[str, str] = {
    "store": "store",
    "registry_config": "registry_config",
    "layout_root": "layout_root",
    "inventory": "inventory",
    "policy_file": "policy",
    "grace": "grace",
    "upload_grace": "upload_grace",
    "delete_untagged": "delete_untagged",
    "max_delete_fraction": "max_delete_fraction",
    "mode": "mode",
    "workers": "workers",
    "metrics_file": "metrics_file",
    "pushgateway": "pushgateway",
}
_STORE = {"store", "registry_config"}


def fill_from_config(
    config_file: str, params: Mapping[str, str], kwargs: dict[str, Any], given: set[str]
) -> dict[str, Any]:
    """``kwargs`` with the parameters not in ``given`` filled from the environment and the
    file. Raises ConfigError naming the key."""
    names = {params[p] for p in params if p not in given}
    if given & _STORE:
        names -= _STORE  # STORE on the command line: neither of the file's stores applies
    settings = resolve_settings({}, config_file=config_file, names=frozenset(names))
    out = dict(kwargs)
    for param, name in params.items():
        if name in names and name in settings.sources:
            out[param] = getattr(settings, name)
    return out


def config_option(params: Mapping[str, str]) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, config_file: str | None = None, **kwargs: Any) -> Any:
            if config_file:
                ctx = click.get_current_context()
                given = {
                    p
                    for p in params
                    if ctx.get_parameter_source(p) not in (None, ParameterSource.DEFAULT)
                }
                kwargs = fill_from_config(config_file, params, kwargs, given)
            return fn(*args, **kwargs)

        run = click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            help="Read settings from this file (TOML or YAML, as for `regsweep run`) and from "
            f"REGSWEEP_<NAME> variables; options given here win. (Unlike run, not {CONFIG_ENV}.)",
        )(run)
        return run  # type: ignore[return-value]

    return decorate
