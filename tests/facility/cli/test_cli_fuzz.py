"""Every command of the ``facility`` group, with random bad arguments: never an internal error.

The commands are found by walking the click group (so a command added later is fuzzed too)
and run in-process through click's ``CliRunner`` with a seeded random choice of bad values
for each of their options and arguments: missing, binary and folder paths, garbage times,
negative, huge and non-finite numbers, empty strings, control characters and unknown
options. Whatever the mistake, the answer is a user error (exit 1, 2 or 3, or 0 where the
value happens to be acceptable), never exit 70 and never a traceback.

Commands that run until stopped (the service, the simulator, the demo, the TUI, the MQTT
nodes) are not fuzzed at random, since a random draw could be a valid start; each of them is
instead given mistakes that must fail before anything starts (``LONG_RUNNING`` below).
"""

from __future__ import annotations

import random
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from facility.cli import cli

HERE = Path(__file__).parent
MINIMAL = HERE.parent / "config" / "configs" / "minimal.toml"
SEED = 20261202
EXAMPLES = 8  # random argument sets per command

LONG_RUNNING = {"run", "demo", "tui", "simulate", "uplink", "central"}
"""Commands that serve until stopped: fuzzed only with mistakes that stop them at once."""


def commands(group: click.Group, prefix: tuple[str, ...] = ()):
    """Every leaf command of the group as (words, command), subgroups included."""
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


ALL = list(commands(cli))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Paths the fuzzer draws from: a valid config (its database not created), a broken one,
    a binary file, a folder and a path that does not exist."""
    from facility.config import load_config
    from tests.fixtures.sample_db import build

    d = tmp_path_factory.mktemp("fuzz")
    base = MINIMAL.read_text().replace("port = 15020", "port = 9")  # port 9: refused at once
    good = d / "good.toml"
    good.write_text(base + '\n[storage]\npath = "db/facility.db"\n', encoding="utf-8")
    (d / "db").mkdir()
    build(load_config(good), str(d / "db" / "facility.db"))
    nodb = d / "nodb.toml"
    nodb.write_text(base + '\n[storage]\npath = "db/none.db"\n', encoding="utf-8")
    broken = d / "broken.toml"
    broken.write_text("[facility\nid = 1\n", encoding="utf-8")
    binary = d / "binary.csv"
    binary.write_bytes(bytes(random.Random(SEED).randrange(256) for _ in range(512)))
    folder = d / "folder"
    folder.mkdir()
    return {"good": str(good), "nodb": str(nodb), "broken": str(broken), "binary": str(binary),
            "folder": str(folder), "missing": str(d / "missing" / "x.toml")}


def bad_values(files: dict[str, str]) -> list[str]:
    return ["", " ", "nan", "inf", "-inf", "-1", "0", "1e309", "99999999999999999999999",
            "-99999999999999999999", "1.5", "garbage", "2026-13-45", "2026-02-30T25:61",
            "yesterday", "1h30x", "\x1b[2J\x1b]0;owned\x07", "line\nbreak", "=cmd|' /C calc'!A0",
            "[/unbalanced]", "x" * 5000, "☃", "--", files["binary"], files["folder"],
            files["missing"], files["broken"], "/dev/null"]


def draw(cmd: click.Command, rnd: random.Random, files: dict[str, str]) -> list[str]:
    """One random, mostly bad, argument list for ``cmd``."""
    values = bad_values(files)
    args: list[str] = []
    for p in cmd.params:
        if isinstance(p, click.Argument):
            args.append(rnd.choice(values))
        elif p.name == "config_path":
            args += ["--config", rnd.choice([files["good"]] * 4 + [
                files["nodb"], files["broken"], files["binary"], files["folder"],
                files["missing"]])]
        elif p.is_flag:
            if rnd.random() < 0.5:
                args.append(p.opts[0])
        elif p.required or rnd.random() < 0.7:
            args += [p.opts[0], rnd.choice(values)]
    if rnd.random() < 0.1:
        args.append(rnd.choice(["--no-such-option", "-Z", "--config"]))
    return args


def invoke(words: tuple[str, ...], args: list[str]):
    result = CliRunner().invoke(cli, [*words, *args], catch_exceptions=True)
    shown = f"facility {' '.join(words)} {args!r}: exit {result.exit_code}\n{result.output}"
    return result, shown


def assert_user_error(result, shown: str) -> None:
    assert result.exit_code != 70, shown
    assert result.exit_code in (0, 1, 2, 3), shown
    assert "Traceback" not in result.output and "internal error" not in result.output, shown
    if result.exception is not None:  # CliRunner keeps what escaped: only an exit may
        assert isinstance(result.exception, SystemExit), (shown, repr(result.exception))


def test_the_fuzzer_sees_every_command():
    names = {" ".join(w) for w, _ in ALL}
    assert {"check-config", "alarms", "backtest", "ack", "export", "verify", "kpi",
            "hazmat receive", "audit verify"} <= names


@pytest.mark.timeout(120)
@pytest.mark.parametrize("words,cmd", [(w, c) for w, c in ALL if w[0] not in LONG_RUNNING],
                         ids=[" ".join(w) for w, _ in ALL if w[0] not in LONG_RUNNING])
def test_random_bad_arguments_are_user_errors(words, cmd, files):
    rnd = random.Random(f"{SEED}:{' '.join(words)}")
    for _ in range(EXAMPLES):
        result, shown = invoke(words, draw(cmd, rnd, files))
        assert_user_error(result, shown)


def long_running_mistakes(files: dict[str, str]) -> list[list[str]]:
    """Mistakes that stop a long-running command before it serves anything."""
    out = []
    for words, cmd in ALL:
        if words[0] not in LONG_RUNNING:
            continue
        for cfg in ("missing", "broken", "binary", "folder"):
            out.append([*words, "--config", files[cfg]])
        out.append([*words, "--no-such-option"])
    out += [["simulate", "--speed", v, "--config", files["good"]] for v in ("0", "-1", "nan", "inf")]
    out += [["simulate", "--scenario", "nope", "--config", files["good"]],
            ["simulate", "--seed", "x"], ["run", "--cycle-s", "x"], ["demo", "--seconds", "x"],
            ["tui", "--config", files["nodb"]]]  # tui: no database yet, exit 3 before the screen
    return out


@pytest.mark.timeout(120)
def test_long_running_commands_refuse_mistakes_before_starting(files):
    for argv in long_running_mistakes(files):
        result, shown = invoke(tuple(argv[:1]), argv[1:])
        assert_user_error(result, shown)
        assert result.exit_code != 0, shown


def test_the_internal_errors_of_the_issue_are_one_line(files, tmp_path):
    """``simulate --speed 0``, ``backtest --samples`` on a binary file (naming it) and an empty
    storage path: one line, exit 2."""
    result, shown = invoke(("simulate",), ["--speed", "0", "--config", files["good"]])
    assert result.exit_code == 2 and "--speed" in result.output, shown
    result, shown = invoke(("backtest",), ["--samples", files["binary"], "--config", files["good"]])
    assert result.exit_code == 2 and files["binary"] in result.output, shown
    assert len(result.output.strip().splitlines()) == 1, shown
    empty = tmp_path / "empty.toml"
    empty.write_text(MINIMAL.read_text() + '\n[storage]\npath = ""\n', encoding="utf-8")
    result, shown = invoke(("alarms",), ["--config", str(empty)])
    assert result.exit_code == 2 and "storage.path=''" in result.output, shown
