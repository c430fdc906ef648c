"""Acknowledge the way shifts work: several alarms, one reason, each occurrence on its own.

The first test runs the real service (simulator, engine, store, action socket) with a door
held open and a gas leak, marks every alarm awaiting an acknowledgement in the TUI, gives one
reason, and checks the service audited one ack per occurrence. The second uses the real
action socket with a handler that refuses one occurrence as superseded, as the service does,
and checks the refusal stays in the dialog while the other one goes through.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3

from facility.config import load_config
from facility.service.socket import current_login
from tests.fixtures import sample_db
from tests.fixtures.service import CASCADE, wait_for
from tests.fixtures.wait import DEADLINE_S, pilot_until
from tui.app import make_app
from tui.screens.action_modal import ActionModal
from tui.screens.base import DataScreen
from tui.widgets.live_table import LiveTable

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "config.toml")
GAS = "GD-1:gas_high"
REASON = "shift handover: door and leak checked on site"


async def _until(pilot, cond, timeout: float = DEADLINE_S) -> None:
    await pilot_until(pilot, cond, timeout=timeout)


def _acks(db: str) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT actor, subject, reason FROM audit WHERE action = 'ack'"
                            " ORDER BY id").fetchall()
    finally:
        conn.close()


async def test_one_reason_acknowledges_each_occurrence_with_its_own_audit_row(start_service):
    run = start_service()
    cfg = run.cfg
    run.call(run.sim.set_scenario, "door-open", "Z1")
    run.call(run.sim.set_scenario, "gas-leak", "GD-1")
    assert await asyncio.to_thread(wait_for, lambda: run.state(CASCADE).state.value == "UNACK"
                                   and run.state(GAS).state.value == "UNACK")
    app = make_app(cfg, cfg.db_path, refresh_s=0.2, login=current_login())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        table = None

        def listed():
            nonlocal table
            table = app.screen.query_one("#alarm-list", LiveTable)
            return (app.current_mode == "alarms" and isinstance(app.screen, DataScreen)
                    and {CASCADE, GAS} <= set(table._keys))
        await _until(pilot, listed)
        await pilot.press("asterisk")  # every shown alarm awaiting an acknowledgement
        marked = dict(app.screen.marked)
        assert {CASCADE, GAS} <= set(marked)
        await pilot.press("a")
        await _until(pilot, lambda: isinstance(app.screen, ActionModal)
                     and app.focused is app.screen.query_one("#reason"))
        assert app.screen.subject == f"{len(marked)} alarms"
        await pilot.press(*REASON, "enter")
        await _until(pilot, lambda: app.last_outcome is not None, timeout=90)
        outcome = app.last_outcome
        await _until(pilot, lambda: not isinstance(app.screen, ActionModal))
        assert outcome.ok, outcome.message
        assert len(outcome.results) == len(marked)
        assert app.screen.marked == {}  # accepted ones are unmarked
    for aid in marked:
        assert run.state(aid).state.value in ("ACKED", "NORM"), aid
    run.stop()
    acks = _acks(cfg.db_path)
    assert sorted(s for _a, s, _r in acks) == sorted(f"{a}#{o}" for a, o in marked.items())
    assert {r for _a, _s, r in acks} == {REASON}
    assert {a for a, _s, _r in acks} == {current_login()}


class RefuseOne:
    """A real action handler: accepts every ack but one, refused as superseded (the service's
    words), and records what reached it."""

    def __init__(self, refuse: str):
        self.refuse = refuse
        self.calls: list[dict] = []

    async def __call__(self, login: str, req: dict) -> dict:
        self.calls.append(req)
        if req["alarm"] == self.refuse:
            occ = req["occurrence"]
            return {"ok": False,
                    "message": f"occurrence #{occ} of {req['alarm']} is superseded by #{occ + 1}"}
        return {"ok": True, "message": f"ack {req['alarm']}#{req['occurrence']}: now ACKED"}


async def test_a_superseded_occurrence_is_refused_on_its_own(tmp_path):
    from facility.service.socket import ActionServer

    cfg = load_config(CONFIG)
    db = str(tmp_path / "facility.db")
    sample_db.build(cfg, db)
    stale = "MEC-PC-01.pc_0_5um:alert_high"
    fresh = "MEC-PC-02.pc_0_5um:action_high"
    handler = RefuseOne(stale)
    server = ActionServer(db + ".sock", handler)
    await server.start()
    try:
        app = make_app(cfg, db, login="tmchan", clock=lambda: sample_db.T0)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("2")
            await _until(pilot, lambda: app.current_mode == "alarms"
                         and app.screen.drawn is app.snapshot is not None)
            table = app.screen.query_one("#alarm-list", LiveTable)
            table.select_key(fresh)
            await _until(pilot, lambda: table.current_key == fresh)
            await pilot.press("Z")  # every alarm of MEC-LITHO awaiting an acknowledgement
            assert app.screen.marked == {fresh: 1, stale: 3}
            assert table.get_cell(stale, "0").plain == "●med"
            assert table.get_cell("MEC-GD-01:comm", "0").plain == " crit"  # not marked
            await pilot.press("a")
            await _until(pilot, lambda: isinstance(app.screen, ActionModal)
                         and app.focused is app.screen.query_one("#reason"))
            modal = app.screen
            await pilot.press(*"particle burst after a wafer drop", "enter")
            result = modal.query_one("#action-result")
            await _until(pilot, lambda: "superseded" in str(result.render()))
            assert app.screen is modal and [a["id"] for a in modal.batch] == [stale]
            assert "1 of 2 alarms done" in str(result.render())
            await pilot.press("escape")  # the accepted one is reported, its mark removed
            await _until(pilot, lambda: not isinstance(app.screen, ActionModal))
            assert app.last_outcome.ok and len(app.last_outcome.results) == 1
            assert app.screen.marked == {stale: 3}
    finally:
        await server.close()
    assert [(c["alarm"], c["occurrence"], c["reason"]) for c in handler.calls] == [
        (fresh, 1, "particle burst after a wafer drop"),
        (stale, 3, "particle burst after a wafer drop")]
