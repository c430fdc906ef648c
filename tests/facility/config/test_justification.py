"""A delay on a GMP pressure alarm (or a gas alarm) needs a ``justification`` in the config.

Annex 1 §4.16: a delay before a pressure alarm in a GMP room must be justified, so
check-config refuses an ``on_delay_s`` without one, naming the key and the fix; with a
justification the same limit is accepted and kept.
"""

from __future__ import annotations

import pytest

from facility.config.loader import ConfigError, parse_config

HEAD = """
[facility]
id = "t-just"

[[sites]]
id = "S"
timezone = "Asia/Hong_Kong"

[[zones]]
id = "GMP"
site = "S"
gmp_grade = "C"
reference = "ambient"
min_dp_pa = 10

[[zones]]
id = "ISO"
site = "S"
iso_class = 7
"""


def device(zone: str | None, quantity: str, limit: str, unit: str = "Pa") -> str:
    zone_line = f'zone = "{zone}"\n' if zone else ""
    measures = 'measures = "GMP - ambient"\n' if quantity == "pressure_diff" else ""
    return f"""
[[devices]]
id = "D-1"
site = "S"
{zone_line}host = "127.0.0.1"
port = 15020
[[devices.points]]
name = "p"
table = "holding"
address = 0
type = "float32"
unit = "{unit}"
quantity = "{quantity}"
{measures}[devices.points.limits.action_low]
{limit}
"""


def problems(text: str) -> list[str]:
    try:
        parse_config(text, source="config.toml")
    except ConfigError as exc:
        return exc.problems
    return []


GMP_PRESSURE = ('config.toml:{line}:devices[0].points[0].limits.action_low.on_delay_s: a delay on'
                ' a GMP pressure alarm needs a justification (Annex 1 4.16); add justification ='
                ' "..."')


def _line(text: str, key: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith(key))


def test_delay_on_gmp_pressure_alarm_without_justification_is_an_error():
    text = HEAD + device("GMP", "pressure_diff", "limit = 10.0\non_delay_s = 30")
    assert problems(text) == [GMP_PRESSURE.format(line=_line(text, "on_delay_s"))]


def test_delay_on_gmp_pressure_alarm_with_justification_passes():
    text = HEAD + device("GMP", "pressure_diff", 'limit = 10.0\non_delay_s = 30\n'
                         'justification = "airlock door cycle: 30 s purge, SOP-114"')
    cfg = parse_config(text)
    spec = cfg.devices[0].points[0].limits["action_low"]
    assert (spec.on_delay_s, spec.justification) == (30.0, "airlock door cycle: 30 s purge, SOP-114")


@pytest.mark.parametrize("delay", ["0.5", "1", "3600"])
def test_any_positive_delay_needs_it(delay):
    text = HEAD + device("GMP", "pressure_diff", f"limit = 10.0\non_delay_s = {delay}")
    assert len(problems(text)) == 1


def test_no_delay_needs_no_justification():
    text = HEAD + device("GMP", "pressure_diff", "limit = 10.0\non_delay_s = 0\noff_delay_s = 30")
    assert problems(text) == []


@pytest.mark.parametrize("zone", ["ISO", None])
def test_pressure_outside_gmp_rooms_may_be_delayed(zone):
    text = HEAD + device(zone, "pressure_diff", "limit = 10.0\non_delay_s = 30")
    assert problems(text) == []


def test_other_quantities_in_gmp_rooms_may_be_delayed():
    text = HEAD + device("GMP", "temperature", "limit = 18.0\non_delay_s = 300", unit="degC")
    assert problems(text) == []


@pytest.mark.parametrize("zone", ["ISO", "GMP", None])
def test_delay_on_a_gas_alarm_needs_it_in_any_room(zone):
    text = HEAD + device(zone, "gas_conc", "limit = 19.5\non_delay_s = 10", unit="%")
    assert problems(text) == [
        f"config.toml:{_line(text, 'on_delay_s')}:devices[0].points[0].limits.action_low."
        "on_delay_s: a delay on a gas alarm needs a justification (Annex 1 4.16); add"
        ' justification = "..."']
    ok = HEAD + device(zone, "gas_conc", 'limit = 19.5\non_delay_s = 10\n'
                       'justification = "detector relay filter"', unit="%")
    assert problems(ok) == []


def test_each_delayed_limit_is_named():
    text = HEAD + device("GMP", "pressure_diff", "limit = 10.0\non_delay_s = 30") + """
[devices.points.limits.alert_low]
limit = 12.0
on_delay_s = 5
"""
    # on_delay_s is written twice: each line names the one of its own table
    found = problems(text)
    lines = [i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("on_delay_s")]
    assert [p.split(": ")[0] for p in found] == [
        f"config.toml:{lines[0]}:devices[0].points[0].limits.action_low.on_delay_s",
        f"config.toml:{lines[1]}:devices[0].points[0].limits.alert_low.on_delay_s"]
