"""``Store.iter_sample_arrays``: the same rows, bit for bit, as ``iter_samples``, in chunks of
at most the asked size (a backtest reads a day in bounded memory), on a real store."""

from __future__ import annotations

import math
import struct

import numpy as np

from facility.domain.model import PointInfo, Quality, Sample
from facility.store import Cycle, Store

T0 = 1_740_808_800_000  # 2025-03-01T06:00:00Z
DAY = 86_400_000
NAMES = [f"D.p{i}" for i in range(7)]
# values that travel as integers and values that cannot (digits, size, tiny, negative)
VALUES = [21.3, 0.1 + 0.2, -5.0, 3520.0, 1e-7, 123456.789012345, 1e15 + 0.5, 2.0**60, -0.001,
          math.pi, None, 99999.99, 7e-300, 1e300, -1e13, 999999.999999, 4503599627.370497]


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _store(tmp_path, seconds: int = 30, start: int = T0) -> Store:
    s = Store(str(tmp_path / "f.db"))
    s.register_points([PointInfo(n, "D", "S", "Z", "q", "u") for n in NAMES])
    for sec in range(seconds):
        samples = []
        for i, n in enumerate(NAMES):
            v = VALUES[(i + sec) % len(VALUES)]
            q = Quality.COMM if v is None else Quality.GOOD if (i + sec) % 5 else Quality.BAD
            samples.append(Sample(n, start + sec * 1000, v, q))
        s.write_cycle(Cycle(samples=samples))
    return s


def _rows(chunks):
    out = []
    for c in chunks:
        assert c.point_id.dtype == np.int64 and c.ts_ms.dtype == np.int64
        assert c.value.dtype == np.float64 and c.quality.dtype == np.int8
        for p, t, v, q in zip(c.point_id.tolist(), c.ts_ms.tolist(), c.value.tolist(),
                              c.quality.tolist()):
            out.append((p, t, None if math.isnan(v) else _bits(v), q))
    return out


def test_columns_equal_the_rows_bit_for_bit_across_a_midnight(tmp_path):
    start = (T0 // DAY + 1) * DAY - 12_000  # two partitions
    with _store(tmp_path, 30, start) as s:
        expect = [(r.point_id, r.ts_ms, None if r.value is None else _bits(r.value), r.quality)
                  for r in s.iter_samples(0, 2**62)]
        assert len(expect) == 30 * len(NAMES)
        for chunk in (1, 5, 64, 1_000_000):
            assert _rows(s.iter_sample_arrays(0, 2**62, chunk_rows=chunk)) == expect, chunk
        lo, hi = start + 3_000, start + 20_000
        part = [r for r in expect if lo <= r[1] < hi]
        assert _rows(s.iter_sample_arrays(lo, hi, chunk_rows=9)) == part
        ids = [s._ids[NAMES[2]], s._ids[NAMES[5]]]
        assert _rows(s.iter_sample_arrays(0, 2**62, 4, point_ids=ids)) == [
            r for r in expect if r[0] in ids]
        assert list(s.iter_sample_arrays(0, 2**62, point_ids=[])) == []


def test_chunks_hold_at_most_chunk_rows(tmp_path):
    with _store(tmp_path, 40) as s:
        sizes = [c.ts_ms.shape[0] for c in s.iter_sample_arrays(0, 2**62, chunk_rows=50)]
    assert sum(sizes) == 40 * len(NAMES) and max(sizes) <= 50 and sizes[:-1] == [50] * (len(sizes) - 1)
