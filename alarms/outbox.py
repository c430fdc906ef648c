"""The durable paging outbox and its bookkeeping tables (SQLite).

Pages are rows written in the caller's transaction (together with the alarm events that
caused them) and delivered later by ``alarms.dispatcher.Dispatcher``: at-least-once and
strictly ordered per (channel, dedup_key). All state lives in these tables, so a restart
simply picks up the pending rows.
"""

from __future__ import annotations

import json
import random
import sqlite3

OUTBOX_NAMESPACE = "paging"

OUTBOX_MIGRATIONS: list[str] = [
    # One row per message per channel. seq orders the rows of one (channel, dedup_key).
    """CREATE TABLE IF NOT EXISTS page_outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        channel     TEXT    NOT NULL,
        dedup_key   TEXT    NOT NULL,
        seq         INTEGER NOT NULL,
        action      TEXT    NOT NULL CHECK (action IN ('trigger', 'acknowledge', 'resolve')),
        payload     TEXT    NOT NULL,
        state       TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'sent', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_try_ms INTEGER NOT NULL,
        last_error  TEXT,
        created_ms  INTEGER NOT NULL,
        sent_ms     INTEGER,
        UNIQUE (channel, dedup_key, seq)
    )""",
    "CREATE INDEX IF NOT EXISTS page_outbox_pending ON page_outbox (state, next_try_ms)",
    "CREATE INDEX IF NOT EXISTS page_outbox_key ON page_outbox (channel, dedup_key, state, seq)",
    # One row per paged occurrence: routing, escalation level, channels notified, status.
    """CREATE TABLE IF NOT EXISTS page_occurrence (
        dedup_key        TEXT PRIMARY KEY,
        alarm_id         TEXT    NOT NULL,
        occurrence       INTEGER NOT NULL,
        priority         TEXT    NOT NULL,
        critical         INTEGER NOT NULL,
        route            INTEGER NOT NULL,
        level            INTEGER NOT NULL DEFAULT -1,
        channels         TEXT    NOT NULL DEFAULT '[]',
        status           TEXT    NOT NULL
                                 CHECK (status IN ('open', 'acked', 'resolved', 'folded')),
        message          TEXT    NOT NULL,
        triggered_ms     INTEGER NOT NULL,
        acked_ms         INTEGER,
        resolved_ms      INTEGER,
        last_notified_ms INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS page_occurrence_status ON page_occurrence (status)",
    # Every new non-critical page, for ISA-18.2 flood counting and folding into summaries.
    """CREATE TABLE IF NOT EXISTS page_flood (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms       INTEGER NOT NULL,
        dedup_key   TEXT    NOT NULL,
        priority    TEXT    NOT NULL,
        zone        TEXT,
        channels    TEXT    NOT NULL DEFAULT '[]',
        folded      INTEGER NOT NULL,
        episode_ms  INTEGER,
        summarised  INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS page_flood_ts ON page_flood (ts_ms)",
    # The context of an occurrence (alarms.page_text.AlarmContext as JSON): an escalation,
    # repeat or late update without a fresher one re-reads the latest state from here.
    "ALTER TABLE page_occurrence ADD COLUMN ctx TEXT",
    # Why a 'folded' occurrence was not paged: 'flood' (NULL in older rows) or 'chatter'.
    "ALTER TABLE page_occurrence ADD COLUMN folded_by TEXT",
    # A return to normal, unacknowledged, waits here (alarms.paging "repeat control"):
    # paged at held_until_ms unless the alarm raises again first.
    "ALTER TABLE page_occurrence ADD COLUMN held TEXT",
    "ALTER TABLE page_occurrence ADD COLUMN held_until_ms INTEGER",
    "CREATE INDEX IF NOT EXISTS page_occurrence_held ON page_occurrence (held_until_ms)"
    " WHERE held_until_ms IS NOT NULL",
    # Floods are per site (ISA-18.2 counts per operator position; a site is one here).
    "ALTER TABLE page_flood ADD COLUMN site TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX IF NOT EXISTS page_flood_site ON page_flood (site, ts_ms)",
    # One row per flood of a site: from its start to the rate falling below flood_max / 2.
    """CREATE TABLE IF NOT EXISTS page_flood_episode (
        site        TEXT    NOT NULL,
        started_ms  INTEGER NOT NULL,
        ended_ms    INTEGER,
        summary_ms  INTEGER,
        channels    TEXT    NOT NULL DEFAULT '[]',
        closed      INTEGER NOT NULL DEFAULT 0,
        label       TEXT,
        timezone    TEXT,
        PRIMARY KEY (site, started_ms)
    )""",
    # Chattering (ISA-18.2: >= 3 raises in 60 s), one row per alarm (alarms.chatter).
    """CREATE TABLE IF NOT EXISTS page_chatter (
        alarm_id      TEXT PRIMARY KEY,
        raises        TEXT    NOT NULL DEFAULT '[]',
        since_ms      INTEGER,
        count         INTEGER NOT NULL DEFAULT 0,
        last_raise_ms INTEGER,
        notice_ms     INTEGER,
        folded        INTEGER NOT NULL DEFAULT 0,
        dedup_key     TEXT,
        ctx           TEXT
    )""",
]


def apply_migrations(conn: sqlite3.Connection) -> None:
    """Create the outbox tables on ``conn`` (for tests and until the store applies them)."""
    for stmt in OUTBOX_MIGRATIONS:
        conn.execute(stmt)


def put(
    conn: sqlite3.Connection, channel: str, dedup_key: str, action: str, message: dict,
    now_ms: int,
) -> int:
    """Append one pending row; runs inside the caller's transaction (no commit here)."""
    (seq,) = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM page_outbox WHERE channel=? AND dedup_key=?",
        (channel, dedup_key),
    ).fetchone()
    cur = conn.execute(
        "INSERT INTO page_outbox (channel, dedup_key, seq, action, payload, next_try_ms,"
        " created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (channel, dedup_key, seq, action, json.dumps(message, sort_keys=True), now_ms, now_ms),
    )
    return int(cur.lastrowid)


