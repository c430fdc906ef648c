"""Read-only access to the facility database for the TUI (docs/ARCHITECTURE.md "Storage").

The TUI is a reader: it opens the database with ``Store(readonly=True)`` (a
``file:...?mode=ro`` URI) and reads only through the store's read API, one
``Store.snapshot()`` read transaction per refresh, so a screen shows one committed state and
WAL checkpoints are never starved; it never writes and speaks no SQL. :class:`DbReader` runs
in a worker thread and returns an immutable-by-convention :class:`Snapshot`; the app hands
snapshots to the screens.

Cost at 2 000 points and 1 Hz: ``latest`` is read incrementally (rows whose
``updated_ms`` moved since the previous read), so a refresh touches only what changed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from alarms.chatter import chattering
from facility.store import Store, StoreError

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

SPANS: dict[str, tuple[int, str]] = {
    "1h": (HOUR_MS, "1m"), "24h": (DAY_MS, "1m"), "7d": (7 * DAY_MS, "1h"),
    "30d": (30 * DAY_MS, "1h")}
"""A point trend's spans: (length, aggregate resolution). Minute buckets up to a day (at most
1 440, a few per screen column), hourly ones beyond (168 for a week, 720 for 30 days), so one
trend read stays a few hundred rows whatever the span (docs/ARCHITECTURE.md "Storage")."""
BUCKET_MS = {"1m": 60_000, "1h": HOUR_MS}


@dataclass(eq=False)
class Snapshot:
    """Everything the screens show, read in one short transaction at ``now_ms``.

    ``eq=False``: two snapshots are never "equal", so every refresh reaches the screens
    without comparing thousands of values.
    """

    now_ms: int
    error: str | None = None  # the database could not be read (missing, not a facility db)
    heartbeat_ms: int | None = None  # service_state "heartbeat".ts_ms
    heartbeat_pid: int | None = None
    points: dict[str, dict] = field(default_factory=dict)  # point -> points row
    latest: dict[str, tuple] = field(default_factory=dict)  # point -> (ts, value, q, good_ts, good_value)
    alarms: list[dict] = field(default_factory=list)  # every alarm row
    zone_modes: dict[str, dict] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)  # events of the focused alarm, or recent ones
    history_of: str | None = None  # the alarm id the history belongs to (None: recent events)
    trends: dict[str, list[dict]] = field(default_factory=dict)  # point -> 1-min buckets, last hour
    trends_zone: str | None = None
    point_trend: list[dict] = field(default_factory=list)  # buckets of the trend screen's point
    point_trend_of: tuple[str, str] | None = None  # (point, span) they belong to
    zone_history: list[dict] = field(default_factory=list)  # events of a zone's alarms
    zone_history_of: str | None = None  # the zone they belong to
    hazmat: list[dict] | None = None  # containers summed per store/substance; None: no ledger

    def value(self, point: str) -> tuple[float | None, int | None, int | None]:
        """(value, quality, ts_ms) of a point's newest sample; Nones when never seen."""
        row = self.latest.get(point)
        if row is None:
            return None, None, None
        return row[1], row[2], row[0]

    def active_alarms(self) -> list[dict]:
        """Alarms not in NORM (active, unacknowledged, shelved, suppressed or out of service)."""
        return [a for a in self.alarms
                if a.get("state") not in (None, "NORM") or a.get("active") or not a.get("acked", 1)]


@dataclass
class ReadRequest:
    """What the screens currently need beyond the basics (set from the UI thread)."""

    trend_zone: str | None = None
    history_alarm: str | None = None
    hazmat: bool = False
    trend_every_s: float = 5.0
    trend_point: str | None = None  # the trend screen's point
    trend_span: str = "1h"  # a key of SPANS
    zone_history: str | None = None  # the zone whose alarm history is on screen


