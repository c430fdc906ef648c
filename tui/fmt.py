"""Formatting shared by the screens: local times with offset, numbers, styles.

docs/ARCHITECTURE.md "Samples and quality": storage is UTC; the TUI shows the site's local time with
its offset, e.g. ``2026-11-23 18:02:11 +08:00``.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from facility.domain.display import fmt_number

# The words (priorities and their order, the duration grammar) are the one vocabulary's;
# re-exported here beside the styles the screens pair them with.
from facility.domain.vocab import PRIORITIES, parse_duration, priority_rank

__all__ = ["LEVEL_STYLE", "PRIORITIES", "PRIORITY_STYLE", "QUALITY_LABEL", "STATE_STYLE",
           "fmt_duration", "fmt_signed", "fmt_value", "local_time", "parse_duration",
           "priority_rank", "short_time", "zone_info"]

# The style of each ISA-18.2 priority.
PRIORITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow",
                  "low": "cyan"}
# ISA-18.2 states: UNACK stands out (reverse + bold, no blinking).
STATE_STYLE = {"UNACK": "bold reverse", "ACKED": "", "RTNUN": "italic", "SHLVD": "dim",
               "DSUPR": "dim", "OOSRV": "dim magenta", "NORM": "green"}
# How a value compares with its limits.
LEVEL_STYLE = {"action": "bold red", "alert": "yellow", "ok": "green", "bad": "magenta",
               "stale": "dim", None: ""}
QUALITY_LABEL = {0: "good", 1: "bad", 2: "comm", 3: "stale"}


@lru_cache(maxsize=32)
def zone_info(name: str) -> ZoneInfo | timezone:
    """The IANA zone (UTC when the name is unknown, so a typo never crashes the display)."""
    try:
        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - zoneinfo raises several kinds
        return timezone.utc


def _offset(dt: datetime) -> str:
    off = dt.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def local_time(ts_ms: int | None, tz: str = "UTC") -> str:
    """``2026-11-23 18:02:11 +08:00`` (empty for None)."""
    if ts_ms is None:
        return ""
    dt = datetime.fromtimestamp(ts_ms / 1000.0, tz=zone_info(tz))
    return dt.strftime("%Y-%m-%d %H:%M:%S ") + _offset(dt)


def short_time(ts_ms: int | None, tz: str = "UTC") -> str:
    """``11-23 18:02:11`` in the site's zone, for table columns (empty for None)."""
    if ts_ms is None:
        return ""
    return datetime.fromtimestamp(ts_ms / 1000.0, tz=zone_info(tz)).strftime("%m-%d %H:%M:%S")


def fmt_value(value: float | None, decimals: int | None = None) -> str:
    """A bare number in the one format of every screen (``facility.domain.display.fmt_number``:
    significant digits for its magnitude, thousands grouped): 35200 -> ``35 200`` (never
    ``35.2k``), 0.005 -> ``0.005`` (never ``0.01``), 12.34 -> ``12.3``; None -> ``--``.

    ``decimals`` is accepted for older callers and ignored: the digits follow the value, so
    0.004 and 0.005 ppm never read alike. Values with their unit: ``display.fmt_value``.
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "--"
    return fmt_number(value)


def fmt_signed(value: float | None, decimals: int | None = None) -> str:
    """A pressure difference with its sign: ``+12.3``, ``-4`` (``--`` for None)."""
    if value is None or not math.isfinite(value):
        return "--"
    return fmt_number(value, signed=True)


def fmt_duration(seconds: float | None) -> str:
    """``45s``, ``12m``, ``3h05m``."""
    if seconds is None:
        return ""
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
