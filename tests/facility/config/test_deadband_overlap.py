"""Deadbands must not overlap: ``L_high - D_high > L_low + D_low`` for every high/low pair.

docs/ARCHITECTURE.md "Where limits come from": otherwise a value can sit where the high
alarm has not cleared and the low alarm has already raised, so both are active at once.
The check applies to a point's explicit limits (check-config) and to the merged set that
rule compilation builds from the standard, site defaults and explicit values, where the
problem names both sources.
"""

from __future__ import annotations

import pytest

from alarms.rules import RulePoint, compile_rules
from facility.config.checks import check_order
from facility.config.loader import ConfigError, parse_config
from facility.config.schema import LimitSpec

HEAD = """
[facility]
id = "t-deadband"

[[sites]]
id = "S"
timezone = "Asia/Hong_Kong"

[[devices]]
id = "TH-1"
site = "S"
host = "127.0.0.1"
port = 15020
[[devices.points]]
name = "t"
table = "holding"
address = 0
type = "float32"
unit = "degC"
quantity = "temperature"
"""


def limits_toml(**limits: tuple[float, float]) -> str:
    return "".join(f"[devices.points.limits.{name}]\nlimit = {lim}\ndeadband = {db}\n"
                   for name, (lim, db) in limits.items())


def problems(text: str) -> list[str]:
    try:
        parse_config(text, source="config.toml")
    except ConfigError as exc:
        return exc.problems
    return []


PATH = "devices[0].points[0].limits"
LINE = 21  # the [devices.points.limits.alert_high] table of HEAD + limits_toml


def test_overlapping_deadbands_are_an_error_naming_both_limits():
    # 10 - 3 = 7 is not above 5 + 2 = 7: the bands touch
    text = HEAD + limits_toml(alert_high=(10.0, 3.0), alert_low=(5.0, 2.0))
    assert problems(text) == [
        f"config.toml:{LINE}:{PATH}.alert_high: alert_high=10.0 minus deadband 3.0 ({PATH}) must stay"
        f" above alert_low=5.0 plus deadband 2.0 ({PATH})"]


def test_bands_just_apart_pass():
    text = HEAD + limits_toml(alert_high=(10.0, 2.5), alert_low=(5.0, 2.0))  # 7.5 > 7
    assert problems(text) == []


@pytest.mark.parametrize("high,low", [
    ((10.0, 5.0), (5.0, 0.0)),  # the high band alone reaches the low limit
    ((10.0, 0.0), (5.0, 5.0)),  # the low band alone reaches the high limit
    ((10.0, 6.0), (5.0, 0.5)),
])
def test_each_deadband_counts(high, low):
    text = HEAD + limits_toml(action_high=high, action_low=low)
    found = problems(text)
    assert len(found) == 1 and "action_high=10.0 minus deadband" in found[0], found


BASE = dict(action_low=(0.0, 0.0), alert_low=(5.0, 0.0), alert_high=(10.0, 0.0),
            action_high=(15.0, 0.0))


@pytest.mark.parametrize("changed,pair", [
    (dict(alert_high=(10.0, 5.0)), ("alert_high", "alert_low")),  # 5 > 5
    (dict(action_low=(0.0, 10.0)), ("alert_high", "action_low")),  # 10 > 10
    (dict(action_high=(15.0, 10.0)), ("action_high", "alert_low")),  # 5 > 5
    (dict(action_low=(0.0, 6.0), action_high=(15.0, 9.0)), ("action_high", "action_low")),
])
def test_every_high_low_pair_is_checked(changed, pair):
    assert problems(HEAD + limits_toml(**BASE)) == []
    found = problems(HEAD + limits_toml(**(BASE | changed)))
    assert len(found) == 1, found
    hi, lo = pair
    assert f"limits.{hi}: {hi}=" in found[0] and f"must stay above {lo}=" in found[0]


def _specs(**limits: tuple[float, float]) -> dict[str, LimitSpec]:
    return {n: LimitSpec(limit=lim, deadband=db) for n, (lim, db) in limits.items()}


@pytest.mark.parametrize("hi_db,lo_db,ok", [
    (1.0, 1.0, True),  # 9 > 6
    (2.5, 2.5, False),  # 7.5 > 7.5 is false: equal is an overlap
    (2.4, 2.5, True),
    (0.0, 5.0, False),  # 10 > 10 is false
    (4.9, 0.0, True),  # 5.1 > 5
])
def test_check_order_boundary(hi_db, lo_db, ok):
    specs = _specs(alert_high=(10.0, hi_db), alert_low=(5.0, lo_db))
    found = list(check_order(specs, {"alert_high": "H", "alert_low": "L"}))
    assert (found == []) is ok, found
    if not ok:
        assert found == [("H.alert_high", f"alert_high=10.0 minus deadband {hi_db} (H) must stay"
                                          f" above alert_low=5.0 plus deadband {lo_db} (L)")]


def test_merged_limits_name_the_default_and_the_explicit_source():
    cfg = parse_config(HEAD.split("[[devices]]")[0] + """
[alarms.defaults.temperature.action_low]
limit = 18.0
deadband = 1.0
""")
    p = RulePoint(id="TH-1.t", device="TH-1", zone=None, site="S", quantity="temperature",
                  unit="degC", limits={"action_high": LimitSpec(limit=19.5, deadband=0.5)})
    rules, found, _ = compile_rules(cfg, [p])
    assert len(rules) == 2
    assert found == [
        "devices[TH-1].points[t].limits.action_high.action_high: action_high=19.5 minus deadband"
        " 0.5 (devices[TH-1].points[t].limits.action_high) must stay above action_low=18.0 plus"
        " deadband 1.0 (alarms.defaults.temperature.action_low)"]
    wide = RulePoint(id="TH-1.t", device="TH-1", zone=None, site="S", quantity="temperature",
                     unit="degC", limits={"action_high": LimitSpec(limit=19.6, deadband=0.5)})
    assert compile_rules(cfg, [wide])[1] == []
