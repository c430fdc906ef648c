"""What needs the operator comes first, and the counts say what there is.

The alarm list puts unacknowledged active alarms first, then acknowledged active ones, then
returned-unacknowledged, latched, hidden; by priority, then newest first within each (a new
alarm once sorted below old returned ones). The overview counts only what needs attention
(a row once said "5 med" while every value was green), and the header counts per state and
priority. Pure views on built snapshots, then the real screens on the sample database.
"""

from __future__ import annotations

import os

import pytest

from facility.config import load_config
from tests.fixtures import sample_db
from tests.fixtures.wait import DEADLINE_S, pilot_until
from tui.app import make_app
from tui.data import Snapshot
from tui.screens.base import DataScreen
from tui.views.alarms import alarm_counts, counts_text, sorted_alarms, zone_badge
from tui.widgets.live_table import LiveTable

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "config.toml")
T0 = sample_db.T0


def alarm(aid, state, prio, onset_s, active=1, acked=None, zone="Z1"):
    acked = (0 if state in ("UNACK", "RTNUN") else 1) if acked is None else acked
    return {"id": aid, "state": state, "priority": prio, "occurrence": 1, "active": active,
            "acked": acked, "onset_ms": T0 - onset_s * 1000, "zone": zone}


ALARMS = [
    alarm("old-returned-crit", "RTNUN", "critical", 7200, active=0),
    alarm("acked-active-crit", "ACKED", "critical", 3600),
    alarm("new-unack-low", "UNACK", "low", 10),
    alarm("older-unack-high", "UNACK", "high", 600),
    alarm("newer-unack-high", "UNACK", "high", 60),
    alarm("latched-acked", "ACKED", "critical", 5000, active=0),
    alarm("shelved-crit", "SHLVD", "critical", 20),
    alarm("normal", "NORM", "critical", 30, active=0, acked=1),
    alarm("suppressed-inactive", "DSUPR", "high", 30, active=0),
]


def test_unacknowledged_active_first_by_priority_then_newest():
    order = [a["id"] for a in sorted_alarms(Snapshot(now_ms=T0, alarms=ALARMS))]
    assert order == ["newer-unack-high", "older-unack-high", "new-unack-low",
                     "acked-active-crit", "old-returned-crit", "latched-acked", "shelved-crit"]


def test_counts_per_state_and_priority_needing_attention():
    counts = alarm_counts(ALARMS)
    assert counts.by_state == {"UNACK": 3, "ACKED": 2, "RTNUN": 1, "SHLVD": 1}
    # attention: 3 unack + acked active + returned unack; not latched-acked, shelved, normal
    assert counts.by_priority == {"critical": 2, "high": 2, "low": 1}
    assert counts_text(counts).plain == (
        "3 UNACK  2 ACKED  1 RTNUN  1 SHLVD │ need attention: 2 crit  2 high  1 low")
    assert counts_text(alarm_counts([])).plain == "no alarms"


@pytest.mark.parametrize("alarms,text", [
    ([], "ok"),
    ([alarm("a", "ACKED", "medium", 1, active=0)], "ok"),  # returned and acknowledged
    ([alarm("a", "SHLVD", "critical", 1)], "ok"),
    ([alarm("a", "RTNUN", "medium", 1, active=0)] * 5, "5 rtn"),  # green values, still to ack
    ([alarm("a", "UNACK", "medium", 1), alarm("b", "ACKED", "critical", 1),
      alarm("c", "RTNUN", "high", 1, active=0)], "2 crit +1 rtn"),
], ids=["none", "returned-acked", "shelved", "returned-unacked", "mixed"])
def test_overview_badge_counts_what_needs_attention(alarms, text):
    badge = zone_badge(alarms)
    assert badge.plain == text
    assert ("reverse" in str(badge.spans[0].style if badge.spans else badge.style)) == (
        any(a["state"] == "UNACK" and a["active"] for a in alarms))


async def _until(pilot, cond, timeout: float = DEADLINE_S) -> None:
    await pilot_until(pilot, cond, timeout=timeout)


async def test_screens_show_the_counts_and_the_order(tmp_path):
    cfg = load_config(CONFIG)
    db = str(tmp_path / "facility.db")
    sample_db.build(cfg, db)
    app = make_app(cfg, db, login="tmchan", clock=lambda: T0)
    async with app.run_test(size=(120, 30)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, DataScreen)
                     and app.screen.drawn is app.snapshot is not None)
        zones = app.screen.query_one("#zones", LiveTable)
        assert zones.get_cell("MEC-WET", "8").plain == "1 rtn"  # its ΔP alarm has returned
        assert zones.get_cell("MEC-GASRM", "8").plain == "1 crit"  # comm; the shelved RH not
        counts = str(app.screen.query_one("#alarm-counts").render())
        assert counts == ("3 UNACK  1 ACKED  1 RTNUN  1 SHLVD │ need attention: 2 crit  2 high"
                          "  1 med")
        await pilot.press("2")
        await _until(pilot, lambda: app.current_mode == "alarms"
                     and app.screen.drawn is app.snapshot)
        table = app.screen.query_one("#alarm-list", LiveTable)
        assert table._keys[0] == "MEC-PC-02.pc_0_5um:action_high"  # the newest critical UNACK
        assert str(app.screen.query_one("#alarm-counts").render()) == counts
