"""The read API: every reader (TUI, records, CLI) reads through these and speaks no SQL.

Mixed into :class:`facility.store.database.Store`; works on a read-only open as well as on the
writer's connection. Every read is short, so WAL checkpoints are never starved:

* a single method is one statement, i.e. one implicit read transaction;
* :meth:`StoreReaders.snapshot` groups several reads into ONE read transaction, so a screen
  built from points, latest values, alarms and events shows one committed state (the TUI
  takes one per refresh and holds it only while it reads);
* what can be large streams in chunks, each chunk its own short transaction, by keyset
  paging: samples on the partitions' ``(ts_ms, point_id)`` key, audit rows and hazmat
  movements on their ids (:meth:`iter_samples`, :meth:`iter_audit`,
  :meth:`iter_hazmat_movements`).

SQLite errors met while reading become :class:`StoreError` (one line naming the database),
so readers need not import ``sqlite3``.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator, NamedTuple

import numpy as np

from facility.domain.vocab import SERVICE_ACTORS
from facility.store.aggs import RESOLUTIONS, bucket_dict
from facility.store.errors import StoreError
from facility.store.partitions import day_bounds, days_on_disk, open_partition_ro


class SampleRow(NamedTuple):
    """One stored raw sample as read back."""

    point_id: int
    point: str
    ts_ms: int
    value: float | None
    quality: int


class SampleArrays(NamedTuple):
    """A chunk of stored raw samples as columns, ordered by ts then point id."""

    point_id: np.ndarray  # int64
    ts_ms: np.ndarray  # int64
    value: np.ndarray  # float64, NaN where the stored value is null
    quality: np.ndarray  # int8 Quality codes


_SCALE = 1_000_000
"""A value travels as the integer ``k = round(value * 1e6)`` when ``k / 1e6 == value`` exactly
(checked by SQLite in IEEE double arithmetic, which numpy repeats bit for bit: a reading
rounded to its decimals always does); any other value one by one."""
_EXACT = f"(abs(value) < 1e12 AND round(value * {_SCALE}) / {_SCALE}.0 = value)"
_NULL_K = 4 * 10**18
"""The integer a null value travels as (an exact value's ``k`` is at most 1e18 in size)."""
_ODD_K = 5 * 10**18
"""The integer a value that is not exact as ``k`` travels as (then fetched by itself)."""
_VALUE_K = (f"CASE WHEN value IS NULL THEN {_NULL_K} WHEN {_EXACT}"
            f" THEN CAST(round(value * {_SCALE}) AS INTEGER) ELSE {_ODD_K} END")
_PAGE_ROWS = 100_000
"""Rows of one keyset page read as columns (one statement, one short read transaction)."""
_SLICE_ROWS = 90_000
"""Rows a time slice of a partition is cut to hold (from the density of its first rows), so
that it is read in one page; a denser slice takes more pages (:func:`_read_slice`)."""
_SLICE_MAX_ROWS = 4 * _PAGE_ROWS
"""Rows one slice task reads before it hands back and resumes (memory bound of a task)."""
_READERS = 2
"""Threads reading slices at once (SQLite releases the GIL while it runs a statement)."""


def _read_page(conn: sqlite3.Connection, page: str, args: list, base: int = 0,
               rows: str | None = None) -> SampleArrays:
    """One page of samples as columns (see ``StoreReaders.iter_sample_arrays``), inside the
    caller's read transaction (every statement of the page reads one snapshot).

    ``page`` is what the page is read ``FROM``: a keyset subquery ``(SELECT ... LIMIT ?)``,
    or ``samples WHERE ...`` for a whole time slice (``rows``: the same rows by key order,
    for the row-by-row fallback; by default ``SELECT * FROM page``).

    SQLite returns each column of the page as one comma-separated text of integers
    (``group_concat``, parsed by numpy): point id and quality as ``point_id * 256 +
    quality``, ts as ``ts_ms - base`` (``base``: at or before the page's first time, so the
    numbers are short), and the value as its :data:`_SCALE` integer, :data:`_NULL_K` for
    null or :data:`_ODD_K` for a value that is not exact that way (fetched one by one by a
    second statement over the same page and snapshot). Row order is checked to be the key
    order; if anything is not as expected, the page is read row by row instead.
    """
    n, qmin, qmax, pq, ts, vk = conn.execute(
        "SELECT count(*), min(quality), max(quality), group_concat(point_id * 256 + quality),"
        f" group_concat(ts_ms - ?), group_concat({_VALUE_K}) FROM {page}",
        [base, *args]).fetchone()
    if not n:
        empty = np.zeros(0, np.int64)
        return SampleArrays(empty, empty, np.zeros(0), np.zeros(0, np.int8))
    ok = 0 <= qmin and qmax < 128
    if ok:
        pq_ = np.fromstring(pq, sep=",", dtype=np.int64)
        ts_ = np.fromstring(ts, sep=",", dtype=np.int64)
        k = np.fromstring(vk, sep=",", dtype=np.int64)
        ok = pq_.shape[0] == ts_.shape[0] == k.shape[0] == n
    if ok:
        ts_ += base
        null, odd = k == _NULL_K, np.flatnonzero(k == _ODD_K)
        value = k.astype(np.float64)  # exact: each k is an integral double's value
        value /= _SCALE
        value[null] = np.nan
        if odd.shape[0]:
            rest = [r[0] for r in conn.execute(
                f"SELECT value FROM (SELECT value FROM {page}) WHERE value IS NOT NULL"
                f" AND NOT {_EXACT}", args)]
            ok = len(rest) == odd.shape[0]
            if ok:
                value[odd] = rest
    if ok:
        out = SampleArrays(pq_ >> 8, ts_, value, (pq_ & 255).astype(np.int8))
        dt, dp = np.diff(out.ts_ms), np.diff(out.point_id)
        if ((dt > 0) | ((dt == 0) & (dp > 0))).all():
            return out
    # not as expected: row by row instead
    got = conn.execute(rows or f"SELECT point_id, ts_ms, value, quality FROM {page}", args).fetchall()
    p, t, v, q = zip(*got)
    return SampleArrays(np.array(p, np.int64), np.array(t, np.int64),
                        np.array(v, np.float64), np.array(q, np.int8))


def _wanted(point_ids: list[int] | None) -> list[int] | None:
    return sorted(set(point_ids)) if point_ids is not None else None


def _pid_sql(wanted: list[int] | None) -> str:
    return f" AND point_id IN ({', '.join('?' * len(wanted))})" if wanted else ""


def _slice_pages(conn: sqlite3.Connection, day: str, a: int, b: int, wanted: list[int] | None,
                 step: int, read, last: tuple[int, int] | None = None) -> Iterator[tuple]:
    """Keyset pages of at most ``step`` samples with ``a <= ts_ms < b`` (after the key
    ``last`` when given) of one partition: ``(page, rows)`` each, ordered by the key."""
    pid_sql = _pid_sql(wanted)
    while True:
        if last is None:
            sql, args, base = "ts_ms >= ?", [a], a
        else:
            sql, args, base = "(ts_ms, point_id) > (?, ?)", list(last), last[0]
        query = (f"SELECT point_id, ts_ms, value, quality FROM samples WHERE {sql}"
                 f" AND ts_ms < ?{pid_sql} ORDER BY ts_ms, point_id LIMIT ?")
        try:
            page, n, last = read(conn, query, [*args, b, *(wanted or []), step], base)
        except sqlite3.DatabaseError as exc:
            if "no such table" in str(exc):
                return  # created by a cycle that rolled back
            raise StoreError(f"partition {day}: {exc}") from None
        if n:
            yield page, n
        if n < step:
            return


def _read_columns(conn, query, args, base):
    conn.execute("BEGIN")
    try:
        got = _read_page(conn, f"({query})", args, base, query)
    finally:
        conn.execute("COMMIT")
    n = got.ts_ms.shape[0]
    return got, n, (int(got.ts_ms[-1]), int(got.point_id[-1])) if n else None


def _sample_slices(path: str, from_ms: int, to_ms: int, wanted: list[int] | None,
                   step: int) -> Iterator[tuple[str, int, int]]:
    """``(day, a, b)`` time slices covering ``[from_ms, to_ms)``, in time order.

    Per partition: its first and last stored time in the range bound the slices (two index
    lookups); the time of its :data:`_SLICE_ROWS`-th row there sets their width. The last
    slice reaches the range's end, so rows a writer adds meanwhile are not cut off.
    """
    target = max(step, _SLICE_ROWS)
    pid_sql = _pid_sql(wanted)
    for day in days_on_disk(path):
        lo, hi = day_bounds(day)
        a, b = max(from_ms, lo), min(to_ms, hi)
        if a >= b:
            continue
        conn = open_partition_ro(path, day)
        if conn is None:
            continue
        try:
            where = f"ts_ms >= ? AND ts_ms < ?{pid_sql}"
            args = [a, b, *(wanted or [])]
            first = conn.execute(f"SELECT min(ts_ms) FROM samples WHERE {where}", args).fetchone()[0]
            if first is None:
                continue
            top = conn.execute(f"SELECT max(ts_ms) FROM samples WHERE {where}", args).fetchone()[0]
            at = conn.execute(f"SELECT ts_ms FROM samples WHERE {where} ORDER BY ts_ms, point_id"
                              " LIMIT 1 OFFSET ?", [*args, target]).fetchone()
        except sqlite3.DatabaseError as exc:
            if "no such table" in str(exc):
                continue
            raise StoreError(f"partition {day}: {exc}") from None
        finally:
            conn.close()
        width = b - first if at is None else max(1, at[0] - first)
        t = first
        while t < b:
            e = t + width if t + width <= top else b
            yield day, t, e
            t = e


def _read_slice(path: str, day: str, a: int, b: int, wanted: list[int] | None, step: int,
                last: tuple[int, int] | None) -> tuple[list[SampleArrays], tuple | None]:
    """Pages of one slice (in a reader thread, on its own connection): up to
    :data:`_SLICE_MAX_ROWS` rows and the key to resume after, or None when the slice is done."""
    conn = open_partition_ro(path, day)
    if conn is None:
        return [], None
    pages, held = [], 0
    try:
        if last is None:  # the whole slice in one statement when it is not too dense
            where = "ts_ms >= ? AND ts_ms < ?" + _pid_sql(wanted)
            args = [a, b, *(wanted or [])]
            try:
                conn.execute("BEGIN")
                try:
                    n = conn.execute(f"SELECT count(*) FROM samples WHERE {where}", args).fetchone()[0]
                    if n <= _SLICE_MAX_ROWS:
                        page = _read_page(conn, f"samples WHERE {where}", args, a,
                                          f"SELECT point_id, ts_ms, value, quality FROM samples"
                                          f" WHERE {where} ORDER BY ts_ms, point_id")
                        return [page] if n else [], None
                finally:
                    conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if "no such table" in str(exc):
                    return [], None  # created by a cycle that rolled back
                raise StoreError(f"partition {day}: {exc}") from None
        for page, n in _slice_pages(conn, day, a, b, wanted, step, _read_columns, last):
            pages.append(page)
            held += n
            if held >= _SLICE_MAX_ROWS:
                return pages, (int(page.ts_ms[-1]), int(page.point_id[-1]))
    finally:
        conn.close()
    return pages, None


def _read_slices(path: str, slices: Iterator[tuple[str, int, int]], wanted: list[int] | None,
                 step: int) -> Iterator[SampleArrays]:
    """The pages of ``slices``, in order, read by :data:`_READERS` threads a few slices
    ahead of the caller (at most ``_READERS + 1`` slice tasks outstanding)."""
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="sample-reader") as pool:
        def fill() -> None:
            while len(pending) <= _READERS:
                sl = next(slices, None)
                if sl is None:
                    return
                pending.append((sl, pool.submit(_read_slice, path, *sl, wanted, step, None)))
        try:
            fill()
            while pending:
                sl, fut = pending.popleft()
                pages, resume = fut.result()
                if resume is not None:  # a dense slice: its rest comes before the next ones
                    pending.appendleft((sl, pool.submit(_read_slice, path, *sl, wanted, step,
                                                        resume)))
                fill()
                yield from pages
        finally:
            for _sl, fut in pending:
                fut.cancel()


