"""Alarm floods per ISA-18.2, per site, through the real Pager on a real SQLite outbox.

docs/ARCHITECTURE.md "Paging" (Flood control): more than ``flood_max`` new alarms below
critical within ``flood_window_s`` at one site start a flood there; it ends when the count in
the window falls below ``flood_max / 2``; meanwhile new alarms below critical are summarised
with counts per priority and room; critical alarms are never folded and never counted. The
clock is the test's; one summary run goes through the Dispatcher to a loopback receiver.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from alarms.dispatcher import Dispatcher
from alarms.lifecycle import AlarmState, Event, step
from alarms.outbox import OUTBOX_MIGRATIONS
from alarms.paging import AlarmContext, Pager, in_flood
from facility.config.schema import AlarmsCfg, Channel, EscalationLevel, PagingCfg, Route
from tests.alarms.test_paging import ANSWER_S, Receiver, drain

T0 = 1_700_000_000_000  # 2023-11-15 06:13:20 +08:00
S = 1000
INST = "HKSTP"
HK = "Asia/Hong_Kong"


def ctx(site, zone):
    return AlarmContext(site=site, zone=zone, site_name={"MEC": "Microelectronics Centre",
                                                         "MARS": "MARS"}[site],
                        timezone=HK, summary=f"an alarm in {zone}")


def paging(url="http://127.0.0.1:9/", **kw) -> PagingCfg:
    kw.setdefault("flood_max", 4)
    kw.setdefault("flood_window_s", 600.0)
    hook = Channel(id="hook", type="webhook", url=url, timeout_s=ANSWER_S)
    return PagingCfg(channels=(hook,), routes=(Route(levels=(EscalationLevel(0, ("hook",)),)),),
                     base_backoff_s=0.01, max_backoff_s=0.05, **kw)


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "facility.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for stmt in OUTBOX_MIGRATIONS:
        conn.execute(stmt)
    yield path, conn
    conn.close()


class Site:
    """New alarms at a site, each raised in its own write followed by the pager's tick."""

    def __init__(self, pager, conn):
        self.pager, self.conn, self.n = pager, conn, 0

    def alarm(self, t_s, site="MEC", zone="MEC-LITHO", priority="medium", critical=False):
        self.n += 1
        now = T0 + int(t_s * S)
        aid = f"{site}-D{self.n}:action_high"
        _, effects = step(AlarmState(aid, priority=priority, critical=critical), Event.RAISE,
                          now_ms=now, cfg=AlarmsCfg())
        self.conn.execute("BEGIN IMMEDIATE")
        ids = self.pager.enqueue(self.conn, effects, ctx(site, zone), now_ms=now)
        self.pager.tick(self.conn, now_ms=now)
        self.conn.execute("COMMIT")
        return aid, bool(ids)

    def tick(self, t_s):
        self.conn.execute("BEGIN IMMEDIATE")
        ids = self.pager.tick(self.conn, now_ms=T0 + int(t_s * S))
        self.conn.execute("COMMIT")
        return ids


def messages(conn):
    return [json.loads(p) for (p,) in conn.execute("SELECT payload FROM page_outbox ORDER BY id")]


def test_a_flood_starts_above_flood_max_at_one_site_only(db):
    _, conn = db
    s = Site(Pager(paging(), INST, flood_group_s=3600), conn)
    assert [s.alarm(t)[1] for t in (0, 10, 20, 30)] == [True] * 4  # flood_max = 4 page
    assert s.alarm(40)[1] is False  # the fifth in the window is above flood_max: folded
    assert set(in_flood(conn)) == {"MEC"}
    assert s.alarm(41, site="MARS", zone="MARS-LINE1")[1] is True  # another site pages
    assert s.alarm(42, priority="critical", critical=True)[1] is True  # never folded
    assert s.alarm(43)[1] is False
    (n,) = conn.execute("SELECT COUNT(*) FROM page_flood WHERE site='MEC'").fetchone()
    assert n == 6  # the critical one is not counted


