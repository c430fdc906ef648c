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
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from typing import Any, Callable, Iterator

import numpy as np
import sqlite_utils

from facility.domain.model import PointInfo, Sample, now_ms
from facility.store import audit
from facility.store.aggs import OPEN_COLS, RESOLUTIONS, OpenBuckets, merge_sql
from facility.store.digest import (
    DIGEST_VERSION,
    alarm_sha256,
    event_doc,
    events_sha256,
    sample_lines_columns,
)
from facility.store.errors import StoreError, StoreFull, StoreLocked, StoreMissing, StoreRefused
from facility.store.filemodes import restrict_db
from facility.store.partitions import DAY_MS, AttachedPartitions, day_of, open_partition_ro
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

NO_TS = np.iinfo(np.int64).min
"""Newest stored time of a point with no sample yet."""
AGG_FLUSH_CYCLES = 10
"""Cycles between ``agg_open`` checkpoints when no bucket closes (``Store._flush_open``): a
read-only reader's open bucket lags the writer by at most this many cycles (10 s at 1 Hz; the
TUI's trends refresh every few seconds). A choice, not a limit: fewer rows written per cycle
against a longer replay after a crash (at most this many cycles of rows)."""
AGG_CHECKPOINT_KEY = "agg_open_through"
"""``service_state`` key: ``{day: newest ts_ms}`` of the partitions when ``agg_open`` was last
written; the rows after it are what a writer open replays (``Store._replay_open``)."""

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


ROWS_PER_INSERT = (100, 10, 1)
"""Rows per statement of :func:`insert_rows`, largest first (a cycle's 2 000 samples: 20
statements of 100 rows)."""


