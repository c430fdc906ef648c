"""Pilot tests of the technician's terminal against a real store and a real ActionServer.

Every wait is on a condition with a generous deadline (``wait_until``), never on time or
on the pilot's "the process looks idle" heuristic alone: with every core busy the app's
tasks and the refresh worker run late, and a key press may be handled a while after
``pilot.press`` returns.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest
from textual.screen import Screen

from facility.service.socket import ActionServer
from tests.fixtures import sample_db
from tests.fixtures.wait import DEADLINE_S, pilot_until
from tui.app import make_app
from tui.fmt import local_time, parse_duration
from tui.screens.action_modal import ActionModal
from tui.screens.base import DataScreen
from tui.screens.help import HelpScreen
from tui.widgets.banner import StaleBanner
from tui.widgets.live_table import LiveTable

T0 = sample_db.T0




class Clock:
    """An injectable clock the test moves by hand."""

    def __init__(self, ms: int = T0):
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


async def wait_until(pilot, cond, timeout: float = DEADLINE_S) -> None:
    await pilot_until(pilot, cond, timeout=timeout)


def drawn(app, mode: str | None = None) -> bool:
    """The data screen in view (of ``mode``) shows the app's latest snapshot."""
    screen = app.screen
    return (isinstance(screen, DataScreen) and (mode is None or app.current_mode == mode)
            and app.snapshot is not None and screen.drawn is app.snapshot)


async def started(app, pilot) -> None:
    await wait_until(pilot, lambda: drawn(app))


async def show(pilot, app, key: str, mode: str) -> None:
    """Press a screen key and wait until that screen shows the latest snapshot."""
    await pilot.press(key)
    await wait_until(pilot, lambda: drawn(app, mode))


async def dialog(pilot, app, field: str = "reason") -> ActionModal:
    """Wait for the action dialog, with the typing going to its ``field``."""
    await wait_until(pilot, lambda: isinstance(app.screen, ActionModal)
                     and app.focused is app.screen.query_one(f"#{field}"))
    return app.screen


async def alarm_selected(pilot, app, key: str) -> LiveTable:
    """Start, open the alarm list and put the cursor on ``key``."""
    await started(app, pilot)
    await show(pilot, app, "2", "alarms")
    table = app.screen.query_one("#alarm-list", LiveTable)
    table.select_key(key)
    await wait_until(pilot, lambda: table.current_key == key)
    return table


class Recorder:
    """A real action handler that records what reached the service."""

    def __init__(self, reply: dict | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.reply = reply or {"ok": True, "message": "acknowledged"}

    async def __call__(self, login: str, request: dict) -> dict:
        self.calls.append((login, request))
        return dict(self.reply)


def test_local_time_and_durations():
    assert local_time(T0, "Asia/Hong_Kong") == "2026-11-23 18:02:11 +08:00"
    assert parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")


async def test_navigation_between_screens(cfg, db):
    app = make_app(cfg, db, login="tmchan", clock=Clock())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        assert app.current_mode == "overview"
        for key, mode in (("2", "alarms"), ("3", "zone"), ("4", "devices"), ("5", "hazmat"),
                          ("1", "overview"), ("d", "devices"), ("h", "hazmat"), ("z", "zone"),
                          ("o", "overview")):
            await show(pilot, app, key, mode)
        await show(pilot, app, "a", "alarms")  # from the overview, a opens the alarm screen
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen)
                         and app.screen.is_mounted)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        assert app.current_mode == "alarms"
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0


async def test_overview_shows_zones_readings_and_badges(cfg, db):
    app = make_app(cfg, db, login="tmchan", clock=Clock())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        table = app.screen.query_one("#zones", LiveTable)
        def cell(zone, col):
            return table.get_cell(zone, str(col))
        assert cell("MEC-LITHO", 1).plain == "ISO 5"
        assert cell("MEC-LITHO", 3).plain == "3 700"  # worst counter of the zone
        assert "red" in str(cell("MEC-LITHO", 3).style)  # beyond the action limit 3520
        assert cell("MEC-LITHO", 8).plain == "2 crit"
        assert cell("MARS-LINE1", 2).plain == "rest"  # zone_modes row wins over occupancy
        assert cell("MARS-LINE1", 5).plain == "+7.5"
        assert "red" in str(cell("MARS-LINE1", 5).style)  # below min_dp_pa = +10 Pa
        assert cell("MEC-GASRM", 5).plain.startswith("-")  # kept below its neighbour
        assert cell("MARS-PACK", 8).plain == "ok"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.current_mode == "zone")
        assert app.zone_focus == "MEC-LITHO"