def _rechunk(pages: Iterator[SampleArrays], size: int) -> Iterator[SampleArrays]:
    """The rows of ``pages`` again, ``size`` rows a chunk (the last one fewer)."""
    parts: list[SampleArrays] = []
    held = 0
    for got in pages:
        parts.append(got)
        held += got.ts_ms.shape[0]
        while held >= size:
            whole = _concat_arrays(parts)
            yield SampleArrays(*(c[:size] for c in whole))
            rest = SampleArrays(*(c[size:] for c in whole))
            held = rest.ts_ms.shape[0]
            parts = [rest] if held else []
    if held:
        yield _concat_arrays(parts)


def _concat_arrays(parts: list[SampleArrays]) -> SampleArrays:
    if len(parts) == 1:
        return parts[0]
    return SampleArrays(*(np.concatenate(col) for col in zip(*parts)))


class LatestRow(NamedTuple):
    """A point's newest sample and newest good sample, as the ``latest`` table keeps them."""

    point_id: int
    ts_ms: int
    value: float | None
    quality: int
    good_ts_ms: int | None
    good_value: float | None
    updated_ms: int  # when the writer last changed the row (incremental readers key on it)


_LATEST_COLS = "point_id, ts_ms, value, quality, good_ts_ms, good_value, updated_ms"
_HAZMAT_MOVEMENT_COLS = ("id", "ts_ms", "container_id", "substance", "kind", "quantity", "unit",
                         "from_store", "from_compartment", "to_store", "to_compartment", "actor",
                         "reason", "audit_id")