@lru_cache(maxsize=64)
def _values_sql(head: str, width: int, k: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return f"{head} " + ", ".join([one] * k)


def insert_rows(conn: sqlite3.Connection, head: str, width: int, rows: list[tuple]) -> None:
    """``head`` (``INSERT INTO t VALUES``) with each row of ``width`` values: the same rows in
    the same order as ``executemany`` of a one-row statement, but :data:`ROWS_PER_INSERT`
    rows a statement (multi-row ``VALUES``). Python's sqlite3 steps and resets a statement
    once per row; for a cycle's samples that, not SQLite's b-tree, was most of the cost
    (measured about 2 x cheaper at 2 000 rows, ``benchmarks/bench_store.py``)."""
    n, at = len(rows), 0
    for k in ROWS_PER_INSERT:
        m = (n - at) // k
        if not m:
            continue
        sql, size = _values_sql(head, width, k), k * width
        flat = list(chain.from_iterable(rows[at:at + m * k]))
        if m == 1:
            conn.execute(sql, flat)
        else:
            conn.executemany(sql, [flat[i:i + size] for i in range(0, m * size, size)])
        at += m * k

def latest_upsert_sql(schema: str) -> str:
    """``latest`` from the rows of partition ``schema`` newer than a time: an upsert from a
    SELECT, parameters ``(updated_ms, after_ts_ms)``; ``good_*`` as :meth:`Store._write_latest`
    keeps them (the last good reading survives a bad one)."""
    return ("INSERT INTO latest (point_id, ts_ms, value, quality, updated_ms, good_ts_ms,"
            " good_value) SELECT point_id, ts_ms, value, quality, ?,"
            " CASE WHEN quality = 0 AND value IS NOT NULL THEN ts_ms END,"
            " CASE WHEN quality = 0 AND value IS NOT NULL THEN value END"
            f" FROM {schema}.samples WHERE ts_ms > ?"
            " ON CONFLICT (point_id) DO UPDATE SET"
            " ts_ms = excluded.ts_ms, value = excluded.value, quality = excluded.quality,"
            " updated_ms = excluded.updated_ms,"
            " good_ts_ms = coalesce(excluded.good_ts_ms, latest.good_ts_ms),"
            " good_value = CASE WHEN excluded.good_ts_ms IS NULL THEN latest.good_value"
            "  ELSE excluded.good_value END")


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
        self._latest_ts = np.full(1, NO_TS, dtype=np.int64)  # newest stored ts by point id
        self._open = OpenBuckets()
        self._since_flush = 0
        self._reprs: dict[float, str] = {}  # digest.sample_lines' cache
        self._part_max: dict[str, int] = {}
        try:
            if not readonly:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                self._guard(apply_migrations, self.db, CORE_NAMESPACE, CORE_MIGRATIONS)
                restrict_db(self.path, group)  # -wal/-shm exist now (created lazily)
                self._load_caches()
                self.reconcile()
                self._guard(self._replay_open)
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
                if not self.readonly and self._open.dirty.any():
                    try:
                        with self.transaction() as conn:
                            self._flush_open(conn, self._open)
                    except StoreError:
                        pass  # the rows are stored; the next writer open replays them
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
        self._name_list: list[str | None] = [None] * (max(self._names, default=0) + 1)
        for pid, name in self._names.items():
            self._name_list[pid] = name
        self._gmp_mask = np.zeros(max((r[0] for r in rows), default=0) + 1, dtype=bool)
        self._gmp_mask[list(self._gmp)] = True

    def _load_caches(self, open_buckets: bool = True) -> None:
        rows = self.conn.execute("SELECT point_id, ts_ms FROM latest").fetchall()
        top = max([r[0] for r in rows], default=0)
        self._latest_ts = np.full(top + 1, NO_TS, dtype=np.int64)
        if rows:
            pid, ts = zip(*rows)
            self._latest_ts[list(pid)] = ts
        if open_buckets:
            self._open = OpenBuckets.from_rows(
                self.conn.execute(f"SELECT point_id, {OPEN_COLS} FROM agg_open"))
        # newest stored time per partition: the digest's membership boundary (digest.py)
        self._part_max = {d: m for d, m in self.conn.execute(
            "SELECT day, max_ts_ms FROM partition_state WHERE max_ts_ms IS NOT NULL")}

    # ---- agg_open: written at checkpoints, replayed after a crash -------------------------

    def _open_bucket(self, point_id: int, resolution: str) -> tuple | None:
        """The writer's open buckets are exact in memory (``agg_open`` may lag; see below)."""
        if self.readonly:
            return super()._open_bucket(point_id, resolution)
        k = RESOLUTIONS[resolution][3]
        return self._open.row(point_id)[k:k + 7]

    def _flush_open(self, conn, buckets: OpenBuckets) -> None:
        """Write the changed ``agg_open`` rows and the checkpoint they stand for.

        ``agg_open`` is a checkpoint, not a per-cycle table (docs/ARCHITECTURE.md "Storage"):
        rewriting every point's open row every cycle cost as much as the samples themselves
        (``benchmarks/bench_store.py``). A cycle writes it when a bucket closes, when it
        merged backfill, when it stored rows at or before a partition's newest time, and
        every :attr:`AGG_FLUSH_CYCLES` cycles; between checkpoints every stored row of a
        partition is newer than ``agg_open_through[day]`` (the partition's newest time at the
        checkpoint), so :meth:`_replay_open` rebuilds the open buckets from those rows.
        """
        pids = np.flatnonzero(buckets.dirty)
        if pids.shape[0]:
            insert_rows(conn, f"INSERT OR REPLACE INTO agg_open (point_id, {OPEN_COLS}) VALUES",
                        15, buckets.rows(pids))
        conn.execute(
            "INSERT INTO service_state (key, value, updated_ms) VALUES (?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
            " updated_ms = excluded.updated_ms",
            (AGG_CHECKPOINT_KEY, _dumps(self._part_max), now_ms()))
        buckets.dirty[:] = False

    def _replay_open(self) -> int:
        """On a writer open: fold the rows stored after the last ``agg_open`` checkpoint
        into the open buckets (a crash between checkpoints), then write a checkpoint.
        Returns the number of rows replayed."""
        row = self._one("SELECT value FROM service_state WHERE key = ?", (AGG_CHECKPOINT_KEY,))
        n = 0
        if row is not None:
            through = json.loads(row[0])
            for day, top in sorted(self._part_max.items()):
                lo = through.get(day, -1)
                if top <= lo:
                    continue
                conn = open_partition_ro(self.path, day)
                if conn is None:
                    continue
                try:
                    got = conn.execute("SELECT point_id, ts_ms, value, quality FROM samples"
                                       " WHERE ts_ms > ? ORDER BY ts_ms, point_id", (lo,)).fetchall()
                except sqlite3.OperationalError as exc:
                    if "no such table" not in str(exc):  # created by a cycle that rolled back
                        raise StoreError(f"partition {day}: {exc}") from None
                    got = []
                finally:
                    conn.close()
                if got:
                    p, t, v, q = zip(*got)
                    # no merges can come out: a cycle that closed or backfilled a bucket
                    # wrote a checkpoint, so these rows only extend the open buckets
                    self._open.fold(np.array(p, np.int64), np.array(t, np.int64),
                                    np.array(v, np.float64), np.array(q, np.int64))
                    n += len(got)
            if not n:
                return 0
        with self.transaction() as conn:  # first open of an older database, or a replay
            self._flush_open(conn, self._open)
        return n

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
        days = set(new.by_day) | {day_of(r[1]) for r in late}
        schemas = self._guard(self._parts.ensure, days)
        self._guard(self.conn.execute, "BEGIN IMMEDIATE")
        self._parts_written = None
        result = None
        before = self._open
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
            after = self._open
            self._load_caches(open_buckets=False)  # agg_open may lag: memory is the truth
            self._open = before
            if result is not None and result.digest_id is not None and self._committed(result):
                # In WAL mode SQLite commits the main database first, then each partition:
                # the main part of this cycle is durable and a partition's failed. Keep the
                # partition rows and write them before anything else (finish_partitions).
                self._open = after
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

    def _classify(self, samples: list[Sample]) -> tuple["_Rows", list, int]:
        """Split samples into certainly-new (newer than latest) and maybe-repeated ones.

        The new ones become :class:`_Rows` (columns sorted by ``(ts, point id)``, built
        once for the partitions, latest, the aggregates and the digest); the maybe-repeated
        ones stay tuples (each is inserted alone). A repeat of a ``(point, ts)`` within the
        cycle is one of the new ones (a late one meets ``INSERT OR IGNORE``): first wins.
        """
        if not samples:
            empty = np.zeros(0, np.int64)
            return _Rows.build(empty, empty, [], empty, np.zeros(0)), [], 0
        ids, n = self._ids, len(samples)
        try:
            pid = np.fromiter([ids[s.point] for s in samples], np.int64, n)
        except KeyError:
            bad = next(s.point for s in samples if s.point not in ids)
            raise StoreError(f"sample of unknown point {bad!r}: register_points first") from None
        ts = np.fromiter([s.ts_ms for s in samples], np.int64, n)
        q = np.fromiter([s.quality for s in samples], np.int64, n)
        raw = [s.value for s in samples]
        # -0.0 reads back from SQLite as 0.0: store that (+ 0.0)
        value = np.array(raw, dtype=np.float64) + 0.0  # None -> NaN
        finite = np.isfinite(value)
        values = value.tolist()
        if not finite.all():  # null, and a non-finite number: never stored as a number
            odd = np.flatnonzero(~finite).tolist()
            for i in odd:
                values[i] = None
                if raw[i] is not None:
                    q[i] = max(q[i], 1)  # ... but as null with quality at least bad
        latest = self._latest_ts
        if latest.shape[0] <= pid.max():
            latest = self._latest_ts = np.concatenate(
                [latest, np.full(int(pid.max()) + 1 - latest.shape[0], NO_TS, np.int64)])
        is_new = ts > latest[pid]
        late: list[tuple] = []
        if not is_new.all():
            at = np.flatnonzero(~is_new).tolist()
            late = [(int(pid[i]), int(ts[i]), values[i], int(q[i])) for i in at]
            keep = np.flatnonzero(is_new)
            pid, ts, q = pid[keep], ts[keep], q[keep]
            values = [values[i] for i in keep.tolist()]
            value = value[keep]
        new = _Rows.build(pid, ts, values, q, value)
        return new, late, new.dups

    def _write(self, cycle: Cycle, new: "_Rows", late, dups, schemas) -> CycleResult:
        """The steps of one cycle, inside the caller's transaction, in this order.

        Samples come first because what they store (``accepted``) feeds latest, the
        aggregates and the digest; the digest comes last because it covers the cycle's
        samples and events and its id is the cycle number the partitions record. The
        in-memory caches move only after every step succeeded (a rollback restores them).
        """
        conn = self.conn
        accepted, dups = self._write_samples(conn, new, late, dups, schemas)
        self._write_latest(conn, new, accepted, schemas)
        buckets, merges = self._fold(accepted)
        flush = self._write_merges(conn, merges)
        samples_sha256 = self._samples_sha256(accepted)
        self._write_alarms(conn, cycle.alarms)
        event_ids = self._write_events(conn, cycle.events)
        now = now_ms()
        self._write_state(conn, cycle, now)
        if cycle.zone_modes:
            self._write_zone_modes(conn, cycle.zone_modes, now)
        self._run_extra(conn, cycle.extra)
        self._write_audit(conn, cycle.audit)
        digest_id = None
        if accepted.n or cycle.events or cycle.alarms:
            digest, any_late = self._digest(conn, cycle, accepted, dups, event_ids,
                                            samples_sha256)
            digest_id = digest["id"]
            self._record_partitions(conn, accepted, schemas, digest_id, now)
            self._parts_written = (dict(accepted.by_day), digest_id)
            flush = flush or any_late
        self._since_flush += 1
        if flush or self._since_flush >= AGG_FLUSH_CYCLES:
            self._flush_open(conn, buckets)
            self._since_flush = 0
        if new.unique:
            self._latest_ts[new.pid] = new.ts
        else:
            np.maximum.at(self._latest_ts, new.pid, new.ts)
        self._open = buckets
        return CycleResult(accepted.n, dups, digest_id, event_ids)

    # ---- the steps of a cycle ---------------------------------------------------------

    def _write_samples(self, conn, new: "_Rows", late, dups, schemas) -> tuple["_Rows", int]:
        """Samples into their day partitions; returns ``(accepted, dups)``.

        Certainly-new rows go in multi-row inserts per day (:func:`insert_rows`, the hot
        path, measured in ``benchmarks/bench_store.py``); a maybe-repeated row goes alone
        with ``INSERT OR IGNORE`` so that first wins and a repeat counts as a duplicate, not
        an error.
        ``accepted`` (time order) is what the aggregates and the digest cover.
        """
        for day, rows in new.by_day.items():
            insert_rows(conn, f"INSERT INTO {schemas[day]}.samples VALUES", 4, rows)
        accepted_late = []
        for row in late:
            cur = conn.execute(
                f"INSERT OR IGNORE INTO {schemas[day_of(row[1])]}.samples VALUES (?, ?, ?, ?)", row
            )
            if cur.rowcount == 1:
                accepted_late.append(row)
            else:
                dups += 1
        if not accepted_late:
            return new, dups
        return new.with_late(accepted_late), dups

    def _latest_in_sql(self, new: "_Rows", accepted: "_Rows", schemas) -> tuple | None:
        """The one statement that upserts ``latest`` when the cycle's rows are exactly the
        partition's rows after ``lo`` (its newest time before the cycle; digest.py
        "Membership"), one per point: ``(sql, params)``, or None when :meth:`_write_latest`
        must bind the rows from Python. An upsert from a SELECT of those rows measured
        40 % cheaper than ``UPDATE ... FROM`` the same rows (``benchmarks/bench_store.py``)."""
        if not new.n or not new.unique or accepted is not new or len(new.by_day) != 1:
            return None
        day = next(iter(new.by_day))
        lo = self._part_max.get(day, -1)
        if int(new.ts[0]) <= lo:
            return None
        return latest_upsert_sql(schemas[day]), (int(now_ms()), lo)

    def _write_latest(self, conn, new: "_Rows", accepted: "_Rows", schemas) -> None:
        """Upsert ``latest``: the newest sample per point among the certainly-new ones.

        Backfill never moves ``latest`` back. ``good_ts_ms``/``good_value`` keep the last
        good reading when this one is not (the TUI shows how old the last good value is).
        The usual cycle is one statement in SQL (:meth:`_latest_in_sql`, not binding each
        row again from Python); otherwise raw ``executemany``, one row per point.
        """
        if not new.n:
            return
        in_sql = self._latest_in_sql(new, accepted, schemas)
        if in_sql is not None:
            conn.execute(*in_sql)
            return
        now = now_ms()
        if new.unique:  # one sample per point: its own row, the good columns in SQL
            known = self._latest_ts[new.pid] != NO_TS
            if known.all():  # UPDATE measured 25 % cheaper than the upsert
                conn.executemany(
                    f"UPDATE latest SET ts_ms = ?2, value = ?3, quality = ?4, updated_ms = {int(now)},"
                    " good_ts_ms = CASE WHEN ?4 = 0 AND ?3 IS NOT NULL THEN ?2 ELSE good_ts_ms END,"
                    " good_value = CASE WHEN ?4 = 0 AND ?3 IS NOT NULL THEN ?3 ELSE good_value END"
                    " WHERE point_id = ?1", new.rows)
                return
            conn.executemany(
                "INSERT INTO latest (point_id, ts_ms, value, quality, updated_ms, good_ts_ms,"
                f" good_value) VALUES (?1, ?2, ?3, ?4, {int(now)},"
                " CASE WHEN ?4 = 0 AND ?3 IS NOT NULL THEN ?2 END,"
                " CASE WHEN ?4 = 0 AND ?3 IS NOT NULL THEN ?3 END)"
                " ON CONFLICT (point_id) DO UPDATE SET"
                " ts_ms = excluded.ts_ms, value = excluded.value, quality = excluded.quality,"
                " updated_ms = excluded.updated_ms,"
                " good_ts_ms = coalesce(excluded.good_ts_ms, latest.good_ts_ms),"
                " good_value = CASE WHEN excluded.good_ts_ms IS NULL THEN latest.good_value"
                "  ELSE excluded.good_value END",
                new.rows)
            return
        newest: dict[int, list] = {}
        for p, t, v, q in new.rows:
            cur = newest.get(p)
            if cur is None:
                newest[p] = cur = [p, t, v, q, now, None, None]
            cur[1:4] = t, v, q
            if q == 0 and v is not None:
                cur[5:7] = t, v
        rows = list(newest.values())
        conn.executemany(
            "INSERT INTO latest (point_id, ts_ms, value, quality, updated_ms, good_ts_ms, good_value)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (point_id) DO UPDATE SET"
            " ts_ms = excluded.ts_ms, value = excluded.value, quality = excluded.quality,"
            " updated_ms = excluded.updated_ms,"
            " good_ts_ms = coalesce(excluded.good_ts_ms, latest.good_ts_ms),"
            " good_value = CASE WHEN excluded.good_ts_ms IS NULL THEN latest.good_value"
            "  ELSE excluded.good_value END",
            rows,
        )

    def _fold(self, accepted: "_Rows") -> tuple[OpenBuckets, dict]:
        """Fold accepted samples into (a copy of) the open buckets (no SQL). Returns the new
        open buckets, which become the in-memory state only after the transaction's other
        steps succeeded, and the closed buckets and backfill to merge (:meth:`_write_merges`)."""
        buckets = self._open.copy()
        merges = buckets.fold(accepted.pid, accepted.ts, accepted.value, accepted.quality)
        return buckets, merges

    def _write_merges(self, conn, merges: dict) -> bool:
        """Merge closed buckets and backfill into the aggregate tables. Returns whether
        ``agg_open`` must be written this cycle (a bucket closed or backfill merged; see
        :meth:`_flush_open`)."""
        flush = False
        for res, parts in merges.items():
            table, col, _size, _k = RESOLUTIONS[res]
            if parts:
                flush = True
                conn.executemany(merge_sql(table, col), [(p, b, *v) for (p, b), v in parts.items()])
        return flush

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

    def _record_partitions(self, conn, accepted: "_Rows", schemas, digest_id: int,
                           now: int) -> None:
        """Record, per day, the cycle's row count on both sides of the file boundary.

        The partition's ``cycles`` and the main database's ``partition_state`` are what
        :meth:`reconcile` compares after a crash during COMMIT (see the module docstring).
        """
        gmp_mask = self._gmp_mask
        for day, rows in accepted.by_day.items():
            tss, pids = accepted.day_ts[day], accepted.day_pid[day]
            lo, hi = int(tss.min()), int(tss.max())
            conn.execute(
                f"INSERT INTO {schemas[day]}.cycles VALUES (?, ?, ?, ?)",
                (digest_id, len(rows), lo, hi),
            )
            known = pids[pids < gmp_mask.shape[0]]
            gmp = int(bool(gmp_mask[known].any()))
            conn.execute(
                "INSERT INTO partition_state (day, rows, min_ts_ms, max_ts_ms, has_gmp,"
                " last_cycle, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (day) DO UPDATE SET rows = rows + excluded.rows,"
                " min_ts_ms = min(min_ts_ms, excluded.min_ts_ms),"
                " max_ts_ms = max(max_ts_ms, excluded.max_ts_ms),"
                " has_gmp = max(has_gmp, excluded.has_gmp),"
                " last_cycle = excluded.last_cycle, updated_ms = excluded.updated_ms",
                (day, len(rows), lo, hi, gmp, digest_id, now),
            )

    def _samples_sha256(self, accepted: "_Rows") -> str:
        """``samples_sha256`` of the cycle digest: its accepted rows as sample lines."""
        return hashlib.sha256(sample_lines_columns(
            accepted.pid_list, accepted.ts_list, accepted.value_list, accepted.q_list,
            self._name_list, self._reprs)).hexdigest()

    def _digest(self, conn, cycle: Cycle, accepted: "_Rows", dups, event_ids,
                samples_sha256: str) -> tuple[dict, bool]:
        """Append the cycle's ``cycle_digest`` audit row covering its samples, events and
        alarm rows (what each field covers: ``facility/store/digest.py``). Also returns
        whether any sample lies at or before its partition's newest time (``late``)."""
        names = self._names
        events = []
        if event_ids:  # as stored (type affinity, defaults), so a verifier reads the same bytes
            cur = conn.execute("SELECT * FROM events WHERE id BETWEEN ? AND ? ORDER BY id",
                               (event_ids[0], event_ids[-1]))
            cols = [d[0] for d in cur.description]
            events = [event_doc(dict(zip(cols, r))) for r in cur]
        by_day = accepted.by_day
        details = {
            "v": DIGEST_VERSION,
            "samples": accepted.n,
            "duplicates": dups,
            "samples_sha256": samples_sha256,
            "events": len(cycle.events),
            "events_sha256": events_sha256(events),
            "partitions": {d: len(r) for d, r in sorted(by_day.items())},
        }
        if event_ids:
            details["event_ids"] = [event_ids[0], event_ids[-1]]
        ranges, late = {}, {}
        for day in sorted(by_day):
            tss = accepted.day_ts[day]
            lo = self._part_max.get(day, -1)
            hi = max(lo, int(tss.max()))
            ranges[day] = [lo, hi]
            at = np.flatnonzero(tss <= lo)
            if at.shape[0]:
                pids = accepted.day_pid[day]
                late[day] = sorted([int(tss[i]), names[int(pids[i])]] for i in at)
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
        if accepted.n:
            details["ts_min_ms"] = accepted.ts_list[0]
            details["ts_max_ms"] = accepted.ts_list[-1]
        return self._audit(conn, {"action": "cycle_digest", "actor": cycle.actor,
                                  "details": details}), bool(late)


class _Rows:
    """One cycle's sample rows, built once: tuples ``(point_id, ts_ms, value, quality)`` in
    ``(ts, point id)`` order (for ``executemany`` and the digest), the same as numpy columns
    (for the aggregates; ``value`` NaN where null) and split by UTC day."""

    def __init__(self, pid: np.ndarray, ts: np.ndarray, values: list, quality: np.ndarray,
                 value: np.ndarray | None = None, dups: int = 0):
        self.pid, self.ts, self.quality = pid, ts, quality
        self.pid_list, self.ts_list, self.value_list, self.q_list = (
            pid.tolist(), ts.tolist(), values, quality.tolist())
        self.dups = dups
        self.n = len(values)
        self.rows = list(zip(self.pid_list, self.ts_list, values, self.q_list))
        self.value = np.array(values, dtype=np.float64) if value is None else value  # None: NaN
        self.good = (quality == 0) & ~np.isnan(self.value)
        self.unique = self.n < 2 or int(np.bincount(pid).max()) == 1
        self.by_day: dict[str, list] = {}
        self.day_ts: dict[str, np.ndarray] = {}
        self.day_pid: dict[str, np.ndarray] = {}
        if not self.n:
            return
        dn = ts // DAY_MS
        if dn[0] == dn[-1]:  # time order: the first and the last day are the same
            cuts = [(day_of(self.ts_list[0]), 0, self.n)]
        else:  # each day's rows are one run
            edges = np.flatnonzero(np.diff(dn)) + 1
            bounds = [0, *edges.tolist(), self.n]
            cuts = [(day_of(self.ts_list[a]), a, b) for a, b in zip(bounds, bounds[1:])]
        for day, a, b in cuts:
            self.by_day[day] = self.rows[a:b]
            self.day_ts[day] = ts[a:b]
            self.day_pid[day] = pid[a:b]

    @classmethod
    def build(cls, pid: np.ndarray, ts: np.ndarray, values: list, quality: np.ndarray,
              value: np.ndarray) -> "_Rows":
        """Sort columns by ``(ts, point id)``; drop a repeated ``(point, ts)`` after its first."""
        dups = 0
        if pid.shape[0] > 1:
            dt = np.diff(ts)
            if ((dt > 0) | ((dt == 0) & (np.diff(pid) > 0))).all():  # in key order already
                return cls(pid, ts, values, quality, value, dups)
            order = np.lexsort((pid, ts))
            sp, st = pid[order], ts[order]
            same = (sp[1:] == sp[:-1]) & (st[1:] == st[:-1])
            if same.any():  # stable sort: the first of a repeat comes first; keep it
                keep = np.r_[True, ~same]
                dups = int((~keep).sum())
                order = order[keep]
            if dups or not (order[1:] > order[:-1]).all():
                pid, ts, quality, value = pid[order], ts[order], quality[order], value[order]
                values = [values[i] for i in order.tolist()]
        return cls(pid, ts, values, quality, value, dups)

    def with_late(self, late: list[tuple]) -> "_Rows":
        """These rows and the accepted late ones, in ``(ts, point id)`` order."""
        rows = sorted(self.rows + late, key=lambda r: (r[1], r[0]))
        p, t, v, q = (list(c) for c in zip(*rows))
        return _Rows(np.array(p, np.int64), np.array(t, np.int64), v, np.array(q, np.int64),
                     dups=self.dups)
