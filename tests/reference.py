"""Slow, obviously correct pure-Python twins of the alarm kernels.

``ReferenceRule`` follows docs/ARCHITECTURE.md "Limit rules" sentence by sentence, one rule
and one sample at a time, with no packing, ring buffers or CSR tricks; the engine must
give exactly the same transitions and onsets. ``exposure_ref`` and ``cascade_ref``
integrate and merge the plain way. Any change to "Limit rules" changes this file too.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class ReferenceRule:
    """One limit rule and its state, evaluated sample by sample."""

    point: int
    kind: str  # "high" | "low"
    limit: float
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    m_of_n: tuple[int, int] | None = None
    max_gap_s: float = math.inf
    # state
    active: bool = False
    last_ts: float | None = None  # time of the previous evaluated (good) sample
    run_t0: float | None = None  # start of the beyond run (inactive, no M-of-N)
    clear_c0: float | None = None  # start of the back run (active)
    window: deque = field(default_factory=deque)  # (ts, beyond) of the last N good samples

    def beyond(self, v: float) -> bool:
        """``v > L`` for a high limit, ``v < L`` for a low one; at the limit is compliant."""
        return v > self.limit if self.kind == "high" else v < self.limit

    def back(self, v: float) -> bool:
        """``v <= L - D`` for a high limit, ``v >= L + D`` for a low one."""
        if self.kind == "high":
            return v <= self.limit - self.deadband
        return v >= self.limit + self.deadband

    def restart_runs(self) -> None:
        """Break every run and empty the M-of-N window (gap, clear, parameter change)."""
        self.run_t0 = None
        self.clear_c0 = None
        self.window = deque()

    def step(self, t: float, v: float, good: bool) -> tuple[int, float] | None:
        """Consider one sample of this rule's point; return (event, onset) or None."""
        # Skipped: not good, not finite, duplicate time, earlier time.
        if not good or not math.isfinite(v) or not math.isfinite(t):
            return None
        if self.last_ts is not None and t == self.last_ts:
            return None
        if self.last_ts is not None and t < self.last_ts:
            return None
        # Gap: more than max_gap_s since the previous good sample breaks every run.
        if self.last_ts is not None and t - self.last_ts > self.max_gap_s:
            self.restart_runs()
        self.last_ts = t
        if not self.active:
            if self.m_of_n is None:
                if self.beyond(v):
                    if self.run_t0 is None:
                        self.run_t0 = t
                    if t - self.run_t0 >= self.on_delay_s:
                        onset = self.run_t0
                        self.active = True
                        self.restart_runs()
                        return (1, onset)
                else:
                    self.run_t0 = None
                return None
            m, n = self.m_of_n
            self.window.append((t, self.beyond(v)))
            while len(self.window) > n:
                self.window.popleft()
            beyond_times = [wt for wt, b in self.window if b]
            if len(beyond_times) >= m:
                self.active = True
                self.restart_runs()
                return (1, min(beyond_times))
            return None
        if self.back(v):
            if self.clear_c0 is None:
                self.clear_c0 = t
            if t - self.clear_c0 >= self.off_delay_s:
                onset = self.clear_c0
                self.active = False  # on clearing, all counting starts afresh
                self.restart_runs()
                return (-1, onset)
        else:
            self.clear_c0 = None
        return None


def reference_feed(rules: list[ReferenceRule], point, ts, value, good) -> list[tuple]:
    """Run every rule over the samples of its point; return (rule, sample, event, onset)
    sorted by sample then rule, the engine's order."""
    out = []
    for r_idx, rule in enumerate(rules):
        for i in range(len(point)):
            if int(point[i]) != rule.point:
                continue
            res = rule.step(float(ts[i]), float(value[i]), bool(good[i]))
            if res is not None:
                out.append((r_idx, i, res[0], res[1]))
    out.sort(key=lambda x: (x[1], x[0]))
    return out


def exposure_ref(ts, conc, good, window_s, max_hold_s):
    """STEL/TWA the plain way: for each evaluated sample, integrate the held values.

    Returns a list of (sample index, mean, coverage) for every good sample (finite value,
    time later than every earlier good sample).
    """
    held = []  # (t, c) of evaluated samples so far
    out = []
    for i in range(len(ts)):
        t, c = float(ts[i]), float(conc[i])
        if not good[i] or not math.isfinite(c) or not math.isfinite(t):
            continue
        if held and t <= held[-1][0]:
            continue
        held.append((t, max(c, 0.0)))
        lo = t - window_s
        area = 0.0
        length = 0.0
        for k in range(len(held) - 1):
            t_k, c_k = held[k]
            end = min(held[k + 1][0], t_k + max_hold_s)
            a, b = max(t_k, lo), min(end, t)
            if b > a:
                area += c_k * (b - a)
                length += b - a
        out.append((i, area / window_s, length / window_s))
    return out


def cascade_ref(a, b, max_skew_s):
    """Derived a - b at each distinct time where either input has a good sample.

    ``a`` and ``b`` are lists of (ts, value, quality) sorted by ts. Returns a list of
    (ts, value or None, quality).
    """
    events = sorted({t for t, _, _ in a} | {t for t, _, _ in b})
    latest = [None, None]  # (ts, quality) of the latest sample per input
    latest_good = [None, None]  # (ts, value)
    out = []
    for t in events:
        any_good = False
        for s, series in enumerate((a, b)):
            at_t = [x for x in series if x[0] == t]
            if not at_t:
                continue
            ts_, v, q = at_t[0]  # first wins
            if not math.isfinite(v) and q == 0:
                q = 1
            latest[s] = (ts_, q)
            if q == 0:
                latest_good[s] = (ts_, v)
                any_good = True
        if not any_good:
            continue
        quality = 0
        for s in range(2):
            lg = latest_good[s]
            if lg is None or t - lg[0] > max_skew_s:
                qs = latest[s][1] if latest[s] is not None and latest[s][1] > 0 else 3
                quality = max(quality, qs)
        value = latest_good[0][1] - latest_good[1][1] if quality == 0 else None
        out.append((t, value, quality))
    return out
