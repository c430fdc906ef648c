"""How a reading reads: significant digits by magnitude, 0/1 points as words, local time."""

from __future__ import annotations

import math

import pytest

from facility.domain.display import (
    fmt_limit,
    fmt_number,
    fmt_value,
    format_number,
    format_value,
    local_time,
    point_words,
)

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


# ---- the one format of the screens: fmt_value / fmt_limit --------------------------------

@pytest.mark.parametrize("value,unit,quantity,name,text", [
    (7140.0, "count/m3", "particle_conc", None, "7 140 /m³"),
    (27000.0, "count/m3", "particle_conc", None, "27 000 /m³"),  # never "27k"
    (10200.0, "count/m3", "particle_conc", None, "10 200 /m³"),  # never "10.2k"
    (3520000.0, "count/m3", "particle_conc", None, "3 520 000 /m³"),
    (832.0, "count/m3", "particle_conc", None, "832 /m³"),  # never "832.00"
    (412.0, "count", "particle_count", None, "412 counts"),
    (0.004, "ppm", "gas_conc", None, "0.004 ppm"),
    (0.005, "ppm", "gas_exposure", None, "0.005 ppm"),
    (12.34, "Pa", "pressure_diff_zone", None, "+12.3 Pa"),
    (-4.0, "Pa", "pressure_diff", None, "-4 Pa"),
    (0.0, "Pa", "pressure_diff", None, "0 Pa"),
    (21.46, "°C", "temperature", None, "21.5 °C"),
    (1.0, "", "door", None, "OPEN"),
    (0.0, "", "door", None, "closed"),
    (1.0, "", "status", "MEC-PC-01.flow_fault", "FAULT"),
    (0.0, "", "status", "MEC-PC-01.laser_fault", "ok"),
    (1.0, "", "status", "MEC-GD-02.fault", "FAULT"),
    (0.0, "", "comm", "MEC-GD-01.comm_ok", "FAULT"),
    (1.0, "", "gas_alarm", None, "ALARM"),
    (None, "ppm", "gas_conc", None, "no reading"),
])
def test_fmt_value(value, unit, quantity, name, text):
    assert fmt_value(value, unit, quantity, name=name) == text


def test_fmt_number_groups_only_the_integer_part():
    assert fmt_number(1234.5) == "1 234" and fmt_number(-1234567.0) == "-1 234 567"
    assert fmt_number(999.96) == "1 000" and fmt_number(0.00123) == "0.00123"
    assert fmt_number(12.3, signed=True) == "+12.3" and fmt_number(0.0, signed=True) == "0"
    assert fmt_number(7140.0, sep="\u202f") == "7\u202f140"  # a report may ask for a thin space


@pytest.mark.parametrize("limits,unit,quantity,text", [
    ({"alert_high": 7140.0, "action_high": 10200.0}, "count/m3", "particle_conc",
     "alert 7 140 / action 10 200 /m³"),
    ({"alert_high": 0.005, "action_high": 0.01}, "ppm", "gas_conc",
     "alert 0.005 / action 0.01 ppm"),  # arsine set points, never "0.01 / 0.01"
    ({"action_high": 0.005}, "ppm", "gas_exposure", "action 0.005 ppm"),  # never "AH0"
    ({"action_low": 18.0, "alert_low": 19.0, "alert_high": 23.0, "action_high": 24.0}, "°C",
     "temperature", "alert 19–23 / action 18–24 °C"),
    ({"action_low": 10.0}, "Pa", "pressure_diff_zone", "action min +10 Pa"),
    ({"action_high": -10.0}, "Pa", "pressure_diff_zone", "action max -10 Pa"),
    ({"alert_low": 12.0, "action_low": 10.0}, "Pa", "pressure_diff", "alert min +12 / action min +10 Pa"),
    ({"action_high": 0.5}, "", "door", "action when OPEN"),  # never "AH0.5"
    ({"action_high": 0.5}, "", "gas_alarm", "action when ALARM"),
    ({}, "Pa", "pressure_diff", ""),
])
def test_fmt_limit(limits, unit, quantity, text):
    assert fmt_limit(limits, unit, quantity) == text


def test_fmt_limit_of_a_status_point_by_name():
    assert fmt_limit({"action_low": 0.5}, "", "comm", name="X.comm_ok") == "action when FAULT"
    assert fmt_limit({"action_high": 0.5}, "", "status", name="X.laser_fault") == \
        "action when FAULT"
