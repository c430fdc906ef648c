"""Every CLI command has --help text and exits 0 for it (sqlite-utils habit)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from facility.cli import cli


def _commands(group: click.Group, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


COMMANDS = list(_commands(cli))


def test_stable_command_names_exist():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert "check-config" in names


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help(path, cmd):
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
