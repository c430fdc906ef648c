"""The SQLite store: points, partitioned raw samples, latest values, aggregates, alarms,
events, state and the audit trail, written one cycle per transaction (docs/ARCHITECTURE.md "Storage").

Crash safety across files. One ``BEGIN IMMEDIATE`` covers the main database and the
attached day partitions, so a failure before COMMIT (an ``extra`` callable raising, a
constraint violation) rolls everything back. In WAL mode SQLite commits each file
separately, so a crash *during* COMMIT (or a power loss with ``synchronous=NORMAL``) can keep
one file's part of a cycle and not the other's. Every partition therefore records in its
``cycles`` table the cycle number (the id of the cycle's ``cycle_digest`` audit row) and row
count it received, and ``partition_state`` in the main database records the last cycle per
day. On a writer open :meth:`Store.reconcile` compares the two for recent partitions and
appends an audit row naming any cycles one side lost, so the gap is explained rather than
silent; rows are never dropped.

First wins. A partition's ``samples`` is keyed ``(ts_ms, point_id)`` WITHOUT ROWID: time
major, so appending in time order touches only the rightmost pages (no per-point index), yet
the key rejects a repeated ``(point, ts)``. The writer keeps the newest stored ts per point
in memory (from ``latest``): a sample newer than that cannot be stored already and goes in
the batched append; one at or before it (repeat or backfill) is inserted alone with
``INSERT OR IGNORE`` and counted as stored only if a row was added.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import sqlite_utils

from facility.domain.model import PointInfo, Sample, now_ms
from facility.store import audit
from facility.store.aggs import OPEN_COLS, RESOLUTIONS, accumulate, merge_sql
from facility.store.digest import (
    DIGEST_VERSION,
    alarm_sha256,
    event_doc,
    events_sha256,
    sample_line,
)
from facility.store.errors import StoreError, StoreFull, StoreLocked, StoreMissing, StoreRefused
from facility.store.filemodes import restrict_db
from facility.store.partitions import AttachedPartitions, day_of
from facility.store.read import StoreReaders
from facility.store.retention import StoreRetention, config_changes
from facility.store.rows import ZONE_MODE_COLUMNS, insert_event, upsert_alarm
from facility.store.schema import CORE_MIGRATIONS, CORE_NAMESPACE, apply_migrations

__all__ = [
    "Cycle",
    "CycleResult",
    "Store",
    "StoreError",
    "StoreFull",
    "StoreLocked",
    "StoreMissing",
    "StoreRefused",
]

@dataclass
class Cycle:
    """Everything one service cycle writes, committed in one transaction.

    ``alarms`` are upserts keyed by ``id`` (only the given columns change); ``events``,
    ``audit`` (dicts with action, actor, subject, reason, details) and ``zone_modes`` rows
    are appended/upserted; ``engine_state``/``service_state`` map keys to JSON-able values;
    each ``extra`` callable runs on the connection inside the same transaction.
    """

    samples: list[Sample] = field(default_factory=list)
    alarms: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    audit: list[dict] = field(default_factory=list)
    engine_state: dict[str, Any] = field(default_factory=dict)
    service_state: dict[str, Any] = field(default_factory=dict)
    zone_modes: list[dict] = field(default_factory=list)
    extra: list[Callable[[sqlite3.Connection], None]] = field(default_factory=list)
    actor: str = "service"

@dataclass(frozen=True)
class CycleResult:
    """What a cycle stored: samples kept, repeats ignored, and the digest row's id."""

    stored: int
    duplicates: int
    digest_id: int | None
    event_ids: list[int]

BUSY_TIMEOUT_S = 10.0
"""How long a connection waits for another's lock before "database is locked". In WAL mode
readers never block the writer; what waits is a second writer (normally refused earlier by
the service lock), a migration on first open, or a reader whose open meets a checkpoint.
10 s is a choice: long enough for a checkpoint on a slow disk, short enough for a CLI user."""


