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
    """DESIGN.md "Stale": a point is stale from ``last good ts + stale_after_s``.

    ``feed`` notices it at the point's next sample (a raise with that onset) and clears
    it at the next good sample; ``check(now)`` is the live per-cycle check and the
    end-of-input check of a backtest. A point never seen good is not stale here (its
    communication alarm covers it).
    """

    def __init__(self, stale_after_s: np.ndarray) -> None:
        sa = check_1d("stale_after_s", np.asarray(stale_after_s, dtype=np.float64), F64, "f")
        if not np.all(sa > 0):
            raise ValueError("stale_after_s must be > 0 for every point")
        self.stale_after_s = sa.copy()
        self.last_good_ts = np.full(sa.shape[0], np.nan)
        self.stale = np.zeros(sa.shape[0], dtype=bool)

    def feed(self, point, ts, value, good) -> np.ndarray:
        """Evaluate one batch; return STALE_DTYPE transitions in sample order."""
        point, ts, value, good = _samples(point, ts, value, good)
        p, s, e, o, k = K._stale_scan(point, ts, good, value, self.stale_after_s,
                                      self.last_good_ts, self.stale)
        out = np.empty(k, dtype=STALE_DTYPE)
        out["point"], out["sample"], out["event"], out["onset"] = p[:k], s[:k], e[:k], o[:k]
        return out

    def check(self, now: float) -> np.ndarray:
        """Raise every point stale at ``now``; return those raises (sample = -1)."""
        onset = K._stale_check(float(now), self.stale_after_s, self.last_good_ts, self.stale)
        pts = np.flatnonzero(~np.isnan(onset))
        out = np.empty(pts.shape[0], dtype=STALE_DTYPE)
        out["point"], out["sample"], out["event"], out["onset"] = pts, -1, 1, onset[pts]
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
