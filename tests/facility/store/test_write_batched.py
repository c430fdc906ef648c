"""The batched write path of ``Store.write_cycle`` against straightforward references.

Multi-row inserts (``insert_rows``), ``latest`` as one upsert from the partition's rows, and
the digest's sample lines joined column by column must store and hash exactly what a
row-by-row reference computed here stores and hashes, on a real SQLite store, for cycles
the fast paths take (one time, one sample per point, sizes that are not multiples of a
statement's rows) and the ones they leave (several samples per point, backfill, repeats,
midnight, null and non-finite values, bad quality)."""

from __future__ import annotations

import hashlib
import json
import math
import random
import sqlite3
import struct

import pytest

from facility.domain.model import PointInfo, Quality, Sample
from facility.store import Cycle, Store
from facility.store.database import insert_rows
from facility.store.digest import sample_line, sample_lines, sample_lines_columns
from facility.store.digest_check import check_digests
from facility.store.partitions import day_of, open_partition_ro

T0 = 1_740_808_800_000  # 2025-03-01T06:00:00Z
DAY = 86_400_000
NAMES = [f"D{i // 20:02d}.p{i:03d}" for i in range(237)]  # 237: 2 x 100 + 3 x 10 + 7


def _bits(v):
    return None if v is None else struct.pack("<d", v)


def _value(rng: random.Random, i: int, sec: int):
    pick = (i * 7 + sec) % 23
    if pick == 0:
        return None
    if pick == 1:
        return float("nan")  # stored as null with quality at least bad
    if pick == 2:
        return -0.0  # stored as 0.0
    if pick == 3:
        return 0.1 + 0.2
    if pick == 4:
        return float(sec)  # integral: SQLite keeps it in a small integer form
    return round(rng.uniform(-50, 150), 2)


