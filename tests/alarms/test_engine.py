"""The engine equals tests/reference.py exactly, and each "Limit rules" sentence holds."""

from __future__ import annotations

import copy
import json
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alarms.engine import TRANSITION_DTYPE, Engine, Rule
from tests.reference import ReferenceRule, reference_feed

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def ref_rules(rules):
    """Fresh reference twins of engine rules."""
    return [ReferenceRule(r.point, r.kind, r.limit, r.deadband, r.on_delay_s, r.off_delay_s,
                          r.m_of_n, r.max_gap_s) for r in rules]


def as_list(tr):
    return [(int(x["rule"]), int(x["sample"]), int(x["event"]), float(x["onset"])) for x in tr]


def arrays(samples):
    point = np.array([s[0] for s in samples], dtype=np.int64)
    ts = np.array([s[1] for s in samples], dtype=np.float64)
    value = np.array([s[2] for s in samples], dtype=np.float64)
    good = np.array([s[3] for s in samples], dtype=bool)
    return point, ts, value, good


def sl(arrs, a, b):
    return tuple(x[a:b] for x in arrs)


@st.composite
def rule_st(draw, n_points):
    on = draw(st.sampled_from([0.0, 0.0, 1.0, 2.5, 5.0]))
    mn = None
    if on == 0.0 and draw(st.booleans()):
        n = draw(st.integers(1, 4))
        mn = (draw(st.integers(1, n)), n)
    return Rule(
        point=draw(st.integers(0, n_points - 1)),
        kind=draw(st.sampled_from(["high", "low"])),
        limit=float(draw(st.integers(2, 8))),
        deadband=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])),
        on_delay_s=on,
        off_delay_s=draw(st.sampled_from([0.0, 0.0, 1.0, 3.0])),
        m_of_n=mn,
        max_gap_s=draw(st.sampled_from([math.inf, math.inf, 2.0, 4.0])),
    )


VALUES = st.one_of(st.integers(0, 10).map(float), st.sampled_from([math.nan, math.inf, -math.inf]))
STEPS = st.sampled_from([0.0, 0.5, 1.0, 1.0, 1.0, 2.0, 3.0, 7.0, -1.5])  # 0: duplicate, <0: late


@st.composite
def case(draw):
    n_points = draw(st.integers(1, 3))
    rules = draw(st.lists(rule_st(n_points), min_size=1, max_size=6))
    n = draw(st.integers(0, 60))
    clocks = [1000.0] * n_points
    samples = []
    for _ in range(n):
        p = draw(st.integers(0, n_points - 1))
        clocks[p] += draw(STEPS)
        good = draw(st.integers(0, 9)) > 0
        samples.append((p, clocks[p], draw(VALUES), good))
    return rules, samples


@given(case(), st.data())
@SETTINGS
def test_engine_equals_reference_on_any_split(c, data):
    rules, samples = c
    arrs = arrays(samples)
    expected = reference_feed(ref_rules(rules), *arrs)
    assert as_list(Engine(rules).feed(*arrs)) == expected
    n = len(samples)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
    eng = Engine(rules)
    got = []
    for a, b in zip([0] + cuts, cuts + [n]):
        tr = eng.feed(*sl(arrs, a, b))
        got += [(r, s + a, e, o) for r, s, e, o in as_list(tr)]
    assert got == expected


