"""Gas exposure: STEL (15 min) and TWA (8 h) as derived points of a gas detector.

docs/ARCHITECTURE.md "Gas exposure": at time t the metric is (1/W)·∫ c dτ over [t − W, t]; each
good sample's value holds until the next good sample, for at most ``max_hold_s``
(default 2 × scan_s); negative readings count as 0; below 90 % coverage of the window
the value is bad quality. They are evaluated at each good detector sample. Time not
covered by a held value contributes 0 to the integral (it is never guessed), which is
why a window with too little coverage is marked bad rather than trusted.
"""

from __future__ import annotations

import numpy as np

from alarms import kernels as K
from alarms.arrays import BOOL, F64, FLOAT, check_1d, check_same_length

STEL_WINDOW_S = 900.0  # 15 min short-term exposure limit (ACGIH TLV)
TWA_WINDOW_S = 28_800.0  # 8 h time-weighted average (ACGIH TLV)
MIN_COVERAGE = 0.9  # docs/ARCHITECTURE.md "Gas exposure": below 90 % coverage the value is bad


class ExposureTracker:
    """Windowed time-weighted mean of one detector, carrying its recent samples.

    Only the samples that can still reach the window (newer than t − W − max_hold_s)
    are kept between batches, so memory is bounded by the window, not the run time.
    """

    def __init__(self, window_s: float, max_hold_s: float) -> None:
        if not window_s > 0 or not max_hold_s >= 0:
            raise ValueError(f"window_s={window_s!r} must be > 0 and max_hold_s="
                             f"{max_hold_s!r} >= 0")
        self.window_s = float(window_s)
        self.max_hold_s = float(max_hold_s)
        self._ts = np.empty(0)
        self._c = np.empty(0)

    def feed(self, ts, value, good):
        """Return (mean, good_quality) per input sample; NaN/False where not evaluated.

        A sample is evaluated when it is good, finite, and later than every earlier
        evaluated sample (duplicates and late samples are skipped as in "Limit rules").
        """
        ts = check_1d("ts", ts, F64, "f")
        value = check_1d("value", value, FLOAT, "f").astype(np.float64, copy=False)
        good = check_1d("good", good, BOOL, "b")
        n = check_same_length(ts=ts, value=value, good=good)
        ok = good & np.isfinite(value) & np.isfinite(ts)
        # strictly later than the running maximum of evaluated times
        last = self._ts[-1] if self._ts.shape[0] else -np.inf
        cand = np.where(ok, ts, -np.inf)
        prev_max = np.maximum.accumulate(np.concatenate(([last], cand)))[:-1]
        ok &= ts > prev_max
        idx = np.flatnonzero(ok)
        all_ts = np.concatenate((self._ts, ts[idx]))
        all_c = np.concatenate((self._c, value[idx]))
        mean, cover = K._exposure(all_ts, all_c, self._ts.shape[0], self.window_s,
                                  self.max_hold_s)
        out_mean = np.full(n, np.nan)
        out_good = np.zeros(n, dtype=bool)
        out_mean[idx] = mean
        out_good[idx] = cover >= MIN_COVERAGE - 1e-12
        if all_ts.shape[0]:
            keep = all_ts >= all_ts[-1] - self.window_s - self.max_hold_s
            keep[-1] = True
            self._ts, self._c = all_ts[keep].copy(), all_c[keep].copy()
        return out_mean, out_good


def stel_twa(ts, value, good, max_hold_s: float):
    """One-shot STEL and TWA over a whole series: ((stel, stel_good), (twa, twa_good))."""
    stel = ExposureTracker(STEL_WINDOW_S, max_hold_s).feed(ts, value, good)
    twa = ExposureTracker(TWA_WINDOW_S, max_hold_s).feed(ts, value, good)
    return stel, twa
