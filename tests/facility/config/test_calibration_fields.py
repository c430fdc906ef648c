"""Device calibration dates (``calibrated_on`` / ``calibration_due``) are read as dates."""

import datetime
import re
from pathlib import Path

import pytest

from facility.config.loader import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = (ROOT / "config.toml").read_text()


def _with_due(value: str) -> str:
    i = SHIPPED.index("[[devices]]")
    j = SHIPPED.index("\n", i)
    # the first device's own dates give way to the ones under test
    rest = re.sub(r"\ncalibrated_on = [^\n]*|\ncalibration_due = [^\n]*", "", SHIPPED[j:], count=2)
    return SHIPPED[:j] + f"\ncalibrated_on = \"2025-01-10\"\ncalibration_due = {value}" + rest


@pytest.mark.parametrize("value", ['"2026-01-15"', "2026-01-15"])
def test_quoted_or_toml_date_is_a_date(value):
    dev = parse_config(_with_due(value)).devices[0]
    assert dev.calibration_due == datetime.date(2026, 1, 15)
    assert dev.calibrated_on == datetime.date(2025, 1, 10)


def test_absent_is_none():
    dev = parse_config(SHIPPED).devices[-1]
    assert getattr(dev, "calibration_due", "missing") is None or isinstance(
        dev.calibration_due, datetime.date)


@pytest.mark.parametrize(("value", "words"), [
    ('"2026-02-30"', "must be a real date"),
    ('"15/01/2026"', 'must be a date "YYYY-MM-DD"'),
    ("3", "got an integer 3"),
])
def test_bad_date_is_one_line_with_its_key(value, words):
    with pytest.raises(ConfigError) as info:
        parse_config(_with_due(value))
    lines = [p for p in info.value.problems if "calibration_due" in p]
    assert len(lines) == 1 and words in lines[0]