async def test_alarms_sorted_by_priority_then_onset_with_unack_standing_out(cfg, db):
    app = make_app(cfg, db, login="tmchan", clock=Clock())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        await show(pilot, app, "2", "alarms")
        table = app.screen.query_one("#alarm-list", LiveTable)
        assert table._keys == [  # unacknowledged active, acknowledged active, returned (by
            # priority, newest first; tests/tui/test_alarm_sort.py); shelved after them
            "MEC-PC-02.pc_0_5um:action_high", "MARS-LINE1.dp_cascade:action_low",
            "MEC-PC-01.pc_0_5um:alert_high", "MEC-GD-01:comm",
            "MEC-WET.dp_cascade:action_low",
            "MEC-TH-06.humidity:alert_high"]  # inactive DSUPR rows are not listed
        state = table.get_cell("MEC-PC-01.pc_0_5um:alert_high", "1")
        assert state.plain == "UNACK" and "reverse" in str(state.style)
        assert table.get_cell("MEC-TH-06.humidity:alert_high", "1").plain.startswith("SHLVD 30m")
        table.select_key("MEC-GD-01:comm")
        await wait_until(pilot, lambda: app.snapshot.history_of == "MEC-GD-01:comm")
        hist = app.screen.query_one("#history", LiveTable)
        await wait_until(pilot, lambda: hist.row_count == 2)
        events = [hist.get_row_at(i)[3].plain for i in range(hist.row_count)]
        assert events == ["ack", "raise"]


async def _ack(pilot, app, reason: str = "door left open during transfer"):
    await show(pilot, app, "2", "alarms")
    table = app.screen.query_one("#alarm-list", LiveTable)
    table.select_key("MEC-PC-01.pc_0_5um:alert_high")
    await wait_until(pilot, lambda: table.current_key == "MEC-PC-01.pc_0_5um:alert_high")
    await pilot.press("a")
    modal = await dialog(pilot, app)
    assert "You are: Chan Tai Man (tmchan)" in str(modal.query_one("#action-who").render())
    if reason:
        await pilot.press(*reason)
    await pilot.press("enter")
    return modal


async def test_acknowledge_reaches_the_service_with_login_and_reason(cfg, db):
    rec = Recorder({"ok": True, "message": "acknowledged MEC-PC-01.pc_0_5um:alert_high #3"})
    server = ActionServer(db + ".sock", rec)
    await server.start()
    try:
        app = make_app(cfg, db, login="tmchan", clock=Clock())
        async with app.run_test(size=(100, 30)) as pilot:
            await started(app, pilot)
            await _ack(pilot, app)
            await wait_until(pilot, lambda: app.last_outcome is not None)
            assert not isinstance(app.screen, ActionModal)
            status = app.screen.query_one("#action-status")
            await wait_until(pilot, lambda: "acknowledged MEC-PC-01.pc_0_5um:alert_high #3"
                             in str(status.render()))
    finally:
        await server.close()
    assert len(rec.calls) == 1
    login, payload = rec.calls[0]
    assert login  # the service sees the OS login of the connecting process
    assert payload == {"action": "ack", "alarm": "MEC-PC-01.pc_0_5um:alert_high",
                       "occurrence": 3, "reason": "door left open during transfer"}


async def test_refusal_is_shown_in_the_dialog(cfg, db):
    rec = Recorder({"ok": False, "message": "occurrence #3 superseded by #4"})
    server = ActionServer(db + ".sock", rec)
    await server.start()
    try:
        app = make_app(cfg, db, login="tmchan", clock=Clock())
        async with app.run_test(size=(100, 30)) as pilot:
            await started(app, pilot)
            modal = await _ack(pilot, app)
            result = modal.query_one("#action-result")
            await wait_until(pilot, lambda: "refused" in str(result.render()))
            assert "occurrence #3 superseded by #4" in str(result.render())
            assert app.screen is modal and result.has_class("refused")
    finally:
        await server.close()
    assert len(rec.calls) == 1


async def test_reason_is_required_and_nothing_is_sent(cfg, db):
    rec = Recorder()
    server = ActionServer(db + ".sock", rec)
    await server.start()
    try:
        app = make_app(cfg, db, login="tmchan", clock=Clock())
        async with app.run_test(size=(100, 30)) as pilot:
            await started(app, pilot)
            modal = await _ack(pilot, app, reason="")
            result = modal.query_one("#action-result")
            await wait_until(pilot, lambda: "a reason is required" in str(result.render()))
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, ActionModal))
    finally:
        await server.close()
    assert rec.calls == []


