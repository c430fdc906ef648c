"""A gas detector whose own alarm bits disagree with the set points computed from
ACGIH TLV raises a MEDIUM instrument alarm (docs/ARCHITECTURE.md "Gas
exposure"), and the shipped routes send it to the facility e-mail, not the night pager.

Real parts throughout: the shipped configuration, the catalogue's compiled rules, the
``hazmat.gas.GasMonitor`` fed with detector samples scan by scan, the alarm engine those
rules run in, the service's alarm book, and a ``Pager`` writing into a SQLite outbox.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from alarms.engine import Engine, Rule
from alarms.lifecycle import Event
from alarms.outbox import apply_migrations as outbox_migrations
from alarms.paging import Pager
from facility.catalogue import build_catalogue
from facility.config import load_config
from facility.domain.model import Sample
from facility.service.alarm_book import AlarmBook, meta_of
from hazmat.gas import GasMonitor, detector_policies

CFG = load_config("config.toml")
T0 = 1_750_000_000_000
ROOM = "MEC-GD-05"  # phosphine room monitor, scan 1 s: low 0.3 ppm (TLV-TWA), high 1 ppm (STEL)
CABINET = "MEC-GD-01"  # arsine cabinet monitor: low 0.005 ppm (TLV-TWA), high 0.01 ppm (2 x TLV)


def scans(det: str, *reads: tuple[float, int, int], t0: int = T0) -> list[Sample]:
    """One scan a second: (reading ppm, low bit, high bit), read together as the gas-detector
    profile reads them (one timestamp per scan)."""
    out = []
    for i, (conc, low, high) in enumerate(reads):
        ts = t0 + i * 1000
        out += [Sample(f"{det}.conc", ts, conc), Sample(f"{det}.alarm_low", ts, float(low)),
                Sample(f"{det}.alarm_high", ts, float(high))]
    return out


def run(cfg, samples: list[Sample], tmp_path):
    """The service's path for these samples: the gas monitor derives the bits-vs-set-points
    samples, the engine evaluates every compiled rule, the alarm book applies the raises,
    and the pager writes its pages. Returns (book, outbox rows (channel, dedup key))."""
    cat = build_catalogue(cfg)
    policies, problems = detector_policies(cfg, cat.points)
    assert problems == []
    derived = GasMonitor(policies).feed(samples)
    index = {p.id: i for i, p in enumerate(cat.points)}
    engine = Engine([Rule(point=index[r.point], kind=r.side, limit=r.limit, deadband=r.deadband,
                          on_delay_s=r.on_delay_s, off_delay_s=r.off_delay_s, m_of_n=r.m_of_n,
                          max_gap_s=r.max_gap_s) for r in cat.rules],
                    keys=[r.key for r in cat.rules])
    device = {p.id: p.device for p in cat.points}
    book = AlarmBook(cfg, {r.alarm_id: meta_of(r, device[r.point]) for r in cat.rules}, None)
    rows = sorted(samples + derived, key=lambda s: s.ts_ms)
    tr = engine.feed(np.array([index[s.point] for s in rows], dtype=np.int64),
                     np.array([s.ts_ms / 1000.0 for s in rows]),
                     np.array([s.value for s in rows], dtype=np.float64),
                     np.array([s.good for s in rows], dtype=bool))
    now = rows[-1].ts_ms
    for t in tr:
        rule, s = cat.rules[int(t["rule"])], rows[int(t["sample"])]
        book.apply(rule.alarm_id, Event.RAISE if t["event"] > 0 else Event.CLEAR, now_ms=now,
                   ts_ms=int(round(t["onset"] * 1000)), value=s.value, by="engine")
    conn = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
    outbox_migrations(conn)
    conn.execute("BEGIN IMMEDIATE")
    book.page_batch(book.pending.take().effects, now).write(Pager(cfg.paging, cfg.facility.id), conn)
    conn.execute("COMMIT")
    pages = conn.execute("SELECT channel, dedup_key FROM page_outbox WHERE action = 'trigger'"
                         " ORDER BY id").fetchall()
    conn.close()
    return book, pages


def instrument(book, det: str):
    return book.states[f"{det}:instrument"]


def test_a_missed_high_alarm_is_a_medium_instrument_alarm_paged_by_email(tmp_path):
    # 1.5 ppm phosphine is over the STEL set point (1 ppm + 10 %); the high bit stays off
    book, pages = run(CFG, scans(ROOM, (0.0, 0, 0), *[(1.5, 1, 0)] * 6), tmp_path)
    st = instrument(book, ROOM)
    assert st.active and st.occurrence == 1
    assert (st.priority, st.critical) == ("medium", False)
    meta = book.metas[f"{ROOM}:instrument"]
    assert meta.kind == "instrument" and "low 0.3 ppm / high 1 ppm" in meta.source
    assert "ACGIH STEL 1 ppm" in meta.source
    mine = [ch for ch, key in pages if key.endswith(f":{ROOM}:instrument#1")]
    assert mine == ["facility-email"]  # the shipped route for medium; not the night pager


def test_a_bit_on_without_any_reading_near_its_set_point_is_the_same_alarm(tmp_path):
    book, _pages = run(CFG, scans(ROOM, *[(0.02, 1, 1)] * 6), tmp_path)
    st = instrument(book, ROOM)
    assert st.active and st.priority == "medium"


def test_bits_that_agree_with_the_set_points_raise_no_instrument_alarm(tmp_path):
    reads = [(0.0, 0, 0), (0.5, 1, 0), (1.3, 1, 1), (1.4, 1, 1), (0.1, 1, 1), (0.0, 0, 0),
             (0.0, 0, 0)]
    book, pages = run(CFG, scans(ROOM, *reads), tmp_path)
    assert not instrument(book, ROOM).active and instrument(book, ROOM).occurrence == 0
    assert book.states[f"{ROOM}:gas_high"].occurrence == 1  # the detector's own bits alarm
    assert not any(key.endswith(":instrument#1") for _ch, key in pages)


def test_a_cabinet_detector_set_at_the_idlh_disagrees_with_the_computed_set_points(tmp_path):
    # 0.1 ppm arsine: 10 x the cabinet's computed high set point (2 x TLV = 0.01 ppm), but
    # below relays set at 3 x PEL (0.15 ppm) and the IDLH (3 ppm), so both bits stay off
    book, pages = run(CFG, scans(CABINET, *[(0.1, 0, 0)] * 6), tmp_path)
    st = instrument(book, CABINET)
    assert st.active and (st.priority, st.critical) == ("medium", False)
    assert [ch for ch, key in pages if key.endswith(f":{CABINET}:instrument#1")] == [
        "facility-email"]


@pytest.mark.parametrize("configured, expected", [("low", "medium"), ("medium", "medium"),
                                                  ("high", "high")])
def test_medium_is_a_floor_a_site_may_raise_but_not_lower(tmp_path, configured, expected):
    cfg = replace(CFG, alarms=replace(CFG.alarms, priorities={
        **CFG.alarms.priorities, "instrument": configured}))
    book, _pages = run(cfg, scans(ROOM, *[(1.5, 1, 0)] * 6), tmp_path)
    assert instrument(book, ROOM).priority == expected
