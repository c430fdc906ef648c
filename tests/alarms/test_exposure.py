"""STEL/TWA, pressure cascade, stale and rate of change against plain-Python twins."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alarms.cascade import Cascade, cascade
from alarms.exposure import MIN_COVERAGE, ExposureTracker, stel_twa
from alarms.stale import RateOfChange, StaleTracker
from tests.reference import cascade_ref, exposure_ref

SETTINGS = settings(max_examples=150, deadline=None)
STEPS = st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0, 3.0, 10.0, 40.0, -2.0])


@st.composite
def detector(draw):
    n = draw(st.integers(0, 80))
    t, ts, vals, good = 0.0, [], [], []
    for _ in range(n):
        t += draw(STEPS)
        ts.append(t)
        vals.append(draw(st.one_of(st.integers(-3, 20).map(float), st.just(math.nan))))
        good.append(draw(st.integers(0, 6)) > 0)
    return np.array(ts), np.array(vals), np.array(good, dtype=bool)


@given(detector(), st.sampled_from([20.0, 60.0, 900.0]), st.sampled_from([0.0, 1.0, 2.5]),
       st.data())
@SETTINGS
def test_exposure_equals_plain_integral_on_any_split(series, window, hold, data):
    ts, v, g = series
    expected = exposure_ref(ts, v, g, window, hold)
    tracker = ExposureTracker(window, hold)
    n = len(ts)
    cut = data.draw(st.integers(0, n))
    m1, g1 = tracker.feed(ts[:cut], v[:cut], g[:cut])
    m2, g2 = tracker.feed(ts[cut:], v[cut:], g[cut:])
    mean, ok = np.concatenate((m1, m2)), np.concatenate((g1, g2))
    evaluated = [i for i, _, _ in expected]
    assert list(np.flatnonzero(~np.isnan(mean))) == evaluated
    for i, want, cover in expected:
        assert mean[i] == pytest.approx(want, rel=1e-9, abs=1e-9)
        assert ok[i] == (cover >= MIN_COVERAGE)
    assert not ok[np.isnan(mean)].any()


def test_stel_hand_case_hold_negative_and_coverage():
    # 1 Hz for 900 s at 2 ppm: full coverage at t=900, mean 2 (the newest value has not held)
    ts = np.arange(0.0, 901.0)
    v = np.full(ts.shape, 2.0)
    v[:100] = -5.0  # negative readings count as 0
    (stel, stel_ok), (twa, twa_ok) = stel_twa(ts, v, np.ones(ts.shape, bool), max_hold_s=2.0)
    assert stel[900] == pytest.approx(2.0 * 800 / 900)
    assert stel_ok[900] and not stel_ok[800]  # 800 s of 900 s < 90 %
    assert twa[900] == pytest.approx(2.0 * 800 / 28_800) and not twa_ok[900]


def test_hold_is_limited_so_a_gap_lowers_coverage_to_bad():
    ts = np.array([0.0, 100.0, 200.0])
    (mean, ok) = ExposureTracker(200.0, 10.0).feed(ts, np.array([5.0, 5.0, 5.0]),
                                                    np.ones(3, bool))
    assert mean[2] == pytest.approx(5.0 * 20 / 200) and not ok[2]


def test_exposure_rejects_wrong_dtype():
    with pytest.raises(TypeError, match="dtype=bool"):
        ExposureTracker(900.0, 2.0).feed(np.zeros(2), np.zeros(2), np.zeros(2))


@st.composite
def two_inputs(draw):
    def one():
        n = draw(st.integers(0, 30))
        ts = sorted(draw(st.lists(st.integers(0, 40).map(float), min_size=n, max_size=n)))
        return [(t, draw(st.one_of(st.integers(-5, 30).map(float), st.just(math.nan))),
                 draw(st.sampled_from([0, 0, 0, 1, 2, 3]))) for t in ts]
    return one(), one()


def _arrays(series):
    return (np.array([x[0] for x in series], dtype=np.float64),
            np.array([x[1] for x in series], dtype=np.float64),
            np.array([x[2] for x in series], dtype=np.int8))


def _rows(t, v, q):
    return [(float(a), None if math.isnan(b) else float(b), int(c)) for a, b, c in zip(t, v, q)]


@given(two_inputs(), st.sampled_from([0.0, 1.0, 2.0, 5.0]), st.data())
@SETTINGS
def test_cascade_equals_plain_merge_on_any_split(inputs, skew, data):
    a, b = inputs
    expected = cascade_ref(a, b, skew)
    assert _rows(*cascade(*_arrays(a), *_arrays(b), max_skew_s=skew)) == expected
    # split at a time both inputs agree on, so each batch holds whole timestamps
    cut_t = data.draw(st.integers(0, 41))
    c = Cascade(skew)
    got = []
    for part in (lambda x: x[0] < cut_t, lambda x: x[0] >= cut_t):
        got += _rows(*c.feed(*_arrays([x for x in a if part(x)]),
                             *_arrays([x for x in b if part(x)])))
    assert got == expected


def test_cascade_hand_case():
    # a = room vs ambient, b = corridor vs ambient; derived = room - corridor
    t, v, q = cascade(np.array([0.0, 2.0, 10.0]), np.array([30.0, 31.0, 32.0]),
                      np.zeros(3, np.int8), np.array([1.0]), np.array([12.0]),
                      np.zeros(1, np.int8), max_skew_s=2.0)
    assert list(t) == [0.0, 1.0, 2.0, 10.0]
    assert list(q) == [3, 0, 0, 3]  # b not yet seen; b too old at 10 s -> stale
    assert v[1] == 18.0 and v[2] == 19.0 and math.isnan(v[3])


def test_cascade_rejects_unsorted():
    z = np.zeros(2, np.int8)
    with pytest.raises(ValueError, match="time order"):
        cascade(np.array([1.0, 0.0]), np.zeros(2), z, np.zeros(2), np.zeros(2), z, 1.0)


def test_stale_raise_at_last_good_plus_stale_after_and_clear():
    tr = StaleTracker(np.array([3.0, 3.0]))
    p = np.array([0, 1, 0, 0, 0])
    ts = np.array([0.0, 0.0, 1.0, 5.0, 6.0])
    good = np.array([True, True, True, False, True])
    out = tr.feed(p, ts, np.ones(5), good)
    # point 1 (last good at 0, stale since 3) is found at the next input time, 5 s
    assert [tuple(x) for x in out.tolist()] == [(0, 3, 1, 4.0), (1, 3, 1, 3.0), (0, 4, -1, 6.0)]
    assert tr.check(8.5).shape == (0,)  # point 1 already raised; point 0 not until 9
    assert [tuple(x) for x in tr.check(9.0).tolist()] == [(0, -1, 1, 9.0)]
    assert tr.check(11.0).shape == (0,)  # each raised once


def test_rate_of_change_skips_bad_duplicate_and_late():
    r = RateOfChange(1)
    p = np.zeros(6, np.int64)
    out = r.feed(p, np.array([0.0, 2.0, 2.0, 1.0, 3.0, 5.0]),
                 np.array([1.0, 5.0, 9.0, 9.0, 7.0, 0.0]),
                 np.array([True, True, True, True, True, False]))
    assert math.isnan(out[0]) and out[1] == 2.0 and math.isnan(out[2])
    assert math.isnan(out[3]) and out[4] == 2.0 and math.isnan(out[5])
