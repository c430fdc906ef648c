"""Pressure cascade: a derived difference from two points with a common reference.

docs/ARCHITECTURE.md "Pressure cascade": a point measured against a common reference (``"ZONE -
ambient"``) is combined with another into ``a - b`` at each good sample of either input,
using the other input's latest good sample if it is no older than ``max_skew_s`` (default
2 x scan_s); the derived quality is the worse of the two. The pairing itself comes from
the configuration (rule compilation) and ``max_skew_s`` from the zone; this module only
does the arithmetic, for the live service (``facility.service.derive``) and the tests.
"""

from __future__ import annotations

import numpy as np

from alarms import kernels as K
from alarms.arrays import F64, FLOAT, check_1d, check_same_length

QUALITY = (np.dtype(np.int8),)


def _input(name: str, ts, value, quality):
    ts = check_1d(f"ts_{name}", ts, F64, "f")
    value = check_1d(f"value_{name}", value, FLOAT, "f").astype(np.float64, copy=False)
    quality = check_1d(f"quality_{name}", quality, QUALITY, "i")
    check_same_length(**{f"ts_{name}": ts, f"value_{name}": value, f"quality_{name}": quality})
    if not np.all(np.isfinite(ts)):
        raise ValueError(f"ts_{name} has non-finite times; drop those samples first")
    if ts.shape[0] > 1 and np.any(np.diff(ts) < 0):
        raise ValueError(f"ts_{name} is not in time order; sort it with np.argsort(kind='stable')")
    return ts, value, quality


class Cascade:
    """One derived pressure difference ``a - b``, carrying state between batches.

    Qualities are ``facility.domain.model.Quality`` codes as int8 (0 good, 1 bad, 2 comm,
    3 stale). Each batch is merged by time, so the other input's latest good sample is the
    latest at or before this time; one from a batch that arrived earlier may be later, and
    is used when within ``max_skew_s`` either side. When the other input has no good
    sample that close the derived sample has no value (NaN) and the other's quality, or
    STALE if its last sample was good but too far away.
    """

    def __init__(self, max_skew_s: float) -> None:
        if not max_skew_s >= 0:
            raise ValueError(f"max_skew_s={max_skew_s!r} must be >= 0")
        self.max_skew_s = float(max_skew_s)
        # per input: last time seen, last good time, last good value, latest quality
        self._st = np.array([[np.nan, np.nan, np.nan, 3.0]] * 2)

    def feed(self, ts_a, value_a, quality_a, ts_b, value_b, quality_b):
        """Return (ts, value, quality) arrays of the derived samples of this batch."""
        a = _input("a", ts_a, value_a, quality_a)
        b = _input("b", ts_b, value_b, quality_b)
        t, v, q, k = K._cascade(*a, *b, self.max_skew_s, self._st)
        return t[:k].copy(), v[:k].copy(), q[:k].copy()


def cascade(ts_a, value_a, quality_a, ts_b, value_b, quality_b, max_skew_s: float):
    """One-shot ``a - b`` over whole series (see ``Cascade``)."""
    return Cascade(max_skew_s).feed(ts_a, value_a, quality_a, ts_b, value_b, quality_b)
