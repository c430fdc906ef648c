"""Gas detection policy: set points, bits vs set points, STEL/TWA, critical flags."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from types import SimpleNamespace

import pytest

from facility.config import load_config
from facility.domain.model import Quality, Sample
from hazmat.gas import GasMonitor, detector_policies, gas_points, gas_rules

CFG = load_config("config.toml")


def plain_exposure(samples, window_s, max_hold_s):
    """(1/W)·∫c over [t-W, t], each good value held to the next good one for at most max_hold_s,
    negatives as 0, uncovered time as 0; coverage = held time / W. Per good sample."""
    held, out = [], []
    for t, c, good in samples:
        if not good or not math.isfinite(c) or (held and t <= held[-1][0]):
            continue
        held.append((t, max(c, 0.0)))
        area = length = 0.0
        for (t0, c0), (t1, _) in zip(held, held[1:]):
            a, b = max(t0, t - window_s), min(t1, t0 + max_hold_s, t)
            if b > a:
                area += c0 * (b - a)
                length += b - a
        out.append((t, area / window_s, length / window_s >= 0.9))
    return out


def irregular_series(seed: int, n: int = 1500):
    rnd = random.Random(seed)
    t, out = 1_700_000_000.0, []
    for _ in range(n):
        t += rnd.choice([0.5, 1.0, 1.0, 1.7, 2.0]) if rnd.random() > 0.01 else rnd.uniform(30, 400)
        c = rnd.choice([0.0, 0.1, 0.4, 1.3, -0.2, float("nan")]) if rnd.random() < 0.3 else rnd.uniform(0, 2)
        out.append((round(t, 3), c, rnd.random() > 0.05))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stel_and_twa_equal_plain_python_on_irregular_samples_with_gaps(seed):
    pol = next(p for p in detector_policies(CFG)[0] if p.device == "MEC-GD-05")
    series = irregular_series(seed)
    samples = [Sample("MEC-GD-05.conc", int(round(t * 1000)), c,
                      Quality.GOOD if g else Quality.BAD) for t, c, g in series]
    mon = GasMonitor([pol])
    cut = len(samples) // 3  # two batches: state carries over
    derived = mon.feed(samples[:cut]) + mon.feed(samples[cut:])
    for pid, window in ((pol.stel_point, 900.0), (pol.twa_point, 28_800.0)):
        got = [(s.ts_ms / 1000.0, s.value, s.quality == Quality.GOOD) for s in derived if s.point == pid]
        want = plain_exposure([(s.ts_ms / 1000.0, s.value if s.value is not None else math.nan,
                                s.quality == Quality.GOOD) for s in samples], window, pol.max_hold_s)
        assert len(got) == len(want) > 1000
        for (tg, vg, qg), (tw, vw, qw) in zip(got, want):
            assert tg == pytest.approx(tw) and vg == pytest.approx(vw, abs=1e-6) and qg == qw
    assert any(not s.quality == Quality.GOOD for s in derived)  # gaps make bad coverage


def test_setpoints_room_vs_cabinet_and_override():
    pols = {p.device: p for p in detector_policies(CFG)[0]}
    assert (pols["MEC-GD-05"].low, pols["MEC-GD-05"].high) == (0.3, 1.0)  # room: TLV, STEL
    assert (pols["MEC-GD-02"].low, pols["MEC-GD-02"].high) == (0.3, 1.0)  # cabinet: same, not IDLH
    dev = replace(CFG.device("MEC-GD-05"), setpoints={"high": 0.8})
    cfg = replace(CFG, devices=tuple(dev if d.id == dev.id else d for d in CFG.devices))
    p = next(p for p in detector_policies(cfg)[0] if p.device == "MEC-GD-05")
    assert p.high == 0.8 and "override" in p.source


def test_percent_lel_is_converted_to_ppm():
    dev = replace(CFG.device("MEC-GD-05"), id="H2-1", gas="hydrogen")
    cfg = replace(CFG, devices=(dev,))
    (p,) = detector_policies(cfg)[0]
    assert (p.low, p.high) == (4000.0, 8000.0)  # 10 % / 20 % of LEL 4 %vol


def test_unknown_gas_is_a_problem_not_a_crash():
    dev = replace(CFG.device("MEC-GD-05"), gas="xenon")
    pols, problems = detector_policies(replace(CFG, devices=(dev,)))
    assert pols == [] and "xenon" in problems[0]


def test_without_bits_the_computed_setpoints_are_the_limits():
    pts = [SimpleNamespace(id="MEC-GD-05.conc", device="MEC-GD-05", quantity="gas_conc")]
    out, _ = gas_points(CFG, pts)
    conc = {p.id: p for p in out}["MEC-GD-05.conc"]
    assert conc.replaces and conc.critical
    assert {k: v.limit for k, v in conc.limits.items()} == {"alert_high": 0.3, "action_high": 1.0}
    rules = [r for r in gas_rules(CFG, pts) if r["point"] == "MEC-GD-05.conc"]
    assert {(r["limit"], r["kind"], r["critical"]) for r in rules} == {
        ("alert_high", "gas_low", True), ("action_high", "gas_high", True)}


def test_critical_flags():
    rules = gas_rules(CFG)
    by = {(r["point"], r["kind"]): r for r in rules}
    assert by[("MEC-GD-01", "comm")]["critical"]  # arsine: toxic-gas detector
    assert not by[("MEC-GD-03", "comm")]["critical"]  # silane is 2.1, not a toxic gas
    assert by[("MEC-GD-03.alarm_high", "gas_high")]["critical"]  # but pyrophoric
    assert by[("MEC-GD-01.fault", "fault")]["critical"]
    assert all(by[(f"MEC-IO-01.exhaust_gc0{i}", "exhaust_fail")]["critical"] for i in (1, 2, 3))
    assert not by[("MEC-GD-01.setpoint_mismatch", "instrument")]["critical"]
    assert by[("MEC-GD-05.stel_15min", "stel")]["value"] == 1.0
    assert ("MEC-GD-01.stel_15min", "stel") not in by  # cabinet: no exposure limit


def _cycle(ts_ms, conc, low, high, det="MEC-GD-05"):
    return [Sample(f"{det}.conc", ts_ms, conc), Sample(f"{det}.alarm_low", ts_ms, float(low)),
            Sample(f"{det}.alarm_high", ts_ms, float(high))]


def mismatch(mon, *cycles):
    out = []
    for i, c in enumerate(cycles):
        out += [s.value for s in mon.feed(_cycle(i * 1000, *c)) if s.point.endswith("mismatch")]
    return out


def test_bits_vs_setpoints_disagreement():
    pol = next(p for p in detector_policies(CFG)[0] if p.device == "MEC-GD-05")  # 0.3 / 1.0
    # agreeing: quiet, low alarm, both, latched bits after the gas went away
    assert mismatch(GasMonitor([pol]), (0.0, 0, 0), (0.5, 1, 0), (1.2, 1, 1), (0.0, 1, 1)) == [0, 0, 0, 0]
    # missed alarm: reading over the high set point (+10 %) with the high bit off
    assert mismatch(GasMonitor([pol]), (1.2, 1, 0)) == [1.0]
    # inside the tolerance band: not an instrument alarm
    assert mismatch(GasMonitor([pol]), (1.05, 1, 0), (0.28, 1, 0)) == [0.0, 0.0]
    # spurious: bit on without any reading near the set point
    assert mismatch(GasMonitor([pol]), (0.0, 1, 0)) == [1.0]
