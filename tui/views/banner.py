"""The stale-service banner: what it says, and when the service counts as gone."""

from __future__ import annotations

from tui.data import Snapshot
from tui.fmt import local_time


def stale_after_ms(refresh_s: float) -> int:
    """A heartbeat older than 3 x refresh, and at least 10 s, means the service is gone."""
    return int(max(3 * refresh_s, 10.0) * 1000)


def banner_text(snap: Snapshot | None, refresh_s: float, tz: str) -> str:
    """The stale-service banner ("" when the service's heartbeat is fresh)."""
    if snap is None:
        return ""
    if snap.error:
        return f"database not readable: {snap.error}"
    if snap.heartbeat_ms is None:
        return "service not running: no heartbeat recorded"
    if snap.now_ms - snap.heartbeat_ms > stale_after_ms(refresh_s):
        return f"service not running since {local_time(snap.heartbeat_ms, tz)}"
    return ""
