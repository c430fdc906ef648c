"""The demo's TUI (Pilot, a real store): the pages pane lists what the on-call engineer was
sent, and each step of the demo's story is announced on screen, also when it starts before
the TUI is up."""

from __future__ import annotations

import sqlite3

import pytest

from alarms import outbox
from alarms.outbox import OUTBOX_MIGRATIONS, OUTBOX_NAMESPACE
from facility.launch import TIMELINE, Announcer
from facility.store import Store
from tests.fixtures import sample_db
from tests.fixtures.wait import DEADLINE_S, pilot_until
from tui.demo import make_demo_app
from tui.screens.pages import PagesScreen
from tui.widgets.live_table import LiveTable

T0 = sample_db.T0
HOSTILE = "MEC-GD-04 arsine high \x1b[2J\x1b]0;owned\x07 gas room [b]evacuate[/b]"


@pytest.fixture
def db(db):  # the sample database (tests/tui/conftest.py), then more
    path = db
    with Store(path) as store:
        store.add_migrations(OUTBOX_NAMESPACE, OUTBOX_MIGRATIONS)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    for i, (key, event) in enumerate((("t:MEC-GD-04:gas_high#1", "trigger"),
                                      ("t:MEC-GD-04:gas_high#1", "acknowledge"))):
        outbox.put(conn, "demo-inbox", key, event,
                   {"summary": HOSTILE, "event": event,
                    "custom_details": {"priority": "critical"}}, T0 + i * 60_000)
    conn.execute("UPDATE page_outbox SET state='sent', attempts=1, sent_ms=? WHERE id=1",
                 (T0 + 400,))
    conn.execute("COMMIT")
    conn.close()
    return path


async def wait_until(pilot, cond, timeout: float = DEADLINE_S) -> None:
    await pilot_until(pilot, cond, timeout=timeout)


def _cells(table: LiveTable) -> list[list[str]]:
    return [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)]
            for i in range(table.row_count)]


async def test_pages_pane_lists_the_outbox(cfg, db):
    app = make_demo_app(cfg, db, login="tmchan", clock=lambda: T0 + 120_000)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        await pilot.press("6")
        await wait_until(pilot, lambda: isinstance(app.screen, PagesScreen)
                         and app.screen.query_one("#page-list", LiveTable).row_count == 2)
        table = app.screen.query_one("#page-list", LiveTable)
        rows = _cells(table)
        # newest first, in the site's local time (Hong Kong, 18:02:11 at T0)
        assert [r[:5] for r in rows] == [
            ["18:03:11", "queued", "critical", "acknowledge", "-"],
            ["18:02:11", "sent", "critical", "trigger", "-"]], rows
        assert all(r[5] == "demo-inbox" for r in rows)
        detail = str(app.screen.query_one("#page-detail").render())
        # text is data: no escape sequence, the markup shown as typed
        assert "gas room [b]evacuate[/b]" in detail and "\x1b" not in detail, detail
        await pilot.press("1")
        await wait_until(pilot, lambda: app.current_mode == "overview")
        await pilot.press("p")
        await wait_until(pilot, lambda: app.current_mode == "pages")


async def test_story_steps_are_announced_in_the_tui(cfg, db):
    app = make_demo_app(cfg, db, login="tmchan", clock=lambda: T0)
    announce = Announcer()
    announce.attach(app)
    announce(TIMELINE[0])  # the story may start before the TUI is up: it waits its turn
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            # App._notifications: what the notification area shows (no public reader)
            await wait_until(pilot, lambda: [n.message for n in app._notifications]
                             == [TIMELINE[0].text])
            announce(TIMELINE[1])
            await wait_until(pilot, lambda: [n.message for n in app._notifications][-1:]
                             == [TIMELINE[1].text])
            assert [n.title for n in app._notifications] == ["demo", "demo"]
    finally:
        announce.close()
    assert [s.scenario for s in TIMELINE] == ["door-open", "particle-excursion", "gas-leak",
                                              "normal"]
    # each alarm has room before the next step: the door grace (10 s) ends before the
    # particle step, the particle record (5 s) lands before the gas step
    door, particle, gas = (s.at_s for s in TIMELINE[:3])
    assert door + 10 + 5 <= particle and particle + 5 + 5 <= gas
