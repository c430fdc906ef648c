"""A new critical alarm rings the terminal bell once; a low one, or one already there, not.

The alarm rows are written into a real store by the store's own writer while the TUI reads
it (as the service does each cycle). ``FacilityApp.bells`` counts the bells rung; Textual's
``App.bell`` writes BEL to the terminal, which a headless test has none of.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

import pytest

from facility.config import load_config
from facility.store import Cycle, Store
from tests.fixtures import sample_db
from tests.fixtures.wait import DEADLINE_S, pilot_until
from tui.app import make_app

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "config.toml")
T0 = sample_db.T0


def _raise(db: str, aid: str, priority: str, occurrence: int = 1) -> None:
    """Write a new unacknowledged occurrence, as the service's cycle does."""
    with Store(db) as store:
        store.write_cycle(Cycle(alarms=[{
            "id": aid, "state": "UNACK", "priority": priority, "occurrence": occurrence,
            "active": 1, "acked": 0, "onset_ms": T0, "detected_ms": T0, "zone": "MEC-LITHO",
            "site": "MEC", "point": "MEC-PC-01.pc_0_5um", "limit": 1.0, "source": "test"}]))


async def _until(pilot, cond, timeout: float = DEADLINE_S) -> None:
    await pilot_until(pilot, cond, timeout=timeout)


async def _after_two_reads(pilot, app) -> None:
    """Wait until a read that started after now has been handled (a write is seen)."""
    seen = app.snapshots_seen
    await _until(pilot, lambda: app.snapshots_seen >= seen + 2)


@pytest.fixture
def db(tmp_path):
    cfg = load_config(CONFIG)
    path = str(tmp_path / "facility.db")
    sample_db.build(cfg, path)  # holds an unacknowledged critical alarm already
    return cfg, path


async def test_bell_rings_once_for_a_new_critical_alarm_and_not_for_a_low_one(db):
    cfg, path = db
    assert cfg.tui.bell  # on by default
    app = make_app(cfg, path, refresh_s=0.05, login="tmchan", clock=lambda: T0)
    async with app.run_test(size=(100, 30)) as pilot:
        await _after_two_reads(pilot, app)
        assert app.bells == 0  # the critical alarm there at start is not new
        await asyncio.to_thread(_raise, path, "MEC-LITHO.test:low", "low")
        await _until(pilot, lambda: any(a["id"] == "MEC-LITHO.test:low"
                                        for a in app.snapshot.alarms))
        await _after_two_reads(pilot, app)
        assert app.bells == 0
        await asyncio.to_thread(_raise, path, "MEC-LITHO.test:critical", "critical")
        await _until(pilot, lambda: app.bells >= 1)
        await _after_two_reads(pilot, app)
        assert app.bells == 1  # once, not on every refresh while it stays unacknowledged
        await asyncio.to_thread(_raise, path, "MEC-LITHO.test:critical", "critical", 2)
        await _until(pilot, lambda: app.bells >= 2)  # a new occurrence is new again


async def test_bell_off_in_the_config_stays_silent(db):
    cfg, path = db
    quiet = dataclasses.replace(cfg, tui=dataclasses.replace(cfg.tui, bell=False))
    app = make_app(quiet, path, refresh_s=0.05, login="tmchan", clock=lambda: T0)
    async with app.run_test(size=(100, 30)) as pilot:
        await _after_two_reads(pilot, app)
        await asyncio.to_thread(_raise, path, "MEC-LITHO.test:critical", "critical")
        await _until(pilot, lambda: any(a["id"] == "MEC-LITHO.test:critical"
                                        for a in app.snapshot.alarms))
        await _after_two_reads(pilot, app)
        assert app.bells == 0
