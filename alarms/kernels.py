"""The numba kernels: the only module in the project that defines ``@njit`` functions.

Every kernel is private, takes and returns plain arrays and uses no mutable globals
(STYLE.md "Kernel / wrapper split"; the column numbers below are integer constants that
numba freezes at compile time); the public wrappers in ``alarms.engine``, ``alarms.exposure``
and ``alarms.cascade`` validate dtypes and shapes before calling them. Each kernel has a
slow pure-Python twin in ``tests/reference.py`` (or the tests) that it must equal.

Kernels are compiled with ``cache=True`` so the service loads them from disk instead of
compiling while it polls (docs/ARCHITECTURE.md "Data flow"); the cache folder defaults to
``~/.cache/facility-numba`` because the package folder may be read-only when installed.
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "facility-numba")
)

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

# Column layout of the packed per-rule arrays, shared with alarms.engine. Packing the
# parameters and the state into a few 2-D arrays keeps the kernel's argument list short,
# so the per-call dispatch cost of a 2 000-point live cycle stays in microseconds.
# Limits are stored signed (s = +1 high, -1 low) so one compare serves both sides:
# beyond = s*v > s*L and back = s*v <= s*L - D; negation is exact, so this equals
# v < L and v >= L + D for a low limit bit for bit.
P_SIGN, P_SLIMIT, P_SBACK, P_ON, P_OFF, P_M, P_GAP = range(7)
N_PARAMS = 7
S_ACTIVE, S_RUN_T0, S_CLR_C0 = range(3)
N_STATE = 3
# The M-of-N window of a rule keeps only its last M beyond samples (time and the point's
# sample number), in a ring buffer: "at least M of the last N good samples are beyond" is
# "the M-th most recent beyond sample is one of the last N", and a sample that is not beyond
# changes nothing but the point's sample count. Integer state (ring head, stored entries)
# and layout (offset into the ring buffers, N, M): int64 so the hot loop never converts.
W_HEAD, W_LEN = range(2)
WP_OFF, WP_N, WP_M = range(3)
# Per point, one 64-byte row (one cache line) holding what the hot loop reads for every
# sample: the "steady set" of the point's rules and the time of its previous evaluated
# sample, and its count of evaluated samples (COUNT, exact as a float up to 2**53). A
# sample with v <= HI, v > LO, -v <= NHI, -v > NLO, t < DUE and t - LAST <= GAP
# changes no state of any rule of the point and raises or clears nothing, so the kernel
# only records its time and counts it (see ``_bounds``); every other sample takes the full
# path.
ST_HI, ST_LO, ST_NHI, ST_NLO, ST_DUE, ST_GAP, ST_LAST, ST_COUNT = range(8)
N_STEADY = 8
# A delay's deadline is moved this much (relative) earlier than t0 + delay, so that
# ``t < DUE`` implies ``t - t0 < delay`` in floating point too: a sample close to the
# deadline takes the full path, which decides with the exact compare.
_DUE_MARGIN = 1e-12


@njit(cache=True)
def _grow(buf, n):
    """Return ``buf`` doubled in length with its first ``n`` entries copied."""
    out = np.empty(max(16, buf.shape[0] * 2), dtype=buf.dtype)
    out[:n] = buf[:n]
    return out


@njit(cache=True, inline="always")
def _bounds(active, t0, c0, m, wlen, slimit, sback, on, off, max_gap):
    """One rule's steady set from its state: (upper, lower) bounds of s*v, due, gap.

    The samples that change nothing for the rule (docs/ARCHITECTURE.md "Limit rules"):
    inactive with no run, or with an M-of-N window: a value not beyond; inactive within a
    beyond run: a beyond value before t0 + on_delay_s; active with no back run: a value not
    back; active within a back run: a back value before c0 + off_delay_s. A rule with a run
    (or beyond entries in its window) also needs no gap (t - last <= max_gap_s); a gap over
    an empty run changes nothing. Each condition is one compare of s*v against a bound, with
    the same strict/non-strict side as the full path.
    Scalars only: a call with array arguments would cost reference counting per call.
    """
    up = np.inf
    low = -np.inf
    due = np.inf
    gap = np.inf
    if active == 0.0:
        if m != 0.0:
            up = slimit
            if wlen != 0:
                gap = max_gap
        elif t0 == t0:
            low = slimit
            due = t0 + on - (abs(t0) + on) * _DUE_MARGIN
            gap = max_gap
        else:
            up = slimit
    else:
        if c0 == c0:
            up = sback
            due = c0 + off - (abs(c0) + off) * _DUE_MARGIN
            gap = max_gap
        else:
            low = sback
    return up, low, due, gap


@njit(cache=True)
def _steady_all(rule_ptr, params, state, wst, pst):
    """Every point's steady set (after a reset or a state load): the intersection of its
    rules' (``_bounds``), a high rule's bounds on v and a low rule's on -v; ``_scan_limits``
    folds them the same way after each full-path sample."""
    for p in range(pst.shape[0]):
        hi = np.inf
        lo = -np.inf
        nhi = np.inf
        nlo = -np.inf
        due = np.inf
        gap = np.inf
        for r in range(rule_ptr[p], rule_ptr[p + 1]):
            up, low, due_r, gap_r = _bounds(
                state[r, S_ACTIVE], state[r, S_RUN_T0], state[r, S_CLR_C0], params[r, P_M],
                wst[r, W_LEN], params[r, P_SLIMIT], params[r, P_SBACK], params[r, P_ON],
                params[r, P_OFF], params[r, P_GAP])
            if params[r, P_SIGN] > 0.0:
                hi = min(hi, up)
                lo = max(lo, low)
            else:
                nhi = min(nhi, up)
                nlo = max(nlo, low)
            due = min(due, due_r)
            gap = min(gap, gap_r)
        pst[p, ST_HI] = hi
        pst[p, ST_LO] = lo
        pst[p, ST_NHI] = nhi
        pst[p, ST_NLO] = nlo
        pst[p, ST_DUE] = due
        pst[p, ST_GAP] = gap


@njit(cache=True)
def _scan_limits(point, ts, value, good, rule_ptr, rule_idx, params, wpar, pst, state,
                 wst, win_ts, win_idx, start, t_rule, t_sample, t_event, t_onset):
    """Evaluate docs/ARCHITECTURE.md "Limit rules" over one batch, updating state in place.

    Rules are stored grouped by point (CSR): the rules of point p are rows
    ``rule_ptr[p]:rule_ptr[p + 1]`` of ``params``/``state``/``wpar``/``wst``, and
    ``rule_idx`` maps a row back to the caller's rule index (ascending within a point),
    so the transitions come out ordered by sample, then rule, without sorting, and the
    hot loop reads each rule's parameters without an indirection. The M-of-N window of
    row r is the ring buffer ``win_ts/win_idx[off:off + M]`` (time and point sample count
    of its last M beyond samples) with ``off, N, M = wpar[r]`` and head and stored entries
    in ``wst[r]``. ``pst`` holds each point's steady set, the time of its previous
    evaluated sample and their count (ST_* columns, see ``_bounds``).

    A sample inside its point's steady set costs one cache line read and two stores, with
    one well-predicted branch, whether the point is compliant, in a long excursion, waiting
    out a delay or between the beyond samples of an M-of-N window. Otherwise the sample takes the full path through every rule of
    the point, which folds each rule's new steady set into the point's as it goes.

    Scanning starts at sample ``start``; transitions go to the ``t_*`` output arrays.
    When they could overflow, the scan stops *before* a sample (state is consistent at
    sample boundaries) and the caller resumes with larger arrays; growing them inside the
    loop instead would make numba add reference counting to every iteration (measured:
    4x slower). Returns (count, next sample); next sample == len(point) when done.
    """
    n = point.shape[0]
    n_points = pst.shape[0]
    cap = t_rule.shape[0]
    k = 0
    for i in range(start, n):
        p = point[i]
        if p < 0 or p >= n_points:
            continue
        t = ts[i]
        v = value[i]
        last = pst[p, ST_LAST]
        # "Skipped": not good, not finite (value or time), a duplicate (same time as the
        # point's previous evaluated sample) or out of order (earlier); one branch.
        if not (good[i] & np.isfinite(v) & np.isfinite(t) & (t > last)):
            continue
        dt = t - last
        # The steady set: this sample changes nothing but the point's time and count.
        if ((v <= pst[p, ST_HI]) & (v > pst[p, ST_LO]) & (-v <= pst[p, ST_NHI])
                & (-v > pst[p, ST_NLO]) & (t < pst[p, ST_DUE]) & (dt <= pst[p, ST_GAP])):
            pst[p, ST_LAST] = t
            pst[p, ST_COUNT] += 1.0
            continue
        if k + rule_ptr[p + 1] - rule_ptr[p] > cap:
            return k, i
        pst[p, ST_LAST] = t
        c = pst[p, ST_COUNT] + 1.0  # this sample's number among the point's evaluated ones
        pst[p, ST_COUNT] = c
        hi = np.inf
        lo = -np.inf
        nhi = np.inf
        nlo = -np.inf
        due = np.inf
        gap = np.inf
        for r in range(rule_ptr[p], rule_ptr[p + 1]):
            m = params[r, P_M]
            sv = v * params[r, P_SIGN]
            # "Gap": more than max_gap_s since the previous good sample breaks every run.
            if dt > params[r, P_GAP]:
                state[r, S_RUN_T0] = np.nan
                state[r, S_CLR_C0] = np.nan
                wst[r, W_HEAD] = 0
                wst[r, W_LEN] = 0
            beyond = sv > params[r, P_SLIMIT]
            event = 0
            onset = 0.0
            if state[r, S_ACTIVE] == 0.0:
                if m == 0.0:
                    # "Inactive", no M-of-N: a run of consecutive beyond samples from t0.
                    if beyond:
                        t0 = state[r, S_RUN_T0]
                        if t0 != t0:  # NaN: no run yet, this sample starts one
                            t0 = t
                            state[r, S_RUN_T0] = t
                        if t - t0 >= params[r, P_ON]:
                            event = 1
                            onset = t0
                    elif state[r, S_RUN_T0] == state[r, S_RUN_T0]:
                        state[r, S_RUN_T0] = np.nan  # a good, not beyond sample ends the run
                elif beyond:
                    # "Inactive" with M-of-N: it raises when at least M of the last N good
                    # samples (this one included) are beyond, i.e. when the M-th most recent
                    # beyond sample is among the last N (sample count > c - N). At that
                    # sample exactly M are (one fewer would have raised before), so the
                    # onset, the earliest beyond time in the window, is that sample's time.
                    mm = wpar[r, WP_M]
                    base = wpar[r, WP_OFF]
                    head = wst[r, W_HEAD]
                    wlen = wst[r, W_LEN]
                    win_ts[base + head] = t
                    win_idx[base + head] = c
                    head += 1
                    if head == mm:
                        head = 0
                    if wlen < mm:
                        wlen += 1
                    wst[r, W_HEAD] = head
                    wst[r, W_LEN] = wlen
                    # full ring: the oldest of the last M is at head
                    if wlen == mm and win_idx[base + head] > c - wpar[r, WP_N]:
                        event = 1
                        onset = win_ts[base + head]
                if event == 1:
                    state[r, S_ACTIVE] = 1.0
                    state[r, S_RUN_T0] = np.nan
                    state[r, S_CLR_C0] = np.nan
                    wst[r, W_HEAD] = 0
                    wst[r, W_LEN] = 0
            else:
                # "Active": a run of consecutive back samples from c0 clears after off_delay.
                if sv <= params[r, P_SBACK]:
                    c0 = state[r, S_CLR_C0]
                    if c0 != c0:
                        c0 = t
                        state[r, S_CLR_C0] = t
                    if t - c0 >= params[r, P_OFF]:
                        event = -1
                        onset = c0
                        # "On clearing, all counting starts afresh."
                        state[r, S_ACTIVE] = 0.0
                        state[r, S_RUN_T0] = np.nan
                        state[r, S_CLR_C0] = np.nan
                        wst[r, W_HEAD] = 0
                        wst[r, W_LEN] = 0
                else:
                    state[r, S_CLR_C0] = np.nan
            if event != 0:
                t_rule[k] = rule_idx[r]
                t_sample[k] = i
                t_event[k] = event
                t_onset[k] = onset
                k += 1
            # fold this rule's steady set into the point's (see ``_steady_all``)
            up, low, due_r, gap_r = _bounds(
                state[r, S_ACTIVE], state[r, S_RUN_T0], state[r, S_CLR_C0], m,
                wst[r, W_LEN], params[r, P_SLIMIT], params[r, P_SBACK], params[r, P_ON],
                params[r, P_OFF], params[r, P_GAP])
            if params[r, P_SIGN] > 0.0:
                hi = min(hi, up)
                lo = max(lo, low)
            else:
                nhi = min(nhi, up)
                nlo = max(nlo, low)
            due = min(due, due_r)
            gap = min(gap, gap_r)
        pst[p, ST_HI] = hi
        pst[p, ST_LO] = lo
        pst[p, ST_NHI] = nhi
        pst[p, ST_NLO] = nlo
        pst[p, ST_DUE] = due
        pst[p, ST_GAP] = gap
    return k, n


@njit(cache=True)
def _stale_scan(point, ts, good, value, stale_after_s, last_good_ts, stale, clock):
    """Stale detection over a backtest's input (docs/ARCHITECTURE.md "Stale"), updating state in place.

    A point is stale from ``last good ts + stale_after_s``; a backtest has no clock but its
    input, so it finds that out at the next input time. When a sample brings a time later
    than any before (``clock[0]``), every point whose deadline lies before that time is
    raised at this sample with the deadline as onset; ``clock[1]`` is a lower bound of the
    earliest deadline, so the sweep over all points runs only when one may be due. The
    sample's own point is also found stale by a sample at or after its deadline (a good one
    exactly at the deadline is in time); its next good sample clears it (onset = its time).
    ``_stale_check`` covers "every cycle" (live) and "the end of the input". Returns
    (point, sample, event, onset, count).
    """
    n = point.shape[0]
    n_points = last_good_ts.shape[0]
    cap = 16
    o_point = np.empty(cap, dtype=np.int64)
    o_sample = np.empty(cap, dtype=np.int64)
    o_event = np.empty(cap, dtype=np.int8)
    o_onset = np.empty(cap, dtype=np.float64)
    k = 0
    for i in range(n):
        p = point[i]
        if p < 0 or p >= n_points or not np.isfinite(ts[i]):
            continue
        t = ts[i]
        sweep = False
        if not t <= clock[0]:  # a later input time (or the first one)
            clock[0] = t
            sweep = t > clock[1]
        if sweep:
            due = np.inf
            for q in range(n_points):
                lq = last_good_ts[q]
                if stale[q] or lq != lq:
                    continue
                dq = lq + stale_after_s[q]
                if dq < t:
                    stale[q] = True
                    if k == o_point.shape[0]:
                        o_point = _grow(o_point, k)
                        o_sample = _grow(o_sample, k)
                        o_event = _grow(o_event, k)
                        o_onset = _grow(o_onset, k)
                    o_point[k] = q
                    o_sample[k] = i
                    o_event[k] = 1
                    o_onset[k] = dq
                    k += 1
                elif dq < due:
                    due = dq
            clock[1] = due
        last = last_good_ts[p]
        sa = stale_after_s[p]
        is_good = good[i] and np.isfinite(value[i])
        for step in range(2):  # at most a raise, then a clear, on one sample
            ev = 0
            onset = 0.0
            if step == 0:
                # A good sample exactly at the deadline is in time; anything else at or
                # after it finds the point stale since last + stale_after_s.
                late = t > last + sa if is_good else t >= last + sa
                if not stale[p] and last == last and late:
                    ev = 1
                    onset = last + sa
                    stale[p] = True
            elif is_good and (last != last or t > last):
                last_good_ts[p] = t
                if t + sa < clock[1]:
                    clock[1] = t + sa
                if stale[p]:
                    ev = -1
                    onset = t
                    stale[p] = False
            if ev != 0:
                if k == o_point.shape[0]:
                    o_point = _grow(o_point, k)
                    o_sample = _grow(o_sample, k)
                    o_event = _grow(o_event, k)
                    o_onset = _grow(o_onset, k)
                o_point[k] = p
                o_sample[k] = i
                o_event[k] = ev
                o_onset[k] = onset
                k += 1
    return o_point, o_sample, o_event, o_onset, k


@njit(cache=True)
def _stale_check(now, stale_after_s, last_good_ts, stale):
    """Every point's stale state at time ``now`` (live: each cycle; a backtest: the end of
    the input), updating ``stale`` in place.

    Returns per point (event, onset): +1 with onset ``last good + stale_after_s`` for a point
    that became stale, -1 with onset ``last good`` for one whose newest good sample is again
    within ``stale_after_s`` of ``now``, 0 (onset NaN) otherwise. A point never seen good
    (last good NaN) is neither raised nor cleared: its communication alarm covers it.
    """
    n = last_good_ts.shape[0]
    event = np.zeros(n, dtype=np.int8)
    onset = np.full(n, np.nan)
    for p in range(n):
        last = last_good_ts[p]
        if last != last:
            continue
        due = last + stale_after_s[p]
        if not stale[p] and now >= due:
            stale[p] = True
            event[p] = 1
            onset[p] = due
        elif stale[p] and now < due:
            stale[p] = False
            event[p] = -1
            onset[p] = last
    return event, onset


@njit(cache=True)
def _cascade(ts_a, v_a, q_a, ts_b, v_b, q_b, max_skew_s, st):
    """Derive ``a - b`` from two inputs measured against a common reference (docs/ARCHITECTURE.md
    "Pressure cascade"), at each time where either input has a good sample.

    Inputs are each sorted by time; a duplicate time within one input is ignored (first
    wins). ``st`` carries, per input (row 0 = a, row 1 = b): last time seen, last good
    time, last good value, quality of the latest sample. The other input's latest good
    sample is used when it is within ``max_skew_s`` of this time (either side: an input's
    batch may arrive after a later sample of the other); otherwise the derived sample has the
    worse quality of the two (the other's own quality, or STALE=3 if it was good but old).
    Returns (ts, value, quality, count).
    """
    na = ts_a.shape[0]
    nb = ts_b.shape[0]
    o_ts = np.empty(na + nb, dtype=np.float64)
    o_v = np.empty(na + nb, dtype=np.float64)
    o_q = np.empty(na + nb, dtype=np.int8)
    ia = 0
    ib = 0
    k = 0
    while ia < na or ib < nb:
        if ib >= nb or (ia < na and ts_a[ia] <= ts_b[ib]):
            t = ts_a[ia]
        else:
            t = ts_b[ib]
        any_good = False
        while ia < na and ts_a[ia] == t:
            if t > st[0, 0] or st[0, 0] != st[0, 0]:
                st[0, 0] = t
                st[0, 3] = q_a[ia] if np.isfinite(v_a[ia]) or q_a[ia] != 0 else 1
                if q_a[ia] == 0 and np.isfinite(v_a[ia]):
                    st[0, 1] = t
                    st[0, 2] = v_a[ia]
                    any_good = True
            ia += 1
        while ib < nb and ts_b[ib] == t:
            if t > st[1, 0] or st[1, 0] != st[1, 0]:
                st[1, 0] = t
                st[1, 3] = q_b[ib] if np.isfinite(v_b[ib]) or q_b[ib] != 0 else 1
                if q_b[ib] == 0 and np.isfinite(v_b[ib]):
                    st[1, 1] = t
                    st[1, 2] = v_b[ib]
                    any_good = True
            ib += 1
        if any_good:
            q = 0
            for s in range(2):
                if not (st[s, 1] == st[s, 1] and abs(t - st[s, 1]) <= max_skew_s):
                    qs = st[s, 3] if st[s, 3] > 0 else 3
                    if qs > q:
                        q = qs
            o_ts[k] = t
            o_v[k] = st[0, 2] - st[1, 2] if q == 0 else np.nan
            o_q[k] = q
            k += 1
    return o_ts, o_v, o_q, k


@njit(cache=True)
def _exposure(ts, conc, first_out, window_s, max_hold_s):
    """Time-weighted mean over [t - W, t] at each sample from ``first_out`` on
    (docs/ARCHITECTURE.md "Gas exposure").

    ``ts`` strictly increasing times of good samples, ``conc`` their finite values. Each
    value (negative counts as 0) holds until the next sample, at most ``max_hold_s``;
    uncovered time contributes 0 to the integral. Returns (mean, coverage fraction) for
    samples ``first_out:``.
    """
    n = ts.shape[0]
    seg_len = np.zeros(n + 1)  # prefix sums of segment lengths and areas
    seg_area = np.zeros(n + 1)
    ends = np.empty(n)
    for i in range(n):
        e = ts[i] + max_hold_s
        if i + 1 < n and ts[i + 1] < e:
            e = ts[i + 1]
        if i + 1 == n:
            e = ts[i]  # the newest sample has not held yet
        ends[i] = e
        c = conc[i] if conc[i] > 0.0 else 0.0
        seg_len[i + 1] = seg_len[i] + (e - ts[i])
        seg_area[i + 1] = seg_area[i] + c * (e - ts[i])
    m = n - first_out
    mean = np.empty(max(m, 0))
    cover = np.empty(max(m, 0))
    j = 0
    for kk in range(first_out, n):
        t = ts[kk]
        start = t - window_s
        while j < kk and ends[j] <= start:
            j += 1
        length = 0.0
        area = 0.0
        if j < kk:
            c = conc[j] if conc[j] > 0.0 else 0.0
            part = ends[j] - max(ts[j], start)
            length = seg_len[kk] - seg_len[j + 1] + part
            area = seg_area[kk] - seg_area[j + 1] + c * part
        mean[kk - first_out] = area / window_s
        cover[kk - first_out] = length / window_s
    return mean, cover


@njit(cache=True)
def _rate_of_change(point, ts, value, good, last_ts, last_value):
    """Rate of change per second between consecutive good samples of each point.

    Duplicates and out-of-order samples are skipped as in the limit rules; the result is
    NaN where a sample is not evaluated or has no predecessor. State is updated in place.
    """
    n = point.shape[0]
    out = np.full(n, np.nan)
    for i in range(n):
        p = point[i]
        if p < 0 or p >= last_ts.shape[0]:
            continue
        t = ts[i]
        v = value[i]
        if not good[i] or not np.isfinite(v) or not np.isfinite(t):
            continue
        lt = last_ts[p]
        if lt == lt and t <= lt:
            continue
        if lt == lt:
            out[i] = (v - last_value[p]) / (t - lt)
        last_ts[p] = t
        last_value[p] = v
    return out


@njit(cache=True)
def _stateless_compare(point, value, rule_ptr, limits):
    """Benchmark baseline: the same compares per sample as the scan, with no state."""
    n_points = rule_ptr.shape[0] - 1
    count = 0
    for i in range(point.shape[0]):
        p = point[i]
        if p < 0 or p >= n_points:
            continue
        v = value[i]
        for j in range(rule_ptr[p], rule_ptr[p + 1]):
            if v > limits[j]:
                count += 1
    return count
