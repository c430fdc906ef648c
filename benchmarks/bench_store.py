"""Store benchmark: 2 000 points x 1 Hz through the real ``Store.write_cycle``.

Writes N simulated minutes (default 10: 600 cycles of 2 000 samples) as fast as cycles
allow, with latest, aggregates and the cycle digest, and reports commit time p50/p99, WAL
bytes written per second of data, and bytes per day per 1 000 points extrapolated from the
partition size. Baselines measured in the same run: the same rows through raw
``executemany`` into a plain rowid table (append only, no key), and into a table keyed
``(point_id, ts_ms)`` (the layout docs/ARCHITECTURE.md measured as costly).

The headline ratio (target: ``write_cycle`` >= 0.3 x raw ``executemany``, goal 0.5): the
same cycles go, interleaved cycle by cycle (rotating which goes first, so drift of a shared
machine falls on all alike), through ``Store.write_cycle`` (partitions, latest, aggregates,
the cycle digest), through raw ``executemany`` of the same rows into a plain table, and
through multi-row ``INSERT ... VALUES`` of the same rows into a plain table (the store's own
way of writing samples, ``facility.store.database.insert_rows``: the stricter baseline,
printed beside the headline), one transaction each; a ratio is raw time / write_cycle time
(1.0 would be free).

Why the store writes samples with multi-row inserts and small tables with sqlite-utils: the
same cycles' sample rows go, interleaved cycle by cycle, into three partitions of the
store's own layout, through ``executemany``, through ``insert_rows`` and through
sqlite-utils' ``insert_all``; and a one-row ``service_state`` upsert (the heartbeat every
cycle writes) goes through raw SQL and ``upsert_all``. Why ``latest`` is an upsert from a
SELECT of the cycle's partition rows: the same statement as ``UPDATE ... FROM`` those rows,
both timed on the same store (each rolled back). All ratios are printed.

    .venv/bin/python benchmarks/bench_store.py --minutes 2
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime, timezone

import sqlite_utils

from facility.domain.model import PointInfo, Quality, Sample
from facility.store import Cycle, Store
from facility.store.database import insert_rows, latest_upsert_sql
from facility.store.partitions import day_of, partition_path
from facility.store.schema import PARTITION_DDL, split_statements

T0 = int(datetime(2025, 3, 1, 6, 0, tzinfo=timezone.utc).timestamp() * 1000)


def wal_size(path: str) -> int:
    """Bytes in a WAL file (autocheckpoint is off, so this is everything written to it)."""
    try:
        return os.path.getsize(path + "-wal")
    except FileNotFoundError:
        return 0


def cycle_rows(n_points: int, second: int) -> list[tuple[int, int, float | None, int]]:
    """One second of data: deterministic values, 1 in 500 a failed read (null, comm)."""
    ts = T0 + second * 1000
    out = []
    for pid in range(1, n_points + 1):
        if (pid + second) % 500 == 0:
            out.append((pid, ts, None, int(Quality.COMM)))
        else:
            out.append((pid, ts, round(((pid * 7 + second) % 1000) / 10.0, 1), 0))
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def bench_store(folder: str, n_points: int, seconds: int) -> dict:
    path = os.path.join(folder, "facility.db")
    store = Store(path)
    store.conn.execute("PRAGMA wal_autocheckpoint=0")  # connection-wide: WAL size = bytes written
    names = [f"DEV-{(i - 1) // 20:03d}.p{i:04d}" for i in range(1, n_points + 1)]
    store.register_points([PointInfo(n, n.split(".")[0], "MEC", "Z1", "temperature", "C", 1,
                                     gmp=(i % 2 == 0)) for i, n in enumerate(names)])
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    day = day_of(T0)
    times = []
    for sec in range(seconds):
        samples = [Sample(names[pid - 1], ts, v, Quality(q)) for pid, ts, v, q in
                   cycle_rows(n_points, sec)]
        t = time.perf_counter()
        store.write_cycle(Cycle(samples=samples))
        times.append(time.perf_counter() - t)
    wal_main = wal_size(path)
    wal_part = wal_size(partition_path(path, day))
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.conn.execute(f"PRAGMA p_{day.replace('-', '')}.wal_checkpoint(TRUNCATE)")
    part_bytes = os.path.getsize(partition_path(path, day))
    main_bytes = os.path.getsize(path)
    store.close()
    return {"times": times, "wal": wal_main + wal_part, "wal_part": wal_part,
            "part_bytes": part_bytes, "main_bytes": main_bytes}


def bench_raw(folder: str, n_points: int, seconds: int, keyed: bool) -> dict:
    path = os.path.join(folder, "keyed.db" if keyed else "plain.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    if keyed:
        conn.execute("CREATE TABLE samples (point_id INTEGER, ts_ms INTEGER, value REAL,"
                     " quality INTEGER, PRIMARY KEY (point_id, ts_ms)) WITHOUT ROWID")
    else:
        conn.execute("CREATE TABLE samples (point_id INTEGER, ts_ms INTEGER, value REAL,"
                     " quality INTEGER)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    times = []
    for sec in range(seconds):
        rows = cycle_rows(n_points, sec)
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        times.append(time.perf_counter() - t)
    wal = wal_size(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"times": times, "wal": wal, "part_bytes": os.path.getsize(path)}


def _partition(path: str) -> sqlite3.Connection:
    """A bare day partition with the store's DDL and pragmas, on its own connection."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for stmt in split_statements(PARTITION_DDL.format(s="main")):
        conn.execute(stmt)
    return conn


