"""Disk full is a state: real SQLITE_FULL ("database or disk is full") from SQLite's own
``PRAGMA max_page_count`` on the main database or a partition (no mount needed), the
service's bounded buffer (``HeldCycles``) holding cycles, writing them in order when space
returns, and a gap record when the buffer is exhausted."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from facility.domain.model import PointInfo, Sample
from facility.service import service as service_mod
from facility.service.service import HeldCycles
from facility.store.database import Cycle, Store
from facility.store.errors import StoreFull
from facility.store.partitions import day_of, schema_name
from tests.fixtures.diskfull import small_fs, take_all_space  # noqa: F401 - small_fs is a fixture

T0 = int(datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp() * 1000)
POINTS = [PointInfo(f"P{i}.v", f"P{i}", "MEC", "MEC-LITHO", "pressure_diff", "Pa", 1)
          for i in range(20)]


def cycle_at(k: int) -> Cycle:
    """Cycle k: one sample of every point at T0 + k s."""
    return Cycle(samples=[Sample(p.id, T0 + 1000 * k, float(k)) for p in POINTS])


def stored(store) -> list[tuple[str, int]]:
    return [(r.point, r.ts_ms) for r in store.iter_samples(0, 2**62)]


def cap(store, schema: str = "main") -> None:
    """Let the file grow by no more page: the next cycle that needs one gets SQLITE_FULL."""
    n = store.conn.execute(f"PRAGMA {schema}.page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA {schema}.max_page_count = {n}")


def uncap(store, schema: str = "main") -> None:
    store.conn.execute(f"PRAGMA {schema}.max_page_count = 1073741823")


def fill(store, held, start: int, schema: str) -> int:
    """Write cycles from ``start`` until one is held (real SQLITE_FULL); returns next k."""
    cap(store, schema)
    k = start
    while held.write(cycle_at(k)):
        k += 1
        assert k < start + 500, "max_page_count never produced SQLITE_FULL"
    return k + 1


@pytest.mark.parametrize("where", ["main", "partition"])
def test_full_store_holds_cycles_and_writes_them_in_order(store, monkeypatch, where):
    monkeypatch.setattr(service_mod.time, "monotonic", lambda: 0.0)  # retry without backoff wait
    held = HeldCycles(store, limit=100)
    assert held.write(cycle_at(0))
    schema = "main" if where == "main" else schema_name(day_of(T0))
    k = fill(store, held, 1, schema)
    with pytest.raises(StoreFull, match="database or disk is full"):
        store.write_cycle(cycle_at(10_000))  # the real SQLite error, as StoreFull
    assert len(held) >= 1
    # still full: more cycles are held, none is written, nothing is lost
    held._next_try = 0.0
    for j in range(k, k + 5):
        assert not held.write(cycle_at(j))
        held._next_try = 0.0
    n_held = len(held)
    assert n_held >= 6
    uncap(store, schema)
    assert held.write(cycle_at(k + 5))
    assert len(held) == 0
    got = stored(store)
    want = sorted((p.id, T0 + 1000 * j) for j in range(k + 6) for p in POINTS)
    assert sorted(got) == want  # every sample of the full period is stored
    digests = store.audit_rows(action="cycle_digest")
    assert len(digests) == k + 6  # one digest per cycle, none written twice
    assert not store.audit_rows(action="store_gap")
    assert store.reconcile() == []  # main and partition agree


def test_buffer_exhausted_writes_an_audited_gap_record(store, monkeypatch):
    monkeypatch.setattr(service_mod.time, "monotonic", lambda: 0.0)
    held = HeldCycles(store, limit=3)
    assert held.write(cycle_at(0))
    k = fill(store, held, 1, "main")
    first_held = k - 1
    for j in range(k, k + 7):
        held._next_try = 0.0
        assert not held.write(cycle_at(j))
    assert len(held) == 3
    uncap(store)
    held._next_try = 0.0
    assert held.write(cycle_at(k + 7))
    gaps = store.audit_rows(action="store_gap")
    assert len(gaps) == 1
    details = gaps[0]["details"]
    if isinstance(details, str):
        details = json.loads(details)
    lost_cycles = (k + 8) - first_held - 3  # held from first_held, 3 kept
    assert details["cycles"] == lost_cycles
    assert details["samples"] == lost_cycles * len(POINTS)
    assert details["from_ms"] == T0 + 1000 * first_held
    assert details["to_ms"] == T0 + 1000 * (first_held + lost_cycles - 1)
    assert f"{lost_cycles * len(POINTS)} sample(s)" in gaps[0]["reason"]
    got = {ts for _, ts in stored(store)}
    assert T0 + 1000 * (k + 7) in got and T0 + 1000 * first_held not in got


def test_split_commit_keeps_partition_rows_and_finishes_them(store):
    """The 515-sample hole: in WAL mode SQLite commits the main database first, then each
    partition, so a partition COMMIT failing on a full disk kept the cycle in main only. The
    state that failure leaves is made here by removing the partition's part by hand (a
    COMMIT-time ENOSPC cannot be produced without a full file system); the store must write
    the kept rows before the next cycle, idempotently."""
    store.write_cycle(cycle_at(0))
    result = store.write_cycle(cycle_at(1))
    day = day_of(T0)
    s = schema_name(day)
    rows = store.conn.execute(f"SELECT * FROM {s}.samples WHERE ts_ms = ?", (T0 + 1000,)).fetchall()
    assert len(rows) == len(POINTS)
    store.conn.execute(f"DELETE FROM {s}.samples WHERE ts_ms = ?", (T0 + 1000,))
    store.conn.execute(f"DELETE FROM {s}.cycles WHERE cycle = ?", (result.digest_id,))
    store.unfinished = ({day: [tuple(r) for r in rows]}, result.digest_id)
    store.write_cycle(cycle_at(2))
    assert store.unfinished is None
    assert store.reconcile() == []  # partition and main agree again: nothing lost
    got = stored(store)
    assert all((p.id, T0 + 1000) in got for p in POINTS)
    store.unfinished = ({day: [tuple(r) for r in rows]}, result.digest_id)
    store.finish_partitions()  # a second finish is harmless (INSERT OR IGNORE)
    assert len(stored(store)) == 3 * len(POINTS)


def test_real_full_file_system_holds_and_recovers_in_order(small_fs, monkeypatch):  # noqa: F811
    monkeypatch.setattr(service_mod.time, "monotonic", lambda: 0.0)
    s = Store(str(small_fs / "var" / "facility.db"))
    try:
        s.register_points(POINTS)
        held = HeldCycles(s, limit=10_000)
        assert held.write(cycle_at(0))
        filler = small_fs / "filler"
        take_all_space(filler)
        k = 1
        while held.write(cycle_at(k)):
            k += 1
            assert k < 20_000, "the file system never filled"
        for j in range(k + 1, k + 30):  # the full period: every cycle is held
            held._next_try = 0.0
            assert not held.write(cycle_at(j))
        assert len(held) == 30
        filler.unlink()
        held._next_try = 0.0
        assert held.write(cycle_at(k + 30))
        assert len(held) == 0 and s.unfinished is None
        got = sorted(stored(s))
        assert got == sorted((p.id, T0 + 1000 * j) for j in range(k + 31) for p in POINTS)
        assert len(s.audit_rows(action="cycle_digest")) == k + 31
        assert s.reconcile() == []
    finally:
        s.close()


def test_held_cycles_raise_the_critical_store_full_alarm(tmp_path):
    """The health probe reports the cycles held; the catalogue's rule makes it the critical
    system alarm ``system:store_full`` (real catalogue, engine, alarm book and outbox)."""
    from facility.service.health import HealthProbe
    from tests.facility.test_fault_priority import SHIPPED, run
    from tests.facility.test_fault_priority import T0 as F0

    probe = HealthProbe(SHIPPED, str(tmp_path / "facility.db"), 1.0,
                        free_disk_mb=lambda: 50_000.0, clock_unsynced=lambda: False)
    probe.unwritten = 0
    ok = [s for s in probe.samples(F0, 0.0, None) if s.point == "system.store_unwritten"]
    assert [s.value for s in ok] == [0.0]
    probe.unwritten = 12
    full = [s for s in probe.samples(F0 + 1000, 0.0, None) if s.point == "system.store_unwritten"]
    book, pages = run(SHIPPED, ok + full, tmp_path)
    st = book.states["system:store_full"]
    assert st.active and st.critical and st.priority == "critical"
    assert "system:store_full" in pages