def test_a_flood_ends_below_half_not_when_the_rate_drops_below_flood_max(db):
    _, conn = db
    s = Site(Pager(paging(), INST, flood_group_s=3600), conn)
    for t in (0, 10, 20, 30):
        s.alarm(t)
    assert [s.alarm(t)[1] for t in (40, 50)] == [False, False]
    # 625 s: the window (25 s, 625 s] holds 3 alarms, below flood_max = 4 but not below
    # half of it: still a flood
    assert s.alarm(625)[1] is False
    assert set(in_flood(conn)) == {"MEC"}
    # 660 s: (60 s, 660 s] holds 1 < 2: the flood is over and this alarm pages
    assert s.alarm(660)[1] is True
    assert in_flood(conn) == {}
    over = messages(conn)
    summary, resolve = [m for m in over if m["class"] == "flood"]
    assert (summary["event"], summary["action"]) == ("flood_summary", "trigger")
    assert summary["custom_details"]["count"] == 3 and summary["custom_details"]["ended"]
    assert summary["summary"].endswith("; flood over at 2023-11-15 06:24:20 +08:00")
    assert (resolve["event"], resolve["action"]) == ("flood_over", "resolve")
    assert resolve["dedup_key"] == summary["dedup_key"] == f"{INST}:flood:MEC#{T0 + 40 * S}"
    assert resolve["summary"] == ("alarm flood at Microelectronics Centre over at 2023-11-15"
                                  " 06:24:20 +08:00: 3 alarms were not paged one by one since"
                                  " 2023-11-15 06:14:00 +08:00")


async def test_the_summary_counts_per_priority_and_room_and_critical_is_never_folded(db):
    path, conn = db
    rec = Receiver()
    try:
        cfg = paging(rec.url)
        s = Site(Pager(cfg, INST, flood_group_s=30), conn)
        for t in range(4):
            s.alarm(t)
        zones = ["MEC-LITHO", "MEC-LITHO", "MEC-ETCH", "MEC-ETCH", "MEC-ETCH", "MEC-LITHO"]
        prios = ["low", "medium", "low", "high", "medium", "low"]
        for i, (z, p) in enumerate(zip(zones, prios)):
            assert s.alarm(10 + i, zone=z, priority=p)[1] is False
        gas = [s.alarm(20 + i, priority="critical", critical=True)[1] for i in range(2)]
        assert gas == [True, True]
        assert s.tick(39) == []  # the first summary waits flood_group_s for more folds
        assert len(s.tick(40)) == 1
        assert s.tick(60) == []  # nothing new folded: no second summary
        d = Dispatcher(path, cfg)
        await drain(d, conn)
        d.close()
    finally:
        rec.close()
    got = rec.accepted()
    assert sorted(m["event"] for m in got) == ["flood_summary"] + ["trigger"] * 6
    (m,) = [m for m in got if m["event"] == "flood_summary"]
    assert m["summary"] == ("alarm flood at Microelectronics Centre: 6 alarms below critical"
                            " not paged one by one since 2023-11-15 06:13:30 +08:00 (1 high,"
                            " 2 medium, 3 low; rooms: MEC-ETCH 3, MEC-LITHO 3)")
    assert m["custom_details"] == {"count": 6, "by_priority": {"high": 1, "medium": 2, "low": 3},
                                   "by_zone": {"MEC-ETCH": 3, "MEC-LITHO": 3}, "site": "MEC",
                                   "new": 6, "ended": False}
    assert m["severity"] == "error"  # the most urgent folded priority (high)


def test_later_summaries_come_at_most_every_min_repage_s(db):
    _, conn = db
    s = Site(Pager(paging(min_repage_s=300.0), INST, flood_group_s=0), conn)
    for t in range(0, 50, 10):
        s.alarm(t)  # the fifth folds and is summarised at once (flood_group_s = 0)
    for t in range(60, 361, 30):
        s.alarm(t)  # the rate stays high: all folded; none summarised before 40 s + 300 s
    summaries = [m for m in messages(conn) if m["event"] == "flood_summary"]
    assert [m["custom_details"]["count"] for m in summaries] == [1, 12]
    assert [m["timestamp"] for m in summaries] == ["2023-11-14T22:14:00.000Z",
                                                   "2023-11-14T22:19:20.000Z"]
    assert summaries[1]["custom_details"]["new"] == 11
