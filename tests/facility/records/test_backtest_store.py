"""`facility backtest --from --to` over the store: chunked columnar reads give exactly the
transitions of one run over every sample at once (bounded memory), on a real SQLite
store written through ``Store.write_cycle``."""

from __future__ import annotations

import numpy as np

from alarms.backtest import SampleArrays, run_backtest
from facility.config.loader import load_config
from facility.domain.model import PointInfo, Quality, Sample, iso_ms
from facility.records import backtest as bt
from facility.store import Cycle, Store
from tests.fixtures.config import device, facility_toml, zone

T0 = 1_700_000_000_000  # ms; 2023-11-14T22:13:20Z
DAY = 86_400_000


def _config(tmp_path):
    text = facility_toml(
        storage={"path": str(tmp_path / "fms.db")},
        zones=[zone("Z1", iso_class=7)],
        devices=[device("TH-1", 15041, zone="Z1", scan_s=2.0, timeout_s=1.0,
                        profile="th-transmitter"),
                 device("TH-2", 15042, zone="Z1", scan_s=1.0, timeout_s=0.5,
                        points=[{"name": "temperature", "table": "input", "address": 0,
                                 "type": "int16", "scale": 0.1, "unit": "C",
                                 "quantity": "temperature", "stale_after_s": 10.0}])],
        alarms={"defaults": {"temperature": {"action_high": {"limit": 25.0},
                                             "alert_high": {"limit": 24.0}}}})
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path)


def _fill(cfg, seconds: int, start: int = T0) -> int:
    """A random walk through the limits, gaps (stale), failed reads, one unknown point, and
    the UTC midnight in the middle (two partitions)."""
    rng = np.random.default_rng(7)
    rules, ids, _stale = bt.compiled(cfg)
    names = list(ids)
    with Store(cfg.db_path) as store:
        store.register_points([PointInfo(n, n.split(".")[0], "S", "Z1", "temperature", "C", 1)
                               for n in names + ["OTHER.x"]])
        level = {n: 22.0 for n in names}
        n_rows = 0
        for sec in range(seconds):
            samples = []
            for i, n in enumerate(names):
                if (sec // 15 + i) % 7 == 3:
                    continue  # a gap: stale
                level[n] += float(rng.normal(0, 0.8))
                level[n] = min(max(level[n], 18.0), 30.0)
                if rng.random() < 0.03:
                    samples.append(Sample(n, start + sec * 1000, None, Quality.COMM))
                else:
                    samples.append(Sample(n, start + sec * 1000, round(level[n], 1)))
            samples.append(Sample("OTHER.x", start + sec * 1000, 99.0))
            store.write_cycle(Cycle(samples=samples))
            n_rows += len(samples)
    return n_rows


def _whole(cfg, from_ms, to_ms):
    """The former path: every row through ``iter_samples`` into one set of arrays."""
    rules, ids, stale = bt.compiled(cfg)
    index = {pid: i for i, pid in enumerate(ids)}
    pts, tss, vals, quals = [], [], [], []
    with Store(cfg.db_path, readonly=True) as store:
        for row in store.iter_samples(from_ms, to_ms):
            if row.point in index:
                pts.append(index[row.point])
                tss.append(row.ts_ms / 1000.0)
                vals.append(np.nan if row.value is None else row.value)
                quals.append(row.quality)
    q, v = np.array(quals, dtype=np.int8), np.array(vals, dtype=np.float64)
    arrays = SampleArrays(tuple(ids), np.array(pts, dtype=np.int64), np.array(tss), v, q,
                          (q == 0) & np.isfinite(v), np.arange(len(pts), dtype=np.int64))
    used = {ids[i] for i in np.unique(arrays.point)}
    return run_backtest([r for r in rules if r[0] in used], arrays, stale_after_s=stale)


def test_chunked_store_backtest_equals_one_run_over_everything(tmp_path):
    cfg = _config(tmp_path)
    start = (T0 // DAY + 1) * DAY - 150_000  # 150 s before a UTC midnight
    _fill(cfg, 300, start)
    expect = _whole(cfg, start, start + 300_000)
    assert len(expect) > 20 and {o["limit"] for o in expect} >= {"stale", "action_high"}
    rules, ids, stale = bt.compiled(cfg)
    with Store(cfg.db_path, readonly=True) as store:
        for chunk in (7, 100, 333, 1_000_000):
            got = list(bt.run_from_store(store, rules, ids, stale, start, start + 300_000,
                                         chunk_rows=chunk))
            assert got == expect, chunk
        # a range that starts mid-way is the same as the former path over it
        mid = list(bt.run_from_store(store, rules, ids, stale, start + 100_000,
                                     start + 200_000, chunk_rows=50))
    assert mid == _whole(cfg, start + 100_000, start + 200_000)


def test_the_cli_reads_the_store(tmp_path):
    cfg = _config(tmp_path)
    _fill(cfg, 60)
    got = list(bt.backtest_command(cfg, samples_file=None, from_=iso_ms(T0),
                                   to=iso_ms(T0 + 60_000), alert_fraction=None, as_json=True))
    assert got == _whole(cfg, T0, T0 + 60_000) and got


def test_store_chunks_hold_at_most_chunk_rows_and_number_rows_across_chunks(tmp_path):
    cfg = _config(tmp_path)
    n_rows = _fill(cfg, 40)
    _rules, ids, _stale = bt.compiled(cfg)
    with Store(cfg.db_path, readonly=True) as store:
        raw = [len(c.ts_ms) for c in store.iter_sample_arrays(0, 2**62, chunk_rows=64)]
        chunks = list(bt.store_chunks(store, 0, 2**62, ids, chunk_rows=64))
    assert sum(raw) == n_rows and max(raw) <= 64 and len(raw) >= n_rows // 64
    rows = np.concatenate([c.row for c in chunks])
    assert (rows == np.arange(rows.shape[0])).all()
    assert rows.shape[0] == n_rows - 40  # OTHER.x is not configured: dropped
    ts = np.concatenate([c.ts for c in chunks])
    assert (np.diff(ts) >= 0).all()
