"""Every option of every command says what it does in --help."""

import click

from regsweep.cli.main import cli


def _commands(cmd: click.Command, path: list[str]) -> list[tuple[str, click.Command]]:
    if isinstance(cmd, click.Group):
        out = []
        for name, sub in cmd.commands.items():
            out += _commands(sub, [*path, name])
        return out
    return [(" ".join(path), cmd)]


def test_every_option_has_help_text() -> None:
    missing = [
        f"{name} {p.opts[0]}"
        for name, cmd in _commands(cli, [])
        for p in cmd.params
        if isinstance(p, click.Option) and not p.help
    ]
    assert missing == []
