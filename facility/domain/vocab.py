"""The one vocabulary: the words the config, the service, the CLI and the TUI share.

Each list is defined here once and imported wherever it is checked, compiled or shown, so a
new mode, priority or role is added in one place and cannot be accepted by ``check-config``
yet unknown to the TUI (Home Assistant's habit of legality tables). Plain data, no I/O; the
duration grammar is the one ``facility shelve --for`` and the TUI's shelve dialog both read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from facility.domain.errors import UsageError

ZONE_MODES: tuple[str, ...] = ("at_rest", "in_operation")
"""A zone's occupancy state (EU GMP Annex 1 "at rest" / "in operation"); each mode has its
own compiled rules, and the inactive mode's rules are DSUPR (docs/ARCHITECTURE.md
"Alarm lifecycle")."""

PRIORITIES: tuple[str, ...] = ("critical", "high", "medium", "low")
"""ISA-18.2 alarm priorities, most urgent first: the order lists, pages and sorts use."""

PRIORITY_RANK: dict[str, int] = {p: i for i, p in enumerate(PRIORITIES)}
"""0 for critical ... 3 for low."""

ROLES: tuple[str, ...] = ("viewer", "technician", "engineer", "shelve_critical", "hazmat",
                          "admin")
"""Operator roles granted per login in ``[[operators]]``."""

ADMIN = "admin"
"""The installation's administrators. Like every role it is an explicit set of one: it grants
what needs ``admin`` and nothing else, so an administrator acknowledges, suppresses or books
dangerous goods only with ``technician``, ``engineer`` or ``hazmat`` listed too, and never
shelves a critical alarm without ``shelve_critical`` (docs/ARCHITECTURE.md "Critical alarms":
"Roles are explicit sets")."""

SERVICE_ACTORS: frozenset[str] = frozenset(
    {"service", "timer", "schedule", "engine", "chatter", "flood", "mode"})
"""The names the service acts under in events and audit rows (its own transitions, timers,
schedules). No operator may log in under one, or records could not tell the two apart."""

SHARED_LOGINS: frozenset[str] = frozenset({
    "root", "admin", "administrator", "operator", "operators", "technician", "technicians",
    "engineer", "engineers", "shiftlead", "supervisor", "user", "guest", "test", "demo",
    "fms", "facility", "cleanroom", "maintenance", "ops", "shift", "nobody", "ubuntu", "pi"})
"""Well-known logins that several people use or that name a role rather than a person. An
operator under one is refused by check-config unless it says ``shared = true`` with a
justification (Part 11 §11.10(e); ALCOA+ "attributable")."""

LIMIT_NAMES: tuple[str, ...] = ("action_high", "alert_high", "alert_low", "action_low")
"""The four limits of a point, in the tie order of docs/ARCHITECTURE.md "Limit rules"."""

ALARM_KINDS: tuple[str, ...] = (
    *LIMIT_NAMES,
    "comm",  # no answer from a device (comm_delay_s of continuous failure)
    "fault",  # the device reports its own fault
    "instrument",  # the instrument disagrees with itself (record conflict, bits vs set points)
    "stale",  # no good sample for stale_after_s
    "gas_high", "gas_low",  # a gas detector's own alarm bits
    "stel", "twa",  # gas exposure over 15 min / 8 h
    "leak", "exhaust_fail",  # hazmat store leak sensor, gas cabinet exhaust
    "loop_lag", "skipped_runs", "disk_low", "clock_unsynced",  # the service watching itself
    "store_full",  # cycles held in memory because the database could not be written
    "lost_cycles",  # engine cycles the overloaded service did not run (a counted gap)
    "calibration",  # a device's calibration_due has passed (docs/ARCHITECTURE.md "Calibration tracking")
    "offline",  # central: a site's edge node is gone (docs/ARCHITECTURE.md "Campus (Sparkplug B)")
)
"""The ``<kind>`` of an alarm id ``<subject>:<kind>`` (docs/ARCHITECTURE.md
"Alarm lifecycle")."""


def priority_rank(priority: str | None) -> int:
    """0 for critical ... 3 for low; an unknown priority sorts after every known one."""
    return PRIORITY_RANK.get(priority or "", len(PRIORITIES))


def has_role(roles: Iterable[str], role: str) -> bool:
    """Whether a login with ``roles`` may do what needs ``role``: only if it is listed.

    No role implies another, ``admin`` included: whoever may hide a critical alarm is named
    as such in ``[[operators]]``, never inferred from a broader title.
    """
    return role in tuple(roles)


class DurationError(UsageError, ValueError):
    """A duration the user typed that cannot be read; the message shows the form that works."""


DURATION_UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NUMBER = r"\d+(?:\.\d+)?"
_PLAIN = re.compile(rf"^{_NUMBER}$")
_PART = re.compile(rf"({_NUMBER})([smhd])")
_WHOLE = re.compile(rf"^(?:{_NUMBER}[smhd])+$")


def parse_duration(text: str) -> float:
    """``90`` (seconds), ``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``, ``1h 30m`` -> seconds.

    Case and spaces do not matter; the result must be more than 0 (a shelve for no time is
    a mistake, not a request). Raises :class:`DurationError` naming the value and the fix.
    """
    t = re.sub(r"\s+", "", str(text)).lower()
    if not t:
        raise DurationError("a duration is required, e.g. 30m or 2h")
    if _PLAIN.match(t):
        total = float(t)
    elif _WHOLE.match(t):
        total = sum(float(n) * DURATION_UNITS[u] for n, u in _PART.findall(t))
    else:
        raise DurationError(f"duration {text!r} is not readable; use a number with s, m, h or d,"
                            " e.g. 90s, 30m, 2h or 1h30m")
    if total <= 0:
        raise DurationError(f"duration {text!r} must be more than 0, e.g. 30m")
    return total
