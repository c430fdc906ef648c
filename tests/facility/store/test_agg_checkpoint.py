"""``agg_open`` as a checkpoint: written when a bucket closes, on backfill and every
``AGG_FLUSH_CYCLES`` cycles instead of every cycle. The writer's own reads are exact, a
read-only reader lags by at most that many cycles, and a writer that dies between
checkpoints loses nothing: the next writer open replays the rows stored after it. Real
SQLite files; the crash is a connection closed without ``Store.close``.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facility.domain.model import PointInfo, Quality, Sample
from facility.store import Cycle, Store
from facility.store.aggs import EMPTY_OPEN, OpenBuckets, accumulate
from facility.store.database import AGG_FLUSH_CYCLES

T0 = 1_740_830_400_000  # 2025-03-01T12:00:00Z, on an hour
POINTS = [PointInfo(f"D.p{i}", "D", "S", "Z", "q", "u") for i in range(3)]


def _naive(store, pid, res_ms):
    """Buckets recounted from the stored raw rows."""
    out: dict[int, list] = {}
    for r in store.iter_samples(0, 2**62, point_ids=[pid]):
        b = out.setdefault(r.ts_ms - r.ts_ms % res_ms, [0, 0, [], 0])
        b[0] += 1
        b[3] = max(b[3], r.quality)
        if r.quality == 0 and r.value is not None:
            b[1] += 1
            b[2].append(r.value)
    return {k: (n, ng, min(v) if v else None, max(v) if v else None, wq)
            for k, (n, ng, v, wq) in out.items()}


def _got(store, pid, res):
    return {b["bucket_ms"]: (b["n"], b["n_good"], b["min"], b["max"], b["worst_quality"])
            for b in store.aggregates(pid, 0, 2**62, res)}


def _cycles(store, seconds, start=T0, step_ms=1000):
    for sec in range(seconds):
        store.write_cycle(Cycle(samples=[
            Sample(p.id, start + sec * step_ms, None if (sec + i) % 9 == 0 else float(sec % 17 + i),
                   Quality.COMM if (sec + i) % 9 == 0 else Quality.GOOD)
            for i, p in enumerate(POINTS)]))


def _crash(store):
    """The process dies: no ``close``, so no last checkpoint."""
    store._closed = True
    store.conn.close()


def test_the_writer_reads_exact_buckets_and_a_reader_lags_at_most_the_flush_interval(tmp_path):
    path = str(tmp_path / "f.db")
    w = Store(path)
    w.register_points(POINTS)
    pid = w._ids[POINTS[0].id]
    _cycles(w, 25)  # within one minute: no bucket closes
    assert _got(w, pid, "1m") == _naive(w, pid, 60_000)
    with Store(path, readonly=True) as r:
        (bucket,) = _got(r, pid, "1m").values()
        # the last checkpoint: 20 of the 25 cycles (every AGG_FLUSH_CYCLES = 10)
        assert AGG_FLUSH_CYCLES == 10 and bucket[0] == 20
    w.close()  # a clean close writes the checkpoint
    with Store(path, readonly=True) as r:
        assert _got(r, pid, "1m") == _naive(r, pid, 60_000)


def test_a_crash_between_checkpoints_is_replayed_on_the_next_open(tmp_path):
    path = str(tmp_path / "f.db")
    w = Store(path)
    w.register_points(POINTS)
    _cycles(w, 95)  # across a minute boundary (a checkpoint) and 5 cycles past the last
    _crash(w)
    with Store(path) as w2:  # replays, then writes a checkpoint
        for p in POINTS:
            pid = w2._ids[p.id]
            for res, ms in (("1m", 60_000), ("1h", 3_600_000)):
                assert _got(w2, pid, res) == _naive(w2, pid, ms), (p.id, res)
        _cycles(w2, 30, start=T0 + 95_000)  # and goes on counting from there
        _crash(w2)
    with Store(path, readonly=True) as r:
        pid = r._ids[POINTS[1].id]
        # a reader sees the last checkpoint; the replay happens at the next writer open
        assert sum(b[0] for b in _got(r, pid, "1m").values()) <= 125
    with Store(path) as w3:
        pid = w3._ids[POINTS[1].id]
        assert _got(w3, pid, "1m") == _naive(w3, pid, 60_000)
        assert sum(b[0] for b in _got(w3, pid, "1h").values()) == 125


def test_backfill_and_a_crash_right_after_it(tmp_path):
    path = str(tmp_path / "f.db")
    w = Store(path)
    w.register_points(POINTS)
    _cycles(w, 70, start=T0 + 3_600_000)
    _cycles(w, 3, start=T0)  # an hour earlier: merged into the tables, a checkpoint
    _cycles(w, 4, start=T0 + 3_670_000)
    _crash(w)
    with Store(path) as w2:
        for p in POINTS:
            pid = w2._ids[p.id]
            assert _got(w2, pid, "1m") == _naive(w2, pid, 60_000)
            assert _got(w2, pid, "1h") == _naive(w2, pid, 3_600_000)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 200),
                          st.one_of(st.none(), st.floats(-5, 5)), st.integers(0, 3)),
                max_size=40),
       st.integers(1, 6))
def test_vectorised_fold_equals_the_row_by_row_fold(rows, n_batches):
    """``OpenBuckets.fold`` (what the writer runs) against ``aggs.accumulate``, the
    sample-by-sample definition, over any split into cycles (repeats of a point in one
    cycle, backfill, buckets closing)."""
    buckets, ref = OpenBuckets(), {}
    merged_vec: dict = {}
    merged_ref: dict = {}
    step = max(1, len(rows) // n_batches)
    for i in range(0, len(rows), step):
        batch = sorted(((p, T0 + t * 20_000, v, q) for p, t, v, q in rows[i:i + step]),
                       key=lambda r: (r[1], r[0]))
        batch = [r for k, r in enumerate(batch) if k == 0 or batch[k - 1][:2] != r[:2]]
        changed, merges = accumulate(ref, batch)
        ref.update({p: tuple(a) for p, a in changed.items()})
        m2 = buckets.fold(np.array([r[0] for r in batch], np.int64),
                          np.array([r[1] for r in batch], np.int64),
                          np.array([np.nan if r[2] is None else r[2] for r in batch]),
                          np.array([r[3] for r in batch], np.int64))
        for res in merges:
            for key, v in merges[res].items():
                merged_ref.setdefault((res, key), []).append(v)
            for key, v in m2[res].items():
                merged_vec.setdefault((res, key), []).append(v)
    for pid in range(1, 5):
        a, b = buckets.row(pid), ref.get(pid, EMPTY_OPEN)
        for x, y in zip(a, b):
            assert x == y or (isinstance(x, float) and math.isclose(x, y, abs_tol=1e-9)), (a, b)
    assert merged_vec.keys() == merged_ref.keys()
    for key in merged_ref:
        for u, v in zip(merged_vec[key], merged_ref[key]):
            assert u[:2] == v[:2] and u[2:4] == v[2:4] and u[5] == v[5]
