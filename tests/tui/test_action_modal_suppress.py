"""The action dialog asks a suppression for its duration, as it does a shelve.

Every hide has an end (docs/ARCHITECTURE.md "Critical alarms"), so a suppression sent from
the terminal carries ``duration_s`` like one from ``facility suppress --for``. Real store,
real ActionServer with a recording handler; waits are on conditions.
"""

from __future__ import annotations

import os

from facility.config import load_config
from facility.service.socket import ActionServer
from tests.fixtures import sample_db
from tests.fixtures.actions import Recorder
from tests.fixtures.wait import pilot_until
from tui.app import make_app
from tui.screens.action_modal import ActionModal

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "config.toml")
ALARM = "MEC-PC-01.pc_0_5um:alert_high"


async def _until(pilot, cond) -> None:
    await pilot_until(pilot, cond)


async def test_suppress_dialog_sends_the_duration(tmp_path):
    cfg = load_config(CONFIG)
    db = str(tmp_path / "facility.db")
    sample_db.build(cfg, db)
    rec = Recorder({"ok": True, "message": "suppressed"})
    server = ActionServer(db + ".sock", rec)
    await server.start()
    try:
        app = make_app(cfg, db, login="smwong", clock=lambda: sample_db.T0)
        async with app.run_test(size=(100, 30)) as pilot:
            await _until(pilot, lambda: app.snapshot is not None)
            alarm = next(a for a in app.snapshot.alarms if a["id"] == ALARM)
            app.open_action("suppress", alarm=alarm)
            await _until(pilot, lambda: isinstance(app.screen, ActionModal)
                         and app.focused is app.screen.query_one("#duration"))
            await pilot.press(*"2h", "enter")
            await _until(pilot, lambda: app.focused is app.screen.query_one("#reason"))
            await pilot.press(*"chiller swap", "enter")
            await _until(pilot, lambda: rec.calls)
    finally:
        await server.close()
    (login, req), = rec.calls
    assert (req["action"], req["alarm"], req["duration_s"], req["reason"]) == (
        "suppress", ALARM, 7200.0, "chiller swap")
