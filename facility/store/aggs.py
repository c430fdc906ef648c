"""Incremental 1-minute and 1-hour aggregates (docs/ARCHITECTURE.md "Storage").

The bucket a point is currently filling lives in ``agg_open`` (one row per point, ~100 kB
for 2 000 points), rewritten each cycle; a bucket is merged into ``agg_1m``/``agg_1h`` when
the point's next bucket starts. Writing the point-keyed aggregate tables once per bucket
instead of every cycle keeps the per-cycle write set to a few pages. Backfilled samples of
an older bucket are merged straight into the aggregate table. Counts cover every sample;
min, max and sum only good ones; ``worst_quality`` is the highest quality code seen.
"""

from __future__ import annotations

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
