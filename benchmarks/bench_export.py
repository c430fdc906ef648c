"""Export benchmark: ``facility export``'s samples against a raw dump of the same rows.

Builds a store of N points x S seconds at 1 Hz through ``Store.write_cycle`` (default 600
points x 10 minutes: 360 000 samples), then, alternating which goes first, R rounds of:

* **export**: ``facility.records.export.export`` with the report off (samples.csv with its
  row hash chain, the ``.rowhash`` sidecar, checkpoints, neutralised text cells, alarms,
  events, audit slice, manifest): what an auditor's export costs per sample;
* **export + report**: the same with report.html, as ``facility export`` runs by default
  (the shipped configuration's limits; the points are its point ids);
* **raw dump**: a plain ``SELECT point_id, ts_ms, value, quality`` of every partition in
  key order, written with the csv module (``writerows``), nothing else.

It reports rows/s of both and the ratio raw time / export time (target >= 0.5; 1.0 would
make the chain and the formatting free), the best of the rounds for each side, and checks that
the export holds every row. A day of 600 points (51.8 M samples) scales linearly from the rate.

    .venv/bin/python benchmarks/bench_export.py --points 600 --minutes 10
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sqlite3
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from facility.domain.model import PointInfo, Quality, Sample
from facility.records.export import ExportRequest, export
from facility.store import Cycle, Store
from facility.store.partitions import days_on_disk, partition_path

ROOT = Path(__file__).resolve().parents[1]
T0 = int(datetime(2025, 3, 1, 6, 0, tzinfo=timezone.utc).timestamp() * 1000)


def point_names(n_points: int) -> list[str]:
    """The shipped configuration's point ids (so the report finds their limits), then more."""
    from facility.catalogue import build_catalogue
    from facility.config.loader import load_config

    ids = [p.id for p in build_catalogue(load_config(ROOT / "config.toml")).points]
    return (ids + [f"DEV-{(i - 1) // 20:03d}.p{i:04d}" for i in range(1, n_points + 1)])[:n_points]


def build(path: str, n_points: int, seconds: int) -> None:
    names = point_names(n_points)
    with Store(path) as store:
        store.register_points([PointInfo(n, n.split(".")[0], "MEC", "Z1", "temperature", "C", 1)
                               for n in names])
        for sec in range(seconds):
            ts = T0 + sec * 1000
            store.write_cycle(Cycle(samples=[
                Sample(n, ts, None, Quality.COMM) if (i + sec) % 500 == 0
                else Sample(n, ts, round(((i * 7 + sec) % 1000) / 10.0 - 20, 1))
                for i, n in enumerate(names)]))


def raw_dump(path: str, out: str) -> int:
    rows = 0
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["point_id", "ts_ms", "value", "quality"])
        for day in days_on_disk(path):
            conn = sqlite3.connect(f"file:{partition_path(path, day)}?mode=ro", uri=True)
            cur = conn.execute("SELECT point_id, ts_ms, value, quality FROM samples"
                               " ORDER BY ts_ms, point_id")
            while True:
                chunk = cur.fetchmany(10_000)
                if not chunk:
                    break
                w.writerows(chunk)
                rows += len(chunk)
            conn.close()
    return rows


def run_export(path: str, out: str) -> int:
    with Store(path, readonly=True) as store:
        manifest, _sha = export(None, store, ExportRequest(0, 2**42, out, report=False))
    return manifest["files"]["samples.csv"]["rows"]


def run_export_report(path: str, out: str) -> int:
    """As ``facility export`` runs by default: with report.html (shipped configuration)."""
    from dataclasses import replace

    from facility.config.loader import load_config

    cfg = load_config(ROOT / "config.toml")
    cfg = replace(cfg, storage=replace(cfg.storage, path=path))
    with Store(path, readonly=True) as store:
        manifest, _sha = export(cfg, store, ExportRequest(0, 2**42, out))
    return manifest["files"]["samples.csv"]["rows"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=600)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    seconds = max(2, int(args.minutes * 60))
    with tempfile.TemporaryDirectory(prefix="bench_export_") as folder:
        db = os.path.join(folder, "facility.db")
        t = time.perf_counter()
        build(db, args.points, seconds)
        print(f"{args.points} points x {seconds} s at 1 Hz: {args.points * seconds:,} samples"
              f" (store built in {time.perf_counter() - t:.1f} s)")
        best = {"export": float("inf"), "raw dump": float("inf"),
                "export + report": float("inf")}
        rows = {}
        for r in range(args.rounds):
            sides = [("export", run_export), ("raw dump", raw_dump),
                     ("export + report", run_export_report)]
            for name, fn in sides if r % 2 == 0 else sides[::-1]:
                out = os.path.join(folder, f"out-{name.replace(' ', '_').replace('+', '')}-{r}")
                target = out + ".csv" if name == "raw dump" else out
                t = time.perf_counter()
                rows[name] = fn(db, target)
                best[name] = min(best[name], time.perf_counter() - t)
                shutil.rmtree(out, ignore_errors=True)
                if os.path.exists(out + ".csv"):
                    os.remove(out + ".csv")
        if not rows["export"] == rows["raw dump"] == rows["export + report"]:
            raise SystemExit(f"export wrote {rows['export']} rows, the raw dump {rows['raw dump']}:"
                             " the comparison is void")
        n = rows["export"]
        for name, secs in best.items():
            print(f"  {name:9} {secs:7.2f} s  {n / secs:12,.0f} rows/s  (best of {args.rounds})")
        ratio = best["raw dump"] / best["export"]
        day = 600 * 86_400
        print(f"ratio raw dump / export: {ratio:.2f} (target >= 0.5); with the report"
              f" (`facility export` as run by default): {best['raw dump'] / best['export + report']:.2f}")
        print(f"a day of 600 points ({day / 1e6:.1f} M samples) at this rate: export"
              f" {day / (n / best['export']) / 60:.1f} min, raw dump"
              f" {day / (n / best['raw dump']) / 60:.1f} min")
        print(json.dumps({"export_rows_per_s": round(n / best["export"]),
                          "raw_rows_per_s": round(n / best["raw dump"]), "ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