def _rows(cur: sqlite3.Cursor) -> list[dict]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _json_cols(rows: list[dict], *cols: str) -> list[dict]:
    for r in rows:
        for c in cols:
            if isinstance(r.get(c), str):
                r[c] = json.loads(r[c])
    return rows


class StoreReaders:
    """Read methods shared by the writer and read-only opens."""

    conn: sqlite3.Connection
    path: str
    _names: dict[int, str]

    def _point_name(self, pid: int) -> str:
        name = self._names.get(pid)
        if name is None:
            self._load_points()  # a point registered after this reader opened
            name = self._names.get(pid, f"#{pid}")
        return name

    # ---- consistency ---------------------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator["StoreReaders"]:
        """One read transaction around several reads: all of them see the same commit.

        Hold it only while reading (a long-held read transaction keeps the WAL from being
        checkpointed). Inside a transaction that is already open (the writer's own), it adds
        nothing. Partitions are separate files: :meth:`iter_samples` is not part of it.
        """
        conn = self.conn
        if conn.in_transaction:
            yield self
            return
        try:
            conn.execute("BEGIN")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        try:
            yield self
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        finally:
            if conn.in_transaction:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error:
                    pass  # nothing was written; closing the connection ends it

    def points_signature(self) -> tuple[int, int | None]:
        """``(count, max id)`` of the points: changes whenever a point is registered."""
        n, top = self.conn.execute("SELECT count(*), max(id) FROM points").fetchone()
        return int(n), top

    def points(self) -> list[dict]:
        """Every registered point with its metadata, by id."""
        return _rows(self.conn.execute("SELECT * FROM points ORDER BY id"))

    def latest(self) -> list[dict]:
        """One row per point: newest sample (ts, value, quality) and newest good one."""
        return _rows(self.conn.execute(
            "SELECT p.point, l.* FROM latest l JOIN points p ON p.id = l.point_id ORDER BY p.point"))

    def latest_rows(self, updated_after_ms: int | None = None) -> list[LatestRow]:
        """Every ``latest`` row, or only those the writer changed after ``updated_after_ms``.

        The incremental form lets a reader at 2 000 points and 1 Hz touch only what moved.
        """
        if updated_after_ms is None:
            cur = self.conn.execute(f"SELECT {_LATEST_COLS} FROM latest")
        else:
            cur = self.conn.execute(f"SELECT {_LATEST_COLS} FROM latest WHERE updated_ms > ?",
                                    (updated_after_ms,))
        return [LatestRow(*r) for r in cur.fetchall()]

    def partitions(self) -> list[str]:
        """Days (``YYYY-MM-DD``, UTC) that have a partition on disk, oldest first."""
        return days_on_disk(self.path)

    def partition_info(self, day: str) -> dict | None:
        """Rows, time range, GMP flag and last cycle of a day (from the main database)."""
        rows = _rows(self.conn.execute("SELECT * FROM partition_state WHERE day = ?", (day,)))
        return rows[0] if rows else None

    def iter_samples(
        self, from_ms: int, to_ms: int, point_ids: list[int] | None = None, chunk: int = 10_000
    ) -> Iterator[SampleRow]:
        """Raw samples in ``[from_ms, to_ms)``, ordered by ts then point id, across partitions.

        Each chunk of ``chunk`` rows is one short read transaction on a read-only connection.
        """
        for rows in self.iter_sample_chunks(from_ms, to_ms, point_ids, chunk):
            for pid, ts, value, q in rows:
                yield SampleRow(pid, self._point_name(pid), ts, value, q)

    def _sample_pages(self, from_ms: int, to_ms: int, point_ids: list[int] | None,
                      step: int, read) -> Iterator:
        """Keyset pages of at most ``step`` samples in ``[from_ms, to_ms)``, ordered by ts
        then point id, partition by partition; each page is one short read transaction.
        ``read(conn, sql, args, base)`` fetches a page as ``(page, rows, last (ts, point)
        key)``; ``base`` is at or before the page's first time."""
        wanted = _wanted(point_ids)
        if wanted == []:
            return
        for day in days_on_disk(self.path):
            lo, hi = day_bounds(day)
            if hi <= from_ms or lo >= to_ms:
                continue
            conn = open_partition_ro(self.path, day)
            if conn is None:
                continue
            try:
                for page, _n in _slice_pages(conn, day, max(from_ms, lo), min(to_ms, hi),
                                             wanted, step, read):
                    yield page
            finally:
                conn.close()

    def iter_sample_chunks(
        self, from_ms: int, to_ms: int, point_ids: list[int] | None = None, chunk: int = 10_000
    ) -> Iterator[list[tuple[int, int, float | None, int]]]:
        """:meth:`iter_samples` without a Python object per row: one list of
        ``(point_id, ts_ms, value, quality)`` tuples per chunk (one read transaction each)."""
        def read(conn, query, args, _base):
            rows = conn.execute(query, args).fetchall()
            return rows, len(rows), (rows[-1][1], rows[-1][0]) if rows else None
        yield from self._sample_pages(from_ms, to_ms, point_ids, chunk, read)

    def iter_sample_arrays(
        self, from_ms: int, to_ms: int, chunk_rows: int = 1_000_000,
        point_ids: list[int] | None = None,
    ) -> Iterator[SampleArrays]:
        """:meth:`iter_samples` as numpy columns, ``chunk_rows`` rows a chunk (the last one
        fewer).

        Memory is bounded by the chunk whatever the range (a backtest of a day reads 50 M
        rows). Each partition is cut into time slices of about :data:`_SLICE_ROWS` rows (the
        density of its first rows decides the width); :data:`_READERS` threads read the
        next slices while the caller works on this chunk, each keyset page of a slice one
        short read transaction whose columns come back as one text each, parsed by numpy
        (``_read_page``: exact, in key order), not as a Python tuple per row. Slices are
        handed on in time order, so the chunks are in ``(ts, point id)`` order.
        """
        wanted = _wanted(point_ids)
        if wanted == []:
            return
        step = max(1, min(int(chunk_rows), _PAGE_ROWS))
        slices = _sample_slices(self.path, from_ms, to_ms, wanted, step)
        yield from _rechunk(_read_slices(self.path, slices, wanted, step), int(chunk_rows))

    def aggregates(
        self, point_id: int, from_ms: int, to_ms: int, resolution: str = "1m"
    ) -> list[dict]:
        """Buckets of one point in ``[from_ms, to_ms)``: n, n_good, min, max, mean, worst quality.

        Includes the bucket still being filled (from ``agg_open``).
        """
        if resolution not in RESOLUTIONS:
            raise StoreError(f"resolution={resolution!r}: use one of {', '.join(RESOLUTIONS)}")
        table, col, _size, k = RESOLUTIONS[resolution]
        out = [
            bucket_dict(*r)
            for r in self.conn.execute(
                f"SELECT {col}, n, n_good, min, max, sum, worst_quality FROM {table}"
                f" WHERE point_id = ? AND {col} >= ? AND {col} < ? ORDER BY {col}",
                (point_id, from_ms, to_ms),
            )
        ]
        row = self._open_bucket(point_id, resolution)
        if row and row[0] is not None and from_ms <= row[0] < to_ms and row[1]:
            merged = next((b for b in out if b["bucket_ms"] == row[0]), None)
            if merged is None:
                out.append(bucket_dict(*row))
                out.sort(key=lambda b: b["bucket_ms"])
            else:  # a closed part and the open part of one bucket (after a restart)
                from facility.store.aggs import _merge_into

                m = _merge_into([merged["n"], merged["n_good"], merged["min"], merged["max"],
                                 merged["sum"], merged["worst_quality"]], list(row[1:]))
                merged.update(bucket_dict(row[0], *m))
        return out

    def _open_bucket(self, point_id: int, resolution: str) -> tuple | None:
        """``(bucket, n, n_good, min, max, sum, worst)`` of a point's open bucket as stored
        (the writer answers from memory: ``Store._open_bucket``)."""
        p = "m" if RESOLUTIONS[resolution][3] == 0 else "h"
        return self.conn.execute(
            f"SELECT {p}_bucket, {p}_n, {p}_n_good, {p}_min, {p}_max, {p}_sum, {p}_worst"
            " FROM agg_open WHERE point_id = ?", (point_id,)).fetchone()

    def alarms(self, active_only: bool = False) -> list[dict]:
        """Alarm rows (one per ``<subject>:<kind>``); ``active_only``: active or unacknowledged."""
        where = " WHERE active = 1 OR acked = 0" if active_only else ""
        return _json_cols(_rows(self.conn.execute(f"SELECT * FROM alarms{where} ORDER BY id")),
                          "details")

    def events(
        self, from_ms: int | None = None, to_ms: int | None = None, alarm_id: str | None = None
    ) -> list[dict]:
        """Events in ``[from_ms, to_ms)`` (by event time), optionally of one alarm, by id."""
        where, args = [], []
        if from_ms is not None:
            where.append("ts_ms >= ?")
            args.append(from_ms)
        if to_ms is not None:
            where.append("ts_ms < ?")
            args.append(to_ms)
        if alarm_id is not None:
            where.append("alarm_id = ?")
            args.append(alarm_id)
        sql = "SELECT * FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        return _json_cols(_rows(self.conn.execute(sql + " ORDER BY id", args)), "details")

    def events_detected(self, from_ms: int, to_ms: int, lookback_ms: int) -> list[dict]:
        """Events *detected* in ``[from_ms, to_ms)`` (``detected_ms``, else ``ts_ms``), by id.

        A raise's ``ts_ms`` is its onset, which precedes detection by the rule's delays (or
        by a backfill's age); ``lookback_ms`` bounds how much earlier an onset may lie, so
        the read stays on the ``ts_ms`` index instead of scanning all history.
        """
        return _json_cols(_rows(self.conn.execute(
            "SELECT * FROM events WHERE ts_ms >= ? AND ts_ms < ?"
            " AND coalesce(detected_ms, ts_ms) >= ? AND coalesce(detected_ms, ts_ms) < ?"
            " ORDER BY id", (from_ms - lookback_ms, to_ms, from_ms, to_ms))), "details")

    def raised_at(self, at_ms: int) -> list[dict]:
        """Each alarm whose condition was active at ``at_ms``: its last raise event before then.

        "Last" is the newest raise or clear event detected before ``at_ms``; an alarm whose
        newest one is a raise had not cleared yet. By event id.
        """
        return _json_cols(_rows(self.conn.execute(
            "SELECT e.* FROM events e JOIN (SELECT max(id) AS id FROM events"
            " WHERE event IN ('raise', 'clear') AND ts_ms < ? AND coalesce(detected_ms, ts_ms) < ?"
            " GROUP BY alarm_id) last ON e.id = last.id WHERE e.event = 'raise' ORDER BY e.id",
            (at_ms, at_ms))), "details")

    def recent_events(self, limit: int = 100) -> list[dict]:
        """The newest ``limit`` events, oldest first (the TUI's event history)."""
        rows = _rows(self.conn.execute("SELECT * FROM events ORDER BY id DESC LIMIT ?",
                                       (int(limit),)))
        return _json_cols(rows[::-1], "details")

    def zone_events(self, zone: str, limit: int = 200) -> list[dict]:
        """The newest ``limit`` events of the alarms of one zone, oldest first (the TUI's
        per-room alarm history); read through the ``events_alarm`` index, one alarm at a time."""
        rows = _rows(self.conn.execute(
            "SELECT * FROM events WHERE alarm_id IN (SELECT id FROM alarms WHERE zone = ?)"
            " ORDER BY id DESC LIMIT ?", (zone, int(limit))))
        return _json_cols(rows[::-1], "details")

    def audit_rows(
        self,
        from_id: int | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
        action: str | None = None,
        limit: int | None = None,
    ) -> list[dict]:
        """Audit rows by id, filtered by id, time range ``[from_ms, to_ms)`` and action."""
        where, args = [], []
        for cond, val in (("id >= ?", from_id), ("ts_ms >= ?", from_ms), ("ts_ms < ?", to_ms),
                          ("action = ?", action)):
            if val is not None:
                where.append(cond)
                args.append(val)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id" + (f" LIMIT {int(limit)}" if limit is not None else "")
        return _json_cols(_rows(self.conn.execute(sql, args)), "details")

    def ack_name(self, alarm_id: str, occurrence: int) -> str | None:
        """The name recorded with the latest acknowledgement of one occurrence, if any."""
        row = self.conn.execute(
            "SELECT actor_name FROM events WHERE alarm_id = ? AND occurrence = ? AND event = 'ack'"
            " ORDER BY id DESC LIMIT 1", (alarm_id, occurrence)).fetchone()
        return row[0] if row else None

    def operator_actions(self, from_ms: int, to_ms: int) -> list[dict]:
        """What people did in ``[from_ms, to_ms)``, oldest first: every audit row not written
        under one of the service's own names (``SERVICE_ACTORS``), refused attempts included,
        with the name and roles recorded at the time (``None`` for rows from before names
        were recorded). Keys: ts_ms, action, login, name, roles, shared, subject, reason,
        details, audit_id."""
        out = []
        # filtered in SQL: a month at 1 Hz holds ~2.6 M cycle digests, which as Python rows
        # took ~21 ms and 2.6 MiB per 1 000 (measured), for nothing
        service = sorted(SERVICE_ACTORS)
        rows = _json_cols(_rows(self.conn.execute(
            "SELECT * FROM audit WHERE ts_ms >= ? AND ts_ms < ? AND action != 'cycle_digest'"
            f" AND actor NOT IN ({', '.join('?' * len(service))}) ORDER BY id",
            (from_ms, to_ms, *service))), "details")
        for r in rows:
            d = r.get("details") if isinstance(r.get("details"), dict) else {}
            out.append({"ts_ms": r["ts_ms"], "action": r["action"], "login": r["actor"],
                        "name": d.get("name"), "roles": d.get("roles"),
                        "shared": bool(d.get("shared")), "subject": r.get("subject"),
                        "reason": r.get("reason"), "details": r.get("details"),
                        "audit_id": r["id"]})
        return out

    def audit_span(self, from_ms: int, to_ms: int) -> tuple[int, int] | None:
        """``(first id, last id)`` of the audit rows written in ``[from_ms, to_ms)``, or None."""
        lo, hi = self.conn.execute("SELECT min(id), max(id) FROM audit WHERE ts_ms >= ? AND"
                                   " ts_ms < ?", (from_ms, to_ms)).fetchone()
        return None if lo is None else (int(lo), int(hi))

    def iter_audit(self, from_id: int, to_id: int, chunk: int = 10_000) -> Iterator[dict]:
        """Audit rows with ``from_id <= id <= to_id`` by id, ``chunk`` rows per read."""
        last = from_id - 1
        while True:
            rows = _json_cols(_rows(self.conn.execute(
                "SELECT * FROM audit WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (last, to_id, chunk))), "details")
            yield from rows
            if len(rows) < chunk:
                return
            last = rows[-1]["id"]

    def audit_head(self) -> dict | None:
        """``{"id", "hash"}`` of the newest audit row (the chain head an export witnesses)."""
        row = self.conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        return {"id": row[0], "hash": row[1]} if row else None

    def verify_audit(self, key: bytes | None = None):
        """Check the live audit chain (``facility audit verify``); see ``audit.verify_chain``."""
        from facility.store.audit import verify_chain

        return verify_chain(self.conn, key)

    def engine_state(self) -> dict[str, Any]:
        """Saved engine state, key -> value."""
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, json FROM engine_state")}

    def service_state(self) -> dict[str, Any]:
        """Service state (heartbeat, pid, config_version, ...), key -> value."""
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM service_state")}

    def heartbeat(self) -> dict | None:
        """The service's last heartbeat ``{"ts_ms", "pid"}`` (written every cycle), or None.

        None too when the stored value cannot be read: a reader shows "no heartbeat" rather
        than failing.
        """
        row = self.conn.execute("SELECT value FROM service_state WHERE key = 'heartbeat'").fetchone()
        if row is None:
            return None
        try:
            hb = json.loads(row[0])
            if isinstance(hb, dict):
                return {"ts_ms": int(hb["ts_ms"]), "pid": hb.get("pid")}
            return {"ts_ms": int(hb), "pid": None}  # an early form: the bare time
        except (ValueError, KeyError, TypeError):
            return None

    def zone_modes(self) -> dict[str, dict]:
        """Current mode of each zone that has one stored."""
        return {r["zone"]: r for r in _rows(self.conn.execute("SELECT * FROM zone_modes"))}

    def config_versions(self) -> list[dict]:
        """Every stored configuration version (id, sha256, loaded_ms, actor), oldest first."""
        return _rows(self.conn.execute(
            "SELECT id, sha256, loaded_ms, actor FROM config_versions ORDER BY loaded_ms, id"))

    def archived_days(self) -> set[str]:
        """Days (``YYYY-MM-DD``) with a verified archive, which retention may purge."""
        return {r[0] for r in self.conn.execute(
            "SELECT day FROM archives WHERE verified_ms IS NOT NULL")}

    def campus_node(self) -> dict[str, dict]:
        """A mirror's record of its edge node (table ``campus_node`` from central's
        migrations): key -> ``{"value", "updated_ms"}``, the value JSON-decoded (its text when
        it is not JSON); ``{}`` when central has not created the table."""
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                             " AND name = 'campus_node'").fetchone() is None:
            return {}
        out = {}
        for key, value, updated in self.conn.execute(
                "SELECT key, value, updated_ms FROM campus_node"):
            try:
                decoded = json.loads(value) if value is not None else None
            except (TypeError, ValueError):
                decoded = value
            out[key] = {"value": decoded, "updated_ms": updated}
        return out

    # ---- the dangerous-goods ledger (tables from hazmat's migrations) ---------------------

    def has_hazmat_ledger(self) -> bool:
        """Whether the ledger's tables exist (the service creates them on its first start)."""
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                 " AND name = 'hazmat_movements'").fetchone() is not None

    def hazmat_totals(self) -> list[dict] | None:
        """Stock per store, substance and unit (quantity, containers); None: no ledger yet."""
        if not self.has_hazmat_ledger():
            return None
        return _rows(self.conn.execute(
            "SELECT store, substance, unit, sum(quantity) AS quantity, count(*) AS containers"
            " FROM hazmat_containers WHERE quantity > 0 GROUP BY store, substance, unit"
            " ORDER BY store, substance"))

    def iter_hazmat_movements(self, from_ms: int, to_ms: int,
                              chunk: int = 10_000) -> Iterator[dict]:
        """Ledger movements in ``[from_ms, to_ms)`` by id, ``chunk`` rows per read (none
        without a ledger)."""
        if not self.has_hazmat_ledger():
            return
        cols = ", ".join(_HAZMAT_MOVEMENT_COLS)
        last = 0
        while True:
            rows = [dict(zip(_HAZMAT_MOVEMENT_COLS, r)) for r in self.conn.execute(
                f"SELECT {cols} FROM hazmat_movements WHERE id > ? AND ts_ms >= ? AND ts_ms < ?"
                " ORDER BY id LIMIT ?", (last, from_ms, to_ms, chunk))]
            yield from rows
            if len(rows) < chunk:
                return
            last = rows[-1]["id"]

    # ---- the paging outbox (tables from alarms.outbox's migrations) ------------------------

    def pages(self, limit: int | None = None, state: str | None = None,
              from_ms: int | None = None) -> list[dict] | None:
        """Pages in the paging outbox, newest first: one row per message per channel, sent,
        pending (queued or retrying) or failed, with the paged occurrence's alarm and
        priority (None for a message of no occurrence: a flood summary, a chatter notice).

        Keys: id, created_ms, sent_ms, channel, action, state, attempts, next_try_ms,
        last_error, message (the payload as sent), alarm_id, occurrence, priority,
        occurrence_status. None: no outbox yet (the service creates it on its first start).
        """
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                             " AND name = 'page_outbox'").fetchone() is None:
            return None
        where, args = [], []
        for cond, val in (("o.state = ?", state), ("o.created_ms >= ?", from_ms)):
            if val is not None:
                where.append(cond)
                args.append(val)
        sql = ("SELECT o.id, o.created_ms, o.sent_ms, o.channel, o.action, o.state, o.attempts,"
               " o.next_try_ms, o.last_error, o.payload AS message, c.alarm_id, c.occurrence,"
               " c.priority, c.status AS occurrence_status FROM page_outbox o"
               " LEFT JOIN page_occurrence c ON c.dedup_key = o.dedup_key"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY o.id DESC"
               + (f" LIMIT {int(limit)}" if limit is not None else ""))
        return _json_cols(_rows(self.conn.execute(sql, args)), "message")

    def config_text(self, version: int) -> str | None:
        """The verbatim configuration of a version."""
        row = self.conn.execute("SELECT text FROM config_versions WHERE id = ?", (version,)).fetchone()
        return row[0] if row else None

    # ---- committed cycles, for readers that forward them (facility uplink) ------------------

    def cycle_head(self) -> int:
        """Audit id of the newest committed cycle digest (0 before the first cycle)."""
        row = self.conn.execute(
            "SELECT id FROM audit WHERE action = 'cycle_digest' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return int(row[0]) if row else 0

    def previous_cycle(self, digest_id: int) -> int:
        """Audit id of the cycle digest before ``digest_id`` (0 for the first)."""
        row = self.conn.execute(
            "SELECT id FROM audit WHERE action = 'cycle_digest' AND id < ? ORDER BY id DESC"
            " LIMIT 1", (int(digest_id),)).fetchone()
        return int(row[0]) if row else 0

    def cycle_events(self, details: dict) -> list[dict]:
        """The event rows a cycle digest covers (its ``event_ids``), by id, as stored
        (``details`` the stored JSON text, so a copy hashes to the same digest)."""
        ids = details.get("event_ids")
        if not ids:
            return []
        return _rows(self.conn.execute("SELECT * FROM events WHERE id BETWEEN ? AND ?"
                                       " ORDER BY id", (int(ids[0]), int(ids[-1]))))

    def cycle_digests(self, after_id: int = 0, limit: int = 1000,
                      upto_id: int | None = None) -> list[tuple[int, int, dict]]:
        """Committed cycles after audit id ``after_id`` (up to ``upto_id``), oldest first:
        ``(digest audit id, ts_ms, details)``. A cycle is visible only once committed, so a
        reader that walks these never sees half a cycle (docs/ARCHITECTURE.md "Audit trail")."""
        rows = self.conn.execute(
            "SELECT id, ts_ms, details FROM audit WHERE action = 'cycle_digest' AND id > ?"
            " AND id <= ? ORDER BY id LIMIT ?",
            (int(after_id), 2**62 if upto_id is None else int(upto_id), int(limit))).fetchall()
        out = []
        for rid, ts, details in rows:
            try:
                doc = json.loads(details) if details else {}
            except ValueError:
                doc = {}
            out.append((rid, ts, doc if isinstance(doc, dict) else {}))
        return out

    def cycle_samples(self, details: dict) -> list[SampleRow]:
        """The samples a version-2 cycle digest covers (its ``ranges`` and ``late`` rows, per
        partition), in (ts, point) order. A sample that a later cycle stored late into this
        cycle's time range is returned here too; readers key samples by (point, ts)."""
        out: list[SampleRow] = []
        ranges = details.get("ranges") or {}
        late = details.get("late") or {}
        ids = None
        for day in sorted(details.get("partitions") or {}):
            conn = open_partition_ro(self.path, day)
            if conn is None:
                continue
            try:
                if day in ranges:
                    lo, hi = ranges[day]
                    for pid, ts, value, q in conn.execute(
                            "SELECT point_id, ts_ms, value, quality FROM samples WHERE ts_ms > ?"
                            " AND ts_ms <= ? ORDER BY ts_ms, point_id", (int(lo), int(hi))):
                        out.append(SampleRow(pid, self._point_name(pid), ts, value, q))
                if late.get(day):
                    if ids is None:
                        self._point_name(0)  # points registered since this reader opened
                        ids = {name: pid for pid, name in self._names.items()}
                    for ts, point in late[day]:
                        pid = ids.get(point)
                        row = None if pid is None else conn.execute(
                            "SELECT value, quality FROM samples WHERE ts_ms = ? AND point_id = ?",
                            (int(ts), pid)).fetchone()
                        if row is not None:
                            out.append(SampleRow(pid, point, int(ts), row[0], row[1]))
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise StoreError(f"partition {day}: {exc}") from None
            finally:
                conn.close()
        out.sort(key=lambda r: (r.ts_ms, r.point))
        return out
