"""``[paging]`` flood and chattering keys: defaults, and one line per bad value.

A NaN compares false with everything, so ``flood_window_s = nan`` would silently switch
flood control off: check-config names the file, the key, the value and a value that works.
"""

from __future__ import annotations

import pytest

from facility.config.loader import ConfigError, parse_config
from tests.fixtures.config import facility_toml


def paging(**keys):
    """A config whose ``[paging]`` holds ``keys``, written as TOML text (``nan`` and ``inf``
    are TOML floats)."""
    lines = [f"{k} = {str(v).lower()}" for k, v in keys.items()]
    text = facility_toml() + "\n[paging]\n" + "\n".join(lines) + "\n"
    return parse_config(text, source="site.toml")


def test_the_defaults_are_isa_18_2s():
    pg = paging().paging
    assert (pg.flood_max, pg.flood_window_s, pg.min_repage_s) == (10, 600.0, 300.0)


@pytest.mark.parametrize("key,value,words", [
    ("flood_max", 0, "paging.flood_max=0 must be a whole number >= 1, e.g. 10 (ISA-18.2)"),
    ("flood_window_s", "nan",
     "paging.flood_window_s=nan must be a finite number of seconds > 0, e.g. 600"),
    ("flood_window_s", 0.0, "paging.flood_window_s=0.0 must be a finite number of seconds"),
    ("min_repage_s", "inf",
     "paging.min_repage_s=inf must be a finite number of seconds > 0, e.g. 300"),
    ("min_repage_s", -5.0, "paging.min_repage_s=-5.0 must be a finite number of seconds"),
])
def test_a_bad_value_is_one_line_naming_key_value_and_fix(key, value, words):
    with pytest.raises(ConfigError) as exc:
        paging(**{key: value})
    (line,) = [p for p in exc.value.problems if key in p]
    assert line.startswith("site.toml:") and words in line and "\n" not in line


def test_a_site_may_set_them():
    pg = paging(flood_max=20, flood_window_s=300.0, min_repage_s=900.0).paging
    assert (pg.flood_max, pg.flood_window_s, pg.min_repage_s) == (20, 300.0, 900.0)
