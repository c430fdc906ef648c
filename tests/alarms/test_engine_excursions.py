"""The engine equals tests/reference.py where samples spend most of their time beyond limits.

The kernel's steady-set fast path (alarms/kernels.py ``_steady``) skips samples that change no
rule's state: compliant ones, but also beyond ones during an active excursion and ones that
wait out a delay. These tests drive that path hard: random walks that leave the limits for
long stretches and cross them often, with every rule feature (on/off delays, deadbands, M-of-N,
gaps) and skipped samples (bad, non-finite, duplicate, late), in point-major and time-major
order, in one batch and split, and across a state save mid-excursion.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from alarms.engine import Engine, Rule
from tests.reference import ReferenceRule, reference_feed


def ref_rules(rules):
    """Fresh reference twins of engine rules."""
    return [ReferenceRule(r.point, r.kind, r.limit, r.deadband, r.on_delay_s, r.off_delay_s,
                          r.m_of_n, r.max_gap_s) for r in rules]


def as_list(tr):
    return [(int(x["rule"]), int(x["sample"]), int(x["event"]), float(x["onset"])) for x in tr]


def site_rules(n_points):
    """The benchmark's four rules per point, plus the variants it lacks (M-of-N with a gap,
    delays on both sides, a zero deadband)."""
    rules = []
    for p in range(n_points):
        rules += [Rule(p, "high", 3.0, deadband=0.2, on_delay_s=5.0, off_delay_s=10.0),
                  Rule(p, "high", 2.0, deadband=0.2, m_of_n=(2, 3)),
                  Rule(p, "low", -2.0, deadband=0.2, on_delay_s=5.0),
                  Rule(p, "low", -3.0, deadband=0.2, max_gap_s=5.0),
                  Rule(p, "high", 6.0, m_of_n=(3, 5), off_delay_s=2.5, max_gap_s=3.0),
                  Rule(p, "low", -6.0, deadband=1.0, on_delay_s=2.0, off_delay_s=4.0,
                       max_gap_s=4.0)]
    return rules


# every limit and back bound of site_rules, computed as the engine does (s * L - D, signed)
EDGES = np.array(sorted({x for r in site_rules(1) for x in (
    r.limit, r.limit - r.deadband if r.kind == "high" else -(-r.limit - r.deadband))}))


def walk(seed, n_points, n_samples, *, messy):
    """Per point: a random walk in [-10, 10] (reflected) that lingers beyond the limits,
    on a 1 s clock with jitter; ``messy`` adds bad, non-finite, duplicate, late samples and
    gaps. Returns (point, ts, value, good) per point, each time-ordered by arrival."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_points):
        steps = rng.normal(0.0, rng.choice([0.3, 0.8, 2.0]), n_samples)
        v = np.cumsum(steps) + rng.normal(0.0, 4.0)
        v = np.abs((v + 10.0) % 40.0 - 20.0) - 10.0  # reflect into [-10, 10]
        dt = rng.choice([1.0, 1.0, 1.0, 0.5, 1.25], n_samples)
        good = np.ones(n_samples, bool)
        if messy:
            # values exactly at a limit or at a limit's back bound (s*L - D as the engine
            # computes it), where a strict and a non-strict compare differ
            snap = rng.choice(EDGES, n_samples)
            v = np.where(rng.random(n_samples) < 0.08, snap, v)
            dt = np.where(rng.random(n_samples) < 0.05, rng.choice([3.5, 4.5, 6.0, 30.0],
                                                                   n_samples), dt)
            dt = np.where(rng.random(n_samples) < 0.02, 0.0, dt)  # duplicates
            dt = np.where(rng.random(n_samples) < 0.01, -2.0, dt)  # late
            good = rng.random(n_samples) > 0.02
            v = np.where(rng.random(n_samples) < 0.01, rng.choice([np.nan, np.inf, -np.inf]), v)
        ts = 1.7e9 + 0.37 + np.cumsum(dt)
        out.append((ts, v, good))
    return out


