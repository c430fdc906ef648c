"""The service's alarm book on its own: what each applied event leaves for the next write.

Real objects throughout: a configuration parsed from TOML, the catalogue's compiled rules,
the book, and for the paging step a real ``Pager`` writing into a SQLite outbox.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from alarms.lifecycle import Event, Refused, State
from alarms.outbox import apply_migrations as outbox_migrations
from alarms.page_text import compose_summary
from alarms.paging import Pager
from facility.catalogue import build_catalogue
from facility.config import parse_config
from facility.service.alarm_book import (
    PAGE_SUMMARY_MAX,
    AlarmBook,
    PageBatch,
    meta_of,
    state_to_row,
)
from tests.fixtures.config import device, facility_toml, operator, zone

NOW = 1_750_000_000_000
TEMP = "T-1.temp:action_high"  # high, not critical
ALERT = "T-1.temp:alert_high"  # medium
GAS = "GD-1:gas_high"  # critical, latching in this configuration


def config(tmp_path):
    text = facility_toml(
        zones=[zone("Z1", iso_class=7, area_m2=10)],
        devices=[
            device("T-1", 15030, zone="Z1", points=[{
                "name": "temp", "table": "holding", "address": 0, "type": "float32",
                "unit": "C", "quantity": "temperature",
                "limits": {"action_high": {"limit": 25.0}, "alert_high": {"limit": 23.0}}}]),
            device("GD-1", 15031, zone="Z1", profile="gas-detector", gas="arsine",
                   monitor="room"),
        ],
        operators=[operator("tech", "T. Technician", ["technician"]),
                   operator("boss", "B. Engineer", ["engineer", "shelve_critical"])],
        alarms={"latching": ["gas_high"], "max_shelve_s": 3600.0},
        paging={"channels": [{"id": "hook", "type": "webhook", "url": "http://127.0.0.1:9/p"}],
                "routes": [{"priorities": ["critical", "high", "medium", "low"],
                            "levels": [{"after_s": 0, "channels": ["hook"]}]}]},
    )
    return parse_config(text, base_dir=str(tmp_path))


@pytest.fixture
def cfg(tmp_path):
    return config(tmp_path)


@pytest.fixture
def book(cfg):
    cat = build_catalogue(cfg)
    devices = {p.id: p.device for p in cat.points}
    metas = {r.alarm_id: meta_of(r, devices.get(r.point)) for r in cat.rules}
    return AlarmBook(cfg, metas, config_version=7)


def raise_(book, aid, at=NOW, value=26.5, backfill=False):
    return book.apply(aid, Event.RAISE, now_ms=at, ts_ms=at - 1_000, value=value, by="engine",
                      backfill=backfill)


def test_a_new_book_holds_every_alarm_in_norm_with_its_configured_priority(book):
    assert book.states[TEMP].state is State.NORM and book.states[TEMP].priority == "high"
    assert book.states[GAS].critical and book.states[GAS].latching
    assert not book.states[TEMP].latching
    assert book.active() == []
    assert book.operators["boss"].roles == ("engineer", "shelve_critical")


def test_raise_queues_the_alarm_row_the_event_and_a_trigger_but_no_audit(book):
    st = raise_(book, TEMP)
    assert (st.state, st.occurrence, st.active, st.acked) == (State.UNACK, 1, True, False)
    assert book.states[TEMP] is st and book.active() == [st]
    row = book.pending.alarms[TEMP]
    assert row["state"] == "UNACK" and row["occurrence"] == 1 and row["active"] == 1
    assert row["detected_ms"] == NOW and row["ack_by"] is None and row["config_version"] == 7
    assert row["limit"] == 25.0 and row["zone"] == "Z1" and row["point"] == "T-1.temp"
    assert json.loads(row["details"])["device"] == "T-1"
    (ev,) = book.pending.events
    assert (ev["event"], ev["state_from"], ev["state_to"]) == ("raise", "NORM", "UNACK")
    assert ev["ts_ms"] == NOW - 1_000 and ev["detected_ms"] == NOW
    assert ev["actor"] == "engine" and ev["value"] == 26.5 and ev["limit"] == 25.0
    assert book.pending.audit == []
    ((effect, ctx, backfill),) = book.pending.effects
    assert (effect.kind, effect.alarm_id, effect.occurrence) == ("trigger", TEMP, 1)
    assert ctx.device == "T-1" and ctx.zone == "Z1" and not backfill
    assert (ctx.value, ctx.limit, ctx.limit_name, ctx.state) == (26.5, 25.0, "action_high",
                                                                  "UNACK")
    assert ctx.onset_ms == NOW - 1_000 and ctx.timezone == "Asia/Hong_Kong" and ctx.source


def test_ack_records_who_why_and_when_and_audits_it(book):
    raise_(book, TEMP)
    book.pending.take()
    st = book.apply(TEMP, Event.ACK, now_ms=NOW + 5_000, actor=book.operators["tech"],
                    reason="seen, door open")
    assert st.state is State.ACKED and st.acked
    row = book.pending.alarms[TEMP]
    assert (row["ack_by"], row["ack_reason"], row["ack_ms"]) == ("tech", "seen, door open",
                                                                 NOW + 5_000)
    (ev,) = book.pending.events
    assert (ev["event"], ev["actor"], ev["reason"]) == ("ack", "tech", "seen, door open")
    (audit,) = book.pending.audit
    assert audit["action"] == "ack" and audit["actor"] == "tech"
    assert audit["subject"] == f"{TEMP}#1" and audit["reason"] == "seen, door open"
    assert audit["details"]["from"] == "UNACK" and audit["details"]["to"] == "ACKED"
    assert [e.kind for e, _c, _b in book.pending.effects] == ["acknowledge"]


def test_clear_after_ack_returns_to_norm_and_rows_of_one_alarm_merge(book):
    raise_(book, TEMP)
    book.apply(TEMP, Event.ACK, now_ms=NOW + 1, actor=book.operators["tech"], reason="r")
    st = book.apply(TEMP, Event.CLEAR, now_ms=NOW + 2, ts_ms=NOW + 2, by="engine")
    assert st.state is State.NORM and not st.active
    assert list(book.pending.alarms) == [TEMP]  # one upsert per alarm per write
    row = book.pending.alarms[TEMP]
    assert row["state"] == "NORM" and row["ack_by"] == "tech"  # the ack is kept in the row
    assert [e["event"] for e in book.pending.events] == ["raise", "ack", "clear"]
    assert [e.kind for e, _c, _b in book.pending.effects] == ["trigger", "acknowledge",
                                                              "resolve"]
    assert book.active() == []


def test_shelve_hides_the_alarm_until_its_expiry_and_audits_the_duration(book):
    raise_(book, TEMP)
    book.pending.take()
    st = book.apply(TEMP, Event.SHELVE, now_ms=NOW, actor=book.operators["tech"],
                    reason="calibration", duration_s=600.0)
    assert st.state is State.SHLVD and st.shelved_until_ms == NOW + 600_000
    assert st.shelved_by == "tech" and st.active  # the condition is still tracked
    assert book.pending.alarms[TEMP]["shelved_until_ms"] == NOW + 600_000
    (audit,) = book.pending.audit
    assert audit["action"] == "shelve" and audit["details"]["duration_s"] == 600.0
    assert [e.kind for e, _c, _b in book.pending.effects] == ["update"]  # never a resolve
    st = book.apply(TEMP, Event.SHELVE_EXPIRED, now_ms=NOW + 600_000, by="timer")
    assert st.state is State.UNACK and st.shelved_until_ms is None  # its true state again


def test_a_refused_event_changes_nothing_and_queues_nothing(book):
    raise_(book, TEMP)
    book.pending.take()
    before = book.states[TEMP]
    res = book.apply(TEMP, Event.SHELVE, now_ms=NOW, actor=book.operators["tech"],
                     reason="too long", duration_s=7200.0)
    assert isinstance(res, Refused) and "max_shelve_s=3600" in res.message
    res = book.apply(GAS, Event.SHELVE, now_ms=NOW, actor=book.operators["tech"],
                     reason="r", duration_s=60.0)
    assert isinstance(res, Refused) and "shelve_critical" in res.message
    assert book.states[TEMP] is before
    pending = book.pending.take()
    assert (pending.alarms, pending.events, pending.audit, pending.effects) == ({}, [], [], [])


def test_a_critical_alarm_shelved_by_a_shelve_critical_engineer(book):
    raise_(book, GAS, value=None)
    st = book.apply(GAS, Event.SHELVE, now_ms=NOW, actor=book.operators["boss"],
                    reason="detector swap", duration_s=60.0)
    assert st.state is State.SHLVD and st.shelved_by == "boss"


def test_refusals_are_audited_with_who_what_and_why(book):
    book.audit_refusal("tech", "suppress", f"{TEMP}#1", "noise", "tech lacks role 'engineer'")
    (audit,) = book.pending.audit
    assert audit == {"action": "refused:suppress", "actor": "tech", "subject": f"{TEMP}#1",
                     "reason": "noise", "details": {"refusal": "tech lacks role 'engineer'",
                                                    "name": "T. Technician",
                                                    "roles": ["technician"]}}


def test_suppression_names_its_source_in_the_event(book):
    raise_(book, ALERT)
    st = book.apply(ALERT, Event.SUPPRESS, now_ms=NOW + 1, by="design")
    assert st.state is State.DSUPR and st.suppressed_by == {"design"}
    assert book.pending.events[-1]["event"] == "suppress:design"
    assert book.pending.events[-1]["actor"] == "design"
    assert book.pending.audit == []  # not an operator action
    st = book.apply(ALERT, Event.UNSUPPRESS, now_ms=NOW + 2, by="design")
    assert st.state is State.UNACK and book.pending.events[-1]["event"] == "unsuppress:design"


def test_take_hands_over_everything_once(book):
    raise_(book, TEMP)
    book.audit_refusal("tech", "ack", TEMP, None, "no reason")
    first = book.pending.take()
    assert list(first.alarms) == [TEMP] and len(first.events) == 1
    assert len(first.audit) == 1 and len(first.effects) == 1
    again = book.pending.take()
    assert (again.alarms, again.events, again.audit, again.effects) == ({}, [], [], [])
    book.apply(TEMP, Event.ACK, now_ms=NOW, actor=book.operators["tech"], reason="r")
    assert len(first.events) == 1  # what was taken is not written to afterwards


def test_restore_brings_back_stored_states_but_the_configuration_wins(cfg, book):
    raise_(book, TEMP)
    book.apply(TEMP, Event.ACK, now_ms=NOW + 1, actor=book.operators["tech"], reason="r")
    row = state_to_row(book.states[TEMP], book.metas[TEMP], 7, NOW + 1)
    row["details"] = json.loads(row["details"])  # the read API returns details decoded
    stale = dict(row, id=ALERT, priority="low")  # stored priority from an older config
    again = AlarmBook(cfg, book.metas, config_version=8)
    assert again.restore([row, stale, dict(row, id="gone:comm")]) == 2  # unknown ids skipped
    st = again.states[TEMP]
    assert (st.state, st.occurrence, st.active, st.acked) == (State.ACKED, 1, True, True)
    assert again.states[ALERT].priority == "medium"


def test_page_batch_copies_final_states_so_later_changes_do_not_reach_it(book):
    raise_(book, TEMP, at=NOW)  # live
    raise_(book, ALERT, at=NOW - 60_000, backfill=True)
    book.apply(ALERT, Event.CLEAR, now_ms=NOW, ts_ms=NOW - 50_000, by="engine", backfill=True)
    raise_(book, ALERT, at=NOW - 40_000, backfill=True)
    pending = book.pending.take()
    batch = book.page_batch(pending.effects, NOW)
    assert isinstance(batch, PageBatch) and batch.now_ms == NOW
    assert [(e.alarm_id, e.kind) for e, _c in batch.live] == [(TEMP, "trigger")]
    assert list(batch.backfill) == ["T-1"]
    assert [e.kind for e, _c in batch.backfill["T-1"]] == ["trigger", "update", "trigger"]
    assert set(batch.final) == {ALERT} and batch.final[ALERT].state is State.UNACK
    book.apply(ALERT, Event.ACK, now_ms=NOW + 1, actor=book.operators["tech"], reason="r")
    assert book.states[ALERT].state is State.ACKED
    assert batch.final[ALERT].state is State.UNACK  # the snapshot, not the live book


def test_page_batch_writes_live_and_backfill_pages_into_the_outbox(cfg, book, tmp_path):
    raise_(book, TEMP, at=NOW)
    raise_(book, ALERT, at=NOW - 60_000, backfill=True)
    book.apply(ALERT, Event.CLEAR, now_ms=NOW, ts_ms=NOW - 50_000, by="engine", backfill=True)
    batch = book.page_batch(book.pending.take().effects, NOW)
    conn = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
    outbox_migrations(conn)
    conn.execute("BEGIN IMMEDIATE")
    batch.write(Pager(cfg.paging, cfg.facility.id), conn)
    conn.execute("COMMIT")
    rows = conn.execute("SELECT dedup_key, action, payload FROM page_outbox ORDER BY id").fetchall()
    keys = [k for k, _a, _p in rows]
    assert keys[0].endswith(f"{TEMP}#1") and rows[0][1] == "trigger"
    # the returned backfill excursion is one informational page, not a trigger of its own
    assert not any(ALERT in k for k in keys)
    (summary,) = [json.loads(p) for k, _a, p in rows if ":backfill:T-1#" in k]
    assert summary["custom_details"]["count"] == 1
    assert summary["custom_details"]["alarms"] == [ALERT]


def test_a_page_summary_is_cut_to_what_the_pager_accepts(book):
    def summary(aid):
        return compose_summary(book.context(aid, value=1.0), alarm_id=aid, priority="high")

    assert len(summary(TEMP)) < PAGE_SUMMARY_MAX
    long_id = TEMP + "x" * 2000
    book.metas[long_id] = book.metas[TEMP]
    assert len(summary(long_id)) == PAGE_SUMMARY_MAX
