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
from contextlib import contextmanager
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

    def config_text(self, version: int) -> str | None:
        """The verbatim configuration of a version."""
        row = self.conn.execute("SELECT text FROM config_versions WHERE id = ?", (version,)).fetchone()
        return row[0] if row else None
