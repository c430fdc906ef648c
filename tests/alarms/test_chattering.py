"""Chattering and repeat control through the real Pager on a real SQLite outbox.

docs/ARCHITECTURE.md "Alarm lifecycle" (Chattering): an alarm raised 3 or more times in 60 s
pages on its first raise, then at most once per ``min_repage_s`` with "chattering: N raises
since T" (T in the site's local time), critical alarms included. The clock is the test's:
every step passes its own ``now_ms``, and every step is one transaction followed by the
pager's ``tick``, as the service's writer does each cycle.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import pytest

from alarms.lifecycle import AlarmState, Event, step
from alarms.outbox import OUTBOX_MIGRATIONS
from alarms.paging import AlarmContext, Pager, chattering
from facility.config.schema import AlarmsCfg, Channel, EscalationLevel, Operator, PagingCfg, Route

T0 = 1_700_000_000_000  # 2023-11-15 06:13:20 +08:00
S = 1000
INST = "HKSTP"
CTX = AlarmContext(site="MEC", zone="MEC-LITHO", device="MEC-DP-01", site_name="MEC",
                   zone_name="Lithography bay", timezone="Asia/Hong_Kong", point="MEC-DP-01.dp",
                   what="differential pressure", unit="Pa", quantity="pressure_diff",
                   limit=10.0, limit_name="action_low", source="Annex 1 4.14",
                   instrument="MEC-DP-01", location="Lithography bay vs Process corridor")
TECH = Operator("tech", "Tech", ("technician",))


def paging(**kw) -> PagingCfg:
    hook = Channel(id="hook", type="webhook", url="http://127.0.0.1:9/")
    return PagingCfg(channels=(hook,), routes=(Route(levels=(EscalationLevel(0, ("hook",)),)),),
                     **kw)


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "facility.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for stmt in OUTBOX_MIGRATIONS:
        conn.execute(stmt)
    yield path, conn
    conn.close()


class Flapper:
    """One alarm driven through the lifecycle; each step is one write plus a tick."""

    def __init__(self, pager, conn, alarm_id="MEC-DP-01.dp:action_low", **kw):
        self.a = AlarmState(alarm_id, priority=kw.get("priority", "high"),
                            critical=kw.get("critical", False))
        self.pager, self.conn = pager, conn

    def ctx(self, value):
        return replace(CTX, value=value, state=self.a.state.value, active=self.a.active,
                       onset_ms=self.a.onset_ms)

    def __call__(self, event, t_s, value=None, **kw):
        now = T0 + int(t_s * S)
        r = step(self.a, event, now_ms=now, onset_ms=now, cfg=AlarmsCfg(), **kw)
        assert r, r
        self.a, effects = r
        self.conn.execute("BEGIN IMMEDIATE")
        self.pager.enqueue(self.conn, effects, self.ctx(value), now_ms=now)
        self.pager.tick(self.conn, now_ms=now)
        self.conn.execute("COMMIT")

    def tick(self, t_s):
        self.conn.execute("BEGIN IMMEDIATE")
        self.pager.tick(self.conn, now_ms=T0 + int(t_s * S))
        self.conn.execute("COMMIT")


def pages(conn):
    """(seconds after T0, event, summary) of every page, in order."""
    return [((created - T0) / S, json.loads(p)["event"], json.loads(p)["summary"])
            for created, p in conn.execute("SELECT created_ms, payload FROM page_outbox"
                                           " ORDER BY id")]


def flap(al, until_s, period_s=10):
    """Raise every ``period_s``, clear half a period later, from 0 to ``until_s``."""
    t = 0
    while t <= until_s:
        al(Event.RAISE, t, value=4.0)
        al(Event.CLEAR, t + period_s / 2, value=12.0)
        t += period_s


@pytest.mark.parametrize("critical", [False, True])
def test_three_raises_in_a_minute_page_first_then_once_per_min_repage_s(db, critical):
    _, conn = db
    pager = Pager(paging(), INST)  # min_repage_s default 300
    al = Flapper(pager, conn, priority="critical" if critical else "high", critical=critical)
    flap(al, 600)  # 61 raises, 6 a minute, for ten minutes
    for t in range(610, 1300, 10):
        al.tick(t)
    got = pages(conn)
    assert [(t, e) for t, e, _ in got] == [(0, "trigger"), (20, "chattering"),
                                           (320, "chattering"), (620, "chattering")]
    prio = "CRITICAL" if critical else "HIGH"
    assert got[0][2] == (f"{prio} MEC / Lithography bay: differential pressure 4 Pa (action"
                         " limit min 10 Pa, Annex 1 4.14); MEC-DP-01 at Lithography bay vs"
                         " Process corridor; onset 2023-11-15 06:13:20 +08:00; UNACK")
    assert got[1][2].startswith("chattering: 3 raises since 2023-11-15 06:13:20 +08:00; "
                                f"{prio} MEC / Lithography bay: differential pressure 4 Pa")
    assert got[2][2].startswith("chattering: 33 raises since 2023-11-15 06:13:20 +08:00; ")
    # the last one is written after the flapping stopped: it says how the alarm is now
    assert got[3][2].startswith("chattering: 61 raises since 2023-11-15 06:13:20 +08:00; ")
    assert "differential pressure 12 Pa" in got[3][2] and got[3][2].endswith("; RTNUN")
    gaps = [b - a for (a, *_), (b, *_) in zip(got[1:], got[2:])]
    assert min(gaps) >= 300  # at most one page per min_repage_s while chattering
    assert chattering(conn) == {}  # quiet for min_repage_s: the episode is over


def test_the_chattering_state_survives_a_restart(db):
    path, conn = db
    al = Flapper(Pager(paging(), INST), conn)
    flap(al, 100)
    (ch,) = chattering(conn).values()
    assert (ch.alarm_id, ch.since_ms, ch.raises) == ("MEC-DP-01.dp:action_low", T0, 11)
    # a new service: a new pager on a new connection to the same file
    conn2 = sqlite3.connect(path, isolation_level=None)
    try:
        al.pager, al.conn = Pager(paging(), INST), conn2
        n = len(pages(conn2))
        al(Event.RAISE, 110, value=4.0)
        al(Event.CLEAR, 115, value=12.0)
        assert len(pages(conn2)) == n  # still chattering: no page of its own
        ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        assert chattering(ro)["MEC-DP-01.dp:action_low"].raises == 12  # readers see it too
        ro.close()
    finally:
        conn2.close()


def test_a_raise_back_within_a_minute_pages_nothing_new(db):
    """Repeat control below the chattering threshold: raise, clear, raise is one page."""
    _, conn = db
    al = Flapper(Pager(paging(), INST), conn)
    al(Event.RAISE, 0, value=4.0)
    al(Event.CLEAR, 5, value=12.0)
    al(Event.RAISE, 30, value=4.0)  # 2 raises in 60 s: not chattering, and nothing new
    assert [e for _, e, _ in pages(conn)] == ["trigger"]
    assert chattering(conn) == {}
    al(Event.CLEAR, 40, value=12.0)
    al.tick(99)
    assert [e for _, e, _ in pages(conn)] == ["trigger"]
    al.tick(100)  # the return waited the chattering window, and is paged with its time
    (t, event, summary) = pages(conn)[-1]
    assert (t, event) == (100, "update")
    assert summary.endswith("; RTNUN: returned at 2023-11-15 06:14:00 +08:00, not acknowledged")
    al(Event.RAISE, 200, value=3.0)  # after a paged return, a raise is news again
    assert pages(conn)[-1][:2] == (200, "realarm")


def test_acknowledging_a_chattering_alarm_still_reaches_the_channels(db):
    _, conn = db
    al = Flapper(Pager(paging(), INST), conn)
    flap(al, 40)
    al(Event.RAISE, 50, value=4.0)
    al(Event.ACK, 51, actor=TECH, reason="valve sticking")
    rows = conn.execute("SELECT action FROM page_outbox ORDER BY id").fetchall()
    assert [a for (a,) in rows] == ["trigger", "trigger", "acknowledge"]
    al(Event.CLEAR, 55, value=12.0)
    assert conn.execute("SELECT action FROM page_outbox ORDER BY id DESC LIMIT 1"
                        ).fetchone() == ("resolve",)


def test_min_repage_s_is_the_configured_one(db):
    _, conn = db
    al = Flapper(Pager(paging(min_repage_s=60.0), INST), conn)
    flap(al, 200)
    assert [(t, e) for t, e, _ in pages(conn)] == [(0, "trigger"), (20, "chattering"),
                                                   (80, "chattering"), (140, "chattering"),
                                                   (200, "chattering")]
