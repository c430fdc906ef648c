"""Benchmark `facility audit verify`'s digest check, and what the digests cost the writer.

    .venv/bin/python benchmarks/bench_audit_verify.py [--points 620] [--minutes 20]

Writes ``points x minutes x 60`` samples (1 Hz, the shipped config's 620 polled points by
default) through the real ``Store.write_cycle``, one cycle per second, timing the cycle
digest (``Store._digest``, wrapped with a timer) against the whole write. Then runs the
production ``check_digests`` over the database and, as the baseline in the same run, a plain
``SELECT`` of the same sample rows from the partition files. Prints rows/s of both and their
ratio, and the digests' share of ``write_cycle``. A day of the shipped config is about
54 M samples: the printed rate says how long that takes.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from facility.domain.model import PointInfo, Quality, Sample  # noqa: E402
from facility.store import Cycle, Store  # noqa: E402
from facility.store.digest_check import check_digests  # noqa: E402
from facility.store.partitions import partition_dir  # noqa: E402

T0 = int(datetime(2025, 3, 1, 6, 0, tzinfo=timezone.utc).timestamp() * 1000)
SAMPLES_PER_DAY_SHIPPED = 54_000_000


def build(path: str, n_points: int, n_cycles: int) -> tuple[float, float, int]:
    """Write the cycles; return (seconds in write_cycle, seconds in the digest, samples)."""
    points = [PointInfo(f"P{i}.v", f"P{i}", "MEC", "MEC-LITHO", "pressure_diff", "Pa", 1)
              for i in range(n_points)]
    spent = [0.0]
    with Store(path) as store:
        store.register_points(points)
        inner = store._digest

        def timed_digest(*args, **kw):
            t = time.perf_counter()
            try:
                return inner(*args, **kw)
            finally:
                spent[0] += time.perf_counter() - t

        store._digest = timed_digest
        total = 0.0
        for c in range(n_cycles):
            ts = T0 + c * 1000
            samples = [Sample(p.id, ts, 10.0 + ((c * 7 + i) % 13) * 0.1, Quality.GOOD)
                       for i, p in enumerate(points)]
            t = time.perf_counter()
            store.write_cycle(Cycle(samples=samples))
            total += time.perf_counter() - t
    return total, spent[0], n_points * n_cycles


def plain_select(path: str) -> int:
    """The baseline: every sample row of every partition, read and discarded."""
    n = 0
    folder = partition_dir(path)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".db"):
            with sqlite3.connect(f"file:{os.path.join(folder, name)}?mode=ro", uri=True) as conn:
                for _ in conn.execute("SELECT ts_ms, point_id, value, quality FROM samples"
                                      " ORDER BY ts_ms, point_id"):
                    n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=620)
    ap.add_argument("--minutes", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "facility.db")
        t_write, t_digest, n = build(path, args.points, args.minutes * 60)
        t = time.perf_counter()
        rows = plain_select(path)
        t_select = time.perf_counter() - t
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            res = check_digests(conn, path)
        assert res.ok and res.samples == n == rows, (res.findings[:3], res.samples, n, rows)
    rate = n / res.seconds
    print(f"{args.points} points x {args.minutes * 60} cycles = {n:,} samples, "
          f"{res.cycles:,} cycles, {res.partitions} partition(s)")
    print(f"{'method':<44}{'samples/s':>14}{'ratio':>8}")
    print(f"{'plain SELECT of the partitions (baseline)':<44}{rows / t_select:>14,.0f}{1.0:>8.2f}")
    print(f"{'audit verify digest check':<44}{rate:>14,.0f}{(rows / t_select) / rate:>8.2f}"
          "  (x the baseline's time)")
    print(f"a day of the shipped config ({SAMPLES_PER_DAY_SHIPPED / 1e6:.0f} M samples) at this "
          f"rate: {SAMPLES_PER_DAY_SHIPPED / rate / 60:.1f} min")
    print(f"write_cycle: {t_write / (n / args.points) * 1e3:.2f} ms per cycle of {args.points}"
          f" samples, of which the digest {t_digest / t_write * 100:.1f} %")


if __name__ == "__main__":
    main()
