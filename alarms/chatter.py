"""Chattering alarms (ISA-18.2): one alarm raised 3 or more times within 60 s.

docs/ARCHITECTURE.md "Alarm lifecycle" ("Chattering"): a chattering alarm pages on its
first raise, then at most once per ``min_repage_s`` with "chattering: N raises since T",
critical alarms included. This module keeps, per alarm, the recent raise times and the
chattering episode in the ``page_chatter`` table (``alarms.outbox`` migrations), written in
the caller's transaction like every other paging row, so a restart neither forgets that an
alarm chatters nor pages it afresh. ``alarms.paging.Pager`` asks it what to do with each
raise and return; readers (the TUI, reports) ask :func:`chattering`.

An episode starts at the raise that makes 3 within 60 s; its first page goes at once (if
none went within ``min_repage_s``), later raises and returns are counted and folded, and a
folded change is paged with the current state once ``min_repage_s`` has passed since the
last chattering page. The episode ends when the alarm has not raised for ``min_repage_s``
(an alarm that keeps flapping slower than 3 a minute stays chattering once it has been).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

CHATTER_RAISES = 3
"""ISA-18.2 (ISA-18.2 / EEMUA 191): 3 or more raises of one alarm ..."""

CHATTER_WINDOW_MS = 60_000
"""... within 60 s make a chattering alarm."""


@dataclass(frozen=True, slots=True)
class Chatter:
    """A chattering alarm: since when, how many raises since then, when it last paged."""

    alarm_id: str
    since_ms: int
    raises: int
    last_raise_ms: int
    notice_ms: int | None
    folded: int  # raises and returns not paged since notice_ms
    dedup_key: str | None  # the occurrence of its latest raise
    ctx: str | None  # the latest context (JSON), for a notice without a fresher one


@dataclass(frozen=True, slots=True)
class RaiseStep:
    """What one raise means: ``chattering`` now; ``notify``: page it now."""

    chattering: bool
    notify: bool
    raises: int = 0
    since_ms: int | None = None


_COLS = "alarm_id, since_ms, count, last_raise_ms, notice_ms, folded, dedup_key, ctx"


def _chatter(row: tuple) -> Chatter:
    return Chatter(*row)


def note_raise(conn: sqlite3.Connection, alarm_id: str, dedup_key: str, now_ms: int,
               repage_ms: int, ctx_json: str | None) -> RaiseStep:
    """Record a raise of ``alarm_id`` at ``now_ms`` and say whether it chatters and pages."""
    row = conn.execute("SELECT raises, since_ms, count, notice_ms, folded FROM page_chatter"
                       " WHERE alarm_id=?", (alarm_id,)).fetchone()
    raises, since, count, notice, folded = (
        (json.loads(row[0]), row[1], row[2], row[3], row[4]) if row else ([], None, 0, None, 0))
    raises = [t for t in raises if t > now_ms - CHATTER_WINDOW_MS] + [now_ms]
    if since is None and len(raises) >= CHATTER_RAISES:
        since, count = raises[0], len(raises)
    elif since is not None:
        count += 1
    notify = since is not None and (notice is None or now_ms >= notice + repage_ms)
    if notify:
        notice, folded = now_ms, 0
    elif since is not None:
        folded += 1
    conn.execute(
        "INSERT INTO page_chatter (alarm_id, raises, since_ms, count, last_raise_ms, notice_ms,"
        " folded, dedup_key, ctx) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (alarm_id) DO UPDATE"
        " SET raises=excluded.raises, since_ms=excluded.since_ms, count=excluded.count,"
        " last_raise_ms=excluded.last_raise_ms, notice_ms=excluded.notice_ms,"
        " folded=excluded.folded, dedup_key=excluded.dedup_key, ctx=excluded.ctx",
        (alarm_id, json.dumps(raises), since, count, now_ms, notice, folded, dedup_key,
         ctx_json))
    return RaiseStep(since is not None, notify, count, since)


def note_return(conn: sqlite3.Connection, alarm_id: str, ctx_json: str | None) -> bool:
    """A return to normal of ``alarm_id``: True (counted, not paged) while it chatters."""
    cur = conn.execute("UPDATE page_chatter SET folded=folded+1, ctx=COALESCE(?, ctx)"
                       " WHERE alarm_id=? AND since_ms IS NOT NULL", (ctx_json, alarm_id))
    return cur.rowcount > 0


def step_of(conn: sqlite3.Connection, alarm_id: str) -> Chatter | None:
    """The chattering episode of ``alarm_id``, or None when it does not chatter."""
    row = conn.execute(f"SELECT {_COLS} FROM page_chatter WHERE alarm_id=? AND since_ms IS"
                       " NOT NULL", (alarm_id,)).fetchone()
    return _chatter(row) if row else None


def due(conn: sqlite3.Connection, now_ms: int, repage_ms: int) -> list[Chatter]:
    """Chattering alarms with folded changes whose ``min_repage_s`` has passed."""
    rows = conn.execute(
        f"SELECT {_COLS} FROM page_chatter WHERE since_ms IS NOT NULL AND folded > 0"
        " AND (notice_ms IS NULL OR notice_ms + ? <= ?) ORDER BY alarm_id",
        (repage_ms, now_ms)).fetchall()
    return [_chatter(r) for r in rows]


def noticed(conn: sqlite3.Connection, alarm_id: str, now_ms: int) -> None:
    """A chattering page went (or was not needed): count afresh from now."""
    conn.execute("UPDATE page_chatter SET notice_ms=?, folded=0 WHERE alarm_id=?",
                 (now_ms, alarm_id))


def end_quiet(conn: sqlite3.Connection, now_ms: int, repage_ms: int) -> list[str]:
    """End the episodes of alarms quiet for ``min_repage_s`` with nothing left to page;
    forget alarms whose raises are all older than the window. Returns the ended ids."""
    ended = [r[0] for r in conn.execute(
        "SELECT alarm_id FROM page_chatter WHERE since_ms IS NOT NULL AND folded = 0"
        " AND last_raise_ms + ? <= ?", (repage_ms, now_ms))]
    for aid in ended:
        conn.execute("UPDATE page_chatter SET since_ms=NULL, count=0 WHERE alarm_id=?", (aid,))
    conn.execute("DELETE FROM page_chatter WHERE since_ms IS NULL AND last_raise_ms <= ?",
                 (now_ms - CHATTER_WINDOW_MS,))
    return ended


def chattering(conn: sqlite3.Connection) -> dict[str, Chatter]:
    """Every alarm chattering now, by id: for the TUI's alarm list and the report.

    Works on a read-only connection; a database whose paging tables do not exist yet (no
    service has run on it) has no chattering alarm.
    """
    try:
        rows = conn.execute(f"SELECT {_COLS} FROM page_chatter WHERE since_ms IS NOT NULL"
                            " ORDER BY alarm_id").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {r[0]: _chatter(r) for r in rows}
