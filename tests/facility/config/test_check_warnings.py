"""check-config warnings: sample volume (ISO 14644-1 A.4.4), GMP modes without a particle
limit (EU GMP Annex 1 Table 5 "—"), calibration overdue / due soon.

Real files written by the TOML builder and the real ``facility check-config`` in-process.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from facility.catalogue import calibration_status
from facility.cli import cli
from facility.config.checks import calibration_warnings, min_sample_volume
from facility.config.loader import load_config
from tests.fixtures.config import device, write_config, zone

D = datetime.date
GRADE_D_SITE_LIMITS = [
    {"name": "pc_0_5um", "limits": {"action_high": {"limit": 3520000}}},
    {"name": "pc_5_0um", "limits": {"action_high": {"limit": 29300}}},
]


def _check(path: Path) -> tuple[int, list[str], str]:
    r = CliRunner().invoke(cli, ["check-config", "--config", str(path)])
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    return r.exit_code, warnings, r.stdout


def _counter(id_: str, port: int, zone_id: str, **more) -> dict:
    return device(id_, port, zone=zone_id, profile="particle-counter", scan_s=2.0,
                  timeout_s=1.0, **more)


def test_minimum_sample_volume_formula():
    assert min_sample_volume(3520) == pytest.approx(5.68, abs=0.005)  # ISO 5 at 0.5 um
    assert min_sample_volume(832) == pytest.approx(24.04, abs=0.005)  # ISO 5 at 1 um
    assert min_sample_volume(3_520_000) == 2.0  # never below 2 L


def test_a_record_below_the_minimum_sample_volume_warns_with_the_numbers(tmp_path):
    path = write_config(tmp_path / "config.toml", zones=[
        zone("FAB", iso_class=5), zone("C", gmp_grade="C")], devices=[
        _counter("PC-5S", 15020, "FAB", sample_s=5),    # 2.36 L
        _counter("PC-60S", 15021, "FAB", sample_s=60),  # 28.3 L: enough
        _counter("PC-C", 15022, "C", sample_s=5)])     # grade C at rest, 5 um: 2 930 /m3
    code, warnings, _ = _check(path)
    assert code == 0
    volume = [w for w in warnings if "minimum sample volume" in w]
    assert len(volume) == 2, warnings
    fab, gmp = volume
    # ISO 5: the largest size alarmed is 1 um (5 um is blank in the 2015 table): 832 /m3
    assert "devices[0].sample_s: PC-5S samples 2.36 L per record (5 s at 1 CFM)" in fab
    assert "below the 24.04 L minimum sample volume of ISO 14644-1 A.4.4" in fab
    assert "20 / 832 /m3" in fab and "class 5 at 1 um" in fab and "sample_s >= 51" in fab
    assert fab.startswith(f"warning: {path}:")  # file and line, like every check-config line
    assert "devices[2].sample_s: PC-C samples 2.36 L" in gmp and "6.83 L" in gmp
    assert "grade C at_rest at 5 um" in gmp and "sample_s >= 15" in gmp
    assert not any("PC-60S" in w and "sample volume" in w for w in warnings)


def test_a_gmp_grade_without_a_limit_in_a_mode_warns(tmp_path):
    path = write_config(tmp_path / "config.toml", zones=[
        zone("PACK", gmp_grade="D"), zone("LINE", gmp_grade="C"),
        zone("GOWN", gmp_grade="D"), zone("EMPTY", gmp_grade="D")], devices=[
        _counter("PC-D", 15020, "PACK"), _counter("PC-C", 15021, "LINE"),
        _counter("PC-SITE", 15022, "GOWN", points=GRADE_D_SITE_LIMITS)])
    code, warnings, _ = _check(path)
    assert code == 0
    gmp = [w for w in warnings if "has no particle limit" in w]
    assert len(gmp) == 1, warnings  # not LINE (grade C has both), not GOWN (site limits),
    # not EMPTY (no counter: nothing is recorded either)
    assert "zones[0].gmp_grade: PACK grade D has no particle limit in operation" in gmp[0]
    assert "EU GMP Annex 1 Table 5 leaves it to the site" in gmp[0]
    assert "recorded, not alarmed" in gmp[0] and "[devices.points.limits]" in gmp[0]


def test_calibration_overdue_and_due_soon_lines(tmp_path):
    path = write_config(tmp_path / "config.toml", zones=[zone("Z", iso_class=7)], devices=[
        _counter("PC-OLD", 15020, "Z", calibrated_on="2019-01-02",
                 calibration_due="2020-01-02"),                 # overdue whenever this runs
        _counter("PC-NEW", 15021, "Z", calibration_due="2999-01-01"),
        _counter("PC-NONE", 15022, "Z")])
    code, warnings, _ = _check(path)
    assert code == 0
    cal = [w for w in warnings if "calibration_due:" in w]
    assert len(cal) == 1, warnings
    assert "devices[0].calibration_due: PC-OLD calibration overdue by" in cal[0]
    assert "(due 2020-01-02, calibrated 2019-01-02)" in cal[0]
    # due soon, at an explicit date (the CLI uses each site's date of today)
    cfg = load_config(str(path))
    today = D(2998, 12, 20)
    lines = calibration_warnings(cfg, lambda d: calibration_status(d, today))
    assert lines[1] == ("devices[1].calibration_due: PC-NEW calibration due soon: in 12 days"
                        " (2999-01-01)")
    assert calibration_warnings(cfg, lambda d: calibration_status(d, D(2998, 1, 1)))[1:] == []


def test_the_shipped_config_warns_only_of_its_one_overdue_calibration():
    """The shipped plant meets the minimum sample volume everywhere, sets its grade D
    in-operation limits, and has exactly one overdue instrument (to show the alarm)."""
    code, warnings, out = _check(Path("config.toml"))
    assert code == 0, out
    assert not [w for w in warnings if "sample volume" in w or "has no particle limit" in w]
    cal = [w for w in warnings if "calibration_due:" in w]
    assert len(cal) == 1 and "MEC-PC-07 calibration overdue" in cal[0], cal
    cfg = load_config("config.toml")
    assert all(d.calibrated_on and d.calibration_due for d in cfg.devices)
    assert [d.id for d in cfg.devices
            if calibration_status(d, D(2026, 12, 2))[0] != "ok"] == ["MEC-PC-07"]
