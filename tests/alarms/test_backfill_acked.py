"""Backfill: an alarm acknowledged before the batch was processed does not page again.

docs/ARCHITECTURE.md "Paging": late samples page only if the alarm is still active after the
batch, unacknowledged; an occurrence that an operator already acknowledged (the batch ends
ACKED) is one of the excursions of the informational page, not a new incident.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from alarms.lifecycle import AlarmState, Event, State, step
from alarms.outbox import OUTBOX_MIGRATIONS
from alarms.paging import AlarmContext, Pager
from facility.config.schema import Channel, EscalationLevel, Operator, PagingCfg, Route

T0 = 1_700_000_000_000
INST = "SITE"
TECH = Operator("tech", "Tech", ("technician",))
CTX = AlarmContext(site="MEC", zone="MEC-LITHO", device="DEV", summary="late excursion")


@pytest.fixture
def conn(tmp_path):
    c = sqlite3.connect(str(tmp_path / "facility.db"), isolation_level=None)
    for stmt in OUTBOX_MIGRATIONS:
        c.execute(stmt)
    yield c
    c.close()


def pager() -> Pager:
    hook = Channel(id="hook", type="webhook", url="http://127.0.0.1:9/", timeout_s=2.0)
    return Pager(PagingCfg(channels=(hook,), routes=(Route(levels=(EscalationLevel(0, ("hook",)),)),)),
                 INST)


def run(alarm_id: str, steps) -> tuple[AlarmState, list]:
    a = AlarmState(alarm_id, priority="high")
    items = []
    for ev, t, kw in steps:
        r = step(a, ev, now_ms=T0 + t, **kw)
        assert r, r  # a Refused result is falsy and says why
        a, effects = r
        items += [(e, CTX) for e in effects]
    return a, items


def backfill(conn, items, final):
    conn.execute("BEGIN")
    ids = pager().enqueue_backfill(conn, items, final, device="DEV", t1_ms=T0,
                                   t2_ms=T0 + 60_000, now_ms=T0 + 3_600_000)
    conn.execute("COMMIT")
    msgs = [json.loads(p) for (p,) in conn.execute("SELECT payload FROM page_outbox ORDER BY id")]
    assert len(ids) == len(msgs)
    return msgs


def test_batch_ending_acknowledged_is_an_excursion_not_a_page(conn):
    acked, items = run("DEV.t:action_high", [(Event.RAISE, 1, {}),
                                             (Event.ACK, 2, {"actor": TECH})])
    assert acked.state is State.ACKED and acked.active
    msgs = backfill(conn, items, {acked.id: acked})
    assert [(m["event"], m["dedup_key"]) for m in msgs] == [
        ("backfill_summary", f"{INST}:backfill:DEV#{T0}")]
    assert msgs[0]["custom_details"]["alarms"] == ["DEV.t:action_high"]
    assert msgs[0]["summary"].startswith("1 excursion in backfill of DEV from ")


def test_batch_ending_unacknowledged_pages_the_final_occurrence_once(conn):
    live, items = run("DEV.t:action_high", [(Event.RAISE, 1, {})])
    assert live.state is State.UNACK
    msgs = backfill(conn, items, {live.id: live})
    assert [(m["event"], m["dedup_key"]) for m in msgs] == [
        ("trigger", f"{INST}:DEV.t:action_high#1")]


def test_acknowledged_and_unacknowledged_in_one_batch(conn):
    acked, items_a = run("DEV.a:action_high", [(Event.RAISE, 1, {}),
                                               (Event.ACK, 2, {"actor": TECH})])
    live, items_b = run("DEV.b:action_high", [(Event.RAISE, 3, {})])
    msgs = backfill(conn, items_a + items_b, {acked.id: acked, live.id: live})
    assert [(m["event"], m["dedup_key"]) for m in msgs] == [
        ("trigger", f"{INST}:DEV.b:action_high#1"),
        ("backfill_summary", f"{INST}:backfill:DEV#{T0}")]
    assert msgs[1]["custom_details"]["count"] == 1


def test_an_alarm_missing_from_the_final_states_does_not_page(conn):
    live, items = run("DEV.t:action_high", [(Event.RAISE, 1, {})])
    msgs = backfill(conn, items, {})
    assert [m["event"] for m in msgs] == ["backfill_summary"]
