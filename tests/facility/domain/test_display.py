"""How a reading reads: significant digits by magnitude, 0/1 points as words, local time."""

from __future__ import annotations

import math

import pytest

from facility.domain.display import format_number, format_value, local_time, point_words

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC


@pytest.mark.parametrize("value,unit,quantity,text", [
    (0.004, "ppm", "gas_conc", "0.004 ppm"),  # arsine: never "0.00"
    (0.005, "ppm", "gas_exposure", "0.005 ppm"),
    (0.0123, "ppm", "gas_conc", "0.0123 ppm"),
    (0.00004, "ppm", "gas_conc", "0.00004 ppm"),  # never 4e-05
    (35200.0, "count/m3", "particle_conc", "35200 count/m3"),  # never 3.52e+04
    (3520.4, "count/m3", "particle_conc", "3520 count/m3"),
    (12.34, "Pa", "pressure_diff", "12.3 Pa"),
    (-12.5, "Pa", "pressure_diff_zone", "-12.5 Pa"),
    (9.96, "Pa", "pressure_diff", "9.96 Pa"),
    (15.0, "Pa", "pressure_diff", "15 Pa"),
    (0.0, "Pa", "pressure_diff", "0 Pa"),
    (-0.0001, "", "", "-0.0001"),
    (21.0, "°C", "temperature", "21 °C"),
    (1.0, "", "door", "OPEN"),
    (0.0, "", "door", "closed"),
    (1.0, "", "gas_alarm", "ALARM"),
    (0.0, "", "gas_alarm", "normal"),
    (1.0, "", "status", "ALARM"),
    (0.0, "", "comm", "NO ANSWER"),
    (1.0, "", "comm", "answering"),
    (120.0, "s", "status", "120 s"),  # a status with a unit is a number (records_lost)
    (None, "ppm", "gas_conc", "no reading"),
    (math.nan, "Pa", "pressure_diff", "no reading"),
    (math.inf, "", "", "no reading"),
])
def test_format_value(value, unit, quantity, text):
    assert format_value(value, unit, quantity) == text


def test_a_value_alone_reads_as_a_number():
    assert format_value(0.01) == "0.01" and format_value(0.005) != format_value(0.01)


def test_rounding_to_the_next_decade_keeps_three_digits():
    assert format_number(9.996) == "10" and format_number(0.0009996) == "0.001"


def test_local_time_has_the_site_offset():
    assert local_time(T0, "Asia/Hong_Kong") == "2023-11-15 06:13:20 +08:00"
    assert local_time(T0, "UTC") == "2023-11-14 22:13:20 +00:00"
    assert local_time(T0, "Not/AZone") == "2023-11-14 22:13:20 +00:00"  # a typo never crashes
    assert local_time(None, "UTC") == ""


@pytest.mark.parametrize("name,quantity,kw,words", [
    ("pc_0_5um", "particle_conc", {"size_um": 0.5}, "particles ≥0.5 µm"),
    ("count_5_0um", "particle_count", {"size_um": 5.0}, "particle count ≥5 µm per record"),
    ("dp_cascade", "pressure_diff_zone", {}, "differential pressure"),
    ("conc", "gas_conc", {"gas": "arsine"}, "arsine concentration"),
    ("twa_8h", "gas_exposure", {"gas": "arsine"}, "arsine 8-h TWA exposure"),
    ("stel_15min", "gas_exposure", {"gas": "phosphine"}, "phosphine 15-min STEL exposure"),
    ("alarm_high", "gas_alarm", {"gas": "silane"}, "silane detector high alarm"),
    ("comm_ok", "comm", {}, "communication"),
    ("loop_lag_s", "health", {}, "event-loop lag"),
    ("flow_fault", "status", {}, "flow fault"),
    ("humidity", "humidity", {}, "relative humidity"),
])
def test_point_words(name, quantity, kw, words):
    assert point_words(name, quantity, **kw) == words