async def test_shelve_sends_a_duration(cfg, db):
    rec = Recorder({"ok": True, "message": "shelved"})
    server = ActionServer(db + ".sock", rec)
    await server.start()
    try:
        app = make_app(cfg, db, login="tmchan", clock=Clock())
        async with app.run_test(size=(100, 30)) as pilot:
            await alarm_selected(pilot, app, "MEC-PC-01.pc_0_5um:alert_high")
            await pilot.press("s")
            await dialog(pilot, app, "duration")
            await pilot.press(*"30m", "enter")
            await dialog(pilot, app, "reason")  # Enter in the duration moves on to the reason
            await pilot.press(*"filter change", "enter")
            await wait_until(pilot, lambda: rec.calls)
    finally:
        await server.close()
    assert rec.calls[0][1]["duration_s"] == 1800 and rec.calls[0][1]["action"] == "shelve"


async def test_service_not_running_is_reported(cfg, db):
    app = make_app(cfg, db, login="nobody", clock=Clock())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        await show(pilot, app, "2", "alarms")
        await pilot.press("a")
        modal = await dialog(pilot, app)
        assert "not in [[operators]]" in str(modal.query_one("#action-who").render())
        await pilot.press(*"test", "enter")
        result = modal.query_one("#action-result")
        await wait_until(pilot, lambda: "service not running" in str(result.render()))