def is_full(exc: BaseException) -> bool:
    """True for SQLite's SQLITE_FULL ("database or disk is full"), on any file of the cycle."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL if code is not None else "is full" in str(exc)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

class Store(StoreReaders, StoreRetention):
    """The facility database; the service is the only writer, everyone else opens readonly."""

    def __init__(self, path: str, *, readonly: bool = False, key: bytes | None = None,
                 timeout_s: float = BUSY_TIMEOUT_S, group: str | None = None):
        self.path = os.path.abspath(path)
        self.group = group  # [storage] group: who may read the files (filemodes.py)
        self.readonly = readonly
        self.key = key
        self.config_version: int | None = None
        self._closed = False
        if readonly:
            if not os.path.exists(self.path):
                raise StoreMissing(f"{self.path}: database does not exist; start the service with"
                                  " `facility run` first")
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=timeout_s,
                                   isolation_level=None, check_same_thread=False)
        else:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None,
                                   check_same_thread=False)
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._parts = AttachedPartitions(conn, self.path, group)
        self._ids: dict[str, int] = {}
        self._gmp: set[int] = set()
        self.unfinished: tuple[dict[str, list], int] | None = None
        """Partition rows of a cycle whose main part committed alone (``finish_partitions``)."""
        self._parts_written: tuple[dict[str, list], int] | None = None
        self._latest_ts: dict[int, int] = {}
        self._open: dict[int, tuple] = {}
        self._part_max: dict[str, int] = {}
        try:
            if not readonly:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                self._guard(apply_migrations, self.db, CORE_NAMESPACE, CORE_MIGRATIONS)
                restrict_db(self.path, group)  # -wal/-shm exist now (created lazily)
                self._load_caches()
                self.reconcile()
            else:
                self._check_schema()
            self._load_points()
            row = self._one("SELECT value FROM service_state WHERE key = 'config_version'")
            self.config_version = json.loads(row[0]) if row else None
        except BaseException:
            conn.close()
            raise

    @classmethod
    def open(cls, path: str, *, readonly: bool = False, key: bytes | None = None,
             group: str | None = None) -> "Store":
        """Same as ``Store(path, ...)``."""
        return cls(path, readonly=readonly, key=key, group=group)

    def close(self) -> None:
        """Detach partitions and close the connection (a second call does nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self.conn.in_transaction:
                self._parts.detach_all()
        finally:
            self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- plumbing -------------------------------------------------------------------------

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreLocked(f"{self.path}: database is locked by another writer ({exc})") from None
            if is_full(exc):
                raise StoreFull(f"{self.path}: {exc}; free space on its file system") from None
            raise StoreError(f"{self.path}: {exc}") from None

    def _one(self, sql: str, params: tuple = ()):
        return self.conn.execute(sql, params).fetchone()

    def _check_schema(self) -> None:
        try:
            self.conn.execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a facility database ({exc})") from None

    def _load_points(self) -> None:
        rows = self.conn.execute("SELECT id, point, gmp FROM points").fetchall()
        self._ids = {name: pid for pid, name, _g in rows}
        self._names = {pid: name for pid, name, _g in rows}
        self._gmp = {pid for pid, _n, g in rows if g}

    def _load_caches(self) -> None:
        self._latest_ts = dict(self.conn.execute("SELECT point_id, ts_ms FROM latest"))
        self._open = {
            r[0]: tuple(r[1:])
            for r in self.conn.execute(f"SELECT point_id, {OPEN_COLS} FROM agg_open")
        }
        # newest stored time per partition: the digest's membership boundary (digest.py)
        self._part_max = {d: m for d, m in self.conn.execute(
            "SELECT day, max_ts_ms FROM partition_state WHERE max_ts_ms IS NOT NULL")}

    def _writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only; only the service writes")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception)."""
        self._writable()
        self._guard(self.conn.execute, "BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self._guard(self.conn.execute, "COMMIT")

    def add_migrations(self, namespace: str, statements: list[str]) -> list[int]:
        """Apply a middle-floor module's numbered migrations (idempotent); return new numbers."""
        if namespace == CORE_NAMESPACE:
            raise StoreError(f"migration namespace {namespace!r} is reserved for the store")
        if self.readonly:
            return []
        return self._guard(apply_migrations, self.db, namespace, statements)

    def append_audit(self, entry: dict) -> dict:
        """Append one audit row in its own transaction (operator actions outside a cycle)."""
        with self.transaction() as conn:
            return self._audit(conn, entry)

    def _audit(self, conn: sqlite3.Connection, entry: dict) -> dict:
        entry = dict(entry)
        entry.setdefault("config_version", self.config_version)
        return audit.append(conn, entry, self.key)

    # ---- points and configuration -----------------------------------------------------------

    def register_points(self, points: list[PointInfo]) -> dict[str, int]:
        """Insert new points and refresh metadata of known ones; ids never change."""
        self._writable()
        rows = {p.id: {"point": p.id, "device": p.device, "site": p.site, "zone": p.zone,
                       "quantity": p.quantity, "unit": p.unit, "decimals": p.decimals,
                       "gmp": int(p.gmp), "kind": p.kind} for p in points}
        known = [r for name, r in rows.items() if name in self._ids]
        fresh = [r for name, r in rows.items() if name not in self._ids]
        with self.transaction():
            table = self.db["points"]
            # a known point keeps its id and created_ms; only its metadata follows the config
            table.upsert_all(known, pk="point")
            created = now_ms()
            table.insert_all([{**r, "created_ms": created} for r in fresh])
        self._load_points()
        return {p.id: self._ids[p.id] for p in points}

    def record_config(self, text: str, sha256: str, actor: str = "service") -> int:
        """Store a loaded configuration verbatim; return its version id (reused if identical).

        When the version differs from the current one, an audit row ``config_loaded`` lists
        the changed top-level sections and a diff summary against the previous version.
        """
        with self.transaction() as conn:
            versions = self.db["config_versions"]
            row = next(versions.rows_where("sha256 = ?", [sha256], select="id"), None)
            if row:
                version = row["id"]
            else:
                version = versions.insert({"sha256": sha256, "text": text, "loaded_ms": now_ms(),
                                           "actor": actor}).last_pk
            if version != self.config_version:
                prev_text = None
                if self.config_version is not None:
                    prev = conn.execute(
                        "SELECT text FROM config_versions WHERE id = ?", (self.config_version,)
                    ).fetchone()
                    prev_text = prev[0] if prev else None
                details = {"sha256": sha256, "previous_version": self.config_version,
                           **config_changes(prev_text, text)}
                self._audit(conn, {"action": "config_loaded", "actor": actor,
                                   "subject": f"config v{version}", "details": details,
                                   "config_version": version})
                self.db["service_state"].upsert(
                    {"key": "config_version", "value": _dumps(version), "updated_ms": now_ms()},
                    pk="key")
        self.config_version = version
        return version

    # ---- the cycle ------------------------------------------------------------------------

    def write_cycle(self, cycle: Cycle) -> CycleResult:
        """Write one cycle in one transaction; nothing of it remains if anything fails."""
        self._writable()
        self.finish_partitions()
        new, late, dups = self._classify(cycle.samples)
        days = {day_of(r[1]) for r in new} | {day_of(r[1]) for r in late}
        schemas = self._guard(self._parts.ensure, days)
        self._guard(self.conn.execute, "BEGIN IMMEDIATE")
        self._parts_written = None
        result = None
        try:
            try:
                result = self._write(cycle, new, late, dups, schemas)
            except sqlite3.OperationalError as exc:
                if not is_full(exc):
                    raise
                raise StoreFull(f"{self.path}: {exc}; free space on its file system") from None
            self._guard(self.conn.execute, "COMMIT")
        except BaseException:
            # A failed COMMIT (disk full, I/O error) leaves the transaction open: roll it
            # back too, so the next cycle can begin and the caches match the files again.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self._load_caches()
            if result is not None and result.digest_id is not None and self._committed(result):
                # In WAL mode SQLite commits the main database first, then each partition:
                # the main part of this cycle is durable and a partition's failed. Keep the
                # partition rows and write them before anything else (finish_partitions).
                self.unfinished = self._parts_written
                return result
            raise
        return result

    def _committed(self, result: CycleResult) -> bool:
        """After a failed COMMIT: did the main database keep the cycle (its digest row)?"""
        row = self._one("SELECT 1 FROM audit WHERE id = ? AND action = 'cycle_digest'",
                        (result.digest_id,))
        return row is not None

    def finish_partitions(self) -> None:
        """Write the partition part of a cycle whose main part committed alone (a split
        commit on a full disk, see docs/ARCHITECTURE.md "Commit protocol across files").

        Idempotent (``INSERT OR IGNORE``): rows a partition already kept stay as they are.
        Raises :class:`StoreFull` while there is still no space; nothing else is written
        until it succeeds, so cycles reach the partitions in order.
        """
        pending = self.unfinished
        if pending is None:
            return
        by_day, digest_id = pending
        schemas = self._guard(self._parts.ensure, set(by_day))
        self._guard(self.conn.execute, "BEGIN IMMEDIATE")
        try:
            for day, rows in by_day.items():
                self._guard(self.conn.executemany,
                            f"INSERT OR IGNORE INTO {schemas[day]}.samples VALUES (?, ?, ?, ?)", rows)
                tss = [r[1] for r in rows]
                self._guard(self.conn.execute,
                            f"INSERT OR IGNORE INTO {schemas[day]}.cycles VALUES (?, ?, ?, ?)",
                            (digest_id, len(rows), min(tss), max(tss)))
            self._guard(self.conn.execute, "COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.unfinished = None

    def _classify(self, samples: list[Sample]):
        """Split samples into certainly-new (newer than latest) and maybe-repeated ones."""
        new, late, seen, dups = [], [], set(), 0
        ids, latest = self._ids, self._latest_ts
        for s in samples:
            pid = ids.get(s.point)
            if pid is None:
                raise StoreError(f"sample of unknown point {s.point!r}: register_points first")
            ts, value, q = int(s.ts_ms), s.value, int(s.quality)
            if value is not None:
                value = float(value) + 0.0  # -0.0 reads back from SQLite as 0.0: store that
                if not math.isfinite(value):
                    value, q = None, max(q, 1)  # never stored as a number: null, quality bad
            if (pid, ts) in seen:
                dups += 1
                continue
            seen.add((pid, ts))
            last = latest.get(pid)
            (new if last is None or ts > last else late).append((pid, ts, value, q))
        new.sort(key=lambda r: (r[1], r[0]))
        return new, late, dups

    def _write(self, cycle: Cycle, new, late, dups, schemas) -> CycleResult:
        """The steps of one cycle, inside the caller's transaction, in this order.

        Samples come first because what they store (``accepted``) feeds latest, the
        aggregates and the digest; the digest comes last because it covers the cycle's
        samples and events and its id is the cycle number the partitions record. The
        in-memory caches move only after every step succeeded (a rollback reloads them).
        """
        conn = self.conn
        by_day, accepted, dups = self._write_samples(conn, new, late, dups, schemas)
        self._write_latest(conn, new)
        changed = self._write_aggregates(conn, accepted)
        self._write_alarms(conn, cycle.alarms)
        event_ids = self._write_events(conn, cycle.events)
        now = now_ms()
        self._write_state(conn, cycle, now)
        self._write_zone_modes(conn, cycle.zone_modes, now)
        self._run_extra(conn, cycle.extra)
        self._write_audit(conn, cycle.audit)
        digest_id = None
        if accepted or cycle.events or cycle.alarms:
            digest_id = self._digest(conn, cycle, accepted, dups, by_day, event_ids)["id"]
            self._record_partitions(conn, by_day, schemas, digest_id, now)
            self._parts_written = ({d: list(r) for d, r in by_day.items()}, digest_id)
        self._advance_caches(new, changed)
        return CycleResult(len(accepted), dups, digest_id, event_ids)

    # ---- the steps of a cycle ---------------------------------------------------------

    def _write_samples(self, conn, new, late, dups, schemas):
        """Samples into their day partitions; returns ``(by_day, accepted, dups)``.

        Certainly-new rows go in one ``executemany`` per day (the hot path, measured in
        ``benchmarks/bench_store.py``); a maybe-repeated row goes alone with ``INSERT OR
        IGNORE`` so that first wins and a repeat counts as a duplicate, not an error.
        ``accepted`` (time order) is what the aggregates and the digest cover.
        """
        by_day: dict[str, list] = {}
        for row in new:
            by_day.setdefault(day_of(row[1]), []).append(row)
        for day, rows in by_day.items():
            conn.executemany(f"INSERT INTO {schemas[day]}.samples VALUES (?, ?, ?, ?)", rows)
        accepted_late = []
        for row in late:
            cur = conn.execute(
                f"INSERT OR IGNORE INTO {schemas[day_of(row[1])]}.samples VALUES (?, ?, ?, ?)", row
            )
            if cur.rowcount == 1:
                accepted_late.append(row)
            else:
                dups += 1
        for row in accepted_late:
            by_day.setdefault(day_of(row[1]), []).append(row)
        accepted = sorted(new + accepted_late, key=lambda r: (r[1], r[0]))
        return by_day, accepted, dups

    def _write_latest(self, conn, new) -> None:
        """Upsert ``latest``: the newest sample per point among the certainly-new ones.

        Backfill never moves ``latest`` back. ``good_ts_ms``/``good_value`` keep the last
        good reading when this one is not (the TUI shows how old the last good value is).
        Raw ``executemany``: one row per point every cycle, the hot path.
        """
        now = now_ms()
        newest: dict[int, list] = {}
        for pid, ts, value, q in new:
            cur = newest.get(pid)
            if cur is None:
                newest[pid] = cur = [pid, ts, value, q, now, None, None]
            cur[1:4] = ts, value, q
            if q == 0 and value is not None:
                cur[5:7] = ts, value
        conn.executemany(
            "INSERT INTO latest (point_id, ts_ms, value, quality, updated_ms, good_ts_ms, good_value)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (point_id) DO UPDATE SET"
            " ts_ms = excluded.ts_ms, value = excluded.value, quality = excluded.quality,"
            " updated_ms = excluded.updated_ms,"
            " good_ts_ms = coalesce(excluded.good_ts_ms, latest.good_ts_ms),"
            " good_value = CASE WHEN excluded.good_ts_ms IS NULL THEN latest.good_value"
            "  ELSE excluded.good_value END",
            newest.values(),
        )

    def _write_aggregates(self, conn, accepted) -> dict[int, list]:
        """Fold accepted samples into the open buckets; merge closed buckets and backfill.

        Returns the changed open rows, which become the in-memory ``_open`` only after the
        transaction's other steps succeeded. Raw ``executemany``: per-cycle hot path.
        """
        changed, merges = accumulate(self._open, accepted)
        for res, parts in merges.items():
            table, col, _size, _k = RESOLUTIONS[res]
            if parts:
                conn.executemany(merge_sql(table, col), [(p, b, *v) for (p, b), v in parts.items()])
        conn.executemany(
            f"INSERT OR REPLACE INTO agg_open (point_id, {OPEN_COLS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(pid, *acc) for pid, acc in changed.items()],
        )
        return changed

    def _write_alarms(self, conn, alarms: list[dict]) -> None:
        """Upsert alarm rows before their events, so an event never names a missing alarm."""
        for alarm in alarms:
            upsert_alarm(conn, alarm)

    def _write_events(self, conn, events: list[dict]) -> list[int]:
        """Append event rows one by one: the caller gets each event's id (paging refers to it)."""
        return [insert_event(conn, ev, self.config_version) for ev in events]

    def _write_state(self, conn, cycle: Cycle, now: int) -> None:
        """Upsert ``engine_state`` and ``service_state`` with raw SQL.

        The service restores the engine from ``engine_state`` and the heartbeat in
        ``service_state`` tells readers the writer is alive. The heartbeat is written every
        cycle, so this is the hot path: sqlite-utils' ``upsert_all`` reads the table schema on
        each call and measured 17.7 x slower per row (``benchmarks/bench_store.py``).
        """
        for table, col in (("engine_state", "json"), ("service_state", "value")):
            items = getattr(cycle, table)
            if items:
                conn.executemany(
                    f"INSERT INTO {table} (key, {col}, updated_ms) VALUES (?, ?, ?) "
                    f"ON CONFLICT(key) DO UPDATE SET {col} = excluded.{col}, "
                    "updated_ms = excluded.updated_ms",
                    [(k, _dumps(v), now) for k, v in items.items()])

    def _write_zone_modes(self, conn, zone_modes: list[dict], now: int) -> None:
        """Replace each changed zone's mode row; a row with an unknown key is refused whole.

        ``since_ms`` defaults to the cycle's time, ``actor`` and ``reason`` to none.
        """
        for zm in zone_modes:
            unknown = set(zm) - set(ZONE_MODE_COLUMNS)
            if unknown:
                raise StoreError(f"zone_modes row: unknown keys {sorted(unknown)}")
        self.db["zone_modes"].insert_all(
            [{"since_ms": now, "actor": None, "reason": None, **zm} for zm in zone_modes],
            replace=True)

    def _run_extra(self, conn, extra: list[Callable[[sqlite3.Connection], None]]) -> None:
        """Other modules' writers (paging outbox) share the cycle's transaction.

        They run after the alarm and event rows, so what they read on ``conn`` includes
        this cycle's transitions; one raising rolls back the whole cycle.
        """
        for fn in extra:
            fn(conn)

    def _write_audit(self, conn, entries: list[dict]) -> None:
        """Append the cycle's audit rows (operator actions) to the chain before its digest."""
        for entry in entries:
            self._audit(conn, entry)

    def _record_partitions(self, conn, by_day, schemas, digest_id: int, now: int) -> None:
        """Record, per day, the cycle's row count on both sides of the file boundary.

        The partition's ``cycles`` and the main database's ``partition_state`` are what
        :meth:`reconcile` compares after a crash during COMMIT (see the module docstring).
        """
        for day, rows in by_day.items():
            tss = [r[1] for r in rows]
            conn.execute(
                f"INSERT INTO {schemas[day]}.cycles VALUES (?, ?, ?, ?)",
                (digest_id, len(rows), min(tss), max(tss)),
            )
            gmp = int(any(r[0] in self._gmp for r in rows))
            conn.execute(
                "INSERT INTO partition_state (day, rows, min_ts_ms, max_ts_ms, has_gmp,"
                " last_cycle, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (day) DO UPDATE SET rows = rows + excluded.rows,"
                " min_ts_ms = min(min_ts_ms, excluded.min_ts_ms),"
                " max_ts_ms = max(max_ts_ms, excluded.max_ts_ms),"
                " has_gmp = max(has_gmp, excluded.has_gmp),"
                " last_cycle = excluded.last_cycle, updated_ms = excluded.updated_ms",
                (day, len(rows), min(tss), max(tss), gmp, digest_id, now),
            )

    def _advance_caches(self, new, changed: dict[int, list]) -> None:
        """Move the in-memory newest-ts and open buckets to what this transaction wrote.

        Called last inside the transaction; if COMMIT then fails, ``write_cycle`` reloads
        both from the database.
        """
        for pid, ts, *_ in new:
            self._latest_ts[pid] = ts
        self._open.update({pid: tuple(acc) for pid, acc in changed.items()})

    def _digest(self, conn, cycle: Cycle, accepted, dups, by_day, event_ids) -> dict:
        """Append the cycle's ``cycle_digest`` audit row covering its samples, events and
        alarm rows (what each field covers: ``facility/store/digest.py``)."""
        names = self._names
        h = hashlib.sha256()
        for pid, ts, value, q in accepted:
            h.update(sample_line(ts, names[pid], value, q))
        events = []
        if event_ids:  # as stored (type affinity, defaults), so a verifier reads the same bytes
            cur = conn.execute("SELECT * FROM events WHERE id BETWEEN ? AND ? ORDER BY id",
                               (event_ids[0], event_ids[-1]))
            cols = [d[0] for d in cur.description]
            events = [event_doc(dict(zip(cols, r))) for r in cur]
        details = {
            "v": DIGEST_VERSION,
            "samples": len(accepted),
            "duplicates": dups,
            "samples_sha256": h.hexdigest(),
            "events": len(cycle.events),
            "events_sha256": events_sha256(events),
            "partitions": {d: len(r) for d, r in sorted(by_day.items())},
        }
        if event_ids:
            details["event_ids"] = [event_ids[0], event_ids[-1]]
        ranges, late = {}, {}
        for day, rows in sorted(by_day.items()):
            lo = self._part_max.get(day, -1)
            hi = max(lo, max(r[1] for r in rows))
            ranges[day] = [lo, hi]
            old = sorted([r[1], names[r[0]]] for r in rows if r[1] <= lo)
            if old:
                late[day] = old
            self._part_max[day] = hi  # reloaded by _load_caches if the cycle rolls back
        if ranges:
            details["ranges"] = ranges
        if late:
            details["late"] = late
        if cycle.alarms:
            ids = sorted({a["id"] for a in cycle.alarms})
            cur = conn.execute(f"SELECT * FROM alarms WHERE id IN ({', '.join('?' * len(ids))})",
                               ids)
            cols = [d[0] for d in cur.description]
            details["alarms"] = {r[0]: alarm_sha256(dict(zip(cols, r))) for r in cur}
        if accepted:
            details["ts_min_ms"] = accepted[0][1]
            details["ts_max_ms"] = accepted[-1][1]
        return self._audit(conn, {"action": "cycle_digest", "actor": cycle.actor,
                                  "details": details})
