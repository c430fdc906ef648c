"""Every value reads as what it is, on the zone screen (Textual Pilot, real store).

A 0/1 point reads as its word, a gas concentration of 0.004 ppm as ``0.004 ppm``, particle
concentrations with grouped thousands and ``/m³``, a differential pressure with its sign and
``Pa``; limits as ``alert 2 464 / action 3 520 /m³``; the instruments' health in their own
section, never among the process values.
"""

from __future__ import annotations

import pytest

from facility.domain.model import Sample
from facility.store import Cycle, Store
from tests.fixtures import sample_db
from tests.fixtures.wait import pilot_until
from tui.app import make_app
from tui.limits import LimitIndex, compile_limits, limit_text
from tui.screens.base import DataScreen
from tui.views.common import is_instrument_point
from tui.widgets.live_table import LiveTable

T0 = sample_db.T0


@pytest.fixture
def db(db):  # the sample database (tests/tui/conftest.py), then more
    path = db
    with Store(path) as store:  # newer than the fixture's readings (T0 - 2 s)
        store.write_cycle(Cycle(samples=[
            Sample("MEC-GD-02.conc", T0 - 1000, 0.004),  # arsine-range: never "0.00"
            Sample("MEC-IO-01.door_gasrm", T0 - 1000, 1.0),
            Sample("MEC-IO-01.door_wet", T0 - 1000, 0.0),
            Sample("MEC-LITHO.dp_cascade", T0 - 1000, 12.34),
            Sample("MEC-PC-01.pc_0_3um", T0 - 1000, 27000.0),  # never "27k"
        ]))
    return path


async def until(pilot, cond, what: str) -> None:
    await pilot_until(pilot, cond, what)


async def zone_shown(pilot, app, zone: str) -> tuple[LiveTable, LiveTable]:
    app.open_zone(zone)
    await until(pilot, lambda: app.current_mode == "zone" and isinstance(app.screen, DataScreen)
                and app.screen.drawn is app.snapshot and app.snapshot.trends_zone == zone,
                f"the zone screen of {zone}")
    return (app.screen.query_one("#points", LiveTable),
            app.screen.query_one("#instruments", LiveTable))


def cell(table: LiveTable, key: str, col: int) -> str:
    return table.get_cell(key, str(col)).plain


async def test_boolean_ppm_and_instrument_section_on_the_gas_room(cfg, db):
    app = make_app(cfg, db, login="tmchan", refresh_s=3600, clock=lambda: T0)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.snapshot is not None, "the first snapshot")
        points, instruments = await zone_shown(pilot, app, "MEC-GASRM")
        assert cell(points, "MEC-GD-02.conc", 1) == "0.004 ppm"
        assert cell(points, "MEC-IO-01.door_gasrm", 1) == "OPEN"
        assert cell(points, "MEC-IO-01.door_wet", 1) == "closed"
        assert cell(points, "MEC-GD-02.alarm_high", 1) == "normal"
        assert cell(points, "MEC-GD-02.alarm_high", 4) == "action when ALARM"  # not "AH0.5"
        assert cell(points, "MEC-TH-06.temperature", 4) == "alert 19–23 / action 18–24 °C"
        assert cell(points, "MEC-TH-06.humidity", 1) == "57 %RH"
        # instrument health has its own section: none of its points among the process values
        assert not [k for k in points._keys if is_instrument_point(k, app.snapshot.points[k])]
        assert not [k for k in points._keys if k.endswith((".comm_ok", ".latency_ms", ".fault"))]
        assert instruments._keys == [d.id for d in cfg.devices if d.zone == "MEC-GASRM"]
        assert cell(instruments, "MEC-GD-01", 1) == "FAIL"
        assert cell(instruments, "MEC-GD-02", 1) == "OK"
        assert cell(instruments, "MEC-GD-02", 3) == "ok"  # its fault bit, as a word
        assert cell(instruments, "MEC-GD-02", 2).endswith(" ms")


async def test_particle_counts_pressure_and_limits_carry_units(cfg, db):
    app = make_app(cfg, db, login="tmchan", refresh_s=3600, clock=lambda: T0)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.snapshot is not None, "the first snapshot")
        points, _instruments = await zone_shown(pilot, app, "MEC-LITHO")
        assert cell(points, "MEC-PC-02.pc_0_5um", 1) == "3 700 /m³"
        assert "red" in str(points.get_cell("MEC-PC-02.pc_0_5um", "1").style)  # beyond 3 520
        assert cell(points, "MEC-PC-01.pc_0_3um", 1) == "27 000 /m³"
        assert cell(points, "MEC-PC-02.pc_0_5um", 4) == "alert 2 464 / action 3 520 /m³"
        assert cell(points, "MEC-PC-01.pc_0_3um", 4) == "alert 7 140 / action 10 200 /m³"
        assert cell(points, "MEC-LITHO.dp_cascade", 1) == "+12.3 Pa"
        assert cell(points, "MEC-LITHO.dp_cascade", 4) == "action min +10 Pa"
        # the process values come first: derived, then measured, raw counts per record last
        keys = points._keys
        assert keys[0] == "MEC-LITHO.dp_cascade"
        assert keys.index("MEC-PC-02.pc_5_0um") < keys.index("MEC-PC-01.count_0_3um")
        # every limit in the sources panel names itself and carries the unit
        points.select_key("MEC-PC-02.pc_0_5um")
        panel = app.screen.query_one("#limit-sources")
        await until(pilot, lambda: "3 520 /m³" in str(panel.render()), "the limit sources")
        lines = str(panel.render()).splitlines()
        assert any(line.startswith("action high 3 520 /m³: ISO 14644-1:2015 class 5")
                   for line in lines)
        assert any(line.startswith("alert high 2 464 /m³: ") for line in lines)


def test_the_arsine_twa_limit_reads_in_ppm(cfg):
    """An 8-h TWA action limit at arsine's TLV-TWA 0.005 ppm (ACGIH TLV) is never "AH0"."""
    compiled = compile_limits(cfg)
    arsine = [d.id for d in cfg.devices if d.gas == "arsine" and f"{d.id}.twa_8h" in compiled]
    assert arsine
    lims = LimitIndex(compiled).for_point(f"{arsine[0]}.twa_8h")
    assert limit_text(lims, "ppm", "gas_exposure") == "action 0.005 ppm"
