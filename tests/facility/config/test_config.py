"""Configuration: the shipped file validates; each broken file fails with its own words."""

from __future__ import annotations

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


def test_there_are_at_least_15_broken_configs():
    assert len(BROKEN) >= 15


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_config_names_its_problem(path):
    text = path.read_text()
    expect = text.splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="config.toml")
    problems = info.value.problems
    assert any(expect in p for p in problems), problems
    for p in problems:
        assert "\n" not in p and p.startswith("config.toml:"), p


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