def layout(per_point, order):
    """Interleave per-point series: point after point, or by time (ties by point)."""
    point = np.concatenate([np.full(len(ts), p, np.int64) for p, (ts, _, _) in
                            enumerate(per_point)])
    ts = np.concatenate([s[0] for s in per_point])
    value = np.concatenate([s[1] for s in per_point])
    good = np.concatenate([s[2] for s in per_point])
    if order == "time-major":
        # stable on arrival index within a point, so a point's own order is kept
        idx = np.concatenate([np.arange(len(s[0])) for s in per_point])
        o = np.lexsort((point, idx))
        point, ts, value, good = point[o], ts[o], value[o], good[o]
    return point, ts, value, good


def fraction_beyond(value, good):
    v = value[good & np.isfinite(value)]
    return float(np.mean((v > 2.0) | (v < -2.0)))


@pytest.mark.parametrize("order", ["point-major", "time-major"])
@pytest.mark.parametrize("seed, messy", [(1, False), (2, True), (3, True), (4, False)])
def test_excursion_walk_equals_reference(seed, messy, order):
    n_points = 3
    rules = site_rules(n_points)
    arrs = layout(walk(seed, n_points, 1500, messy=messy), order)
    assert fraction_beyond(arrs[2], arrs[3]) > 0.5  # the regime this file is about
    expected = reference_feed(ref_rules(rules), *arrs)
    assert len(expected) > 30  # the walk crosses its limits, so every path is exercised
    assert as_list(Engine(rules).feed(*arrs)) == expected


@pytest.mark.parametrize("seed", [5, 6])
def test_excursion_walk_split_and_saved_mid_excursion(seed):
    """Random splits with a state save (through JSON) between them give the same result."""
    n_points = 2
    rules = site_rules(n_points)
    arrs = layout(walk(seed, n_points, 1200, messy=True), "time-major")
    expected = reference_feed(ref_rules(rules), *arrs)
    rng = np.random.default_rng(seed)
    cuts = sorted(rng.integers(0, len(arrs[0]), 6).tolist())
    keys = [f"P{r.point}:{i}" for i, r in enumerate(rules)]
    eng = Engine(rules, keys=keys)
    got = []
    for a, b in zip([0] + cuts, cuts + [len(arrs[0])]):
        tr = eng.feed(*(x[a:b] for x in arrs))
        got += [(r, s + a, e, o) for r, s, e, o in as_list(tr)]
        saved = json.loads(json.dumps(eng.state_dict()))
        eng = Engine(rules, keys=keys)
        eng.load_state(saved)
    assert got == expected


def test_delay_deadline_at_large_times_is_exact():
    """The fast path stops a delay's wait just before t0 + delay; the raise and the clear
    still happen at the first sample with t - t0 >= delay exactly, at times where float
    rounding matters (t near 1.7e9 with a fractional delay)."""
    t0 = 1.7e9 + 0.1
    for delay in (0.3, 2.5, 1.0 / 3.0, 10.0):
        r = Rule(0, "high", 5.0, on_delay_s=delay, off_delay_s=delay)
        # samples straddling t0 + delay by a few ulps, then well after
        ulp = math.ulp(t0 + delay)
        ts = [t0, t0 + delay - 2 * ulp, t0 + delay - ulp, t0 + delay, t0 + delay + ulp]
        ts += [ts[-1] + 1.0, ts[-1] + 1.0 + delay - ulp, ts[-1] + 1.0 + delay,
               ts[-1] + 1.0 + delay + ulp, ts[-1] + 2.0 + delay]
        vals = [6.0] * 5 + [4.0] * 5
        arrs = (np.zeros(len(ts), np.int64), np.array(ts), np.array(vals), np.ones(len(ts), bool))
        assert as_list(Engine([r]).feed(*arrs)) == reference_feed(ref_rules([r]), *arrs)


def test_one_sample_at_a_time_through_an_excursion():
    """The live service feeds one sample per point per cycle."""
    rules = site_rules(2)
    arrs = layout(walk(7, 2, 400, messy=True), "time-major")
    expected = reference_feed(ref_rules(rules), *arrs)
    eng = Engine(rules)
    got = []
    for i in range(len(arrs[0])):
        got += [(r, i, e, o) for r, _, e, o in as_list(eng.feed(*(x[i:i + 1] for x in arrs)))]
    assert got == expected


