"""Configuration: the shipped file validates; each broken file fails with its own words."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from facility.config.loader import ConfigError, load_config, parse_config

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
BROKEN = sorted((HERE / "configs" / "broken").glob("*.toml"))


def test_shipped_config_is_valid_and_large_enough():
    cfg = load_config(ROOT / "config.toml")
    assert {s.id for s in cfg.sites} == {"MEC", "MARS"}
    assert all(s.timezone == "Asia/Hong_Kong" for s in cfg.sites)
    assert len(cfg.devices) >= 30
    assert all(z.area_m2 for z in cfg.zones)
    assert cfg.alarms.alert_fraction is not None
    assert len(cfg.sha256) == 64


def test_there_are_at_least_53_broken_configs():
    assert len(BROKEN) >= 53


def _expect(path: Path) -> tuple[str, bool]:
    """The words a broken file's error must contain, and whether only check-config (which
    also knows profile points and the gas table) can find it."""
    lines = path.read_text(encoding="utf-8").lstrip("\ufeff").splitlines()
    return lines[0].removeprefix("# expect: "), lines[1].startswith("# found by: check-config")


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_config_names_its_problem(path):
    expect, later = _expect(path)
    if later:
        parse_config(path.read_text(), source="config.toml")  # the file itself is well formed
        return
    with pytest.raises(ConfigError) as info:
        parse_config(path.read_text(encoding="utf-8"), source="config.toml")
    problems = info.value.problems
    assert any(expect in p for p in problems), problems
    for p in problems:
        assert "\n" not in p and p.startswith("config.toml:"), p
        assert re.match(r"^config\.toml:\d+:", p), f"no line number: {p}"


@pytest.fixture(scope="module")
def check_config():
    """``facility check-config --config FILE`` in-process: (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from facility.cli import cli

    def run(path: Path):
        r = CliRunner().invoke(cli, ["check-config", "--config", str(path)])
        return r.exit_code, r.stdout, r.stderr

    return run


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_check_config_refuses_each_broken_file_in_one_line(path, check_config, tmp_path):
    expect, _ = _expect(path)
    cfg = tmp_path / "config.toml"
    cfg.write_bytes(path.read_bytes())
    code, out, err = check_config(cfg)
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err and "internal error" not in err
    lines = [ln for ln in err.splitlines() if not ln.startswith("warning: ")]
    assert any(expect in ln for ln in lines), err
    for ln in lines:  # one line per problem, each naming the file, its line and the key
        assert re.match(rf"^{re.escape(str(cfg))}:\d+: ?\S", ln), ln


LATE = [p for p in BROKEN if _expect(p)[1]]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", LATE, ids=[p.stem for p in LATE])
def test_run_refuses_what_check_config_refuses(path, tmp_path):
    """``facility run`` starts nothing on a file check-config refuses (a cabinet exhaust that
    is no point would never be monitored)."""
    from click.testing import CliRunner

    from facility.cli import cli

    expect, _ = _expect(path)
    cfg = tmp_path / "config.toml"
    cfg.write_bytes(path.read_bytes())
    r = CliRunner().invoke(cli, ["run", "--headless", "--config", str(cfg)])
    assert r.exit_code == 2 and expect in r.stderr, (r.exit_code, r.output)
    assert not (tmp_path / "var").exists()  # no database was created


def test_every_rule_is_declared_once_for_every_key():
    """FIELD_RULES has an entry for each number and text key of every section (dates,
    booleans and keys holding sections excepted), and no entry for a key that is gone."""
    import dataclasses
    import typing

    from facility.config import schema
    from facility.config.checks import FIELD_RULES, Num, Text

    sections = [c for c in vars(schema).values()
                if dataclasses.is_dataclass(c) and c.__module__ == schema.__name__]
    missing = []
    for cls in sections:
        hints = typing.get_type_hints(cls)
        rules = FIELD_RULES.get(cls, {})
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal"):
                continue
            flat = repr(hints[f.name])
            scalar = any(t in flat for t in ("float", "int", "str"))
            if scalar and "LimitSpec" not in flat and "Point" not in flat and f.name not in rules:
                missing.append(f"{cls.__name__}.{f.name}")
        for name, rule in rules.items():
            assert name in {f.name for f in dataclasses.fields(cls)}, f"{cls.__name__}.{name}"
            assert isinstance(rule, (Num, Text))
    assert missing == []


@pytest.mark.parametrize("value,words", [
    ("nan = 65535", None), ("nan = [65535, 32767]", None),
    ('nan = "x"', "must be an integer"), ("nan = 1.5", "must be an integer")])
def test_nan_sentinel_is_a_number_or_a_list(value, words):
    text = (HERE / "configs" / "minimal.toml").read_text() + value + "\n"
    if words is None:
        pt = parse_config(text).devices[0].points[0]
        assert pt.nan == tuple(int(v) for v in re.findall(r"\d+", value))
    else:
        with pytest.raises(ConfigError) as info:
            parse_config(text)
        assert words in info.value.problems[0]


def test_bom_is_named_when_loading_a_file(tmp_path):
    f = tmp_path / "config.toml"
    f.write_bytes(b"\xef\xbb\xbf" + (HERE / "configs" / "minimal.toml").read_bytes())
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert "byte-order mark (BOM)" in info.value.problems[0]
    f.write_bytes(b"[facility]\nid = \"caf\xe9\"\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert info.value.problems == [f"{f}:2: is not UTF-8 (byte 0xe9); save the file as UTF-8"]


def test_every_problem_is_reported_not_just_the_first():
    text = (HERE / "configs" / "minimal.toml").read_text()
    text = text.replace("iso_class = 5", "iso_class = 12").replace("port = 15020", "port = 70000")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    joined = "\n".join(info.value.problems)
    assert "iso_class" in joined and "port" in joined


def test_line_number_given_for_a_unique_key():
    text = (HERE / "configs" / "minimal.toml").read_text().replace("iso_class = 5", "isoclass = 5")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("isoclass"))
    assert info.value.problems[0].startswith(f"config.toml:{line}:")


def test_check_config_cli_exit_codes(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((HERE / "configs" / "broken" / "typo_key.toml").read_text())
    run = subprocess.run([sys.executable, "-m", "facility", "check-config", "--config", str(bad)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2
    assert "did you mean 'iso_class'" in run.stderr
    assert "Traceback" not in run.stderr
    ok = subprocess.run([sys.executable, "-m", "facility", "check-config"],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout


def test_missing_config_file_is_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "facility", "check-config", "--config",
                          str(tmp_path / "nope.toml")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "file not found" in run.stderr
