"""How values, times and points are written for people: pages, e-mails and the TUI.

One place decides how a reading reads, so a page and the screen never disagree about it:

* numbers carry the significant digits their magnitude needs (``0.004 ppm``, never
  ``0.00 ppm``; ``35200 count/m3``; ``12.3 Pa``), see :func:`format_number`;
* 0/1 points read as words, the abnormal word in capitals (``ALARM``/``normal``,
  ``OPEN``/``closed``, ``NO ANSWER``/``answering``), see :data:`BOOLEAN_WORDS`;
* times are the site's local time with its offset, ``2026-11-23 18:02:11 +08:00``
  (docs/ARCHITECTURE.md "Samples and quality": storage is UTC, people read local time);
* on screens, :func:`fmt_value` and :func:`fmt_limit` add grouped thousands (``7 140``) and
  the unit to every value and limit (``alert 7 140 / action 10 200 /m³``; docs/ARCHITECTURE.md
  "Values on screen").

Plain functions over plain values: no I/O, nothing above the ground floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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


def person(name: str | None, login: str | None) -> str:
    """Who acted, as a person reads it: "Chan Tai Man (tmchan)"; the login alone where no
    name was recorded, and the name alone for an actor without a login."""
    if name and login and name != login:
        return f"{name} ({login})"
    return login or name or ""


# ---- the one format of the screens (and of the report and CLI where they use it) ----------

GROUP_SEPARATOR = " "
"""Between groups of three digits, ``7 140`` and ``10 200`` (SI brochure 5.4.4: a space, never
a comma or a point). A plain space: a terminal draws a thin space one cell wide anyway, and
some fonts have no glyph for it."""

UNIT_TEXT: dict[str, str] = {
    "count/m3": "/m³",
    "m3": "m³",
    "m3/h": "m³/h",
    "count": "counts",
    "L_wc": "L w.c.",
    "degC": "°C",
    "pct": "%",
}
"""How a stored unit is written beside a number (``count/m3`` is stored ASCII, read ``/m³``)."""

STATUS_WORDS: dict[str, tuple[str, str]] = {
    "fault": ("FAULT", "ok"),  # a gas detector's own fault bit
    "flow_fault": ("FAULT", "ok"),
    "laser_fault": ("FAULT", "ok"),
    "device_error": ("FAULT", "ok"),
    "clock_fault": ("FAULT", "ok"),
    "service_due": ("DUE", "ok"),
    "not_sampling": ("NOT SAMPLING", "sampling"),
    "clock_unsynced": ("UNSYNCED", "synced"),
    "comm_ok": ("ok", "FAULT"),
}
"""Point name -> (word for 1, word for 0) of instrument status points, where the name says
more than the quantity (every counter status point has the quantity ``status``)."""

SIGNED_QUANTITIES = frozenset({"pressure_diff", "pressure_diff_zone", "exhaust_pressure"})
"""Quantities whose sign is the reading: a room at ``+12.3 Pa`` is above its reference,
``-4 Pa`` below it (docs/ARCHITECTURE.md "Pressure cascade"); a cabinet exhaust at ``-80 Pa``
draws, one at ``+5 Pa`` does not."""


def unit_text(unit: str | None) -> str:
    """The unit as written beside a number (``count/m3`` -> ``/m³``; unknown units as stored)."""
    return UNIT_TEXT.get(unit or "", unit or "")


def _words(quantity: str | None, unit: str | None, name: str | None) -> tuple[str, str] | None:
    if name is not None:
        short = name.rsplit(".", 1)[-1]
        if short in STATUS_WORDS:
            return STATUS_WORDS[short]
    if not unit and quantity:
        return BOOLEAN_WORDS.get(quantity)
    return None


def fmt_number(value: float, *, signed: bool = False, sep: str = GROUP_SEPARATOR) -> str:
    """:func:`format_number` with its thousands grouped (``7 140``, ``35 250``, ``0.004``);
    ``signed`` puts ``+`` before a positive number. Never ``27k``: every digit of the
    integer part is shown, so ``27 000`` and ``10 200`` line up."""
    text = format_number(float(value))
    sign = ""
    if text.startswith("-"):
        sign, text = "-", text[1:]
    elif signed and text != "0":
        sign = "+"
    whole, dot, frac = text.partition(".")
    if len(whole) > 3:
        groups = []
        while len(whole) > 3:
            groups.insert(0, whole[-3:])
            whole = whole[:-3]
        whole = sep.join([whole, *groups])
    return sign + whole + dot + frac


def fmt_value(value: float | None, unit: str | None = "", quantity: str | None = None, *,
              name: str | None = None, sep: str = GROUP_SEPARATOR) -> str:
    """One reading with its unit, the way every screen writes it.

    ``7 140 /m³``, ``0.004 ppm``, ``+12.3 Pa``, ``21.5 °C``; a 0/1 point as its word
    (``OPEN``/``closed``, ``ALARM``/``normal``, ``FAULT``/``ok``: :data:`BOOLEAN_WORDS`, and
    :data:`STATUS_WORDS` by point ``name``); a missing or non-finite value as
    :data:`NO_READING`. Significant digits as :func:`format_number`.
    """
    if value is None or not math.isfinite(value):
        return NO_READING
    words = _words(quantity, unit, name)
    if words is not None:
        return words[0] if value >= 0.5 else words[1]
    number = fmt_number(value, signed=quantity in SIGNED_QUANTITIES, sep=sep)
    shown = unit_text(unit)
    return f"{number} {shown}" if shown else number


LIMIT_LEVELS = ("alert", "action")
"""The order limits are written in: the alert level first, then the action limit."""


def fmt_limit(limits: Mapping[str, float], unit: str | None = "", quantity: str | None = None,
              *, name: str | None = None, sep: str = GROUP_SEPARATOR) -> str:
    """The limits of a point as a sentence fragment, unit once at the end.

    ``{"alert_high": 7140, "action_high": 10200}`` -> ``alert 7 140 / action 10 200 /m³``
    (upper limits, the usual case, are the bare number); a band as ``alert 19–23 /
    action 18–24 °C``; lower limits alone as ``alert min +12 / action min +10 Pa``; a 0/1
    point as the state that raises it, ``action when OPEN``. Empty for no limits. A value
    exactly at a limit is within it (docs/ARCHITECTURE.md "Limit rules").
    """
    words = _words(quantity, unit, name)
    signed = quantity in SIGNED_QUANTITIES
    has_low = any(k.endswith("_low") for k in limits)
    parts = []
    for level in LIMIT_LEVELS:
        lo, hi = limits.get(f"{level}_low"), limits.get(f"{level}_high")
        if lo is None and hi is None:
            continue
        if words is not None:
            states = [w for w, lim in ((words[0], hi), (words[1], lo)) if lim is not None]
            parts.append(f"{level} when {' or '.join(states)}")
            continue
        lo_t = None if lo is None else fmt_number(lo, signed=signed, sep=sep)
        hi_t = None if hi is None else fmt_number(hi, signed=signed, sep=sep)
        if lo_t is not None and hi_t is not None:
            parts.append(f"{level} {lo_t}–{hi_t}")
        elif lo_t is not None:
            parts.append(f"{level} min {lo_t}")
        else:
            parts.append(f"{level} {'max ' if has_low or signed else ''}{hi_t}")
    if not parts:
        return ""
    text = " / ".join(parts)
    shown = "" if words is not None else unit_text(unit)
    return f"{text} {shown}" if shown else text