def _cycles(rng: random.Random) -> list[list[Sample]]:
    """Cycles for the fast paths and every path around them."""
    out = []
    for sec in range(12):  # one time per cycle, one sample per point, in key order
        out.append([Sample(n, T0 + sec * 1000, _value(rng, i, sec),
                           Quality.GOOD if (i + sec) % 9 else Quality.BAD)
                    for i, n in enumerate(NAMES)])
    shuffled = list(out[-1])  # a cycle not in key order
    out.append([Sample(s.point, s.ts_ms + 1000, s.value, s.quality) for s in shuffled[::-1]])
    # two samples per point in one cycle, a repeat of a (point, ts) and a backfill
    t = T0 + 20_000
    multi = [Sample(n, t + k * 250, _value(rng, i, k), Quality.GOOD)
             for k in range(2) for i, n in enumerate(NAMES[:50])]
    multi.append(Sample(NAMES[3], t, 1.5, Quality.GOOD))  # repeat within the cycle
    out.append(multi)
    out.append([Sample(NAMES[5], T0 + 3000, 9.75, Quality.GOOD),  # repeat of a stored row
                Sample(NAMES[6], T0 + 3500, 8.25, Quality.GOOD)])  # backfill, new
    # across midnight, then a point that appears only now
    mid = (T0 // DAY + 1) * DAY
    out.append([Sample(n, mid - 500 + (i % 2) * 1000, _value(rng, i, 40), Quality.GOOD)
                for i, n in enumerate(NAMES[:30])])
    out.append([Sample(n, mid + 2000, 1.0 * i, Quality.GOOD) for i, n in enumerate(NAMES)])
    return out


def _reference(cycles: list[list[Sample]]):
    """Row by row: what each cycle stores (first wins), its sample lines, and ``latest``."""
    stored: dict[tuple[str, int], tuple] = {}
    latest: dict[str, list] = {}
    hashes = []
    for samples in cycles:
        accepted = []
        for s in samples:
            v = s.value
            q = int(s.quality)
            if v is not None and not math.isfinite(v):
                v, q = None, max(q, 1)
            elif v is not None:
                v = v + 0.0
            key = (s.point, s.ts_ms)
            if key in stored:
                continue
            stored[key] = (v, q)
            accepted.append((s.ts_ms, s.point, v, q))
        accepted.sort(key=lambda r: (r[0], NAMES.index(r[1])))
        hashes.append(hashlib.sha256(b"".join(sample_line(*r) for r in accepted)).hexdigest())
        for ts, point, v, q in accepted:
            row = latest.get(point)
            if row is None or ts > row[0]:
                good = row[3:5] if row else [None, None]
                if q == 0 and v is not None:
                    good = [ts, v]
                latest[point] = [ts, v, q, *good]
    return stored, hashes, latest


@pytest.fixture()
def written(tmp_path):
    rng = random.Random(7)
    cycles = _cycles(rng)
    path = str(tmp_path / "f.db")
    with Store(path) as s:
        s.register_points([PointInfo(n, n.split(".")[0], "S", "Z", "q", "u") for n in NAMES])
        results = [s.write_cycle(Cycle(samples=c)) for c in cycles]
    return path, cycles, results


def test_stored_rows_digests_and_latest_equal_the_row_by_row_reference(written):
    path, cycles, results = written
    stored, hashes, latest = _reference(cycles)
    with Store(path, readonly=True) as s:
        got = {(r.point, r.ts_ms): (_bits(r.value), r.quality) for r in s.iter_samples(0, 2**62)}
        assert got == {k: (_bits(v), q) for k, (v, q) in stored.items()}
        digests = [json.loads(d) for (d,) in s.conn.execute(
            "SELECT details FROM audit WHERE action = 'cycle_digest' ORDER BY id")]
        assert [d["samples_sha256"] for d in digests] == hashes
        assert [r.stored for r in results] == [d["samples"] for d in digests]
        assert results[-4].duplicates == 1 and results[-3].duplicates == 1
        rows = {r["point"]: [r["ts_ms"], _bits(r["value"]), r["quality"], r["good_ts_ms"],
                             _bits(r["good_value"])] for r in s.latest()}
        assert rows == {p: [t, _bits(v), q, gt, _bits(gv)] for p, (t, v, q, gt, gv)
                        in latest.items()}
        check = check_digests(s.conn, s.path)
    assert check.ok, check.findings
    assert check.cycles == len(cycles) and check.samples == len(stored)


def test_aggregates_equal_a_recomputation_from_the_stored_rows(written):
    path, _cycles_, _results = written
    with Store(path, readonly=True) as s:
        for name in (NAMES[0], NAMES[3], NAMES[49]):
            pid = s._ids[name]
            rows = [r for r in s.iter_samples(0, 2**62, [pid])]
            buckets = {}
            for r in rows:
                b = buckets.setdefault(r.ts_ms - r.ts_ms % 60_000, [0, 0, None, None, 0])
                b[0] += 1
                b[4] = max(b[4], r.quality)
                if r.quality == 0 and r.value is not None:
                    b[1] += 1
                    b[2] = r.value if b[2] is None else min(b[2], r.value)
                    b[3] = r.value if b[3] is None else max(b[3], r.value)
            got = {a["bucket_ms"]: [a["n"], a["n_good"], a["min"], a["max"], a["worst_quality"]]
                   for a in s.aggregates(pid, 0, 2**62, "1m")}
            assert got == buckets, name


@pytest.mark.parametrize("n", [0, 1, 9, 10, 11, 99, 100, 101, 237, 2000])
def test_insert_rows_stores_what_executemany_stores_in_the_same_order(tmp_path, n):
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    for t in ("a", "b"):
        conn.execute(f"CREATE TABLE {t} (k INTEGER, x REAL, s TEXT, z INTEGER)")
    rows = [(i, None if i % 7 == 0 else i / 3, f"r{i}", -i) for i in range(n)]
    conn.executemany("INSERT INTO a VALUES (?, ?, ?, ?)", rows)
    insert_rows(conn, "INSERT INTO b VALUES", 4, rows)
    a = conn.execute("SELECT rowid, * FROM a ORDER BY rowid").fetchall()
    assert conn.execute("SELECT rowid, * FROM b ORDER BY rowid").fetchall() == a
    assert len(a) == n


def test_insert_rows_fails_whole_on_a_key_violation(tmp_path):
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v REAL)")
    conn.execute("BEGIN")
    with pytest.raises(sqlite3.IntegrityError):
        insert_rows(conn, "INSERT INTO t VALUES", 2, [(i, 1.0) for i in range(150)] + [(3, 2.0)])
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_sample_lines_columns_are_the_per_row_lines_with_a_shared_cache():
    rng = random.Random(3)
    names = [None] + [f"P{i}" for i in range(1, 40)]
    cache: dict[float, str] = {}
    for trial in range(30):
        one_time = trial % 2 == 0
        rows = [(rng.randrange(1, 40), T0 if one_time else T0 + rng.randrange(3) * 1000,
                 rng.choice([None, 0.0, -0.0, 1e300, 0.1 + 0.2, 5.0, math.pi, -1e-7,
                             round(rng.uniform(-9, 9), 1)]),
                 rng.choice([0, 1, 2, 300])) for _ in range(rng.randrange(0, 60))]
        expect = b"".join(sample_line(t, names[p], v, q) for p, t, v, q in rows)
        assert sample_lines(rows, names, cache) == expect
        assert sample_lines(rows, names) == expect
        if rows:
            p, t, v, q = (list(c) for c in zip(*rows))
            assert sample_lines_columns(p, t, v, q, names, cache) == expect
    assert -0.0 not in cache or cache.get(0.0) is None  # zero never cached


def test_latest_keeps_the_last_good_value_through_the_upsert(tmp_path):
    with Store(str(tmp_path / "f.db")) as s:
        s.register_points([PointInfo(n, "D", "S", "Z", "q", "u") for n in NAMES[:3]])
        s.write_cycle(Cycle(samples=[Sample(n, T0, 5.0, Quality.GOOD) for n in NAMES[:3]]))
        s.write_cycle(Cycle(samples=[Sample(n, T0 + 1000, None, Quality.COMM)
                                     for n in NAMES[:3]]))
        rows = {r["point"]: r for r in s.latest()}
        conn = open_partition_ro(s.path, day_of(T0))
        try:
            assert conn.execute("SELECT count(*) FROM samples").fetchone() == (6,)
        finally:
            conn.close()
    for n in NAMES[:3]:
        r = rows[n]
        assert (r["ts_ms"], r["value"], r["quality"]) == (T0 + 1000, None, int(Quality.COMM))
        assert (r["good_ts_ms"], r["good_value"]) == (T0, 5.0)
