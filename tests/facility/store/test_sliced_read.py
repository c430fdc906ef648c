"""``Store.iter_sample_arrays`` read in time slices by reader threads: exactly the rows of
``iter_samples`` (bit for bit, in key order) whatever the slicing, on a real store.

The slice and page sizes are module settings; the tests make them small so that a few
hundred rows take every path: many slices, a slice denser than its width was cut for
(read in pages, handed back and resumed), partition boundaries, a point filter, null,
non-finite and inexact values, bad quality."""

from __future__ import annotations

import math
import struct
import threading

import numpy as np
import pytest

from facility.domain.model import PointInfo, Quality, Sample
from facility.store import Cycle, Store, StoreError
from facility.store import read as read_mod
from facility.store.partitions import partition_path

T0 = 1_740_808_800_000  # 2025-03-01T06:00:00Z
DAY = 86_400_000
NAMES = [f"D.p{i}" for i in range(9)]
VALUES = [21.3, 0.1 + 0.2, -5.0, None, 1e-7, 123456.789012345, 2.0**60, -0.001, math.pi,
          1e300, 999999.999999, 0.0, 4503599627.370497]


def _bits(x):
    return None if x is None else struct.pack("<d", x)


def _fill(tmp_path, start: int, seconds: int, dense_from: int | None = None) -> str:
    """Samples of every point each second; from ``dense_from`` on, ten a second (a burst the
    slice width, cut from the first rows, does not expect)."""
    path = str(tmp_path / "f.db")
    with Store(path) as s:
        s.register_points([PointInfo(n, "D", "S", "Z", "q", "u") for n in NAMES])
        for sec in range(seconds):
            per = 10 if dense_from is not None and sec >= dense_from else 1
            samples = []
            for k in range(per):
                for i, n in enumerate(NAMES):
                    v = VALUES[(i + sec + k) % len(VALUES)]
                    q = Quality.COMM if v is None else Quality.GOOD if (i + sec) % 4 else Quality.BAD
                    samples.append(Sample(n, start + sec * 1000 + k * 100, v, q))
            s.write_cycle(Cycle(samples=samples))
    return path


def _rows(chunks):
    out = []
    for c in chunks:
        for p, t, v, q in zip(c.point_id.tolist(), c.ts_ms.tolist(), c.value.tolist(),
                              c.quality.tolist()):
            out.append((p, t, None if math.isnan(v) else _bits(v), q))
    return out


def _expect(s, lo=0, hi=2**62, ids=None):
    return [(r.point_id, r.ts_ms, _bits(r.value), r.quality) for r in s.iter_samples(lo, hi, ids)]


@pytest.fixture()
def small_slices(monkeypatch):
    monkeypatch.setattr(read_mod, "_PAGE_ROWS", 16)
    monkeypatch.setattr(read_mod, "_SLICE_ROWS", 20)
    monkeypatch.setattr(read_mod, "_SLICE_MAX_ROWS", 40)


def test_slices_across_midnight_and_a_burst_read_exactly_the_rows(tmp_path, small_slices):
    start = (T0 // DAY + 1) * DAY - 25_000  # two partitions
    path = _fill(tmp_path, start, 50, dense_from=30)
    with Store(path, readonly=True) as s:
        expect = _expect(s)
        assert len(expect) == 30 * 9 + 20 * 90
        slices = list(read_mod._sample_slices(s.path, 0, 2**62, None, 16))
        assert len({d for d, _a, _b in slices}) == 2 and len(slices) > 10
        for chunk in (1, 7, 16, 50, 1_000_000):
            got = list(s.iter_sample_arrays(0, 2**62, chunk_rows=chunk))
            assert _rows(got) == expect, chunk
            sizes = [c.ts_ms.shape[0] for c in got]
            assert sizes[:-1] == [chunk] * (len(sizes) - 1) and 0 < sizes[-1] <= chunk
        lo, hi = start + 12_345, start + 41_000
        assert _rows(s.iter_sample_arrays(lo, hi, chunk_rows=33)) == _expect(s, lo, hi)
        ids = [s._ids[NAMES[1]], s._ids[NAMES[7]]]
        assert _rows(s.iter_sample_arrays(0, 2**62, 5, point_ids=ids)) == _expect(s, ids=ids)


def test_a_dense_slice_is_resumed_after_its_last_key(tmp_path, small_slices):
    path = _fill(tmp_path, T0, 20, dense_from=5)
    calls = []
    real = read_mod._read_slice

    def spy(*args):
        got = real(*args)
        calls.append(got[1])
        return got

    with Store(path, readonly=True) as s:
        expect = _expect(s)
        read_mod_slice = read_mod._read_slice
        read_mod._read_slice = spy
        try:
            got = _rows(s.iter_sample_arrays(0, 2**62, chunk_rows=64))
        finally:
            read_mod._read_slice = read_mod_slice
    assert got == expect
    assert any(k is not None for k in calls)  # some slice handed back and was resumed


def test_values_come_back_bit_for_bit_without_the_small_settings(tmp_path):
    path = _fill(tmp_path, T0, 40)
    with Store(path, readonly=True) as s:
        chunks = list(s.iter_sample_arrays(0, 2**62))
        assert _rows(chunks) == _expect(s)
        c = chunks[0]
        assert c.value.dtype == np.float64 and c.quality.dtype == np.int8
        assert np.isnan(c.value).sum() == sum(1 for r in s.iter_samples(0, 2**62) if r.value is None)


def test_closing_early_stops_the_reader_threads(tmp_path, small_slices):
    path = _fill(tmp_path, T0, 30)
    with Store(path, readonly=True) as s:
        it = s.iter_sample_arrays(0, 2**62, chunk_rows=8)
        first = next(it)
        assert first.ts_ms.shape[0] == 8
        assert any(t.name.startswith("sample-reader") for t in threading.enumerate())
        it.close()
    assert not any(t.name.startswith("sample-reader") for t in threading.enumerate())


def test_a_damaged_partition_is_one_store_error(tmp_path):
    path = _fill(tmp_path, T0, 3)
    with open(partition_path(path, "2025-03-01"), "r+b") as f:
        f.write(b"not a database at all" * 200)
    with Store(path, readonly=True) as s:
        with pytest.raises(StoreError, match="partition 2025-03-01"):
            list(s.iter_sample_arrays(0, 2**62))