def bench_sample_paths(folder: str, n_points: int, seconds: int) -> dict[str, list[float]]:
    """Per-cycle sample write, raw ``executemany`` vs sqlite-utils ``insert_all``.

    Same rows, same partition layout, one transaction per cycle each; the two alternate
    which goes first every cycle so that drift of the machine falls on both alike.
    ``insert_all`` gets dicts, the form the rest of the code would hand it.
    """
    raw = _partition(os.path.join(folder, "raw.db"))
    multi = _partition(os.path.join(folder, "multi.db"))
    su_conn = _partition(os.path.join(folder, "su.db"))
    su = sqlite_utils.Database(su_conn)
    cols = ("point_id", "ts_ms", "value", "quality")

    def write_raw(rows):
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)", rows)
        raw.execute("COMMIT")

    def write_multi(rows):
        multi.execute("BEGIN IMMEDIATE")
        insert_rows(multi, "INSERT INTO samples VALUES", 4, rows)
        multi.execute("COMMIT")

    def write_su(rows):
        su_conn.execute("BEGIN IMMEDIATE")
        su["samples"].insert_all(dict(zip(cols, r)) for r in rows)
        su_conn.execute("COMMIT")

    times: dict[str, list[float]] = {"executemany": [], "insert_rows": [], "insert_all": []}
    for sec in range(seconds):
        rows = cycle_rows(n_points, sec)
        order = (("executemany", write_raw), ("insert_rows", write_multi),
                 ("insert_all", write_su))
        k = sec % len(order)
        for name, fn in order[k:] + order[:k]:
            t = time.perf_counter()
            fn(rows)
            times[name].append(time.perf_counter() - t)
    stored = {c.execute("SELECT count(*), total(value) FROM samples").fetchone()
              for c in (raw, multi, su_conn)}
    if len(stored) != 1:
        raise SystemExit("sample paths stored different rows: the comparison is void")
    for c in (raw, multi, su_conn):
        c.close()
    return times


def bench_interleaved(folder: str, n_points: int, seconds: int) -> dict[str, list[float]]:
    """``write_cycle`` and raw ``executemany`` of the same rows, alternating per cycle."""
    store = Store(os.path.join(folder, "inter.db"))
    names = [f"DEV-{(i - 1) // 20:03d}.p{i:04d}" for i in range(1, n_points + 1)]
    store.register_points([PointInfo(n, n.split(".")[0], "MEC", "Z1", "temperature", "C", 1,
                                     gmp=(i % 2 == 0)) for i, n in enumerate(names)])
    plain = []
    for name in ("inter_raw.db", "inter_multi.db"):
        conn = sqlite3.connect(os.path.join(folder, name), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE samples (point_id INTEGER, ts_ms INTEGER, value REAL,"
                     " quality INTEGER)")
        plain.append(conn)
    raw, multi = plain

    def write_raw(rows):
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)", rows)
        raw.execute("COMMIT")

    def write_multi(rows):
        multi.execute("BEGIN IMMEDIATE")
        insert_rows(multi, "INSERT INTO samples VALUES", 4, rows)
        multi.execute("COMMIT")

    times: dict[str, list[float]] = {"write_cycle": [], "executemany": [], "multi-row": []}
    for sec in range(seconds):
        rows = cycle_rows(n_points, sec)
        samples = [Sample(names[pid - 1], ts, v, Quality(q)) for pid, ts, v, q in rows]
        order = (("write_cycle", lambda: store.write_cycle(Cycle(samples=samples))),
                 ("executemany", lambda: write_raw(rows)),
                 ("multi-row", lambda: write_multi(rows)))
        k = sec % len(order)
        for name, fn in order[k:] + order[:k]:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    store.close()
    raw.close()
    multi.close()
    return times


