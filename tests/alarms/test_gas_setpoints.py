"""Gas detectors' computed set points follow ACGIH TLV, never the IDLH.

The §3 table and its "Detector set-point conventions" are written out here once more, by
hand from the reference, so the gas table in ``alarms.standards`` and the set points
computed from it are checked against the document and not against themselves:

* every gas's row (TLV-TWA, STEL / ceiling, PEL, IDLH, LEL) is the reference's row;
* room and cabinet monitors alike alarm low at the TLV-TWA and high at the STEL, else
  2 x TLV under a ceiling; a flammable gas with no toxic limit at 10 % / 20 % of its LEL;
  no computed set point is ever at or above the IDLH;
* a configured ``setpoints`` value above what §3 supports needs ``setpoints_justification``:
  ``facility check-config`` refuses it otherwise, one line naming file, key, value and fix.
"""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from alarms.standards import GASES, default_setpoints, gas, supported_setpoints
from facility.cli import cli
from facility.domain.display import format_value
from tests.fixtures.config import device, zone

# ACGIH TLV, one row per gas:
# gas: (TLV-TWA, STEL, ceiling, OSHA PEL, PEL is a ceiling, NIOSH IDLH, LEL %vol)
REFERENCE_3 = {
    "silane": (5, None, None, None, False, None, 1.37),
    "arsine": (0.005, None, None, 0.05, False, 3, 5.1),
    "phosphine": (0.3, 1, None, 0.3, False, 50, 1.79),
    "diborane": (0.1, None, None, 0.1, False, 15, 0.8),
    "chlorine": (0.5, 1, None, 1, True, 10, None),
    "hydrogen fluoride": (0.5, None, 2, 3, False, 30, None),
    "ammonia": (25, 35, None, 50, False, 300, 15),
    "nitrogen trifluoride": (10, None, None, 10, False, 1000, None),
    "germane": (0.2, None, None, None, False, None, None),
    "hydrogen": (None, None, None, None, False, None, 4.0),
}

# What §3's conventions give, worked out by hand: (low, high, unit) and the clause used.
EXPECTED = {
    "silane": (5, 10, "ppm"),  # TLV 5; no STEL: 2 x TLV
    "arsine": (0.005, 0.01, "ppm"),  # TLV 0.005; 2 x TLV (IDLH 3 is no alarm level)
    "phosphine": (0.3, 1, "ppm"),  # TLV 0.3; STEL 1 (IDLH 50)
    "diborane": (0.1, 0.2, "ppm"),  # TLV 0.1; 2 x TLV (IDLH 15)
    "chlorine": (0.5, 1, "ppm"),  # TLV 0.5; STEL 1 = PEL ceiling 1 (IDLH 10)
    "hydrogen fluoride": (0.5, 1, "ppm"),  # TLV 0.5; 2 x TLV under the ceiling 2 (IDLH 30)
    "ammonia": (25, 35, "ppm"),  # TLV 25; STEL 35 (IDLH 300)
    "nitrogen trifluoride": (10, 20, "ppm"),  # TLV 10; 2 x TLV (IDLH 1 000)
    "germane": (0.2, 0.4, "ppm"),  # TLV 0.2; 2 x TLV
    "hydrogen": (10, 20, "%LEL"),  # asphyxiant, LEL 4 %vol: 10 % / 20 % of LEL
}


def test_the_gas_table_is_the_reference_table():
    assert set(GASES) == set(REFERENCE_3)
    for name, (tlv, stel, ceiling, pel, pel_c, idlh, lel) in REFERENCE_3.items():
        g = gas(name)
        assert (g.tlv_twa_ppm, g.stel_ppm, g.ceiling_ppm, g.pel_ppm, g.pel_is_ceiling,
                g.idlh_ppm, g.lel_pct_vol) == (tlv, stel, ceiling, pel, pel_c, idlh, lel), name


