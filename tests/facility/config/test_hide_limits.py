"""The ``[alarms]`` bounds on hiding an alarm: finite, positive, one line naming the fix.

A NaN maximum would compare false against every duration and let any shelve, suppression or
out-of-service through (docs/ARCHITECTURE.md "Critical alarms"), so check-config refuses it.
"""

from __future__ import annotations

import pytest

from facility.config import ConfigError, parse_config
from tests.fixtures.config import facility_toml, zone

KEYS = ("max_shelve_s", "max_shelve_critical_s", "max_suppress_s", "max_oos_critical_s")
BAD = [("nan", "nan"), ("inf", "inf"), ("0", "0.0"), ("-60", "-60.0")]


def _text(key: str, raw: str) -> str:
    text = facility_toml(zones=[zone("Z1", iso_class=7)], alarms={"recovery_s": 1200})
    return text.replace("recovery_s = 1200", f"recovery_s = 1200\n{key} = {raw}")


def test_defaults_bound_every_hide():
    a = parse_config(facility_toml(zones=[zone("Z1", iso_class=7)])).alarms
    assert (a.max_shelve_s, a.max_shelve_critical_s, a.max_suppress_s,
            a.max_oos_critical_s) == (28800, 3600, 28800, 3600)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("raw,shown", BAD, ids=[b[0] for b in BAD])
def test_a_bound_that_is_not_a_positive_finite_number_is_one_line(key, raw, shown):
    text = _text(key, raw)
    assert f"{key} = {raw}" in text
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="config.toml")
    (problem,) = [p for p in info.value.problems if key in p]
    assert "\n" not in problem and problem.startswith("config.toml:")
    assert problem.endswith(f"alarms.{key}={shown} must be a finite number of seconds > 0"
                            f" (a hidden alarm always has an end), e.g."
                            f" {3600 if 'critical' in key else 28800}")


def test_a_sensible_bound_is_taken():
    cfg = parse_config(_text("max_oos_critical_s", "1800"))
    assert cfg.alarms.max_oos_critical_s == 1800.0
