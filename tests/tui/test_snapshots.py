"""A few SVG snapshots of the TUI at fixed sizes, on fixed data and a fixed clock.

Update with ``pytest tests/tui/test_snapshots.py --snapshot-update`` after a deliberate
visual change, and look at the report before committing the new SVGs.
"""

from __future__ import annotations

import os

import pytest

from facility.config import load_config
from tests.fixtures import sample_db
from tests.fixtures.wait import pilot_until
from tui.app import make_app
from tui.screens.base import DataScreen
from tui.widgets.live_table import LiveTable
from tui.widgets.trend import Trend

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "config.toml")


@pytest.fixture
def app_factory(tmp_path):
    cfg = load_config(CONFIG)
    path = str(tmp_path / "facility.db")
    sample_db.build(cfg, path, hazmat=True)
    # a refresh period far longer than the test: only the first read is drawn
    return lambda: make_app(cfg, path, refresh_s=3600, login="tmchan",
                            clock=lambda: sample_db.T0)


async def _until(pilot, cond, what: str, timeout: float = 60.0) -> None:
    await pilot_until(pilot, cond, what, timeout)


def _settled(app) -> bool:
    """Focus given (it tints the table's header), tables measured, charts fit to size."""
    screen = app.screen
    return (app.focused is not None and all(t.measured for t in screen.query(LiveTable))
            and all(t.drawn_size == t.content_size for t in screen.query(Trend)))


def _drawn(app, mode: str) -> bool:
    screen = app.screen
    return (app.current_mode == mode and isinstance(screen, DataScreen)
            and app.snapshot is not None and screen.drawn is app.snapshot)


async def _ready(pilot, mode: str = "overview", zone: str | None = None) -> None:
    app = pilot.app
    await _until(pilot, lambda: _drawn(app, "overview"), "the first snapshot on screen")
    if zone:
        app.open_zone(zone)
        await _until(pilot, lambda: _drawn(app, "zone") and app.snapshot.trends_zone == zone,
                     f"the trends of {zone} on screen")
    elif mode == "alarms":
        await pilot.press("2")
        # the screen asks for the history of the alarm under the cursor: a second read
        await _until(pilot, lambda: _drawn(app, "alarms") and app.snapshot.history_of
                     == app.screen.query_one("#alarm-list").current_key,
                     "the alarms and the history of the first one on screen")
    await _until(pilot, lambda: _settled(app), "the screen settled")
    await pilot.wait_for_scheduled_animations()


def test_overview_80x24(snap_compare, app_factory):
    assert snap_compare(app_factory(), terminal_size=(80, 24), run_before=_ready)


def test_alarms_120x40(snap_compare, app_factory):
    async def before(pilot):
        await _ready(pilot, mode="alarms")
    assert snap_compare(app_factory(), terminal_size=(120, 40), run_before=before)


def test_zone_detail_120x40(snap_compare, app_factory):
    async def before(pilot):
        await _ready(pilot, zone="MEC-LITHO")
        table = pilot.app.screen.query_one("#points")
        table.select_key("MEC-PC-01.pc_0_5um")
        # the chart follows the highlighted point (on the table's RowHighlighted message)
        await _until(pilot, lambda: table.current_key == "MEC-PC-01.pc_0_5um"
                     and "MEC-PC-01.pc_0_5um" in str(pilot.app.screen.query_one(Trend).border_title)
                     and _settled(pilot.app), "the chart of the highlighted point")
        await pilot.wait_for_scheduled_animations()
    assert snap_compare(app_factory(), terminal_size=(120, 40), run_before=before)
