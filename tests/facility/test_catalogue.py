"""The catalogue: the one place limits are compiled, each with its source, and the one
``within_limits`` that the report and the TUI share with the engine's idea of "beyond".

docs/ARCHITECTURE.md "Where limits come from" and "Limit rules": the service, check-config, the
backtest, the report and the TUI all read the catalogue's compiled rules; a value exactly
at a limit is compliant.
"""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facility.catalogue import build_catalogue, within_limits
from facility.config import load_config
from facility.records.report.stats import ReportData
from facility.service.service import Service
from tests.fixtures.config import device, facility_toml, zone
from tui.limits import LimitIndex, classify, compile_limits

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
TEMP, DP, PC = "TH-1.temperature", "Z1.dp_cascade", "PC-1.pc_0_5um"


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("catalogue")
    text = facility_toml(
        storage={"path": str(tmp / "fms.db")},
        zones=[zone("Z1", iso_class=7, reference="Z2", min_dp_pa=10, door_grace_s=0),
               zone("Z2", iso_class=8),
               zone("Z3", gmp_grade="C", occupancy="in_operation")],
        devices=[device("DP-1", 15051, zone="Z1", profile="dp-transmitter",
                        points=[{"name": "dp", "measures": "Z1 - Z2"}]),
                 device("TH-1", 15052, zone="Z1", scan_s=2.0, timeout_s=1.0,
                        profile="th-transmitter",
                        points=[{"name": "temperature",
                                 "limits": {"action_high": {"limit": 26.0}}}]),
                 device("PC-1", 15053, zone="Z3", scan_s=2.0, timeout_s=1.0,
                        profile="particle-counter", location="bench", sample_s=6.0)],
        alarms={"alert_fraction": 0.7,
                "defaults": {"temperature": {"action_high": {"limit": 25.0},
                                             "alert_high": {"limit": 24.0},
                                             "alert_low": {"limit": 16.0},
                                             "action_low": {"limit": 15.0}}}})
    path = tmp / "config.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def cfg(cfg_path):
    return load_config(str(cfg_path))


@pytest.fixture(scope="module")
def cat(cfg):
    return build_catalogue(cfg)


def _limits(cat, point, mode=None):
    return {r.limit_name: (r.limit, r.source) for r in cat.rules_for(point)
            if r.mode in (None, mode)}


def test_every_compiled_limit_records_where_it_comes_from(cat):
    assert all(r.source for r in cat.rules)
    assert _limits(cat, TEMP) == {  # the explicit value replaces only the limit it names
        "action_high": (26.0, "devices[TH-1].points[temperature].limits.action_high"),
        "alert_high": (24.0, "alarms.defaults.temperature.alert_high"),
        "alert_low": (16.0, "alarms.defaults.temperature.alert_low"),
        "action_low": (15.0, "alarms.defaults.temperature.action_low")}
    (limit, source), = _limits(cat, DP).values()
    assert limit == 10.0 and source.startswith("zones[Z1].min_dp_pa=+10 Pa vs Z2")
    gmp = _limits(cat, PC, "at_rest")
    assert gmp["action_high"][0] == 352_000.0
    assert "EU GMP Annex 1 Table 5 grade C at_rest at 0.5 um" in gmp["action_high"][1]
    assert gmp["alert_high"][0] == pytest.approx(0.7 * 352_000.0)
    assert "alarms.alert_fraction=0.7" in gmp["alert_high"][1]


