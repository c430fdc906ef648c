"""Stale detection and rate of change: small per-point trackers over the kernels.

Both carry per-point state between batches so the live service and a backtest see the
same results for one batch or any split.
"""

from __future__ import annotations

import numpy as np

from alarms import kernels as K
from alarms.arrays import BOOL, F64, FLOAT, INT, check_1d, check_same_length

STALE_DTYPE = np.dtype(
    [("point", np.int64), ("sample", np.int64), ("event", np.int8), ("onset", np.float64)]
)
"""A stale transition: point number, sample index (-1 from ``check``), +1/-1, onset (s)."""


def _samples(point, ts, value, good):
    point = check_1d("point", point, INT, "i")
    ts = check_1d("ts", ts, F64, "f")
    value = check_1d("value", value, FLOAT, "f")
    good = check_1d("good", good, BOOL, "b")
    check_same_length(point=point, ts=ts, value=value, good=good)
    return point, ts, value, good


class StaleTracker:
    """docs/ARCHITECTURE.md "Stale": a point is stale from ``last good ts + stale_after_s``.

    The live service and a backtest differ only in when they look: the service updates
    the last good times with each cycle's samples (``seen``) and checks every point at the
    cycle's time (``check(now)``), raising and clearing there; a backtest has no clock but
    its input, so ``feed`` finds a point stale at the next input time (of any point) and
    clears it at its next good sample, and ``check(end)`` looks once more at the end of the
    input. A point never seen good is not stale here (its communication alarm covers it).
    Times are seconds; onsets are ``last good + stale_after_s`` (raise) and the last good
    time (clear).
    """

    def __init__(self, stale_after_s: np.ndarray) -> None:
        sa = check_1d("stale_after_s", np.asarray(stale_after_s, dtype=np.float64), F64, "f")
        if not np.all(sa > 0):
            raise ValueError("stale_after_s must be > 0 for every point")
        self.stale_after_s = sa.copy()
        self.last_good_ts = np.full(sa.shape[0], np.nan)
        self.stale = np.zeros(sa.shape[0], dtype=bool)
        # latest input time, and a lower bound of the earliest deadline (-inf: recompute)
        self._clock = np.array([np.nan, -np.inf])

    def start(self, last_good_ts: np.ndarray, stale: np.ndarray) -> None:
        """Set every point's last good time (NaN: none) and stale flag, e.g. on a restart:
        the clocks start when polling starts, and a stale alarm restored active stays
        raised until the point's next good sample."""
        lg = check_1d("last_good_ts", np.asarray(last_good_ts, dtype=np.float64), F64, "f")
        st = check_1d("stale", np.asarray(stale, dtype=bool), BOOL, "b")
        check_same_length(stale_after_s=self.stale_after_s, last_good_ts=lg, stale=st)
        self.last_good_ts[:] = lg
        self.stale[:] = st
        self._clock[1] = -np.inf

    def seen(self, point, ts, value, good) -> None:
        """Live: take a cycle's samples into the last good times; ``check`` decides."""
        point, ts, value, good = _samples(point, ts, value, good)
        ok = good & np.isfinite(value) & np.isfinite(ts) & (point >= 0)
        ok &= point < self.last_good_ts.shape[0]
        np.fmax.at(self.last_good_ts, point[ok], ts[ok])  # fmax: NaN (never good) loses
        self._clock[1] = -np.inf

    def feed(self, point, ts, value, good) -> np.ndarray:
        """Backtest: evaluate samples in time order; return STALE_DTYPE transitions in
        sample order (a raise found at another point's sample carries that sample)."""
        point, ts, value, good = _samples(point, ts, value, good)
        p, s, e, o, k = K._stale_scan(point, ts, good, value, self.stale_after_s,
                                      self.last_good_ts, self.stale, self._clock)
        out = np.empty(k, dtype=STALE_DTYPE)
        out["point"], out["sample"], out["event"], out["onset"] = p[:k], s[:k], e[:k], o[:k]
        return out

    def check(self, now: float) -> np.ndarray:
        """Raise every point stale at ``now`` and clear every stale point whose newest good
        sample is within ``stale_after_s`` of ``now``; return those (sample = -1)."""
        event, onset = K._stale_check(float(now), self.stale_after_s, self.last_good_ts,
                                      self.stale)
        pts = np.flatnonzero(event)
        self._clock[1] = -np.inf
        out = np.empty(pts.shape[0], dtype=STALE_DTYPE)
        out["point"], out["sample"], out["event"], out["onset"] = pts, -1, event[pts], onset[pts]
        return out


class RateOfChange:
    """Rate of change (unit per second) between consecutive good samples of each point."""

    def __init__(self, n_points: int) -> None:
        self.last_ts = np.full(int(n_points), np.nan)
        self.last_value = np.full(int(n_points), np.nan)

    def feed(self, point, ts, value, good) -> np.ndarray:
        """Return one rate per sample, NaN where the sample is skipped or has no predecessor."""
        point, ts, value, good = _samples(point, ts, value, good)
        return K._rate_of_change(point, ts, value.astype(np.float64, copy=False), good,
                                 self.last_ts, self.last_value)
