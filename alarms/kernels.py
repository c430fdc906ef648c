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
# Integer state of the M-of-N window (head, length, beyond count) and its layout
# (offset into the ring buffers, N): kept as int64 so the hot loop never converts.
W_HEAD, W_LEN, W_CNT = range(3)
WP_OFF, WP_N = range(2)


@njit(cache=True)
def _grow(buf, n):
    """Return ``buf`` doubled in length with its first ``n`` entries copied."""
    out = np.empty(max(16, buf.shape[0] * 2), dtype=buf.dtype)
    out[:n] = buf[:n]
    return out


@njit(cache=True)
def _scan_limits(point, ts, value, good, rule_ptr, rule_idx, params, wpar, plast, quiet,
                 band, state, wst, win_ts, win_beyond, start, t_rule, t_sample, t_event,
                 t_onset):
    """Evaluate docs/ARCHITECTURE.md "Limit rules" over one batch, updating ``state`` in place.

    Rules are stored grouped by point (CSR): the rules of point p are rows
    ``rule_ptr[p]:rule_ptr[p + 1]`` of ``params``/``state``/``wpar``/``wst``, and
    ``rule_idx`` maps a row back to the caller's rule index (ascending within a point),
    so the transitions come out ordered by sample, then rule, without sorting, and the
    hot loop reads each rule's parameters without an indirection. The M-of-N window of
    row r is the ring buffer ``win_ts/win_beyond[off:off + N]`` with ``off, N = wpar[r]``
    and head, length and beyond count in ``wst[r]``. ``plast`` is each point's previous
    evaluated time; ``quiet``/``band`` drive the per-point fast path below.

    Scanning starts at sample ``start``; transitions go to the ``t_*`` output arrays.
    When they could overflow, the scan stops *before* a sample (state is consistent at
    sample boundaries) and the caller resumes with larger arrays; growing them inside the
    loop instead would make numba add reference counting to every iteration (measured:
    4x slower). Returns (count, next sample); next sample == len(point) when done.
    """
    n = point.shape[0]
    n_points = rule_ptr.shape[0] - 1
    cap = t_rule.shape[0]
    k = 0
    for i in range(start, n):
        p = point[i]
        if p < 0 or p >= n_points:
            continue
        if k + rule_ptr[p + 1] - rule_ptr[p] > cap:
            return k, i
        t = ts[i]
        v = value[i]
        # "Skipped": not good, not finite (value or time), a duplicate (same time as the
        # point's previous evaluated sample) or out of order (earlier).
        if not good[i] or not np.isfinite(v) or not np.isfinite(t):
            continue
        last = plast[p]
        if t <= last:
            continue
        plast[p] = t
        # Fast path: when every rule of the point is inactive with no run and no beyond
        # sample in its window ("quiet"), a value inside the point's compliant band
        # [max low limit, min high limit] changes nothing: a gap has no run to break, and
        # a window of compliant entries is equivalent to an empty one.
        if quiet[p] and band[p, 0] <= v <= band[p, 1]:
            continue
        dt = t - last
        q = True
        for r in range(rule_ptr[p], rule_ptr[p + 1]):
            m = params[r, P_M]
            sv = v * params[r, P_SIGN]
            # "Gap": more than max_gap_s since the previous good sample breaks every run.
            if dt > params[r, P_GAP]:
                state[r, S_RUN_T0] = np.nan
                state[r, S_CLR_C0] = np.nan
                wst[r, W_HEAD] = 0
                wst[r, W_LEN] = 0
                wst[r, W_CNT] = 0
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
                elif not beyond and wst[r, W_CNT] == 0:
                    # Fast path: a window holding no beyond sample can be emptied without
                    # changing any later count or onset (only beyond entries within the
                    # last N samples matter, and all the dropped entries are older ones
                    # that are not beyond), so the common compliant sample costs one read.
                    if wst[r, W_LEN] != 0:
                        wst[r, W_HEAD] = 0
                        wst[r, W_LEN] = 0
                else:
                    # "Inactive" with M-of-N over the last N good samples.
                    nn = wpar[r, WP_N]
                    base = wpar[r, WP_OFF]
                    head = wst[r, W_HEAD]
                    wlen = wst[r, W_LEN]
                    cnt = wst[r, W_CNT]
                    if wlen == nn:  # full: the oldest entry (at head) drops out
                        cnt -= win_beyond[base + head]
                    else:
                        wlen += 1
                    win_ts[base + head] = t
                    win_beyond[base + head] = 1 if beyond else 0
                    if beyond:
                        cnt += 1
                    head += 1
                    if head == nn:
                        head = 0
                    wst[r, W_HEAD] = head
                    wst[r, W_LEN] = wlen
                    wst[r, W_CNT] = cnt
                    if cnt >= m:  # at least M of the last N (this one included)
                        event = 1
                        onset = t
                        for q in range(wlen):  # entries fill 0..wlen-1 after a reset
                            if win_beyond[base + q] == 1 and win_ts[base + q] < onset:
                                onset = win_ts[base + q]
                if event == 1:
                    state[r, S_ACTIVE] = 1.0
                    state[r, S_RUN_T0] = np.nan
                    state[r, S_CLR_C0] = np.nan
                    wst[r, W_HEAD] = 0
                    wst[r, W_LEN] = 0
                    wst[r, W_CNT] = 0
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
                        wst[r, W_CNT] = 0
                else:
                    state[r, S_CLR_C0] = np.nan
            if event != 0:
                t_rule[k] = rule_idx[r]
                t_sample[k] = i
                t_event[k] = event
                t_onset[k] = onset
                k += 1
            if state[r, S_ACTIVE] != 0.0 or state[r, S_RUN_T0] == state[r, S_RUN_T0] \
                    or wst[r, W_CNT] != 0:
                q = False
        quiet[p] = q
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