@given(case(), st.data())
@SETTINGS
def test_state_round_trip_by_key_with_added_and_changed_rules(c, data):
    rules, samples = c
    arrs = arrays(samples)
    n = len(samples)
    cut = data.draw(st.integers(0, n))
    keys = [f"P{r.point}:rule{i}" for i, r in enumerate(rules)]
    first = Engine(rules, keys=keys)
    first.feed(*sl(arrs, 0, cut))
    saved = json.loads(json.dumps(first.state_dict()))  # must survive JSON (the store)
    refs = ref_rules(rules)
    for r in refs:
        reference_feed([r], *sl(arrs, 0, cut))
    # second engine: one rule's parameters may change, a new rule is prepended
    rules2, refs2 = list(rules), [copy.deepcopy(r) for r in refs]
    changed = data.draw(st.integers(-1, len(rules) - 1))
    if changed >= 0:
        old = rules[changed]
        rules2[changed] = Rule(old.point, old.kind, old.limit + 0.5, old.deadband,
                               old.on_delay_s, old.off_delay_s, old.m_of_n, old.max_gap_s)
        fresh = ref_rules([rules2[changed]])[0]
        fresh.active, fresh.last_ts = refs[changed].active, refs[changed].last_ts
        refs2[changed] = fresh
    new_rule = data.draw(rule_st(3))
    new_ref = ref_rules([new_rule])[0]
    # duplicates, late samples and gaps are per point: a new rule knows its point's last
    lasts = [r.last_ts for r in refs if r.point == new_rule.point and r.last_ts is not None]
    new_ref.last_ts = max(lasts) if lasts else None
    second = Engine([new_rule] + rules2, keys=["new:rule"] + keys)
    second.load_state(saved)
    assert list(second.active[1:]) == [r.active for r in refs]
    expected = reference_feed([new_ref] + refs2, *sl(arrs, cut, n))
    assert as_list(second.feed(*sl(arrs, cut, n))) == expected


# -- one hand-written case per sentence of docs/ARCHITECTURE.md "Limit rules" ---------------

