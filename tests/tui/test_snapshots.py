"""A few SVG snapshots of the TUI at fixed sizes, on fixed data and a fixed clock.

Update with ``pytest tests/test_tui_snapshots.py --snapshot-update`` after a deliberate
visual change, and look at the report before committing the new SVGs.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from facility.config import load_config
from tests.fixtures import sample_db
from tui.app import make_app

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "config.toml")


@pytest.fixture
def app_factory(tmp_path):
    cfg = load_config(CONFIG)
    path = str(tmp_path / "facility.db")
    sample_db.build(cfg, path, hazmat=True)
    # a refresh period far longer than the test: only the first read is drawn
    return lambda: make_app(cfg, path, refresh_s=3600, login="technician",
                            clock=lambda: sample_db.T0)


async def _ready(pilot, mode: str | None = None, zone: str | None = None) -> None:
    app = pilot.app
    for _ in range(200):
        if app.snapshots_seen:
            break
        await asyncio.sleep(0.02)
    if zone:
        app.open_zone(zone)
        for _ in range(200):
            if app.snapshot.trends_zone == zone:
                break
            await asyncio.sleep(0.02)
    elif mode:
        await pilot.press({"alarms": "2", "hazmat": "5"}[mode])
        for _ in range(200):
            if mode != "hazmat" or app.snapshot.hazmat is not None:
                break
            await asyncio.sleep(0.02)
    for _ in range(200):  # the table's focus tints its header: wait for it to settle
        if app.focused is not None:
            break
        await asyncio.sleep(0.02)
    await pilot.pause()
    await pilot.pause()


def test_overview_80x24(snap_compare, app_factory):
    assert snap_compare(app_factory(), terminal_size=(80, 24), run_before=_ready)


def test_alarms_120x40(snap_compare, app_factory):
    async def before(pilot):
        await _ready(pilot, mode="alarms")
    assert snap_compare(app_factory(), terminal_size=(120, 40), run_before=before)


def test_zone_detail_120x40(snap_compare, app_factory):
    async def before(pilot):
        await _ready(pilot, zone="MEC-LITHO")
        pilot.app.screen.query_one("#points").select_key("MEC-PC-01.pc_0_5um")
        await pilot.pause()
    assert snap_compare(app_factory(), terminal_size=(120, 40), run_before=before)
