"""Every CLI command has --help text and exits 0 for it (sqlite-utils habit), and every
command and option of the README's "The command line" table exists: the table is the
stable interface users and scripts depend on."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from facility.cli import cli

README = Path(__file__).resolve().parents[3] / "README.md"


def _commands(group: click.Group, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


COMMANDS = list(_commands(cli))


def _readme_table() -> list[tuple[tuple[str, ...], set[str]]]:
    """(command path, options named) for each command of README "The command line".

    A row such as ``facility ack|reset ALARM --reason TEXT`` names two commands; words
    after ``facility`` are command names while the command reached so far is a group.
    """
    text = README.read_text(encoding="utf-8")
    section = text.split("## The command line", 1)[1].split("\n## ", 1)[0]
    rows = []
    for cell in re.findall(r"^\| `(facility [^`]*)` \|", section, re.M):
        words = cell.replace("\\|", "|").split()[1:]
        options = set(re.findall(r"--[a-z][a-z-]*", cell))
        paths: list[tuple[str, ...]] = [()]
        for word in words:
            group = cli if not paths[0] else _lookup(paths[0])
            if not isinstance(group, click.Group) or not re.fullmatch(r"[a-z][a-z|-]*", word):
                break
            paths = [p + (alt,) for p in paths for alt in word.split("|")]
        rows.extend((p, options) for p in paths)
    return rows


def _lookup(path: tuple[str, ...]) -> click.Command | None:
    cmd: click.Command | None = cli
    for name in path:
        cmd = cmd.commands.get(name) if isinstance(cmd, click.Group) else None
    return cmd


README_COMMANDS = _readme_table()


def test_the_readme_table_was_read():
    names = {" ".join(p) for p, _ in README_COMMANDS}
    assert len(names) >= 28, sorted(names)
    assert {"check-config", "audit verify", "hazmat check", "shelve", "return"} <= names


@pytest.mark.parametrize("path,options", README_COMMANDS,
                         ids=[" ".join(p) for p, _ in README_COMMANDS])
def test_every_readme_command_and_option_exists(path, options):
    cmd = _lookup(path)
    assert cmd is not None, f"README names `facility {' '.join(path)}`; the CLI has no such command"
    if isinstance(cmd, click.Group):
        return  # a group row ("facility hazmat stock|receive...") names its subcommands
    flags = {opt for p in cmd.params for opt in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
    missing = options - flags
    assert not missing, f"`facility {' '.join(path)}` lacks {sorted(missing)} named in the README"
    assert "--config" in flags  # every command takes --config FILE


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help(path, cmd):
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: cli {' '.join(path)} ")
    assert cmd.help.strip().splitlines()[0][:40] in " ".join(result.output.split())


def test_top_level_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = set(re.findall(r"^  ([a-z][a-z-]*)  ", result.output, re.M))
    assert listed == set(cli.commands), set(cli.commands) ^ listed
