"""Incremental 1-minute and 1-hour aggregates (docs/ARCHITECTURE.md "Storage").

The bucket a point is currently filling lives in the writer's memory (:class:`OpenBuckets`,
folded with numpy each cycle) and, as a checkpoint, in ``agg_open`` (one row per point,
~100 kB for 2 000 points; written when a bucket closes, on backfill and every few cycles, see
``Store._flush_open``); a bucket is merged into ``agg_1m``/``agg_1h`` when the point's next
bucket starts. :func:`accumulate` is the sample-by-sample definition the vectorised fold is
tested against. Writing the point-keyed aggregate tables once per bucket
instead of every cycle keeps the per-cycle write set to a few pages. Backfilled samples of
an older bucket are merged straight into the aggregate table. Counts cover every sample;
min, max and sum only good ones; ``worst_quality`` is the highest quality code seen.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
RESOLUTIONS = {"1m": ("agg_1m", "minute_ms", MINUTE_MS, 0), "1h": ("agg_1h", "hour_ms", HOUR_MS, 7)}
"""resolution -> (table, bucket column, bucket ms, offset of its 7 fields in an open row)."""

EMPTY_OPEN: tuple = (None, 0, 0, None, None, None, 0) * 2
OPEN_COLS = (
    "m_bucket, m_n, m_n_good, m_min, m_max, m_sum, m_worst, "
    "h_bucket, h_n, h_n_good, h_min, h_max, h_sum, h_worst"
)


def merge_sql(table: str, col: str) -> str:
    """Upsert adding a partial bucket ``(point_id, bucket, n, n_good, min, max, sum, worst)``."""
    return (
        f"INSERT INTO {table} (point_id, {col}, n, n_good, min, max, sum, worst_quality)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (point_id, " + col + ") DO UPDATE SET"
        " n = n + excluded.n, n_good = n_good + excluded.n_good,"
        " min = CASE WHEN min IS NULL THEN excluded.min WHEN excluded.min IS NULL THEN min"
        "  ELSE min(min, excluded.min) END,"
        " max = CASE WHEN max IS NULL THEN excluded.max WHEN excluded.max IS NULL THEN max"
        "  ELSE max(max, excluded.max) END,"
        " sum = CASE WHEN sum IS NULL THEN excluded.sum WHEN excluded.sum IS NULL THEN sum"
        "  ELSE sum + excluded.sum END,"
        " worst_quality = max(worst_quality, excluded.worst_quality)"
    )


def _add(acc: list, k: int, value: float | None, quality: int, good: bool) -> None:
    """Add one sample to the 7 fields of ``acc`` starting at ``k`` (bucket at acc[k])."""
    acc[k + 1] += 1
    if quality > acc[k + 6]:
        acc[k + 6] = quality
    if good:
        acc[k + 2] += 1
        acc[k + 3] = value if acc[k + 3] is None or value < acc[k + 3] else acc[k + 3]
        acc[k + 4] = value if acc[k + 4] is None or value > acc[k + 4] else acc[k + 4]
        acc[k + 5] = value if acc[k + 5] is None else acc[k + 5] + value


def accumulate(
    open_rows: dict[int, tuple],
    accepted: list[tuple[int, int, float | None, int]],
) -> tuple[dict[int, list], dict[str, dict[tuple[int, int], list]]]:
    """Fold accepted samples ``(point_id, ts_ms, value, quality)`` (time order) into buckets.

    Returns the changed open rows (new lists; ``open_rows`` is not modified, so a failed
    transaction leaves the in-memory state untouched) and, per resolution, the partial
    buckets to merge into the aggregate table (closed buckets and backfill).
    """
    changed: dict[int, list] = {}
    merges: dict[str, dict[tuple[int, int], list]] = {"1m": {}, "1h": {}}
    for pid, ts, value, quality in accepted:
        acc = changed.get(pid)
        if acc is None:
            acc = list(open_rows.get(pid, EMPTY_OPEN))
            changed[pid] = acc
        good = quality == 0 and value is not None
        for res, (_t, _c, size, k) in RESOLUTIONS.items():
            bucket = ts - ts % size
            current = acc[k]
            if current is None or bucket > current:
                if current is not None and acc[k + 1]:
                    merges[res][(pid, current)] = _merge_into(
                        merges[res].get((pid, current)), acc[k + 1 : k + 7]
                    )
                acc[k : k + 7] = [bucket, 0, 0, None, None, None, 0]
                _add(acc, k, value, quality, good)
            elif bucket == current:
                _add(acc, k, value, quality, good)
            else:
                part = [None, 0, 0, None, None, None, 0]
                _add(part, 0, value, quality, good)
                merges[res][(pid, bucket)] = _merge_into(merges[res].get((pid, bucket)), part[1:])
    return changed, merges


def _merge_into(old: list | None, new: list) -> list:
    """Combine two partial buckets ``[n, n_good, min, max, sum, worst]``."""
    if old is None:
        return list(new)
    n, ng, mn, mx, sm, wq = old
    n2, ng2, mn2, mx2, sm2, wq2 = new
    return [
        n + n2,
        ng + ng2,
        mn2 if mn is None else (mn if mn2 is None else min(mn, mn2)),
        mx2 if mx is None else (mx if mx2 is None else max(mx, mx2)),
        sm2 if sm is None else (sm if sm2 is None else sm + sm2),
        max(wq, wq2),
    ]


def bucket_dict(bucket_ms: int, n: int, n_good: int, mn, mx, sm, worst: int) -> dict:
    """Reader row of one bucket."""
    return {
        "bucket_ms": bucket_ms,
        "n": n,
        "n_good": n_good,
        "min": mn,
        "max": mx,
        "mean": (sm / n_good) if n_good and sm is not None else None,
        "sum": sm,
        "worst_quality": worst,
    }


# ---- the writer's open buckets as arrays (docs/ARCHITECTURE.md "Storage") -----------------

NO_BUCKET = np.iinfo(np.int64).min
"""Bucket start of a point that has no open bucket yet (``None`` in ``agg_open``)."""
_FIELDS = ("bucket", "n", "n_good", "min", "max", "sum", "worst")


def _none(x: float) -> float | None:
    return None if x != x else x  # NaN stands for SQL null (no good sample)


class OpenBuckets:
    """The open 1-minute and 1-hour bucket of every point, one numpy array per field.

    Indexed by point id. ``min``/``max``/``sum`` are NaN where ``agg_open`` holds null (no good
    sample yet); ``bucket`` is :data:`NO_BUCKET` where it holds null. ``fold`` works on a copy
    (:meth:`copy`), so a cycle that rolls back leaves the committed state untouched. ``dirty``
    marks points changed since ``agg_open`` was last written (see ``Store`` "agg_open").
    """

    def __init__(self, size: int = 0):
        size = max(int(size), 1)
        self.res: dict[str, dict[str, np.ndarray]] = {r: self._empty(size) for r in RESOLUTIONS}
        self.dirty = np.zeros(size, dtype=bool)

    @staticmethod
    def _empty(size: int) -> dict[str, np.ndarray]:
        return {"bucket": np.full(size, NO_BUCKET, np.int64), "n": np.zeros(size, np.int64),
                "n_good": np.zeros(size, np.int64), "min": np.full(size, np.nan),
                "max": np.full(size, np.nan), "sum": np.full(size, np.nan),
                "worst": np.zeros(size, np.int64)}

    @property
    def size(self) -> int:
        return self.dirty.shape[0]

    def grow(self, top: int) -> None:
        """Make room for point ids up to ``top``."""
        if top < self.size:
            return
        size = max(top + 1, 2 * self.size)
        for r, arrs in self.res.items():
            fresh = self._empty(size)
            for f, a in arrs.items():
                fresh[f][: a.shape[0]] = a
            self.res[r] = fresh
        d = np.zeros(size, dtype=bool)
        d[: self.dirty.shape[0]] = self.dirty
        self.dirty = d

    def copy(self) -> "OpenBuckets":
        out = OpenBuckets.__new__(OpenBuckets)
        out.res = {r: {f: a.copy() for f, a in arrs.items()} for r, arrs in self.res.items()}
        out.dirty = self.dirty.copy()
        return out

    @classmethod
    def from_rows(cls, rows: Iterable[tuple]) -> "OpenBuckets":
        """From ``agg_open`` rows ``(point_id, <OPEN_COLS>)``."""
        rows = list(rows)
        out = cls(max((r[0] for r in rows), default=0) + 1)
        for r in rows:
            out.set_row(r[0], r[1:])
        return out

    def set_row(self, pid: int, values: Sequence) -> None:
        """Set one point's 14 ``OPEN_COLS`` values (as stored)."""
        self.grow(pid)
        for res, (_t, _c, _s, k) in RESOLUTIONS.items():
            arrs = self.res[res]
            for j, f in enumerate(_FIELDS):
                v = values[k + j]
                if f == "bucket":
                    arrs[f][pid] = NO_BUCKET if v is None else v
                elif f in ("min", "max", "sum"):
                    arrs[f][pid] = np.nan if v is None else v
                else:
                    arrs[f][pid] = v or 0

    def row(self, pid: int) -> tuple:
        """One point's 14 ``OPEN_COLS`` values as ``agg_open`` stores them."""
        if pid >= self.size:
            return EMPTY_OPEN
        out: list = []
        for res in RESOLUTIONS:
            a = self.res[res]
            b = int(a["bucket"][pid])
            out += [None if b == NO_BUCKET else b, int(a["n"][pid]), int(a["n_good"][pid]),
                    _none(float(a["min"][pid])), _none(float(a["max"][pid])),
                    _none(float(a["sum"][pid])), int(a["worst"][pid])]
        return tuple(out)

    def rows(self, pids: np.ndarray) -> list[tuple]:
        """``agg_open`` rows ``(point_id, <OPEN_COLS>)`` of ``pids`` (for ``executemany``)."""
        cols: list[list] = [pids.tolist()]
        for res in RESOLUTIONS:
            a = self.res[res]
            for f in _FIELDS:
                vals = a[f][pids]
                null = vals == NO_BUCKET if f == "bucket" else (
                    np.isnan(vals) if f in ("min", "max", "sum") else None)
                if null is not None and null.any():
                    obj = vals.astype(object)
                    obj[null] = None
                    cols.append(obj.tolist())
                else:
                    cols.append(vals.tolist())
        return list(zip(*cols))

    def fold(self, pid: np.ndarray, ts: np.ndarray, value: np.ndarray, quality: np.ndarray
             ) -> dict[str, dict[tuple[int, int], list]]:
        """Fold accepted samples (time order; ``value`` NaN where null) into the buckets, in
        place; return, per resolution, the partial buckets to merge into the aggregate table
        (closed buckets and backfill), as :func:`accumulate` does sample by sample.

        Vectorised: each pass takes at most one sample per point (a point's k-th sample of
        the cycle goes in pass k), so a point's samples are still folded in time order and
        its sum adds them in the same order as the row-by-row fold.
        """
        merges: dict[str, dict[tuple[int, int], list]] = {r: {} for r in RESOLUTIONS}
        if pid.shape[0] == 0:
            return merges
        self.grow(int(pid.max()))
        good = (quality == 0) & ~np.isnan(value)
        for idx in _passes(pid):
            p = pid if idx is None else pid[idx]
            t, v, q, g = ((ts, value, quality, good) if idx is None else
                          (ts[idx], value[idx], quality[idx], good[idx]))
            self.dirty[p] = True
            for res, (_t, _c, size, _k) in RESOLUTIONS.items():
                self._fold_one(self.res[res], merges[res], size, p, t, v, q, g)
        return merges

    @staticmethod
    def _fold_one(a: dict, merges: dict, size: int, p, t, v, q, g) -> None:
        b = t - t % size
        cur = a["bucket"][p]
        has = cur != NO_BUCKET
        newer = ~has | (b > cur)
        older = has & (b < cur)
        close = newer & has & (a["n"][p] > 0)
        if close.any():
            cp = p[close]
            _add_merges(merges, cp, cur[close], a["n"][cp], a["n_good"][cp], a["min"][cp],
                        a["max"][cp], a["sum"][cp], a["worst"][cp])
        if older.any():
            og = g[older]
            ov = np.where(og, v[older], np.nan)
            _add_merges(merges, p[older], b[older], np.ones(og.shape[0], np.int64),
                        og.astype(np.int64), ov, ov, ov, q[older].astype(np.int64))
        if newer.any():
            np_ = p[newer]
            a["bucket"][np_] = b[newer]
            a["n"][np_] = 0
            a["n_good"][np_] = 0
            a["min"][np_] = np.nan
            a["max"][np_] = np.nan
            a["sum"][np_] = np.nan
            a["worst"][np_] = 0
        add = ~older
        if not add.all():
            p, v, q, g = p[add], v[add], q[add], g[add]
        a["n"][p] += 1
        a["worst"][p] = np.maximum(a["worst"][p], q)
        if g.all():
            gp, gv = p, v
        else:
            gp, gv = p[g], v[g]
        if gp.shape[0]:
            a["n_good"][gp] += 1
            a["min"][gp] = np.fmin(a["min"][gp], gv)
            a["max"][gp] = np.fmax(a["max"][gp], gv)
            s = a["sum"][gp]
            a["sum"][gp] = np.where(np.isnan(s), gv, s + gv)


def _passes(pid: np.ndarray) -> list:
    """Index arrays taking each point's k-th sample in pass k (``[None]``: one pass, all)."""
    order = np.argsort(pid, kind="stable")
    sp = pid[order]
    if sp.shape[0] < 2 or not (sp[1:] == sp[:-1]).any():
        return [None]
    start = np.r_[True, sp[1:] != sp[:-1]]
    first = np.maximum.accumulate(np.where(start, np.arange(sp.shape[0]), 0))
    occ = np.empty_like(order)
    occ[order] = np.arange(sp.shape[0]) - first
    return [np.flatnonzero(occ == k) for k in range(int(occ.max()) + 1)]


def _add_merges(merges: dict, pids, buckets, n, ng, mn, mx, sm, wq) -> None:
    for row in zip(pids.tolist(), buckets.tolist(), n.tolist(), ng.tolist(), mn.tolist(),
                   mx.tolist(), sm.tolist(), wq.tolist()):
        key = (row[0], row[1])
        part = [row[2], row[3], _none(row[4]), _none(row[5]), _none(row[6]), row[7]]
        merges[key] = _merge_into(merges.get(key), part)