def run(rule, ts, values, good=None):
    ts = np.asarray(ts, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    g = np.ones(len(ts), bool) if good is None else np.asarray(good, bool)
    tr = Engine([rule]).feed(np.zeros(len(ts), np.int64), ts, v, g)
    assert as_list(tr) == reference_feed(ref_rules([rule]), np.zeros(len(ts)), ts, v, g)
    return [(int(x["sample"]), int(x["event"]), float(x["onset"])) for x in tr]


def test_value_at_limit_is_compliant_high_and_low():
    assert run(Rule(0, "high", 5.0), [0, 1, 2], [5.0, 5.0, 5.1]) == [(2, 1, 2.0)]
    assert run(Rule(0, "low", 5.0), [0, 1, 2], [5.0, 5.0, 4.9]) == [(2, 1, 2.0)]


def test_on_delay_raises_at_first_sample_past_delay_with_onset_t0():
    assert run(Rule(0, "high", 5.0, on_delay_s=2.0), [0, 1, 2, 3], [6, 6, 6, 6]) == [(2, 1, 0.0)]


def test_a_good_compliant_sample_ends_the_run():
    r = Rule(0, "high", 5.0, on_delay_s=2.0)
    assert run(r, [0, 1, 2, 3, 4], [6, 6, 4, 6, 6]) == []


def test_bad_nonfinite_duplicate_and_late_samples_are_skipped():
    r = Rule(0, "high", 5.0, on_delay_s=2.0)
    # bad compliant, NaN, duplicate compliant, late compliant: none breaks the run
    ts = [0, 1, 1.5, 1.5, 1.5, 0.5, 2]
    vals = [6, 4, math.nan, 6, 4, 4, 6]
    good = [1, 0, 1, 1, 1, 1, 1]
    assert run(r, ts, vals, good) == [(6, 1, 0.0)]


def test_deadband_and_off_delay_clear_with_onset_c0():
    r = Rule(0, "high", 5.0, deadband=1.0, off_delay_s=2.0)
    out = run(r, [0, 1, 2, 3, 4, 5, 6], [6, 4.5, 4, 4.5, 4, 4, 4])
    # 4.5 is not back (needs <= 4), so it breaks the back run started at t=2
    assert out == [(0, 1, 0.0), (6, -1, 4.0)]


def test_low_limit_deadband():
    r = Rule(0, "low", 5.0, deadband=1.0)
    assert run(r, [0, 1, 2], [4, 5.5, 6]) == [(0, 1, 0.0), (2, -1, 2.0)]


def test_gap_breaks_runs_but_never_clears():
    r = Rule(0, "high", 5.0, on_delay_s=3.0, off_delay_s=2.0, max_gap_s=5.0)
    # run starts at 0, gap of 10 s restarts it at 10, raises at 13
    assert run(r, [0, 1, 2, 12, 13, 15], [6, 6, 6, 6, 6, 6]) == [(5, 1, 12.0)]
    # active stays active through a gap; the back run restarts after it
    out = run(r, [0, 3, 4, 20, 21, 22], [6, 6, 4, 4, 4, 4])
    assert out == [(1, 1, 0.0), (5, -1, 20.0)]


def test_m_of_n_onset_is_earliest_beyond_in_window():
    r = Rule(0, "high", 5.0, m_of_n=(2, 3))
    assert run(r, [0, 1, 2, 3], [6, 4, 4, 6]) == []
    assert run(r, [0, 1, 2], [6, 4, 6]) == [(2, 1, 0.0)]


def test_m_of_n_window_emptied_by_gap_and_counting_restarts_on_clear():
    r = Rule(0, "high", 5.0, m_of_n=(2, 3), max_gap_s=5.0)
    assert run(r, [0, 10, 11], [6, 6, 4]) == []
    out = run(Rule(0, "high", 5.0, m_of_n=(2, 3)), [0, 1, 2, 3, 4], [6, 6, 4, 6, 6])
    assert out == [(1, 1, 0.0), (2, -1, 2.0), (4, 1, 3.0)]


def test_points_interleave_and_output_is_by_sample_then_rule():
    rules = [Rule(1, "high", 5.0), Rule(0, "high", 5.0), Rule(1, "high", 3.0)]
    eng = Engine(rules)
    tr = eng.feed(np.array([0, 1, 0]), np.array([0.0, 0.0, 1.0]),
                  np.array([6.0, 6.0, 1.0]), np.ones(3, bool))
    assert tr.dtype == TRANSITION_DTYPE
    assert as_list(tr) == [(1, 0, 1, 0.0), (0, 1, 1, 0.0), (2, 1, 1, 0.0), (1, 2, -1, 1.0)]
    assert list(eng.active) == [True, False, True]


def test_wrong_input_says_how_to_fix():
    eng = Engine([Rule(0, "high", 1.0)])
    ok = (np.zeros(2, np.int64), np.zeros(2), np.zeros(2), np.ones(2, bool))
    with pytest.raises(TypeError, match="np.asarray\\(ts, dtype=np.float64\\)"):
        eng.feed(ok[0], ok[1].astype(np.float32), ok[2], ok[3])
    with pytest.raises(TypeError, match="good.*dtype=bool"):
        eng.feed(ok[0], ok[1], ok[2], ok[3].astype(np.int8))
    with pytest.raises(TypeError, match="numpy array"):
        eng.feed([0, 0], ok[1], ok[2], ok[3])
    with pytest.raises(ValueError, match="one length"):
        eng.feed(ok[0][:1], ok[1], ok[2], ok[3])
    with pytest.raises(ValueError, match="1-D"):
        eng.feed(ok[0].reshape(1, 2), ok[1].reshape(1, 2), ok[2], ok[3])


def test_rule_validation():
    with pytest.raises(ValueError, match="m_of_n"):
        Rule(0, "high", 1.0, on_delay_s=1.0, m_of_n=(1, 2))
    with pytest.raises(ValueError, match="1 <= M <= N"):
        Rule(0, "high", 1.0, m_of_n=(3, 2))
    with pytest.raises(ValueError, match="kind"):
        Rule(0, "above", 1.0)
    with pytest.raises(ValueError, match="deadband"):
        Rule(0, "high", 1.0, deadband=-1.0)
    with pytest.raises(ValueError, match="unique"):
        Engine([Rule(0, "high", 1.0)] * 2, keys=["a", "a"])


def test_warm_up_compiles_every_kernel_the_service_runs():
    """After warm-up no kernel of a cycle is left to compile (docs/ARCHITECTURE.md "Data flow": the
    first cycle never waits for numba); a fresh interpreter, so no earlier test did it."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import json\n"
        "from alarms import kernels\n"
        "from alarms.engine import warm_up\n"
        "names = ['_scan_limits', '_stale_scan', '_stale_check', '_cascade', '_exposure',"
        " '_rate_of_change']\n"
        "before = {n: len(getattr(kernels, n).signatures) for n in names}\n"
        "warm_up()\n"
        "after = {n: len(getattr(kernels, n).signatures) for n in names}\n"
        "print(json.dumps([before, after]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    # compilation is what is checked, so the subprocess has the JIT even when this suite runs
    # under NUMBA_DISABLE_JIT=1 (make test's second pass)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=240, cwd=root, env=env)
    assert run.returncode == 0, run.stderr
    before, after = json.loads(run.stdout.splitlines()[-1])
    assert set(before.values()) == {0}, before
    assert all(after.values()), f"not compiled by warm_up(): {after}"
    # both point-index and both value dtypes the wrappers pass
    assert after["_scan_limits"] >= 4, after


# -- backtest: CSV in, docs/ARCHITECTURE.md's JSON objects out -------------------------------------

def test_backtest_orders_by_time_row_then_limit_order(tmp_path):
    import io

    from alarms.backtest import read_samples_csv, run_backtest

    csv_text = ("ts,point,value,quality\n"
                "1714550400,A.pc,5,good\n"
                "2024-05-01T08:00:01+08:00,A.pc,50,\n"  # = 1714521601: earlier, late row
                "1714550401,B.dp,1\n"
                "1714550401,A.pc,50,good\n"
                "1714550402,A.pc,,bad\n"
                "1714550403,A.pc,1,good\n")
    arrs = read_samples_csv(io.StringIO(csv_text), ["A.pc", "B.dp"])
    assert list(arrs.row) == [2, 3, 4, 5, 6, 7]
    assert list(arrs.good) == [True, True, True, True, False, True]
    rules = [("A.pc", "alert_high", Rule(9, "high", 10.0)),
             ("A.pc", "action_high", Rule(9, "high", 20.0)),
             ("B.dp", "action_low", Rule(9, "low", 2.0))]
    out = run_backtest(rules, arrs)
    # row 3 is earlier than row 2 (out of order): stored as late, never evaluated
    assert [(o["ts"], o["point"], o["limit"], o["event"]) for o in out] == [
        ("2024-05-01T08:00:01.000Z", "B.dp", "action_low", "raise"),  # row 4
        ("2024-05-01T08:00:01.000Z", "A.pc", "action_high", "raise"),  # row 5
        ("2024-05-01T08:00:01.000Z", "A.pc", "alert_high", "raise"),
        ("2024-05-01T08:00:03.000Z", "A.pc", "action_high", "clear"),
        ("2024-05-01T08:00:03.000Z", "A.pc", "alert_high", "clear"),
    ]
    assert out[1]["value"] == 50.0 and out[1]["onset"] == "2024-05-01T08:00:01.000Z"
    assert set(out[0]) == {"ts", "point", "limit", "event", "value", "onset"}


@pytest.mark.parametrize("text, words", [
    ("x,A.pc,1\n", "line 1: ts 'x' is neither"),
    ("1,A.pc,1\n2,Z.zz,1\n", "line 2: point 'Z.zz' is not a configured"),
    ("1,A.pc,abc\n", "value 'abc' is not a number"),
    ("1,A.pc\n", "expected ts,point,value"),
    ("2024-05-01T08:00:00,A.pc,1\n", "no UTC offset"),
    ("1,A.pc,1,fine\n", "quality 'fine'"),
])
def test_backtest_csv_errors_name_the_line(text, words):
    import io

    from alarms.backtest import read_samples_csv

    with pytest.raises(ValueError, match=words):
        read_samples_csv(io.StringIO(text), ["A.pc"])
