"""Backtest benchmark: ``facility backtest --from --to`` from the store, new path vs old.

The shipped configuration's points and rules (config.toml, occupancy modes as configured),
S seconds of 1 Hz samples of every point written straight into a day partition of a scratch
store (default 1 800 s x 673 points = 1.2 M samples; a random walk around each point's
limits, so excursions happen, 1 in 400 reads failed). Each side runs in its own process, so
its peak RSS is its own:

* **columnar** (now): ``facility.records.backtest.run_from_store``: chunked columnar reads
  (``Store.iter_sample_arrays``: time slices of each partition read by two threads, each
  slice's columns as integer texts parsed by numpy, ``--chunk`` rows a chunk) fed to one
  streaming ``alarms.backtest.Backtest``; time split into reading (including waiting for
  the reader threads) and the engine;
* **per-row** (the previous reader): every row through ``Store.iter_samples`` (a ``SampleRow``
  each) into Python lists, then one ``run_backtest`` over all of it;
* **plain SELECT**: the same rows fetched with ``fetchmany`` and dropped: the floor of reading
  a Python tuple per row (the columnar path reads no tuple per row and can beat it).

Each side runs ``--repeat`` times, the order rotating, and its fastest run is reported (a
shared machine's load falls on every side alike). Both backtests must produce the same
transitions. Reported: samples/s and peak RSS of each,
the ratio of rates (target >= 3), and a day of the shipped config (673 points x 86 400 s =
58.1 M samples) extrapolated: time from the rates, memory per-row from its bytes per sample,
columnar from the chunk (constant).

    .venv/bin/python benchmarks/bench_backtest.py --seconds 1800
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_740_808_800_000  # 2025-03-01T06:00:00Z


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup(folder: str, seconds: int) -> str:
    from facility.config.loader import load_config
    from facility.domain.model import PointInfo
    from facility.records import backtest as bt
    from facility.store import Store
    from facility.store.partitions import day_of, partition_path
    from facility.store.schema import PARTITION_DDL, split_statements

    cfg = load_config(ROOT / "config.toml")
    rules, ids, _stale = bt.compiled(cfg)
    db = os.path.join(folder, "facility.db")
    with Store(db) as store:
        pid = store.register_points([PointInfo(p, p.split(".")[0], "S", "Z", "q", "u")
                                     for p in ids])
    centre, step = {}, {}
    for p in ids:
        lims = [r[2].limit for r in rules if r[0] == p]
        hi = max(lims) if lims else 100.0
        lo = min(lims) if len(lims) > 1 else 0.0
        centre[p], step[p] = (hi + lo) / 2 if len(lims) > 1 else hi * 0.8, max(abs(hi - lo), 1) / 40
    rng = np.random.default_rng(16)
    walk = np.cumsum(rng.normal(0, 1, size=(seconds, len(ids))), axis=0)
    os.makedirs(os.path.dirname(partition_path(db, day_of(T0))), exist_ok=True)
    conn = sqlite3.connect(partition_path(db, day_of(T0)), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for stmt in split_statements(PARTITION_DDL.format(s="main")):
        conn.execute(stmt)
    pids = np.array([pid[p] for p in ids])
    order = np.argsort(pids)
    c = np.array([centre[p] for p in ids])[order]
    s = np.array([step[p] for p in ids])[order]
    pids = pids[order]
    conn.execute("BEGIN")
    for sec in range(seconds):
        vals = np.round(c + s * walk[sec, order], 2).tolist()
        rows = [(p, T0 + sec * 1000, None if (p + sec) % 400 == 0 else v, 2 if (p + sec) % 400 == 0 else 0)
                for p, v in zip(pids.tolist(), vals)]
        conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    conn.close()
    return db


def side(name: str, db: str, seconds: int, chunk: int) -> dict:
    from facility.config.loader import load_config
    from facility.records import backtest as bt
    from facility.store import Store

    cfg = load_config(ROOT / "config.toml")
    rules, ids, stale = bt.compiled(cfg)
    lo, hi = T0, T0 + seconds * 1000
    from alarms.backtest import SampleArrays, run_backtest

    one = np.zeros(1, np.int64)  # warm the kernels (numba cache) on both sides alike
    run_backtest(rules, SampleArrays(tuple(ids), one, one + 1.0, one + 1.0, one.astype(np.int8),
                                     one == 0, one), stale_after_s=stale)
    base = rss_mb()
    t = time.perf_counter()
    timing: dict = {}
    with Store(db, readonly=True) as store:
        if name == "columnar":
            out = list(bt.run_from_store(store, rules, ids, stale, lo, hi, chunk_rows=chunk,
                                         timing=timing))
            n = timing["samples"]
        elif name == "per-row":
            index = {p: i for i, p in enumerate(ids)}
            pts, tss, vals, quals = [], [], [], []
            for row in store.iter_samples(lo, hi):
                if row.point not in index:
                    continue
                pts.append(index[row.point])
                tss.append(row.ts_ms / 1000.0)
                vals.append(np.nan if row.value is None else row.value)
                quals.append(row.quality)
            q, v = np.array(quals, dtype=np.int8), np.array(vals, dtype=np.float64)
            arrays = SampleArrays(tuple(ids), np.array(pts, dtype=np.int64),
                                  np.array(tss, dtype=np.float64), v, q,
                                  (q == 0) & np.isfinite(v), np.arange(len(pts), dtype=np.int64))
            del pts, tss, vals, quals
            timing["read_s"] = time.perf_counter() - t
            used = {ids[i] for i in np.unique(arrays.point)}
            t1 = time.perf_counter()
            out = run_backtest([r for r in rules if r[0] in used], arrays, stale_after_s=stale)
            timing["engine_s"] = time.perf_counter() - t1
            n = len(arrays.point)
        else:  # plain SELECT
            from facility.store.partitions import day_of, partition_path

            conn = sqlite3.connect(f"file:{partition_path(db, day_of(T0))}?mode=ro", uri=True)
            cur = conn.execute("SELECT point_id, ts_ms, value, quality FROM samples"
                               " WHERE ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, point_id", (lo, hi))
            n = 0
            while True:
                rows = cur.fetchmany(100_000)
                if not rows:
                    break
                n += len(rows)
            conn.close()
            out = []
    secs = time.perf_counter() - t
    digest = __import__("hashlib").sha256(json.dumps(out).encode()).hexdigest()
    return {"side": name, "samples": n, "s": secs, "rate": n / secs, "peak_rss_mb": rss_mb(),
            "base_rss_mb": base, "transitions": len(out), "digest": digest, **timing}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=1800)
    ap.add_argument("--chunk", type=int, default=None,
                    help="rows per chunk (default: facility.records.backtest.CHUNK_ROWS)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each side (the fastest of each is reported)")
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.chunk is None:
        from facility.records.backtest import CHUNK_ROWS

        args.chunk = CHUNK_ROWS
    if args.side:
        print(json.dumps(side(args.side, args.db, args.seconds, args.chunk)))
        return
    with tempfile.TemporaryDirectory(prefix="bench_backtest_") as folder:
        t = time.perf_counter()
        db = setup(folder, args.seconds)
        print(f"store built in {time.perf_counter() - t:.1f} s")
        res: dict[str, dict] = {}
        sides = ["plain SELECT", "per-row", "columnar"]
        for rep in range(args.repeat):  # rotating the order: drift falls on every side alike
            for name in sides[rep % 3:] + sides[:rep % 3]:
                run = subprocess.run([sys.executable, __file__, "--side", name, "--db", db,
                                      "--seconds", str(args.seconds), "--chunk", str(args.chunk)],
                                     capture_output=True, text=True, cwd=ROOT)
                if run.returncode:
                    raise SystemExit(run.stderr)
                got = json.loads(run.stdout.splitlines()[-1])
                if name not in res or got["s"] < res[name]["s"]:
                    res[name] = got
        res = {name: res[name] for name in sides}
    n = res["columnar"]["samples"]
    if res["per-row"]["digest"] != res["columnar"]["digest"]:
        raise SystemExit("the two backtests disagree: the comparison is void")
    print(f"shipped config: {n:,} samples ({args.seconds} s of 1 Hz),"
          f" {res['columnar']['transitions']} transitions (identical on both paths);"
          f" chunk {args.chunk:,} rows; fastest of {args.repeat} runs of each side")
    print(f"{'':14} {'s':>7} {'samples/s':>11} {'read s':>7} {'engine s':>8} {'peak RSS MB':>12}")
    for name, r in res.items():
        print(f"{name:14} {r['s']:7.2f} {r['rate']:11,.0f} {r.get('read_s', r['s']):7.2f}"
              f" {r.get('engine_s', 0.0):8.2f} {r['peak_rss_mb']:12.0f}")
    c, p = res["columnar"], res["per-row"]
    print(f"ratio columnar / per-row rate: x{c['rate'] / p['rate']:.2f} (target >= 3);"
          f" columnar rate / plain SELECT rate: {c['rate'] / res['plain SELECT']['rate']:.2f}")
    print(f"columnar time split: reading {c['read_s'] / c['s'] * 100:.0f} %,"
          f" engine {c['engine_s'] / c['s'] * 100:.0f} %")
    day = 673 * 86_400
    per_sample = (p["peak_rss_mb"] - p["base_rss_mb"]) / n
    print(f"a day of the shipped config ({day / 1e6:.1f} M samples), extrapolated: per-row"
          f" {day / p['rate']:.0f} s and ~{p['base_rss_mb'] + per_sample * day:,.0f} MB"
          f" ({per_sample * 1e6:.0f} B/sample); columnar {day / c['rate']:.0f} s and"
          f" ~{c['peak_rss_mb']:.0f} MB (bounded by the chunk, not the range)")


if __name__ == "__main__":
    main()
