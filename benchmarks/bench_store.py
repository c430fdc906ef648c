"""Store benchmark: 2 000 points x 1 Hz through the real ``Store.write_cycle``.

Writes N simulated minutes (default 10: 600 cycles of 2 000 samples) as fast as cycles
allow, with latest, aggregates and the cycle digest, and reports commit time p50/p99, WAL
bytes written per second of data, and bytes per day per 1 000 points extrapolated from the
partition size. Baselines measured in the same run: the same rows through raw
``executemany`` into a plain rowid table (append only, no key), and into a table keyed
``(point_id, ts_ms)`` (the layout DESIGN.md measured as costly).

    .venv/bin/python benchmarks/bench_store.py --minutes 2
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime, timezone

from facility.domain.model import PointInfo, Quality, Sample
from facility.store import Cycle, Store
from facility.store.partitions import day_of, partition_path

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


if __name__ == "__main__":
    main()