@pytest.mark.parametrize("monitor", ["room", "cabinet"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_gas_alarms_at_the_reference_values_never_the_idlh(name, monitor):
    sp = default_setpoints(name, monitor)
    low, high, unit = EXPECTED[name]
    assert (sp["low"], sp["high"], sp["unit"]) == (pytest.approx(low), pytest.approx(high), unit)
    idlh = REFERENCE_3[name][5]
    if idlh is not None:
        assert sp["low"] < idlh and sp["high"] < idlh
        assert "IDLH" not in sp["source"]
    assert "ACGIH TLV" in sp["source"] and name in sp["source"]
    clause = "of LEL" if unit == "%LEL" else "TLV-TWA"
    assert clause in sp["source"]


def test_the_sources_name_the_stage_that_applies():
    assert "STEL 1 ppm" in default_setpoints("phosphine", "cabinet")["source"]
    assert "2 x TLV-TWA 0.01 ppm" in default_setpoints("arsine", "cabinet")["source"]
    assert "2 x TLV-TWA 1 ppm" in default_setpoints("hydrogen fluoride", "room")["source"]


@pytest.mark.parametrize("name, monitor, low, high", [
    ("arsine", "room", 0.005, 0.01),  # room: the scheme is the bound
    ("arsine", "cabinet", 0.15, 0.15),  # 3 x PEL 0.15 < 1/2 IDLH 1.5
    ("phosphine", "cabinet", 0.9, 1.0),  # 3 x PEL 0.9; the STEL 1 stays allowed
    ("ammonia", "cabinet", 150, 150),  # 1/2 IDLH = 3 x PEL = 150
    ("nitrogen trifluoride", "cabinet", 30, 30),  # 3 x PEL 30 < 1/2 IDLH 500
    ("silane", "cabinet", 5, 10),  # no IDLH, no PEL: the room scheme
    ("hydrogen", "room", 10, 25),  # flammables: "20 % (or 25 %)" of LEL
])
def test_what_the_reference_supports_without_a_justification(name, monitor, low, high):
    bound = supported_setpoints(name, monitor)
    assert (bound["low"], bound["high"]) == (pytest.approx(low), pytest.approx(high))
    idlh = gas(name).idlh_ppm
    assert idlh is None or bound["high"] < idlh


def test_set_points_read_with_the_digits_their_range_needs():
    sp = default_setpoints("arsine", "room")
    assert f"{format_value(sp['low'], 'ppm')} / {format_value(sp['high'], 'ppm')}" == \
        "0.005 ppm / 0.01 ppm"
    assert format_value(0.004, "ppm") == "0.004 ppm"  # not "0.00"
    for name in EXPECTED:  # the two stages of every gas read apart
        sp = default_setpoints(name, "room")
        assert format_value(sp["low"]) != format_value(sp["high"]), name
    assert format_value(1.0, "", "gas_alarm") == "ALARM"
    assert format_value(0.0, "", "gas_alarm") == "normal"


# -- check-config -------------------------------------------------------------------------

def _config(config_file, gas_name: str, monitor: str, setpoints: dict | None,
            justification: str | None = None):
    return config_file(zones=[zone("GR", kind="gas_room")], devices=[device(
        "GD-1", 15041, zone="GR", profile="gas-detector", gas=gas_name, monitor=monitor,
        setpoints=setpoints, setpoints_justification=justification)])


def _setpoint_line(path, key: str) -> int:
    """The line where set point ``key`` is written (check-config names it)."""
    lines = path.read_text().splitlines()
    table = next(i for i, text in enumerate(lines, 1)
                 if text.startswith(("[devices.setpoints]", "setpoints =")))
    return next((i for i, text in enumerate(lines, 1) if i > table and text.startswith(f"{key} =")),
                table)


def check_config(path):
    result = CliRunner().invoke(cli, ["check-config", "--config", str(path)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("gas_name, monitor, setpoints", [
    ("arsine", "room", {"low": 0.005, "high": 0.01}),  # the computed values
    ("arsine", "room", {"low": 0.0025}),  # 1/2 TLV: "or 1/2 of it"
    ("arsine", "cabinet", {"low": 0.05, "high": 0.15}),  # up to 3 x PEL in a cabinet
    ("phosphine", "cabinet", {"low": 0.9}),
    ("hydrogen", "room", {"high": 25.0}),  # 25 % of LEL
])
def test_set_points_within_the_reference_need_no_justification(config_file, gas_name,
                                                               monitor, setpoints):
    path = _config(config_file, gas_name, monitor, setpoints)
    code, out, err = check_config(path)
    assert (code, err) == (0, "") and ": ok (" in out


@pytest.mark.parametrize("gas_name, monitor, setpoints, key, bound, why", [
    ("arsine", "cabinet", {"high": 3.0}, "high", "0.15 ppm",
     "cabinet monitors at or below 3 x PEL 0.15 ppm, never the IDLH 3 ppm"),
    ("arsine", "room", {"low": 0.05, "high": 0.1}, "low", "0.005 ppm",
     "room monitors alarm at or below the TLV-TWA, high at the STEL or 2 x TLV"),
    ("phosphine", "cabinet", {"low": 25.0, "high": 50.0}, "low", "0.9 ppm",
     "cabinet monitors at or below 3 x PEL 0.9 ppm, never the IDLH 50 ppm"),
    ("hydrogen", "cabinet", {"high": 30.0}, "high", "25 %LEL",
     "flammables at 10 % / 25 % of LEL"),
])
def test_set_points_outside_the_reference_need_a_justification(
        config_file, gas_name, monitor, setpoints, key, bound, why):
    path = _config(config_file, gas_name, monitor, setpoints)
    code, out, err = check_config(path)
    unit = " %LEL" if gas_name == "hydrogen" else " ppm"
    first = (f"{path}:{_setpoint_line(path, key)}:devices[0].setpoints.{key}="
             f"{setpoints[key]:g}{unit} is above {bound},"
             f" the most ACGIH TLV supports for {gas_name} at a {monitor}"
             f" monitor ({why}); lower it or add setpoints_justification = \"...\"")
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == first
    assert len(lines) == len([k for k in setpoints
                              if setpoints[k] > supported_setpoints(gas_name, monitor)[k]])
    # the same values with a justification are accepted and kept, with it as their source
    ok = _config(config_file, gas_name, monitor, setpoints,
                 justification="site risk assessment RA-12: cabinet exhaust interlock at 1 ppm")
    code, out, err = check_config(ok)
    assert (code, err) == (0, "")


def test_a_set_point_must_be_a_positive_finite_level_below_high(config_file):
    for setpoints, key, message in (
            ({"high": math.inf}, "high", "=inf must be a positive finite alarm level, e.g. 0.3"),
            ({"low": 0.0}, "low", "=0.0 must be a positive finite alarm level, e.g. 0.3"),
            ({"low": 0.01, "high": 0.005}, "high", "=0.005 must be above setpoints.low=0.01"),
            ({"mid": 0.01}, "mid", ": unknown set point; use low and/or high")):
        path = _config(config_file, "arsine", "room", setpoints,
                       justification="they are checked even when justified")
        code, out, err = check_config(path)
        assert code == 2 and out == ""
        assert err.splitlines() == [
            f"{path}:{_setpoint_line(path, key)}:devices[0].setpoints.{key}{message}"], setpoints


def test_an_empty_justification_is_no_justification(config_file):
    path = _config(config_file, "arsine", "cabinet", {"high": 3.0}, justification=" ")
    code, _out, err = check_config(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if text.startswith("setpoints_justification"))
    assert code == 2
    assert err.splitlines() == [f"{path}:{line}:devices[0].setpoints_justification: is empty;"
                                " say why the set points are acceptable"]


def test_the_tui_gas_view_shows_set_points_and_readings_with_their_digits():
    from facility.config import load_config
    from tui.data import Snapshot
    from tui.limits import LimitIndex, compile_limits
    from tui.views.hazmat import GAS_COLUMNS, gas_rows

    cfg = load_config("config.toml")
    ts = 1_750_000_000_000
    snap = Snapshot(now_ms=ts, latest={"MEC-GD-04.conc": (ts, 0.004, 0, ts, 0.004),
                                       "MEC-GD-01.conc": (ts, 0.012, 0, ts, 0.012)})
    rows = dict(gas_rows(cfg, snap, LimitIndex(compile_limits(cfg))))
    col = {name: i for i, name in enumerate(GAS_COLUMNS)}
    room, cabinet = rows["MEC-GD-04"], rows["MEC-GD-01"]  # arsine: room and cabinet monitor
    assert (room[col["Conc"]].plain, room[col["Low"]], room[col["High"]]) == ("0.004", "0.005", "0.01")
    # the cabinet detector alarms at the same TLV-based levels (not 0.15 / 3 ppm, the IDLH)
    assert (cabinet[col["Conc"]].plain, cabinet[col["Low"]], cabinet[col["High"]]) == (
        "0.012", "0.005", "0.01")
