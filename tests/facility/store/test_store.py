"""The SQLite store on real files: migrations, first-wins, atomic cycles, partitions, retention."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facility.domain.model import PointInfo, Quality, Sample
from facility.store.database import (
    Cycle,
    Store,
    StoreError,
    StoreLocked,
    StoreMissing,
    StoreRefused,
)
from facility.store.partitions import partition_path

T0 = int(datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp() * 1000)
POINTS = [
    PointInfo("MEC-DP-01.dp", "MEC-DP-01", "MEC", "MEC-LITHO", "pressure_diff", "Pa", 1),
    PointInfo("MARS-PC-01.pc_0_5um", "MARS-PC-01", "MARS", "MARS-C1", "particle_conc", "/m3",
              0, gmp=True),
]
DP, PC = (p.id for p in POINTS)


def rows(store, point_ids=None):
    return [(r.point, r.ts_ms, r.value, r.quality)
            for r in store.iter_samples(0, 2**62, point_ids=point_ids)]


def test_migrations_from_empty_file_and_idempotent_reopen(tmp_path):
    path = str(tmp_path / "a" / "b.db")
    with Store(path) as s:
        versions = s.conn.execute("SELECT namespace, version FROM schema_migrations").fetchall()
        assert ("store", 1) in versions and len(versions) == 5
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.add_migrations("paging", ["CREATE TABLE outbox (id INTEGER PRIMARY KEY)"]) == [1]
    with Store(path) as s:
        assert s.add_migrations("paging", ["CREATE TABLE outbox (id INTEGER PRIMARY KEY)",
                                           "ALTER TABLE outbox ADD COLUMN body TEXT"]) == [2]
        assert s.add_migrations("paging", ["CREATE TABLE outbox (id INTEGER PRIMARY KEY)",
                                           "ALTER TABLE outbox ADD COLUMN body TEXT"]) == []
        n = s.conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
        assert n == 7
        with pytest.raises(StoreError, match="reserved"):
            s.add_migrations("store", [])


def test_point_ids_stable_across_restarts(tmp_path):
    path = str(tmp_path / "f.db")
    with Store(path) as s:
        first = s.register_points(POINTS)
    extra = PointInfo("MEC-T-01.temp", "MEC-T-01", "MEC", None, "temperature", "C")
    with Store(path) as s:
        again = s.register_points([extra, *reversed(POINTS)])
    assert again[DP] == first[DP] and again[PC] == first[PC] and again[extra.id] == 3


def test_repeated_samples_ignored_in_order_and_backfilled(store):
    r = store.write_cycle(Cycle(samples=[Sample(DP, T0, 10.0), Sample(DP, T0, 99.0),
                                         Sample(PC, T0, 5.0)]))
    assert (r.stored, r.duplicates) == (2, 1)
    r = store.write_cycle(Cycle(samples=[Sample(DP, T0 + 1000, 11.0), Sample(DP, T0, 98.0)]))
    assert (r.stored, r.duplicates) == (1, 1)
    # backfill: older than latest; new ones kept, repeats of stored ones ignored
    r = store.write_cycle(Cycle(samples=[Sample(DP, T0 - 1000, 9.0), Sample(DP, T0 - 2000, 8.0)]))
    assert (r.stored, r.duplicates) == (2, 0)
    r = store.write_cycle(Cycle(samples=[Sample(DP, T0 - 1000, 7.0), Sample(DP, T0 + 1000, 1.0)]))
    assert (r.stored, r.duplicates) == (0, 2)
    assert rows(store) == [(DP, T0 - 2000, 8.0, 0), (DP, T0 - 1000, 9.0, 0), (DP, T0, 10.0, 0),
                           (PC, T0, 5.0, 0), (DP, T0 + 1000, 11.0, 0)]
    latest = {r["point"]: r for r in store.latest()}
    assert latest[DP]["ts_ms"] == T0 + 1000 and latest[DP]["value"] == 11.0
    agg = store.aggregates(store._ids[DP], T0 - 60_000, T0 + 60_000)
    assert sum(b["n"] for b in agg) == 4  # repeats never counted


def test_repeats_ignored_after_restart(tmp_path):
    path = str(tmp_path / "f.db")
    with Store(path) as s:
        s.register_points(POINTS)
        s.write_cycle(Cycle(samples=[Sample(DP, T0, 1.0), Sample(DP, T0 + 1000, 2.0)]))
    with Store(path) as s:
        r = s.write_cycle(Cycle(samples=[Sample(DP, T0, 5.0), Sample(DP, T0 + 1000, 6.0)]))
        assert (r.stored, r.duplicates) == (0, 2)
        assert [v for _p, _t, v, _q in rows(s)] == [1.0, 2.0]


def test_failed_read_is_null_never_zero(store):
    store.write_cycle(Cycle(samples=[Sample(DP, T0, None, Quality.COMM),
                                     Sample(PC, T0, math.nan, Quality.GOOD)]))
    assert rows(store) == [(DP, T0, None, Quality.COMM), (PC, T0, None, Quality.BAD)]
    agg = store.aggregates(store._ids[DP], T0 - 60_000, T0 + 60_000)
    assert agg[0]["n"] == 1 and agg[0]["n_good"] == 0 and agg[0]["min"] is None
    assert agg[0]["worst_quality"] == Quality.COMM


def _snapshot(store):
    conn = sqlite3.connect(store.path)
    out = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
           for t in ("latest", "agg_open", "agg_1m", "agg_1h", "alarms", "events", "audit",
                     "engine_state", "partition_state")}
    conn.close()
    return out, rows(store)


def test_failing_write_leaves_nothing_half_written(store):
    store.write_cycle(Cycle(samples=[Sample(DP, T0, 1.0)]))
    before = _snapshot(store)

    def boom(conn):
        conn.execute("SELECT 1")
        raise RuntimeError("ledger full")

    cycle = Cycle(
        samples=[Sample(DP, T0 + 1000, 2.0), Sample(PC, T0 + 1000, 3.0),
                 Sample(DP, T0 - 500, 0.5),  # backfill path too
                 Sample(DP, T0 + 86_400_000, 4.0)],  # and tomorrow's partition
        alarms=[{"id": "MEC-DP-01.dp:action_low", "state": "UNACK", "active": 1}],
        events=[{"alarm_id": "MEC-DP-01.dp:action_low", "event": "raise", "ts_ms": T0}],
        audit=[{"action": "comment", "actor": "bob"}],
        engine_state={"MEC-DP-01.dp:action_low": {"run": 1}},
        extra=[boom],
    )
    with pytest.raises(RuntimeError, match="ledger full"):
        store.write_cycle(cycle)
    assert _snapshot(store) == before
    # a constraint violation inside the transaction rolls back the same way
    bad = Cycle(samples=[Sample(DP, T0 + 2000, 2.0)],
                events=[{"alarm_id": None, "event": "raise", "ts_ms": T0}])
    with pytest.raises(sqlite3.IntegrityError):
        store.write_cycle(bad)
    assert _snapshot(store) == before
    # the in-memory first-wins state was not advanced: the same samples store fine now
    r = store.write_cycle(Cycle(samples=cycle.samples))
    assert (r.stored, r.duplicates) == (4, 0)
    assert store.verify_audit().ok


def test_reader_sees_committed_data_while_writer_writes(store):
    store.write_cycle(Cycle(samples=[Sample(DP, T0, 1.0)]))
    reader = Store(store.path, readonly=True)
    seen = []

    def peek(conn):  # runs inside the writer's open transaction
        seen.append([r["value"] for r in reader.latest()])
        seen.append([r.value for r in reader.iter_samples(0, 2**62)])

    store.write_cycle(Cycle(samples=[Sample(DP, T0 + 1000, 2.0)], extra=[peek]))
    assert seen == [[1.0], [1.0]]
    assert [r["value"] for r in reader.latest()] == [2.0]
    # and from another process, read-only
    code = ("import sys; from facility.store.database import Store; s = Store(sys.argv[1], readonly=True);"
            " print(len(list(s.iter_samples(0, 2**62))), s.latest()[0]['value'])")
    out = subprocess.run([sys.executable, "-c", code, store.path], capture_output=True,
                         text=True, check=True, cwd=str(Path(__file__).resolve().parents[3]))
    assert out.stdout.split() == ["2", "2.0"]
    with pytest.raises(StoreError, match="read-only"):
        reader.write_cycle(Cycle(samples=[Sample(DP, T0 + 5000, 1.0)]))
    reader.close()


def test_readonly_missing_and_locked(tmp_path):
    with pytest.raises(StoreMissing):
        Store(str(tmp_path / "nope.db"), readonly=True)
    assert not os.path.exists(tmp_path / "nope.db")
    path = str(tmp_path / "f.db")
    Store(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    s = Store(path, timeout_s=0.1)  # opening needs no write when nothing is pending
    with pytest.raises(StoreLocked, match="locked"):
        s.append_audit({"action": "comment", "actor": "x"})
    other.execute("ROLLBACK")
    s.close()


def test_partitions_rotate_at_utc_midnight(store):
    midnight = int(datetime(2025, 3, 2, tzinfo=timezone.utc).timestamp() * 1000)
    samples = [Sample(DP, midnight - 500, 1.0), Sample(PC, midnight - 500, 2.0),
               Sample(DP, midnight, 3.0), Sample(PC, midnight + 500, 4.0)]
    r = store.write_cycle(Cycle(samples=samples))
    assert r.stored == 4
    assert store.partitions() == ["2025-03-01", "2025-03-02"]
    for day, n in (("2025-03-01", 2), ("2025-03-02", 2)):
        conn = sqlite3.connect(partition_path(store.path, day))
        assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == n
        conn.close()
        assert store.partition_info(day)["rows"] == n
    assert [x.ts_ms for x in store.iter_samples(midnight - 1000, midnight + 1)] == [
        midnight - 500, midnight - 500, midnight]
    digest = store.audit_rows(action="cycle_digest")[-1]["details"]
    assert digest["partitions"] == {"2025-03-01": 2, "2025-03-02": 2}


def test_gmp_partition_purged_only_with_verified_archive(store):
    day2 = T0 + 86_400_000
    store.write_cycle(Cycle(samples=[Sample(PC, T0, 1.0), Sample(DP, T0, 2.0)]))
    store.write_cycle(Cycle(samples=[Sample(DP, day2, 2.0)]))
    with pytest.raises(StoreRefused, match="GMP points and has no verified archive"):
        store.purge_partition("2025-03-01", "admin", "retention")
    store.record_archive("2025-03-01", "/arch/2025-03-01", "ab" * 32, 2, verified=False)
    with pytest.raises(StoreRefused, match="no verified archive"):
        store.purge_partition("2025-03-01", "admin", "retention")
    store.record_archive("2025-03-01", "/arch/2025-03-01", "cd" * 32, 1)
    with pytest.raises(StoreRefused, match="holds 1 rows, the partition 2"):
        store.purge_partition("2025-03-01", "admin", "retention")
    store.record_archive("2025-03-01", "/arch/2025-03-01", "ef" * 32, 2)
    entry = store.purge_partition("2025-03-01", "admin", "retention 400 days")
    assert store.partitions() == ["2025-03-02"]
    assert not os.path.exists(partition_path(store.path, "2025-03-01"))
    row = store.audit_rows(action="partition_purged")[-1]
    assert row["id"] == entry["id"] and row["actor"] == "admin"
    assert row["details"]["rows"] == 2 and row["details"]["manifest_sha256"] == "ef" * 32
    assert row["details"]["from_ms"] == T0
    # a non-GMP partition needs no archive
    store.purge_partition("2025-03-02", "admin", "retention")
    assert store.partitions() == []
    assert store.verify_audit().ok
    with pytest.raises(StoreRefused, match="already purged"):
        store.purge_partition("2025-03-02", "admin", "again")


def test_alarms_events_state_and_digest(store):
    aid = "MEC-DP-01.dp:action_low"
    r = store.write_cycle(Cycle(
        samples=[Sample(DP, T0, 3.5)],
        alarms=[{"id": aid, "state": "UNACK", "priority": "high", "occurrence": 1, "active": 1,
                 "acked": 0, "onset_ms": T0, "limit": 10.0, "details": {"why": "low"}}],
        events=[{"alarm_id": aid, "occurrence": 1, "event": "raise", "state_from": "NORM",
                 "state_to": "UNACK", "ts_ms": T0, "value": 3.5, "limit": 10.0}],
        engine_state={f"{DP}:action_low": {"active": True}},
        service_state={"heartbeat_ms": T0},
        zone_modes=[{"zone": "MEC-LITHO", "mode": "at_rest", "actor": "bob"}],
    ))
    store.write_cycle(Cycle(alarms=[{"id": aid, "state": "ACKED", "acked": 1, "ack_by": "bob"}]))
    [alarm] = store.alarms(active_only=True)
    assert (alarm["state"], alarm["priority"], alarm["limit"], alarm["details"]) == (
        "ACKED", "high", 10.0, {"why": "low"})
    [ev] = store.events(from_ms=T0, to_ms=T0 + 1, alarm_id=aid)
    assert ev["id"] == r.event_ids[0] and ev["state_to"] == "UNACK"
    assert store.engine_state() == {f"{DP}:action_low": {"active": True}}
    assert store.service_state()["heartbeat_ms"] == T0
    assert store.zone_modes()["MEC-LITHO"]["mode"] == "at_rest"
    digest = store.audit_rows(action="cycle_digest")
    # the acknowledgement-only cycle changed an alarm row, so it has a digest too
    assert len(digest) == 2 and digest[0]["details"]["samples"] == 1
    assert digest[0]["details"]["events"] == 1
    assert digest[1]["details"]["samples"] == 0 and aid in digest[1]["details"]["alarms"]
    with pytest.raises(StoreError, match="unknown columns"):
        store.write_cycle(Cycle(alarms=[{"id": aid, "colour": "red"}]))


def test_record_config_versions_and_audit(store):
    v1 = store.record_config("[facility]\nid = 'x'\n", "a" * 64, actor="svc")
    assert store.record_config("[facility]\nid = 'x'\n", "a" * 64) == v1
    v2 = store.record_config("[facility]\nid = 'y'\n[paging]\n", "b" * 64)
    assert v2 != v1 and store.config_text(v1).startswith("[facility]")
    loads = store.audit_rows(action="config_loaded")
    assert len(loads) == 2
    assert loads[1]["details"]["changed"] == ["facility", "paging"]
    assert loads[1]["config_version"] == v2
    store.write_cycle(Cycle(events=[{"alarm_id": "a:b", "event": "raise", "ts_ms": T0}]))
    assert store.events()[0]["config_version"] == v2


def test_reconcile_names_a_cycle_lost_by_one_file(store):
    store.write_cycle(Cycle(samples=[Sample(DP, T0, 1.0)]))
    r = store.write_cycle(Cycle(samples=[Sample(DP, T0 + 1000, 2.0)]))
    store.close()
    # simulate a crash that kept the main database's commit but lost the partition's
    conn = sqlite3.connect(partition_path(store.path, "2025-03-01"))
    conn.execute("DELETE FROM samples WHERE ts_ms = ?", (T0 + 1000,))
    conn.execute("DELETE FROM cycles WHERE cycle = ?", (r.digest_id,))
    conn.commit()
    conn.close()
    with Store(store.path) as s:
        [row] = s.audit_rows(action="partition_reconciled")
        assert row["details"]["main_last_cycle"] == r.digest_id
        assert row["details"]["partition_rows"] == 1 and "partition database lost" in row["reason"]
        assert s.partition_info("2025-03-01")["rows"] == 1
    with Store(store.path) as s:  # reconciled once, not again
        assert len(s.audit_rows(action="partition_reconciled")) == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 400), st.one_of(st.none(), st.floats(-5, 5)),
                          st.sampled_from(list(Quality))), min_size=1, max_size=60),
       st.integers(1, 5))
def test_aggregates_match_a_naive_recount(tmp_path_factory, series, n_batches):
    """Incremental buckets equal a recount from stored raw rows, however the cycles split."""
    s = Store(str(tmp_path_factory.mktemp("agg") / "f.db"))
    s.register_points(POINTS[:1])
    samples = [Sample(DP, T0 + t * 20_000, v, q) for t, v, q in series]  # spans minutes, hours
    step = max(1, len(samples) // n_batches)
    for i in range(0, len(samples), step):
        s.write_cycle(Cycle(samples=samples[i:i + step]))
    raw = list(s.iter_samples(0, 2**62))
    for res, size in (("1m", 60_000), ("1h", 3_600_000)):
        expect: dict[int, list] = {}
        for r in raw:
            b = expect.setdefault(r.ts_ms - r.ts_ms % size, [0, 0, [], 0])
            b[0] += 1
            b[3] = max(b[3], r.quality)
            if r.quality == 0 and r.value is not None:
                b[1] += 1
                b[2].append(r.value)
        got = s.aggregates(s._ids[DP], 0, 2**62, res)
        assert [g["bucket_ms"] for g in got] == sorted(expect)
        for g in got:
            n, ng, vals, wq = expect[g["bucket_ms"]]
            assert (g["n"], g["n_good"], g["worst_quality"]) == (n, ng, wq)
            assert g["min"] == (min(vals) if vals else None)
            assert g["max"] == (max(vals) if vals else None)
            if vals:
                assert math.isclose(g["mean"], sum(vals) / len(vals), abs_tol=1e-9)
    s.close()
