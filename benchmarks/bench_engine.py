"""Benchmark the alarm engine against its baselines, measured in the same run.

    python benchmarks/bench_engine.py [--points 1000] [--samples 86400] [--live-points 2000]

One batch of ``points × samples`` interleaved samples (a day at 1 Hz for 1 000 points by
default), 4 rules per point (action/alert high/low). Prints samples/s for the engine,
the pure-Python reference (tests/reference.py, on a slice), a stateless numba scan doing
the same four compares per sample, and a plain numpy pass; then the time of one live
cycle (one sample per point). ``parallel=True`` is not used by the engine: rules carry
state along each point's time order, and on a shared 2-core box the stateless scan it
would have to beat is already memory-bound.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from alarms import kernels as K  # noqa: E402
from alarms.engine import Engine, Rule, warm_up  # noqa: E402
from tests.reference import ReferenceRule  # noqa: E402


def make_rules(n_points: int) -> list[Rule]:
    """Four rules per point, with the delays and deadbands a site would use."""
    rules = []
    for p in range(n_points):
        rules += [Rule(p, "high", 3.0, deadband=0.2, on_delay_s=5.0, off_delay_s=10.0),
                  Rule(p, "high", 2.0, deadband=0.2, m_of_n=(2, 3)),
                  Rule(p, "low", -2.0, deadband=0.2, on_delay_s=5.0),
                  Rule(p, "low", -3.0, deadband=0.2, max_gap_s=5.0)]
    return rules


def make_batch(n_points: int, n_samples: int, seed: int = 1):
    """Interleaved samples: every point once per second, values ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    point = np.tile(np.arange(n_points, dtype=np.int32), n_samples)
    ts = np.repeat(1.7e9 + np.arange(n_samples, dtype=np.float64), n_points)
    value = rng.standard_normal(n_points * n_samples)
    good = rng.random(n_points * n_samples) > 0.001
    return point, ts, value, good


def best_of(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` runs (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=86_400, help="samples per point")
    ap.add_argument("--live-points", type=int, default=2000)
    ap.add_argument("--ref-samples", type=int, default=40_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    warm_up()
    rules = make_rules(args.points)
    point, ts, value, good = make_batch(args.points, args.samples)
    n = point.shape[0]
    rows = []

    eng_holder = {}

    def run_engine():
        eng_holder["tr"] = Engine(rules).feed(point, ts, value, good)

    t_eng = best_of(run_engine, args.repeat)
    rows.append(("engine (numba, stateful)", n / t_eng))

    # (a) the reference, rule by rule per sample, on a slice
    m = min(args.ref_samples, n)
    refs = [ReferenceRule(r.point, r.kind, r.limit, r.deadband, r.on_delay_s,
                          r.off_delay_s, r.m_of_n, r.max_gap_s) for r in rules]
    by_point = [refs[4 * p:4 * p + 4] for p in range(args.points)]
    pl, tl, vl, gl = point[:m].tolist(), ts[:m].tolist(), value[:m].tolist(), good[:m].tolist()
    t0 = time.perf_counter()
    for i in range(m):
        for r in by_point[pl[i]]:
            r.step(tl[i], vl[i], gl[i])
    t_ref = time.perf_counter() - t0
    rows.append((f"reference (pure Python, {m} samples)", m / t_ref))

    # (b) stateless numba scan: same four compares per sample, no state
    eng = Engine(rules)
    limits = np.array([rules[j].limit for j in eng._rule_idx])  # CSR order
    K._stateless_compare(point[:10], value[:10], eng._rule_ptr, limits)
    t_sl = best_of(lambda: K._stateless_compare(point, value, eng._rule_ptr, limits),
                   args.repeat)
    rows.append(("stateless numba scan (4 compares)", n / t_sl))

    # (c) plain numpy pass, chunked to bound memory
    lim4 = limits.reshape(args.points, 4)

    def run_numpy():
        total = 0
        for a in range(0, n, 1 << 20):
            b = min(n, a + (1 << 20))
            total += int((value[a:b, None] > lim4[point[a:b]]).sum())
        return total

    t_np = best_of(run_numpy, 1)
    rows.append(("numpy pass (4 compares, chunked)", n / t_np))

    # live cycle: one sample per point, all points in one feed
    live = Engine(make_rules(args.live_points))
    lp = np.arange(args.live_points, dtype=np.int64)
    lg = np.ones(args.live_points, dtype=bool)
    rng = np.random.default_rng(2)
    cycles = 2000
    vals = rng.standard_normal((cycles, args.live_points))
    live.feed(lp, np.full(args.live_points, 1.0), vals[0], lg)
    t0 = time.perf_counter()
    for c in range(1, cycles):
        live.feed(lp, np.full(args.live_points, 1.0 + c), vals[c], lg)
    t_live = (time.perf_counter() - t0) / (cycles - 1)

    print(f"batch: {args.points} points x {args.samples} samples = {n:,} samples, "
          f"4 rules/point, {len(eng_holder['tr']):,} transitions")
    print(f"{'method':<42}{'samples/s':>16}{'engine / method':>18}")
    for name, rate in rows:
        print(f"{name:<42}{rate:>16,.0f}{(n / t_eng) / rate:>18.2f}")
    print(f"engine vs stateless scan: {t_sl / t_eng:.2f} (target >= 0.25, aim > 0.5)")
    print(f"engine vs reference:      {(n / t_eng) / (m / t_ref):,.0f}x (target >= 100x)")
    print("parallel=True: not used (see module docstring)")
    print(f"live cycle, {args.live_points} points x 4 rules: {t_live * 1e6:,.1f} us per cycle "
          f"(target well under 1 000 us)")


if __name__ == "__main__":
    main()