# The head of each (channel, dedup_key): the lowest pending seq. A retrying head blocks
# the rows behind it, not other keys; failed rows (permanent errors) do not block.
DUE_SQL = """
SELECT o.id, o.channel, o.dedup_key, o.seq, o.action, o.payload, o.attempts
FROM page_outbox o
WHERE o.state = 'pending' AND o.next_try_ms <= ?
  AND NOT EXISTS (SELECT 1 FROM page_outbox p
                  WHERE p.channel = o.channel AND p.dedup_key = o.dedup_key
                    AND p.state = 'pending' AND p.seq < o.seq)
ORDER BY o.id
LIMIT ?
"""


def due(conn: sqlite3.Connection, now_ms: int, limit: int = 50) -> list[tuple]:
    """Rows ready to send now, at most one per (channel, dedup_key)."""
    return conn.execute(DUE_SQL, (now_ms, limit)).fetchall()


def mark_sent(conn: sqlite3.Connection, row_id: int, now_ms: int) -> None:
    """Record a successful delivery."""
    conn.execute(
        "UPDATE page_outbox SET state='sent', attempts=attempts+1, sent_ms=?, last_error=NULL"
        " WHERE id=?", (now_ms, row_id),
    )


def mark_failed(conn: sqlite3.Connection, row_id: int, error: str) -> None:
    """Record a permanent failure (e.g. HTTP 400): visible, never retried."""
    conn.execute(
        "UPDATE page_outbox SET state='failed', attempts=attempts+1, last_error=? WHERE id=?",
        (error[:1000], row_id),
    )


def backoff_ms(
    attempts: int, base_s: float, max_s: float, rng: random.Random | None = None,
    retry_after_s: float | None = None,
) -> int:
    """Exponential backoff with jitter: min(max, base * 2^(attempts-1)) * U(0.5, 1)."""
    rng = rng or random
    delay = min(max_s, base_s * (2 ** max(0, attempts - 1))) * rng.uniform(0.5, 1.0)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, max_s))
    return int(delay * 1000)


def mark_retry(
    conn: sqlite3.Connection, row_id: int, attempts_before: int, error: str, now_ms: int,
    base_s: float, max_s: float, rng: random.Random | None = None,
    retry_after_s: float | None = None,
) -> int:
    """Schedule the next attempt of a transient failure; returns next_try_ms."""
    nxt = now_ms + backoff_ms(attempts_before + 1, base_s, max_s, rng, retry_after_s)
    conn.execute(
        "UPDATE page_outbox SET attempts=attempts+1, next_try_ms=?, last_error=? WHERE id=?",
        (nxt, error[:1000], row_id),
    )
    return nxt


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per state, e.g. for a health display: {"pending": 3, "sent": 10, "failed": 1}."""
    return dict(conn.execute("SELECT state, COUNT(*) FROM page_outbox GROUP BY state"))