LATEST_UPDATE_FROM = (
    "UPDATE latest SET ts_ms = s.ts_ms, value = s.value, quality = s.quality,"
    " updated_ms = ?, good_ts_ms = CASE WHEN s.quality = 0 AND s.value IS NOT NULL"
    " THEN s.ts_ms ELSE good_ts_ms END, good_value = CASE WHEN s.quality = 0 AND s.value"
    " IS NOT NULL THEN s.value ELSE good_value END FROM (SELECT point_id, ts_ms, value,"
    " quality FROM {s}.samples WHERE ts_ms > ?) AS s WHERE latest.point_id = s.point_id")
"""``latest`` from a cycle's partition rows as ``UPDATE ... FROM`` (the form it replaced)."""


def bench_latest(folder: str, n_points: int, seconds: int) -> dict[str, list[float]]:
    """``latest`` from the cycle's partition rows: the store's upsert from a SELECT
    (``facility.store.database.latest_upsert_sql``) against ``UPDATE ... FROM`` the same rows, alternating, each
    in a transaction rolled back after the cycle is written; the two must leave the same
    ``latest`` rows."""
    store = Store(os.path.join(folder, "latest.db"))
    names = [f"DEV-{(i - 1) // 20:03d}.p{i:04d}" for i in range(1, n_points + 1)]
    store.register_points([PointInfo(n, n.split(".")[0], "MEC", "Z1", "temperature", "C", 1)
                           for n in names])
    conn = store.conn
    schema = f"p_{day_of(T0).replace('-', '')}"
    times: dict[str, list[float]] = {"upsert from SELECT": [], "UPDATE ... FROM": []}
    for sec in range(seconds):
        rows = cycle_rows(n_points, sec)
        store.write_cycle(Cycle(samples=[Sample(names[pid - 1], ts, v, Quality(q))
                                         for pid, ts, v, q in rows]))
        lo, now = rows[0][1] - 1, rows[0][1] + 5
        upsert = latest_upsert_sql(schema)
        got = []
        order = (("upsert from SELECT", upsert), ("UPDATE ... FROM",
                                                   LATEST_UPDATE_FROM.format(s=schema)))
        for name, sql in order if sec % 2 == 0 else order[::-1]:
            conn.execute("BEGIN IMMEDIATE")
            t = time.perf_counter()
            conn.execute(sql, (now, lo))
            times[name].append(time.perf_counter() - t)
            got.append(conn.execute("SELECT * FROM latest ORDER BY point_id").fetchall())
            conn.execute("ROLLBACK")
        if got[0] != got[1]:
            raise SystemExit("the two latest statements left different rows: the comparison is void")
    store.close()
    return times


