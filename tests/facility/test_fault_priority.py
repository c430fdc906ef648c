"""A particle counter's flow, laser or sampling fault in an ISO <= 5 or grade A/B room is a
HIGH alarm that the shipped routes page: while it lasts the room has no valid record, and
those rooms must be monitored continuously (EU GMP Annex 1 9.17 / 9.18). In other rooms the
fault keeps the configured instrument priority (low in the shipped config: not paged).

Real parts throughout: the shipped configuration (and the same file with one room made grade
B), the catalogue's compiled rules, the alarm engine, the service's alarm book and a
``Pager`` writing into a SQLite outbox; the flow fault also comes from the simulator's
counter over Modbus, decoded by the poller.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from alarms.engine import Engine, Rule
from alarms.lifecycle import Event
from alarms.outbox import apply_migrations as outbox_migrations
from alarms.paging import Pager
from facility.catalogue import build_catalogue
from facility.config import load_config, parse_config
from facility.domain.model import Sample
from facility.service.alarm_book import AlarmBook, meta_of
from sensors.poller import poll_once
from sensors.simulator import Simulator

SHIPPED_TEXT = Path("config.toml").read_text(encoding="utf-8")
SHIPPED = load_config("config.toml")
LINE1_C = 'id = "MARS-LINE1"\nsite = "MARS"\nname = "Mask line 1"\nkind = "cleanroom"\ngmp_grade = "C"'
assert SHIPPED_TEXT.count(LINE1_C) == 1
LINE1_B = LINE1_C.replace('gmp_grade = "C"', 'gmp_grade = "B"')
GRADE_B = parse_config(SHIPPED_TEXT.replace(LINE1_C, LINE1_B), source="config.toml")
T0 = 1_750_000_000_000
FAULTS = ("flow_fault", "laser_fault", "not_sampling")
PAGER_CHANNELS = ["oncall-pd", "facility-email"]  # the shipped route of critical and high


def run(cfg, samples: list[Sample], tmp_path):
    """Engine -> alarm book -> pager for these samples, as the service's cycle does it.
    Returns (book, {alarm id: [channels its trigger went to]})."""
    cat = build_catalogue(cfg)
    index = {p.id: i for i, p in enumerate(cat.points)}
    engine = Engine([Rule(point=index[r.point], kind=r.side, limit=r.limit, deadband=r.deadband,
                          on_delay_s=r.on_delay_s, off_delay_s=r.off_delay_s, m_of_n=r.m_of_n,
                          max_gap_s=r.max_gap_s) for r in cat.rules],
                    keys=[r.key for r in cat.rules])
    device = {p.id: p.device for p in cat.points}
    book = AlarmBook(cfg, {r.alarm_id: meta_of(r, device[r.point]) for r in cat.rules}, None)
    tr = engine.feed(np.array([index[s.point] for s in samples], dtype=np.int64),
                     np.array([s.ts_ms / 1000.0 for s in samples]),
                     np.array([s.value for s in samples], dtype=np.float64),
                     np.array([s.good for s in samples], dtype=bool))
    now = max(s.ts_ms for s in samples)
    for t in tr:
        rule, s = cat.rules[int(t["rule"])], samples[int(t["sample"])]
        book.apply(rule.alarm_id, Event.RAISE if t["event"] > 0 else Event.CLEAR, now_ms=now,
                   ts_ms=int(round(t["onset"] * 1000)), value=s.value, by="engine")
    conn = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
    outbox_migrations(conn)
    conn.execute("BEGIN IMMEDIATE")
    book.page_batch(book.pending.take().effects, now).write(Pager(cfg.paging, cfg.facility.id), conn)
    conn.execute("COMMIT")
    pages: dict[str, list[str]] = {}
    for channel, key in conn.execute("SELECT channel, dedup_key FROM page_outbox"
                                     " WHERE action = 'trigger' ORDER BY id"):
        pages.setdefault(key.split(":", 1)[1].rsplit("#", 1)[0], []).append(channel)
    conn.close()
    return book, pages


def fault(point: str) -> list[Sample]:
    """The counter reports the fault on two scans in a row."""
    return [Sample(point, T0, 1.0), Sample(point, T0 + 2000, 1.0)]


@pytest.mark.parametrize("name", FAULTS)
@pytest.mark.parametrize("cfg, counter, room", [
    (SHIPPED, "MEC-PC-01", "MEC-LITHO (ISO 5"),
    (SHIPPED, "MEC-PC-03", "MEC-WET (ISO 5"),
    (GRADE_B, "MARS-PC-08", "MARS-LINE1 (grade B"),
], ids=["iso5-litho", "iso5-wet", "grade-b"])
def test_a_fault_that_leaves_a_critical_room_without_records_is_high_and_paged(
        tmp_path, cfg, counter, room, name):
    aid = f"{counter}.{name}:instrument"
    book, pages = run(cfg, fault(f"{counter}.{name}"), tmp_path)
    st, meta = book.states[aid], book.metas[aid]
    assert st.active and (st.priority, st.critical) == ("high", False)
    assert f"no valid record of {room}" in meta.source and "Annex 1 9.17/9.18" in meta.source
    assert pages == {aid: PAGER_CHANNELS}


@pytest.mark.parametrize("name", FAULTS)
def test_in_an_iso_7_room_the_fault_keeps_the_configured_priority(tmp_path, name):
    aid = f"MEC-PC-06.{name}:instrument"  # MEC-GOWN, ISO 7
    book, pages = run(SHIPPED, fault(f"MEC-PC-06.{name}"), tmp_path)
    st, meta = book.states[aid], book.metas[aid]
    assert st.active and (st.priority, st.critical) == ("low", False)
    assert meta.source == "instrument status bit (reference: particle counter)"
    assert pages == {}  # the shipped routes page no low alarm


def test_the_same_room_made_grade_c_again_keeps_the_configured_priority(tmp_path):
    book, pages = run(SHIPPED, fault("MARS-PC-08.flow_fault"), tmp_path)  # MARS-LINE1, grade C
    assert book.states["MARS-PC-08.flow_fault:instrument"].priority == "low" and pages == {}


def test_other_counter_status_in_an_iso_5_room_is_unchanged(tmp_path):
    book, pages = run(SHIPPED, fault("MEC-PC-01.service_due"), tmp_path)
    assert book.states["MEC-PC-01.service_due:instrument"].priority == "low" and pages == {}


async def test_a_flow_fault_read_from_the_counter_pages_for_the_iso_5_room_only(tmp_path):
    async with Simulator(SHIPPED, ephemeral=True, scenario="flow-fault") as sim:
        samples = await poll_once(sim.client_config())
    flow = [s for s in samples if s.point.endswith(".flow_fault")]
    assert {s.point: s.value for s in flow if s.point.startswith(("MEC-PC-01", "MEC-PC-06"))} == {
        "MEC-PC-01.flow_fault": 1.0, "MEC-PC-06.flow_fault": 1.0}
    book, pages = run(SHIPPED, flow, tmp_path)
    raised = {aid for aid, st in book.states.items() if st.active}
    assert raised == {s.point + ":instrument" for s in flow}  # every counter's fault is recorded
    # ... and the four counters of the two ISO 5 rooms (MEC-LITHO, MEC-WET) are paged
    assert pages == {f"MEC-PC-0{i}.flow_fault:instrument": PAGER_CHANNELS for i in (1, 2, 3, 4)}
