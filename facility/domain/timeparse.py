"""Times given on the command line (docs/ARCHITECTURE.md "Samples and quality", time rules).

* ISO 8601 with ``Z`` or an offset (``2025-03-01T08:00:00+08:00``) is an absolute time.
* A bare date or date-time (``2025-03-01``, ``2025-03-01 08:00``, ``2025-03-01T08:00:05``)
  is in the **site's** IANA zone, not the machine's.
* A bare time of day (``08:00``) is today in the site's zone.
* Ranges are half-open ``[from, to)``; a bare *date* given as ``--to`` means the end of that
  day, i.e. the start of the next local day (so ``--from 2025-03-01 --to 2025-03-01`` is
  that whole local day).
* Unix seconds (``1740787200``) are accepted for scripts.

Everything returns integer UTC milliseconds, as the store keeps them.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from facility.domain.errors import UsageError

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RE = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")
_UNIX_RE = re.compile(r"^\d{9,11}(\.\d+)?$")
_OFFSET_RE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)

FORMS = ("ISO 8601 with Z or an offset (2025-03-01T08:00:00+08:00), a date (2025-03-01) or "
         "date-time (2025-03-01T08:00) in the site's zone, a time of day (08:00), or Unix seconds")


class TimeError(UsageError, ValueError):
    """A time the user typed that cannot be read; the message says which forms work."""


def zone_of(tz_name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name, with a message that names the bad value."""
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeError(f"time zone {tz_name!r} is not an IANA zone (e.g. Asia/Hong_Kong)") from None


def _ms(dt: datetime) -> int:
    return int(round(dt.timestamp() * 1000))


def parse_time(text: str, tz_name: str, *, end: bool = False,
               now: datetime | None = None) -> int:
    """UTC ms of ``text``; ``end=True`` (for ``--to``) turns a bare date into the day's end."""
    s = (text or "").strip()
    if not s:
        raise TimeError(f"empty time; use {FORMS}")
    tz = zone_of(tz_name)
    if _UNIX_RE.match(s):
        return int(round(float(s) * 1000))
    if _DATE_RE.match(s):
        try:
            d = date.fromisoformat(s)
        except ValueError as exc:
            raise TimeError(f"{s!r}: {exc}") from None
        if end:
            d = d + timedelta(days=1)
        return _ms(datetime.combine(d, time(0, 0), tzinfo=tz))
    if _TIME_RE.match(s):
        try:
            t = time.fromisoformat(s if s.index(":") == 2 else "0" + s)
        except ValueError as exc:
            raise TimeError(f"{s!r}: {exc}") from None
        today = (now or datetime.now(tz=timezone.utc)).astimezone(tz).date()
        return _ms(datetime.combine(today, t, tzinfo=tz))
    iso = s.replace(" ", "T", 1)
    if iso.endswith(("z", "Z")):
        iso = iso[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise TimeError(f"{s!r} is not a time; use {FORMS}") from None
    if dt.tzinfo is None:
        # a bare local time: fold=0 picks the first of an ambiguous (DST) hour
        dt = dt.replace(tzinfo=tz)
    return _ms(dt)


def parse_range(from_text: str, to_text: str, tz_name: str,
                now: datetime | None = None) -> tuple[int, int]:
    """Half-open ``[from_ms, to_ms)``; refuses an empty or inverted range."""
    lo = parse_time(from_text, tz_name, now=now)
    hi = parse_time(to_text, tz_name, end=True, now=now)
    if hi <= lo:
        raise TimeError(f"--to {to_text} is not after --from {from_text}: the range "
                        f"[from, to) is empty")
    return lo, hi


def local_iso(ts_ms: int | None, tz_name: str, *, seconds: bool = True) -> str:
    """A time as local ISO 8601 with its offset (reports show local time, docs/ARCHITECTURE.md)."""
    if ts_ms is None:
        return ""
    dt = datetime.fromtimestamp(ts_ms / 1000.0, tz=timezone.utc).astimezone(zone_of(tz_name))
    return dt.isoformat(timespec="seconds" if seconds else "minutes")
