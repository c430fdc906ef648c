"""The devices screen: flow, laser, sample / hold time, record lag and calibration due date
per instrument (Textual Pilot against a real store)."""

from __future__ import annotations

import dataclasses
import datetime
import os

import pytest

from facility.config import load_config
from facility.domain.model import Sample
from facility.store import Cycle, Store
from tests.fixtures import sample_db
from tests.fixtures.wait import pilot_until
from tui.app import make_app
from tui.data import Snapshot
from tui.screens.base import DataScreen
from tui.views.devices import DEVICE_COLUMNS, sample_cell
from tui.widgets.live_table import LiveTable

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "config.toml")
T0 = sample_db.T0
NOW = T0 + 600_000  # ten minutes after the fixture's readings: records lag
TODAY = datetime.date(2026, 11, 23)  # NOW in Hong Kong (the MEC site)
COL = {name: str(i) for i, name in enumerate(DEVICE_COLUMNS)}


@pytest.fixture(scope="module")
def cfg():
    cfg = load_config(CONFIG)
    due = {"MEC-PC-01": TODAY + datetime.timedelta(days=10),  # within 30 days: due soon
           "MEC-PC-02": TODAY - datetime.timedelta(days=5),  # overdue
           "MEC-PC-03": TODAY + datetime.timedelta(days=200),
           "MEC-DP-01": None}
    devices = tuple(dataclasses.replace(d, calibration_due=due[d.id]) if d.id in due else d
                    for d in cfg.devices)
    return dataclasses.replace(cfg, devices=devices)


@pytest.fixture
def db(cfg, tmp_path):
    path = str(tmp_path / "facility.db")
    sample_db.build(cfg, path)
    samples = [
        Sample("MEC-PC-01.flow_cfm", NOW - 2000, 1.0),
        Sample("MEC-PC-01.flow_fault", NOW - 2000, 0.0),
        Sample("MEC-PC-01.laser_fault", NOW - 2000, 0.0),
        Sample("MEC-PC-01.sample_time_s", NOW - 2000, 60.0),
        Sample("MEC-PC-01.hold_time_s", NOW - 2000, 0.0),
        Sample("MEC-PC-02.flow_cfm", NOW - 2000, 0.7),
        Sample("MEC-PC-02.flow_fault", NOW - 2000, 1.0),
        Sample("MEC-PC-02.laser_fault", NOW - 2000, 1.0),
        Sample("MEC-PC-02.sample_time_s", NOW - 2000, 60.0),
        Sample("MEC-PC-02.hold_time_s", NOW - 2000, 0.0),
    ]
    # MEC-PC-01's newest record is 10 s old; every other counter's from the fixture (602 s)
    samples += [Sample(f"MEC-PC-01.{ch}", NOW - 10_000, 900.0)
                for ch in ("pc_0_3um", "pc_0_5um", "pc_1_0um", "pc_5_0um")]
    with Store(path) as store:
        store.write_cycle(Cycle(samples=samples))
    return path


async def until(pilot, cond, what: str) -> None:
    await pilot_until(pilot, cond, what)


async def test_device_screen_shows_flow_laser_sample_lag_and_calibration(cfg, db):
    app = make_app(cfg, db, login="tmchan", refresh_s=3600, clock=lambda: NOW)
    async with app.run_test(size=(200, 50)) as pilot:
        await until(pilot, lambda: app.snapshot is not None, "the first snapshot")
        await pilot.press("4")
        await until(pilot, lambda: app.current_mode == "devices"
                    and isinstance(app.screen, DataScreen) and app.screen.drawn is app.snapshot,
                    "the devices screen")
        table = app.screen.query_one("#device-list", LiveTable)

        def cell(dev, col):
            return table.get_cell(dev, COL[col])

        assert cell("MEC-PC-01", "Flow").plain == "1 CFM"
        assert cell("MEC-PC-01", "Laser").plain == "ok"
        assert cell("MEC-PC-02", "Flow").plain == "0.7 CFM FAULT"
        assert "red" in str(cell("MEC-PC-02", "Flow").style)
        assert cell("MEC-PC-02", "Laser").plain == "FAULT"
        assert cell("MEC-PC-01", "Sample / hold").plain == "60 s / 0 s"
        assert cell("MEC-PC-01", "Record lag").plain == "10s"
        assert cell("MEC-PC-02", "Record lag").plain == "10m"
        assert "red" in str(cell("MEC-PC-02", "Record lag").style)  # beyond 3 records
        assert "red" not in str(cell("MEC-PC-01", "Record lag").style)
        soon = cell("MEC-PC-01", "Calibration due")
        assert soon.plain == f"{TODAY + datetime.timedelta(days=10)} (10 d)"
        assert "yellow" in str(soon.style)
        overdue = cell("MEC-PC-02", "Calibration due")
        assert overdue.plain == f"{TODAY - datetime.timedelta(days=5)} OVERDUE 5 d"
        assert "red" in str(overdue.style)
        assert "green" in str(cell("MEC-PC-03", "Calibration due").style)
        assert cell("MEC-DP-01", "Calibration due").plain == "not set"
        # a transmitter has no flow, laser or records; its latency carries its unit
        assert cell("MEC-DP-01", "Flow").plain == "" and cell("MEC-DP-01", "Laser").plain == ""
        assert cell("MEC-DP-01", "Latency").plain.endswith(" ms")
        assert cell("MEC-GD-01", "Comm").plain == "FAIL"


def test_before_a_counter_reports_its_times_the_configured_sample_time_shows(cfg):
    pc = next(d for d in cfg.devices if d.id == "MEC-PC-01")
    shown = sample_cell(Snapshot(now_ms=NOW), dataclasses.replace(pc, sample_s=30.0))
    assert shown.plain == "30 s / ?" and "dim" in str(shown.style)
    assert sample_cell(Snapshot(now_ms=NOW), dataclasses.replace(pc, sample_s=None)).plain == "--"
