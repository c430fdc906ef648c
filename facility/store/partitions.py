"""Day partitions of raw samples: one SQLite file per UTC day beside the main database.

``<db>.d/samples-YYYY-MM-DD.db`` holds ``samples`` (keyed time-major, see
``schema.PARTITION_DDL``) and ``cycles`` (which cycle wrote how many rows). The writer
ATTACHes the partitions a cycle needs before ``BEGIN IMMEDIATE``, so one transaction covers
the main database and the partitions (atomic per file; see ``Store`` for crash safety across
files). Readers open partitions read-only, one short transaction per chunk.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections import OrderedDict
from datetime import datetime, timezone

from facility.store.errors import StoreError
from facility.store.filemodes import restrict_db
from facility.store.schema import PARTITION_DDL, split_statements

DAY_MS = 86_400_000
MAX_ATTACHED = 6
"""Partitions kept attached to the writer (SQLite allows 10 by default); a cycle whose
samples span more days than this is refused with a message."""

_DAY_RE = re.compile(r"^samples-(\d{4}-\d{2}-\d{2})\.db$")
_day_cache: dict[int, str] = {}


def day_of(ts_ms: int) -> str:
    """UTC day ``YYYY-MM-DD`` of a time in ms: the partition a sample belongs to."""
    n = ts_ms // DAY_MS
    day = _day_cache.get(n)
    if day is None:
        day = datetime.fromtimestamp(n * 86_400, tz=timezone.utc).strftime("%Y-%m-%d")
        _day_cache[n] = day
    return day


def day_bounds(day: str) -> tuple[int, int]:
    """Half-open ``[start_ms, end_ms)`` of a UTC day given as ``YYYY-MM-DD``."""
    try:
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise StoreError(f"partition day {day!r} is not YYYY-MM-DD") from None
    ms = int(start.timestamp()) * 1000
    return ms, ms + DAY_MS


def partition_dir(db_path: str) -> str:
    """Folder of the partitions of ``db_path``."""
    return db_path + ".d"


def partition_path(db_path: str, day: str) -> str:
    """File of one day's partition."""
    return os.path.join(partition_dir(db_path), f"samples-{day}.db")


def schema_name(day: str) -> str:
    """Schema name under which the writer attaches a day (``p_20250101``)."""
    return "p_" + day.replace("-", "")


def days_on_disk(db_path: str) -> list[str]:
    """Days that have a partition file, sorted."""
    try:
        names = os.listdir(partition_dir(db_path))
    except FileNotFoundError:
        return []
    return sorted(m.group(1) for m in map(_DAY_RE.match, names) if m)


def unlink_partition(db_path: str, day: str) -> bool:
    """Delete a day's file and its -wal/-shm; True if the main file existed."""
    base = partition_path(db_path, day)
    existed = os.path.exists(base)
    for suffix in ("-wal", "-shm", ""):
        try:
            os.remove(base + suffix)
        except FileNotFoundError:
            pass
    return existed


class AttachedPartitions:
    """The writer's attached partitions, least recently used detached first."""

    def __init__(self, conn: sqlite3.Connection, db_path: str, group: str | None = None):
        self.conn = conn
        self.db_path = db_path
        self.group = group
        self._attached: OrderedDict[str, str] = OrderedDict()

    def ensure(self, days: set[str]) -> dict[str, str]:
        """Attach (creating if needed) every day in ``days``; call outside a transaction."""
        if len(days) > MAX_ATTACHED:
            raise StoreError(
                f"one cycle holds samples of {len(days)} UTC days ({min(days)}..{max(days)});"
                f" at most {MAX_ATTACHED} are allowed: split the backfill into smaller batches"
            )
        for day in sorted(days):
            if day in self._attached:
                self._attached.move_to_end(day)
                continue
            while len(self._attached) >= MAX_ATTACHED:
                old = next(d for d in self._attached if d not in days)
                self.detach(old)
            os.makedirs(partition_dir(self.db_path), exist_ok=True)
            s = schema_name(day)
            self.conn.execute("ATTACH DATABASE ? AS " + s, (partition_path(self.db_path, day),))
            self.conn.execute(f"PRAGMA {s}.journal_mode=WAL")
            self.conn.execute(f"PRAGMA {s}.synchronous=NORMAL")
            for stmt in split_statements(PARTITION_DDL.format(s=s)):
                self.conn.execute(stmt)
            restrict_db(partition_path(self.db_path, day), self.group)
            self._attached[day] = s
        return {d: self._attached[d] for d in days}

    def detach(self, day: str) -> None:
        """Detach one day if attached (outside a transaction)."""
        s = self._attached.pop(day, None)
        if s is not None:
            self.conn.execute("DETACH DATABASE " + s)

    def detach_all(self) -> None:
        """Detach every partition (before close)."""
        for day in list(self._attached):
            self.detach(day)


def open_partition_ro(db_path: str, day: str) -> sqlite3.Connection | None:
    """Read-only connection to a day's partition, or None when the file does not exist."""
    path = partition_path(db_path, day)
    if not os.path.exists(path):
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False)
    return conn


def cycle_summary(db_path: str, day: str) -> tuple[int | None, int]:
    """``(max cycle, total rows)`` recorded inside a partition's ``cycles`` table."""
    conn = open_partition_ro(db_path, day)
    if conn is None:
        return None, 0
    try:
        row = conn.execute("SELECT max(cycle), coalesce(sum(rows), 0) FROM cycles").fetchone()
    except sqlite3.OperationalError:
        return None, 0
    finally:
        conn.close()
    return row[0], row[1]