class LockedReader:
    """A read-only store connection kept open between refreshes.

    ``close`` comes from the UI thread (on unmount) while a worker may still be reading:
    closing a SQLite connection under a running statement crashes the process, so reads and
    the close take the same lock.
    """

    def __init__(self, db_path: str):
        self.db_path = db_path
        self._lock = threading.Lock()
        self.store: Store | None = None

    def close(self) -> None:
        """Close the read-only connection (waits for a read in progress)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            finally:
                self.store = None


class DbReader(LockedReader):
    """Incremental, read-only reader used from one worker thread at a time."""

    def __init__(self, db_path: str):
        super().__init__(db_path)
        self._points_sig: tuple | None = None
        self._points: dict[str, dict] = {}
        self._names: dict[int, str] = {}
        self._latest: dict[str, tuple] = {}
        self._latest_mark: int | None = None
        self._full_at: int = 0
        self._trends: dict[str, list[dict]] = {}
        self._trends_key: tuple | None = None
        self._trends_at: int = 0
        self._hazmat: list[dict] | None = None
        self._hazmat_at: int = 0
        self._point_trend: list[dict] = []
        self._point_trend_key: tuple | None = None
        self._point_trend_at: int = 0

    def _open(self) -> Store:
        if self.store is None:
            self.store = Store(self.db_path, readonly=True)
            self._points_sig = None
            self._latest_mark = None
        return self.store

    def read(self, now_ms: int, req: ReadRequest | None = None) -> Snapshot:
        """One snapshot; a database problem becomes ``Snapshot.error`` (retried next time)."""
        req = req or ReadRequest()
        with self._lock:
            return self._read_locked(now_ms, req)

    def _read_locked(self, now_ms: int, req: ReadRequest) -> Snapshot:
        try:
            store = self._open()
            with store.snapshot():
                return self._read(store, now_ms, req)
        except StoreError as exc:
            self._close()  # the lock is held here
            return Snapshot(now_ms=now_ms, error=str(exc))

    def _read(self, store: Store, now_ms: int, req: ReadRequest) -> Snapshot:
        snap = Snapshot(now_ms=now_ms)
        sig = store.points_signature()
        if sig != self._points_sig:
            self._points = {r["point"]: r for r in store.points()}
            self._names = {r["id"]: r["point"] for r in self._points.values()}
            self._points_sig = sig
            self._latest_mark = None
        if self._latest_mark is None or now_ms - self._full_at >= 60_000 or now_ms < self._full_at:
            # a full re-read now and then guards against a clock stepping backwards
            self._latest, self._full_at = {}, now_ms
            rows = store.latest_rows()
        else:
            rows = store.latest_rows(updated_after_ms=self._latest_mark)
        mark = self._latest_mark or 0
        names = self._names
        latest = dict(self._latest)
        for pid, ts, value, q, gts, gval, upd in rows:
            name = names.get(pid)
            if name is not None:
                latest[name] = (ts, value, q, gts, gval)
            if upd > mark:
                mark = upd
        self._latest, self._latest_mark = latest, mark
        snap.points, snap.latest = self._points, latest

        hb = store.heartbeat()
        if hb is not None:
            snap.heartbeat_ms, snap.heartbeat_pid = hb["ts_ms"], hb["pid"]
        snap.alarms = store.alarms()
        chatter = chattering(store.conn)  # the pager's record: >= 3 raises in 60 s (ISA-18.2)
        for a in snap.alarms:
            if a["id"] in chatter:
                a["chattering"] = chatter[a["id"]].raises
        snap.zone_modes = store.zone_modes()
        if req.history_alarm:
            snap.history = store.events(alarm_id=req.history_alarm)[-200:]
            snap.history_of = req.history_alarm
        else:
            snap.history = store.recent_events(100)
        if req.trend_zone:
            self._read_trends(store, now_ms, req)
            snap.trends, snap.trends_zone = self._trends, req.trend_zone
        if req.trend_point:
            self._read_point_trend(store, now_ms, req)
            snap.point_trend = self._point_trend
            snap.point_trend_of = (req.trend_point, req.trend_span)
        if req.zone_history:
            snap.zone_history = store.zone_events(req.zone_history, 200)
            snap.zone_history_of = req.zone_history
        if req.hazmat:
            if self._hazmat_at == 0 or now_ms - self._hazmat_at >= 5000 or now_ms < self._hazmat_at:
                self._hazmat = store.hazmat_totals()
                self._hazmat_at = now_ms
            snap.hazmat = self._hazmat
        return snap

    def _read_trends(self, store: Store, now_ms: int, req: ReadRequest) -> None:
        key = (req.trend_zone, self._points_sig)
        fresh = now_ms - self._trends_at < req.trend_every_s * 1000 and now_ms >= self._trends_at
        if key == self._trends_key and fresh:
            return
        out: dict[str, list[dict]] = {}
        for name, row in self._points.items():
            if row.get("zone") == req.trend_zone:
                out[name] = store.aggregates(row["id"], now_ms - HOUR_MS, now_ms + 60_000, "1m")
        self._trends, self._trends_key, self._trends_at = out, key, now_ms

    def _read_point_trend(self, store: Store, now_ms: int, req: ReadRequest) -> None:
        """One point over its span, re-read every ``trend_every_s`` for the last hour and
        once a minute for longer spans (their newest bucket moves no faster than that)."""
        span_ms, res = SPANS.get(req.trend_span, SPANS["1h"])
        key = (req.trend_point, req.trend_span, self._points_sig)
        every_ms = req.trend_every_s * 1000 if span_ms <= HOUR_MS else 60_000
        fresh = now_ms - self._point_trend_at < every_ms and now_ms >= self._point_trend_at
        if key == self._point_trend_key and fresh:
            return
        row = self._points.get(req.trend_point)
        buckets = [] if row is None else store.aggregates(
            row["id"], now_ms - span_ms, now_ms + BUCKET_MS[res], res)
        self._point_trend, self._point_trend_key, self._point_trend_at = buckets, key, now_ms