async def test_stale_heartbeat_banner_appears_and_disappears(cfg, db):
    clock = Clock(T0)
    app = make_app(cfg, db, login="tmchan", refresh_s=0.05, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        banner = app.screen.query_one(StaleBanner)
        assert banner.message == "" and not banner.display
        clock.ms = T0 + 60_000  # the service's last heartbeat (T0 - 1 s) is now 61 s old
        await wait_until(pilot, lambda: banner.message != "")
        assert banner.message == "service not running since 2026-11-23 18:02:10 +08:00"
        assert banner.display
        await asyncio.to_thread(sample_db.touch_heartbeat, db, T0 + 59_000)
        await wait_until(pilot, lambda: banner.message == "")
        assert not banner.display


async def test_zone_detail_trend_limits_and_sources(cfg, db):
    app = make_app(cfg, db, login="tmchan", clock=Clock())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        app.open_zone("MEC-LITHO")
        await wait_until(pilot, lambda: app.snapshot.trends_zone == "MEC-LITHO")
        table = app.screen.query_one("#points", LiveTable)
        await wait_until(pilot, lambda: "MEC-PC-01.pc_0_5um" in table._keys)
        assert "MEC-LITHO.dp_cascade" in table._keys and "MEC-TH-01.temperature" in table._keys
        table.select_key("MEC-PC-01.pc_0_5um")
        await wait_until(pilot, lambda: drawn(app, "zone")
                         and str(table.get_cell("MEC-PC-01.pc_0_5um", "4")).strip())  # a sparkline
        panel = app.screen.query_one("#limit-sources")
        await wait_until(pilot, lambda: "ISO 14644-1:2015 class 5 at 0.5 um" in str(panel.render()))
        sources = str(panel.render())
        assert "alert_fraction" in sources and "active alarm" in sources
        assert len(app.snapshot.trends["MEC-PC-01.pc_0_5um"]) == 60  # the last hour, by minute
        await pilot.press("right")
        await wait_until(pilot, lambda: app.zone_focus == "MEC-WET")


async def test_devices_and_hazmat_screens(cfg, db, tmp_path):
    app = make_app(cfg, db, login="tmchan", clock=Clock())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        await show(pilot, app, "4", "devices")
        table = app.screen.query_one("#device-list", LiveTable)
        assert table.get_cell("MEC-GD-01", "2").plain == "FAIL"
        assert table.get_cell("MEC-GD-01", "4").plain == "12"
        assert table.get_cell("MEC-DP-01", "2").plain == "OK"
        await show(pilot, app, "5", "hazmat")
        # a read in flight when the screen opened did not ask for the ledger; the next one did
        seen = app.snapshots_seen
        await wait_until(pilot, lambda: app.snapshots_seen >= seen + 2 and drawn(app, "hazmat"))
        assert app.snapshot.hazmat is None
        assert app.screen.query_one("#no-ledger").display
        gas = app.screen.query_one("#gas", LiveTable)
        assert gas.get_cell("MEC-GD-01", "3").plain == "comm"
    ledger_db = str(tmp_path / "ledger.db")
    sample_db.build(cfg, ledger_db, hazmat=True)
    app = make_app(cfg, ledger_db, login="tmchan", clock=Clock())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        await show(pilot, app, "5", "hazmat")
        stock = app.screen.query_one("#stock", LiveTable)
        await wait_until(pilot, lambda: stock.row_count > 0)
        assert not app.screen.query_one("#no-ledger").display
        assert stock.get_cell("MEC-DGS-1:3", "4").plain == "88 %"  # 350 of 400 L


async def test_the_tui_opens_the_database_read_only(cfg, db):
    # no refresh after the first: the test uses the reader's connection while no read runs
    app = make_app(cfg, db, login="tmchan", refresh_s=3600, clock=Clock())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            app.reader.store.conn.execute("DELETE FROM alarms")


async def test_missing_database_shows_in_the_banner(cfg, tmp_path):
    app = make_app(cfg, str(tmp_path / "none.db"), login="tmchan", clock=Clock())
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        assert "does not exist" in app.screen.query_one(StaleBanner).message
    assert not os.path.exists(tmp_path / "none.db")


async def test_mode_change_from_the_overview(cfg, db):
    rec = Recorder({"ok": True, "message": "MEC-LITHO now at_rest"})
    server = ActionServer(db + ".sock", rec)
    await server.start()
    try:
        app = make_app(cfg, db, login="kylee", clock=Clock())
        async with app.run_test(size=(100, 30)) as pilot:
            await started(app, pilot)
            await pilot.press("m")  # the cursor starts on the first zone, MEC-LITHO
            await dialog(pilot, app)
            assert "Lee Ka Yan" in str(app.screen.query_one("#action-who").render())
            await pilot.press(*"cleaning", "enter")
            await wait_until(pilot, lambda: rec.calls)
    finally:
        await server.close()
    assert rec.calls[0][1] == {"action": "mode", "zone": "MEC-LITHO", "mode": "at_rest",
                               "reason": "cleaning"}


async def test_a_refresh_handled_during_shutdown_is_dropped(cfg, db):
    """Closing the app empties its screen stacks while its message loop still runs; a
    snapshot the refresh worker posted meanwhile must be dropped, not drawn on no screen."""
    app = make_app(cfg, db, login="tmchan", refresh_s=3600, clock=Clock())
    at_close: dict = {}

    class ClosedLast(Screen):
        """A screen of a mode opened after the overview, so closed after it."""

        async def on_unmount(self) -> None:
            at_close["stack"] = app.screen_stack
            at_close["seen"] = app.snapshots_seen
            app.refresh_data()  # what the refresh timer does, now that the stack is empty
            refreshing = [w for w in app.workers if w.group == "refresh"]
            await app.workers.wait_for_complete(refreshing)  # its snapshot is posted

    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        app.add_mode("closed-last", ClosedLast)
        await app.switch_mode("closed-last")
        await app.switch_mode("overview")
        await wait_until(pilot, lambda: drawn(app, "overview"))
    assert at_close["stack"] == []  # the overview's stack was empty when the snapshot came
    assert app.snapshots_seen == at_close["seen"] + 1  # ... and it was handled, not lost



@pytest.mark.parametrize("reason", [
    "[/unbalanced] [bold]not bold[/bold] [link=http://x]y",  # markup-like
    "ok\x1b[31m red \x1b]0;title\x07\r\nnext line",  # ANSI, OSC and newlines
    "r" * 2000,  # the longest reason the service accepts
], ids=["markup", "ansi", "2000-chars"])
async def test_operator_text_is_shown_as_text_never_as_markup(cfg, db, reason):
    """A technician's comment is data: the alarm list, its history and the detail line show
    it as plain characters (a markup-like reason once crashed the TUI for everyone)."""
    from facility.domain.text import clean_terminal

    with sqlite3.connect(db) as conn:
        n = conn.execute("UPDATE events SET reason = ?, actor = ? WHERE alarm_id = ? AND event = 'ack'",
                         (reason, reason[:40], "MEC-GD-01:comm")).rowcount
        conn.execute("UPDATE alarms SET ack_by = ? WHERE id = ?", (reason[:40], "MEC-GD-01:comm"))
    assert n == 1
    app = make_app(cfg, db, login="tmchan", clock=Clock())
    async with app.run_test(size=(120, 30)) as pilot:
        await alarm_selected(pilot, app, "MEC-GD-01:comm")
        await wait_until(pilot, lambda: app.snapshot.history_of == "MEC-GD-01:comm")
        hist = app.screen.query_one("#history", LiveTable)
        await wait_until(pilot, lambda: hist.row_count == 2)
        row = hist.get_row_at([hist.get_row_at(i)[3].plain for i in range(2)].index("ack"))
        shown_reason, shown_actor = row[6].plain, row[5].plain
        assert shown_reason == clean_terminal(reason)[:60]
        assert shown_actor == clean_terminal(reason[:40])
        assert not any(ord(c) < 32 for c in shown_reason + shown_actor)
        detail = app.screen.query_one("#alarm-detail")
        await wait_until(pilot, lambda: clean_terminal(reason[:40]) in str(detail.render()))
        assert app.is_running  # rendering the rows raised nothing