def bench_state_upsert(folder: str, cycles: int) -> dict[str, list[float]]:
    """The heartbeat upsert of every cycle (one ``service_state`` row), both ways."""
    conn = sqlite3.connect(os.path.join(folder, "state.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE service_state (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
                 " updated_ms INTEGER)")
    db = sqlite_utils.Database(conn)
    times: dict[str, list[float]] = {"executemany": [], "upsert_all": []}
    for i in range(cycles):
        row = ("heartbeat", json.dumps({"cycles": i}), T0 + i)
        conn.execute("BEGIN IMMEDIATE")
        t = time.perf_counter()
        conn.executemany("INSERT INTO service_state (key, value, updated_ms) VALUES (?, ?, ?)"
                         " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                         " updated_ms = excluded.updated_ms", [row])
        times["executemany"].append(time.perf_counter() - t)
        t = time.perf_counter()
        db["service_state"].upsert_all([dict(zip(("key", "value", "updated_ms"), row))],
                                       pk="key")
        times["upsert_all"].append(time.perf_counter() - t)
        conn.execute("COMMIT")
    conn.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="simulated minutes of data")
    ap.add_argument("--points", type=int, default=2000)
    args = ap.parse_args()
    seconds = max(2, int(args.minutes * 60))
    n = args.points
    with tempfile.TemporaryDirectory(prefix="bench_store_") as folder:
        results = {
            "store.write_cycle": bench_store(folder, n, seconds),
            "raw executemany, plain table": bench_raw(folder, n, seconds, keyed=False),
            "raw executemany, (point_id, ts) key": bench_raw(folder, n, seconds, keyed=True),
        }
        paths = bench_sample_paths(folder, n, seconds)
        inter = bench_interleaved(folder, n, seconds)
        latest = bench_latest(folder, n, min(seconds, 120))
        state = bench_state_upsert(folder, seconds)
    samples = n * seconds
    base = results["raw executemany, plain table"]
    print(f"{n} points x 1 Hz, {seconds} s of data ({samples:,} samples), one cycle per second")
    print(f"{'':38} {'p50 ms':>8} {'p99 ms':>8} {'WAL MB/s':>9} {'MB/day/1k pts':>14}")
    for name, r in results.items():
        per_day = r["part_bytes"] / samples * 86_400 * 1000
        print(f"{name:38} {statistics.median(r['times']) * 1e3:8.2f} {pct(r['times'], 99) * 1e3:8.2f}"
              f" {r['wal'] / seconds / 1e6:9.3f} {per_day / 1e6:14.1f}")
    s = results["store.write_cycle"]
    print(f"store: partition WAL {s['wal_part'] / seconds / 1e6:.3f} MB/s of data, main-db WAL"
          f" {(s['wal'] - s['wal_part']) / seconds / 1e6:.3f} MB/s; main db file"
          f" {s['main_bytes'] / 1e6:.1f} MB after the run")
    for name in ("store.write_cycle", "raw executemany, (point_id, ts) key"):
        r = results[name]
        print(f"ratio {name} / plain: p50 x{statistics.median(r['times']) / statistics.median(base['times']):.2f},"
              f" p99 x{pct(r['times'], 99) / pct(base['times'], 99):.2f},"
              f" WAL x{r['wal'] / base['wal']:.2f}, bytes x{r['part_bytes'] / base['part_bytes']:.2f}")
    print(f"\nsample write per cycle ({n} rows, store partition layout, one transaction each):")
    for name, ts in paths.items():
        print(f"  {name:12} p50 {statistics.median(ts) * 1e3:7.2f} ms   p99 {pct(ts, 99) * 1e3:7.2f} ms")
    a, b = paths["insert_all"], paths["executemany"]
    print(f"  ratio sqlite-utils insert_all / raw executemany: p50 x{statistics.median(a) / statistics.median(b):.2f},"
          f" p99 x{pct(a, 99) / pct(b, 99):.2f}")
    a = paths["insert_rows"]
    print(f"  ratio raw executemany / insert_rows (the store's): p50 x{statistics.median(b) / statistics.median(a):.2f},"
          f" p99 x{pct(b, 99) / pct(a, 99):.2f}")
    a, b = latest["upsert from SELECT"], latest["UPDATE ... FROM"]
    print(f"latest from the cycle's partition rows ({n} points, same rows left): upsert from SELECT"
          f" p50 {statistics.median(a) * 1e3:.2f} ms, UPDATE ... FROM {statistics.median(b) * 1e3:.2f} ms"
          f" (x{statistics.median(b) / statistics.median(a):.2f})")
    a, b, c = inter["write_cycle"], inter["executemany"], inter["multi-row"]
    print(f"\nwrite_cycle vs raw inserts of the same rows into a plain table, interleaved ({n} samples a cycle):")
    for name, ts in inter.items():
        print(f"  {name:12} p50 {statistics.median(ts) * 1e3:7.2f} ms   mean {statistics.mean(ts) * 1e3:7.2f} ms"
              f"   p99 {pct(ts, 99) * 1e3:7.2f} ms")
    print(f"  ratio raw executemany / write_cycle: p50 {statistics.median(b) / statistics.median(a):.2f},"
          f" mean {statistics.mean(b) / statistics.mean(a):.2f} (target >= 0.3, goal 0.5;"
          f" samples, latest, aggregates and the digest included)")
    print(f"  ratio raw multi-row insert / write_cycle (stricter): p50 {statistics.median(c) / statistics.median(a):.2f},"
          f" mean {statistics.mean(c) / statistics.mean(a):.2f}")
    a, b = state["upsert_all"], state["executemany"]
    print(f"one-row service_state upsert per cycle: raw {statistics.median(b) * 1e6:.0f} us,"
          f" sqlite-utils upsert_all {statistics.median(a) * 1e6:.0f} us (p50,"
          f" x{statistics.median(a) / statistics.median(b):.1f}; per cycle a fraction of the"
          f" {statistics.median(results['store.write_cycle']['times']) * 1e3:.1f} ms write)")


if __name__ == "__main__":
    main()
