"""Readers of the store: short read transactions only, so WAL checkpoints are never starved.

Mixed into :class:`facility.store.database.Store`; works on a read-only open as well as on the
writer's connection. Sample history streams from the day partitions in chunks, each chunk
its own short transaction (keyset paging on the ``(ts_ms, point_id)`` key).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterator, NamedTuple

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

    def points(self) -> list[dict]:
        """Every registered point with its metadata, by id."""
        return _rows(self.conn.execute("SELECT * FROM points ORDER BY id"))

    def latest(self) -> list[dict]:
        """One row per point: newest sample (ts, value, quality) and newest good one."""
        return _rows(self.conn.execute(
            "SELECT p.point, l.* FROM latest l JOIN points p ON p.id = l.point_id ORDER BY p.point"))

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
        wanted = sorted(set(point_ids)) if point_ids is not None else None
        if wanted == []:
            return
        pid_sql = ""
        if wanted is not None:
            pid_sql = f" AND point_id IN ({', '.join('?' * len(wanted))})"
        for day in days_on_disk(self.path):
            lo, hi = day_bounds(day)
            if hi <= from_ms or lo >= to_ms:
                continue
            conn = open_partition_ro(self.path, day)
            if conn is None:
                continue
            try:
                last: tuple[int, int] | None = None
                while True:
                    if last is None:
                        sql = "ts_ms >= ?"
                        args: list[Any] = [max(from_ms, lo)]
                    else:
                        sql = "(ts_ms, point_id) > (?, ?)"
                        args = list(last)
                    try:
                        rows = conn.execute(
                            f"SELECT point_id, ts_ms, value, quality FROM samples WHERE {sql}"
                            f" AND ts_ms < ?{pid_sql} ORDER BY ts_ms, point_id LIMIT ?",
                            [*args, min(to_ms, hi), *(wanted or []), chunk],
                        ).fetchall()
                    except sqlite3.OperationalError as exc:
                        if "no such table" in str(exc):
                            break  # created by a cycle that rolled back
                        raise StoreError(f"partition {day}: {exc}") from None
                    for pid, ts, value, q in rows:
                        yield SampleRow(pid, self._point_name(pid), ts, value, q)
                    if len(rows) < chunk:
                        break
                    last = (rows[-1][1], rows[-1][0])
            finally:
                conn.close()

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
        p = "m" if k == 0 else "h"
        row = self.conn.execute(
            f"SELECT {p}_bucket, {p}_n, {p}_n_good, {p}_min, {p}_max, {p}_sum, {p}_worst"
            " FROM agg_open WHERE point_id = ?", (point_id,)).fetchone()
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

    def zone_modes(self) -> dict[str, dict]:
        """Current mode of each zone that has one stored."""
        return {r["zone"]: r for r in _rows(self.conn.execute("SELECT * FROM zone_modes"))}

    def config_text(self, version: int) -> str | None:
        """The verbatim configuration of a version."""
        row = self.conn.execute("SELECT text FROM config_versions WHERE id = ?", (version,)).fetchone()
        return row[0] if row else None