def test_limits_are_compiled_in_the_catalogue_only():
    """No other module calls ``compile_rules``: every reader gets the catalogue's rules."""
    callers = []
    for package in ("facility", "tui", "alarms", "hazmat", "sensors"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "compile_rules":
                    callers.append(path.relative_to(ROOT).as_posix())
    assert callers == ["facility/catalogue.py"]


def test_report_tui_service_and_check_config_read_one_compilation(cfg, cfg_path, cat):
    report = ReportData(cfg, None, 0, 1, {1: {"point": TEMP}, 2: {"point": DP},
                                          3: {"point": PC}}, catalogue=cat)
    by_id = {id(r) for r in cat.rules}
    assert all(id(r) in by_id for rules in report.rules.values() for r in rules.values())
    assert set(report.rules) == {TEMP, DP, PC}
    # the zone's configured occupancy picks the GMP mode's limits
    assert report.rules[PC]["action_high"].mode == "in_operation"
    assert report.limits[PC]["action_high"] == 3_520_000.0
    # the report holds each sample for the point's compiled stale time: 3 x the counter's
    # record time, 3 x scan_s, and for the cascade that of its transmitter (DP-1, 1 s)
    hold = {pid: c.hold_ms for pid, c in report.compliance.items()}
    assert hold == {PC: 18_000, TEMP: 6_000, DP: 3_000}
    tui = compile_limits(cfg, cat)
    assert {(p, lim.name, lim.value, lim.source, lim.mode) for p, lims in tui.items()
            for lim in lims} == {(r.point, r.limit_name, r.limit, r.source, r.mode)
                                 for r in cat.rules}
    svc = Service(cfg)
    assert svc.cat.rules == cat.rules and svc.stale_points == cat.stale_points()
    run = subprocess.run([sys.executable, "-m", "facility", "check-config", "--config",
                          str(cfg_path)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert f"{len(cat.infos)} points, {len(cat.rules)} limit rules" in run.stdout


def test_stale_points_are_measured_and_cascade_points_with_rules(cat):
    stale = cat.stale_points()
    assert stale[TEMP] == 6.0 and stale[DP] == 3.0  # 3 x scan_s; the cascade: its input's
    assert stale[PC] == 18.0  # 3 x the counter's record time
    assert "TH-1.comm_ok" not in stale and "PC-1.count_0_5um" not in stale  # no rules


def _around(limit: float) -> list[float]:
    return [limit, math.nextafter(limit, math.inf), math.nextafter(limit, -math.inf),
            limit - 1.0, limit + 1.0]


def test_report_and_tui_agree_with_the_service_on_what_is_within(cfg, cat):
    """For values at, just beyond and just inside every limit: what the service's engine
    raises (a rule without delays raises on one beyond sample) is exactly what the report
    counts as outside and the TUI colours as action or alert."""
    svc = Service(cfg)
    index = svc.point_index
    tui = LimitIndex(compile_limits(cfg, cat))
    points = {p["point"]: p for p in ({"point": TEMP}, {"point": DP}, {"point": PC})}
    report_rules = ReportData(cfg, None, 0, 1, dict(enumerate(points.values())),
                              catalogue=cat).rules
    checked = 0
    for pid in points:
        rules = [r for r in svc.cat.rules_for(pid) if r.mode in (None, "in_operation")]
        assert rules and all(r.on_delay_s == 0 and r.m_of_n is None for r in rules)
        for value in sorted({v for r in rules for v in _around(r.limit)}):
            svc.engine.reset()
            tr = svc.engine.feed(np.array([index[pid]]), np.array([T0]), np.array([value]),
                                 np.array([True]))
            raised = {svc.cat.rules[int(i)].limit_name for i in tr["rule"]
                      if svc.cat.rules[int(i)] in rules}
            engine_action = any(n.startswith("action") for n in raised)
            engine_alert = any(n.startswith("alert") for n in raised)
            # the report: one good sample held over [0, 1 s)
            data = ReportData(cfg, None, 0, 1000, {1: {"point": pid}}, catalogue=cat)
            c = data.compliance[pid]
            c.feed(0, value, 0)
            c.finish()
            assert (c.within_ms == 1000) is not engine_action, (pid, value)
            if any(n.startswith("alert") for n in report_rules[pid]):
                assert (c.within_alert_ms == 1000) is not engine_alert, (pid, value)
            action = {n: r.limit for n, r in report_rules[pid].items() if n.startswith("action")}
            assert within_limits(value, action) is not engine_action
            level = classify(value, tui.for_point(pid, "in_operation"))
            assert level == ("action" if engine_action else "alert" if engine_alert else "ok")
            checked += 1
    assert checked >= 25


def test_within_limits_at_the_limit_is_compliant_and_needs_a_finite_value():
    assert within_limits(25.0, {"action_high": 25.0, "action_low": 15.0})
    assert not within_limits(25.000001, {"action_high": 25.0})
    assert within_limits(15.0, {"action_low": 15.0})
    assert not within_limits(14.9, {"action_low": 15.0})
    assert within_limits(1e9, {"action_low": 15.0})  # a low limit says nothing about high
    assert not within_limits(math.nan, {}) and not within_limits(math.inf, {"action_low": 0.0})
