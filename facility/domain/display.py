"""How values, times and points are written for people: pages, e-mails and the TUI.

One place decides how a reading reads, so a page and the screen never disagree about it:

* numbers carry the significant digits their magnitude needs (``0.004 ppm``, never
  ``0.00 ppm``; ``35200 count/m3``; ``12.3 Pa``), see :func:`format_number`;
* 0/1 points read as words, the abnormal word in capitals (``ALARM``/``normal``,
  ``OPEN``/``closed``, ``NO ANSWER``/``answering``), see :data:`BOOLEAN_WORDS`;
* times are the site's local time with its offset, ``2026-11-23 18:02:11 +08:00``
  (docs/ARCHITECTURE.md "Samples and quality": storage is UTC, people read local time).

Plain functions over plain values: no I/O, nothing above the ground floor.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

SIGNIFICANT_DIGITS = 3
"""Digits a number keeps: enough to tell 0.004 from 0.005 ppm (arsine's TLV-TWA is 0.005,
ACGIH TLV) and 9.96 from 10 Pa, never fewer than its integer part has."""

MAX_DECIMALS = 9
"""Below 1e-9 a reading is noise at any gas or pressure range this system measures."""

NO_READING = "no reading"
"""What a missing or non-finite value reads as (a failed read is never 0)."""

BOOLEAN_WORDS: dict[str, tuple[str, str]] = {
    "door": ("OPEN", "closed"),
    "comm": ("answering", "NO ANSWER"),  # comm_ok: 1 = the device answered
    "status": ("ALARM", "normal"),
    "gas_alarm": ("ALARM", "normal"),
    "leak": ("ALARM", "normal"),
}
"""quantity -> (word for 1, word for 0) of the 0/1 points; the abnormal state in capitals."""

HEALTH_WORDS: dict[str, str] = {
    "loop_lag_s": "event-loop lag",
    "skipped_runs": "skipped poll runs",
    "free_disk_mb": "free disk space",
    "clock_unsynced": "host clock synchronisation",
    "comm_ok": "communication",
    "latency_ms": "response time",
    "last_good_age_s": "age of the last good reading",
}
"""Point names of the service's own health points and devices' comm points, in words."""

_UNIT_SUFFIXES = ("_s", "_ms", "_mb", "_pa", "_ppm", "_pct", "_cfm")


def format_number(value: float) -> str:
    """``value`` with :data:`SIGNIFICANT_DIGITS` significant digits, trailing zeros dropped.

    Never scientific notation (a technician reads ``0.00004``, not ``4e-05``), never fewer
    digits than the integer part (``35200``, not ``3.52e+04``).
    """
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    decimals = min(MAX_DECIMALS, max(0, SIGNIFICANT_DIGITS - 1 - exponent))
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_value(value: float | None, unit: str = "", quantity: str = "") -> str:
    """A reading as a person reads it: ``0.004 ppm``, ``-12.5 Pa``, ``OPEN``, ``no reading``.

    A 0/1 point (``quantity`` in :data:`BOOLEAN_WORDS` and no unit) reads as its word; any
    other value as :func:`format_number` followed by its unit.
    """
    if value is None or not math.isfinite(value):
        return NO_READING
    words = BOOLEAN_WORDS.get(quantity)
    if words is not None and not unit:
        return words[0] if value >= 0.5 else words[1]
    number = format_number(float(value))
    return f"{number} {unit}" if unit else number


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo | timezone:
    try:
        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - zoneinfo raises several kinds; a typo must not crash a page
        return timezone.utc


def local_time(ts_ms: int | None, tz_name: str = "UTC") -> str:
    """``2026-11-23 18:02:11 +08:00``: the site's local time with its offset ("" for None)."""
    if ts_ms is None:
        return ""
    dt = datetime.fromtimestamp(ts_ms / 1000.0, tz=_zone(tz_name or "UTC"))
    off = dt.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return dt.strftime("%Y-%m-%d %H:%M:%S ") + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def point_words(name: str, quantity: str, *, size_um: float | None = None,
                gas: str | None = None) -> str:
    """What a point measures, in words: ``particles ≥0.5 µm``, ``arsine concentration``.

    ``name`` is the point's own name (the part after the device id); ``gas`` the gas of a
    gas detector.
    """
    gas_name = gas or "gas"
    if quantity == "particle_conc" and size_um is not None:
        return f"particles ≥{size_um:g} µm"
    if quantity == "particle_count" and size_um is not None:
        return f"particle count ≥{size_um:g} µm per record"
    if quantity in ("pressure_diff", "pressure_diff_zone"):
        return "differential pressure"
    if quantity == "gas_conc":
        return f"{gas_name} concentration"
    if quantity == "gas_exposure":
        return f"{gas_name} {'15-min STEL' if 'stel' in name else '8-h TWA'} exposure"
    if quantity == "gas_alarm":
        return f"{gas_name} detector {'high' if 'high' in name else 'low'} alarm"
    if quantity == "exhaust_pressure":
        return "cabinet exhaust pressure"
    if quantity == "humidity":
        return "relative humidity"
    if name in HEALTH_WORDS:
        return HEALTH_WORDS[name]
    words = name
    for suffix in _UNIT_SUFFIXES:
        if words.endswith(suffix):
            words = words[: -len(suffix)]
            break
    return words.replace("_", " ") or quantity.replace("_", " ")