def test_gap_during_a_delay_restarts_the_run():
    """A gap while a delay is being waited out restarts the run even though the sample after
    the gap would otherwise change nothing (the fast path must not skip it)."""
    ts = np.array([0.0] + list(range(4, 16)), dtype=np.float64)  # gap 0 -> 4
    one = np.ones(len(ts), bool)
    zero = np.zeros(len(ts), np.int64)
    raise_rule = Rule(0, "high", 5.0, on_delay_s=10.0, max_gap_s=2.0)
    arrs = (zero, ts, np.full(len(ts), 6.0), one)
    got = as_list(Engine([raise_rule]).feed(*arrs))
    assert got == reference_feed(ref_rules([raise_rule]), *arrs) == [(0, 11, 1, 4.0)]
    ts = np.array([0.0, 1.0] + list(range(5, 17)), dtype=np.float64)  # gap 1 -> 5
    clear_rule = Rule(0, "high", 5.0, off_delay_s=10.0, max_gap_s=3.5)
    vals = np.array([6.0] + [4.0] * (len(ts) - 1))
    arrs = (np.zeros(len(ts), np.int64), ts, vals, np.ones(len(ts), bool))
    got = as_list(Engine([clear_rule]).feed(*arrs))
    assert got == reference_feed(ref_rules([clear_rule]), *arrs) == [(0, 0, 1, 0.0),
                                                                      (0, 12, -1, 5.0)]


def old_format_state(rules, keys, refs):
    """The state as engines before the beyond-only ring saved it, built from the reference's
    own state: the whole M-of-N window as [[ts, beyond], ...], oldest first, no "beyond"."""
    return {key: {"active": ref.active, "last_ts": ref.last_ts, "run_t0": ref.run_t0,
                  "clear_c0": ref.clear_c0, "window": [[t, int(b)] for t, b in ref.window],
                  "params": rule.signature()}
            for key, rule, ref in zip(keys, rules, refs)}


@pytest.mark.parametrize("seed", [8, 9, 10])
def test_state_saved_by_the_previous_engine_loads(seed):
    """Existing saved state (whole windows) loads after the upgrade and gives the reference's
    transitions from there on, at cuts inside windows that hold beyond samples."""
    rules = site_rules(2)
    keys = [f"P{r.point}:{i}" for i, r in enumerate(rules)]
    arrs = layout(walk(seed, 2, 800, messy=True), "time-major")
    n = len(arrs[0])
    full = reference_feed(ref_rules(rules), *arrs)
    checked = 0
    for cut in np.random.default_rng(seed).integers(1, n, 12).tolist():
        refs = ref_rules(rules)
        reference_feed(refs, *(x[:cut] for x in arrs))
        checked += any(any(b for _, b in r.window) for r in refs)
        eng = Engine(rules, keys=keys)
        eng.load_state(json.loads(json.dumps(old_format_state(rules, keys, refs))))
        got = [(r, s + cut, e, o) for r, s, e, o in as_list(eng.feed(*(x[cut:] for x in arrs)))]
        assert got == [x for x in full if x[1] >= cut]
    assert checked  # some cut fell inside a window with beyond samples


def test_more_transitions_than_the_first_output_arrays_hold():
    """A flood raises and clears on most samples: the kernel stops before the sample that
    would overflow its output arrays and the wrapper resumes there with larger ones."""
    n = 3000
    rules = [Rule(0, "high", 5.0), Rule(0, "high", 4.0), Rule(0, "low", 1.0),
             Rule(0, "high", 5.0, m_of_n=(1, 2))]
    value = np.where(np.arange(n) % 2 == 0, 6.0, 0.0)
    arrs = (np.zeros(n, np.int64), 1.7e9 + np.arange(n, dtype=np.float64), value,
            np.ones(n, bool))
    expected = reference_feed(ref_rules(rules), *arrs)
    assert len(expected) > 10 * 256  # several times the first output arrays' length
    assert as_list(Engine(rules).feed(*arrs)) == expected
