"""Numbered migrations of the main database and of day partitions (docs/ARCHITECTURE.md "Storage").

Each string is one migration; its number is its position (1-based) in its namespace. The
core namespace is ``"store"``; middle-floor modules register their own namespaces through
``Store.add_migrations`` (paging outbox, hazmat ledger). Never edit a shipped migration:
append a new one.

The DDL stays SQL text, run as written: what SQLite keeps in ``sqlite_master`` is that text,
so databases created by any version have the same schema byte for byte, and constraints
sqlite-utils' ``create()`` cannot spell (``WITHOUT ROWID``, column ``UNIQUE``) stay exact.
sqlite-utils keeps the books: whether ``schema_migrations`` exists, which versions are
applied, and the row recording each new one.
"""

from __future__ import annotations

import sqlite3

import sqlite_utils

from facility.domain.model import now_ms
from facility.store.audit import AUDIT_DDL

CORE_NAMESPACE = "store"

MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    namespace TEXT NOT NULL,
    version INTEGER NOT NULL,
    applied_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, version)
)
"""

CORE_MIGRATIONS: list[str] = [
    # 1: points, latest values, open aggregate buckets, aggregates
    """
    CREATE TABLE points (
        id INTEGER PRIMARY KEY, point TEXT NOT NULL UNIQUE, device TEXT, site TEXT, zone TEXT,
        quantity TEXT, unit TEXT, decimals INTEGER, gmp INTEGER NOT NULL DEFAULT 0,
        kind TEXT NOT NULL DEFAULT 'measured', created_ms INTEGER
    );
    CREATE TABLE latest (
        point_id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, value REAL,
        quality INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
        good_ts_ms INTEGER, good_value REAL
    );
    CREATE TABLE agg_open (
        point_id INTEGER PRIMARY KEY,
        m_bucket INTEGER, m_n INTEGER, m_n_good INTEGER, m_min REAL, m_max REAL, m_sum REAL,
        m_worst INTEGER,
        h_bucket INTEGER, h_n INTEGER, h_n_good INTEGER, h_min REAL, h_max REAL, h_sum REAL,
        h_worst INTEGER
    );
    CREATE TABLE agg_1m (
        point_id INTEGER NOT NULL, minute_ms INTEGER NOT NULL, n INTEGER NOT NULL,
        n_good INTEGER NOT NULL, min REAL, max REAL, sum REAL, worst_quality INTEGER NOT NULL,
        PRIMARY KEY (point_id, minute_ms)
    ) WITHOUT ROWID;
    CREATE TABLE agg_1h (
        point_id INTEGER NOT NULL, hour_ms INTEGER NOT NULL, n INTEGER NOT NULL,
        n_good INTEGER NOT NULL, min REAL, max REAL, sum REAL, worst_quality INTEGER NOT NULL,
        PRIMARY KEY (point_id, hour_ms)
    ) WITHOUT ROWID;
    """,
    # 2: configuration versions and the audit trail
    """
    CREATE TABLE config_versions (
        id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, text TEXT NOT NULL,
        loaded_ms INTEGER NOT NULL, actor TEXT
    );
    """
    + AUDIT_DDL
    + ";",
    # 3: alarms, events, engine and service state, zone modes
    """
    CREATE TABLE alarms (
        id TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'NORM', priority TEXT,
        occurrence INTEGER NOT NULL DEFAULT 0, active INTEGER NOT NULL DEFAULT 0,
        acked INTEGER NOT NULL DEFAULT 1, onset_ms INTEGER, detected_ms INTEGER,
        "limit" REAL, source TEXT, zone TEXT, site TEXT, point TEXT,
        shelved_until_ms INTEGER, latched INTEGER NOT NULL DEFAULT 0, config_version INTEGER,
        ack_by TEXT, ack_reason TEXT, ack_ms INTEGER, updated_ms INTEGER, details TEXT
    );
    CREATE INDEX alarms_active ON alarms (active, state);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY, alarm_id TEXT NOT NULL, occurrence INTEGER, event TEXT NOT NULL,
        state_from TEXT, state_to TEXT, ts_ms INTEGER NOT NULL, detected_ms INTEGER,
        value REAL, "limit" REAL, source TEXT, actor TEXT, reason TEXT, config_version INTEGER,
        details TEXT
    );
    CREATE INDEX events_ts ON events (ts_ms);
    CREATE INDEX events_alarm ON events (alarm_id, occurrence);
    CREATE TABLE engine_state (key TEXT PRIMARY KEY, json TEXT NOT NULL, updated_ms INTEGER);
    CREATE TABLE service_state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ms INTEGER);
    CREATE TABLE zone_modes (
        zone TEXT PRIMARY KEY, mode TEXT NOT NULL, since_ms INTEGER NOT NULL, actor TEXT,
        reason TEXT
    );
    """,
    # 4: partitions and archives
    """
    CREATE TABLE partition_state (
        day TEXT PRIMARY KEY, rows INTEGER NOT NULL DEFAULT 0, min_ts_ms INTEGER,
        max_ts_ms INTEGER, has_gmp INTEGER NOT NULL DEFAULT 0, last_cycle INTEGER,
        updated_ms INTEGER, purged_ms INTEGER
    );
    CREATE TABLE archives (
        id INTEGER PRIMARY KEY, day TEXT NOT NULL, path TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL, rows INTEGER NOT NULL, verified_ms INTEGER,
        recorded_ms INTEGER NOT NULL
    );
    CREATE INDEX archives_day ON archives (day);
    """,
    # 5: who acted, in words a person reads (Part 11 11.10(e)): the operator's name and roles
    # as configured when the event was recorded; null for the service's own events
    """
    ALTER TABLE events ADD COLUMN actor_name TEXT;
    ALTER TABLE events ADD COLUMN actor_roles TEXT;
    """,
]

PARTITION_DDL = """
CREATE TABLE IF NOT EXISTS {s}.samples (
    point_id INTEGER NOT NULL, ts_ms INTEGER NOT NULL, value REAL, quality INTEGER NOT NULL,
    PRIMARY KEY (ts_ms, point_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {s}.cycles (
    cycle INTEGER PRIMARY KEY, rows INTEGER NOT NULL, min_ts_ms INTEGER, max_ts_ms INTEGER
);
"""
"""A partition: samples keyed time-major, so rows appended in time order touch only the
rightmost pages (no per-point index), and the key makes (point, ts) unique for free.
``cycles`` lists which cycle (its digest audit id) wrote how many rows, for reconciliation."""


def as_database(conn: sqlite3.Connection | sqlite_utils.Database) -> sqlite_utils.Database:
    """The sqlite-utils view of a connection (a ``Database`` is passed through)."""
    return conn if isinstance(conn, sqlite_utils.Database) else sqlite_utils.Database(conn)


def applied_versions(conn: sqlite3.Connection | sqlite_utils.Database, namespace: str) -> set[int]:
    """Versions of ``namespace`` already applied (empty if the table does not exist yet)."""
    table = as_database(conn)["schema_migrations"]
    if not table.exists():
        return set()
    return {r["version"] for r in table.rows_where("namespace = ?", [namespace], select="version")}


def apply_migrations(conn: sqlite3.Connection | sqlite_utils.Database, namespace: str,
                     statements: list[str]) -> list[int]:
    """Apply pending migrations of ``namespace`` in one ``BEGIN IMMEDIATE``; return the new ones.

    Idempotent: versions already recorded are skipped, and the check is repeated under the
    write lock so two processes opening a fresh file at once cannot apply one twice.
    """
    db = as_database(conn)
    if set(range(1, len(statements) + 1)) <= applied_versions(db, namespace):
        return []
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        db.conn.execute(MIGRATIONS_DDL)
        done = applied_versions(db, namespace)
        new = []
        for number, sql in enumerate(statements, start=1):
            if number in done:
                continue
            for stmt in split_statements(sql):
                db.conn.execute(stmt)
            db["schema_migrations"].insert(
                {"namespace": namespace, "version": number, "applied_ms": now_ms()})
            new.append(number)
        db.conn.execute("COMMIT")
        return new
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise


def split_statements(sql: str) -> list[str]:
    """Split a migration into statements (sqlite3 runs one per execute inside a transaction).

    Line by line with ``sqlite3.complete_statement``; sqlite-utils' ``executescript`` does the
    same inside a transaction but re-joins the statement at every character, which measured
    9.5 ms against 0.1 ms for the core migrations of each new database.
    """
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip().strip(";").strip():
                out.append(buf)
            buf = ""
    if buf.strip():
        out.append(buf)
    return out
