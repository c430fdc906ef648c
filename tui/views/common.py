"""What several screens share: a site's time zone, a zone's mode and class, where a point
lives, whether it is a process value or instrument health, and how one reading is coloured
against its limits."""

from __future__ import annotations

from rich.text import Text

from facility.config.schema import Config, Zone
from facility.domain.display import fmt_value as fmt_reading
from tui.data import Snapshot
from tui.fmt import LEVEL_STYLE, QUALITY_LABEL, fmt_signed, fmt_value
from tui.limits import LimitIndex, classify

# the alarm states that still need the operator (ISA-18.2: unacknowledged, acknowledged,
# returned but not acknowledged); the rest are listed after them
ALARM_STATES_ACTIVE = ("UNACK", "ACKED", "RTNUN")


def site_tz(cfg: Config, site_id: str | None) -> str:
    """The IANA zone of a site (the first site's for None; UTC without sites)."""
    for s in cfg.sites:
        if site_id is None or s.id == site_id:
            return s.timezone
    return "UTC"


def zone_mode(cfg_zone: Zone, snap: Snapshot) -> str:
    """Mode from the zone_modes table, else the configured occupancy."""
    row = snap.zone_modes.get(cfg_zone.id)
    return (row or {}).get("mode") or cfg_zone.occupancy


def zone_class(z: Zone) -> str:
    """``ISO 5``, ``GMP C`` or ``ISO 5/C``."""
    parts = []
    if z.iso_class is not None:
        parts.append(f"ISO {z.iso_class:g}")
    if z.gmp_grade:
        parts.append(f"GMP {z.gmp_grade}" if not parts else z.gmp_grade)
    return "/".join(parts) or "-"


def point_zone_map(cfg: Config, snap: Snapshot) -> dict[str, str | None]:
    """Zone of every known point: the points table's zone, else its device's configured zone."""
    dev_zone = {d.id: d.zone for d in cfg.devices}
    out = {}
    for name, row in snap.points.items():
        out[name] = row.get("zone") or dev_zone.get(row.get("device") or name.split(".", 1)[0])
    return out


def reading_cell(snap: Snapshot, limits: LimitIndex, point: str | None, mode: str | None,
                 decimals: int = 1, signed: bool = False) -> tuple[Text, str | None]:
    """A value coloured against its limits; bad/comm/stale quality shown as the quality."""
    if point is None:
        return Text(""), None
    value, q, _ts = snap.value(point)
    if q is None:
        return Text("--", style="dim"), None
    if q != 0:
        return Text(QUALITY_LABEL.get(q, "?"), style=LEVEL_STYLE["bad"]), "bad"
    level = classify(value, limits.for_point(point, mode))
    text = fmt_signed(value, decimals) if signed else fmt_value(value, decimals)
    return Text(text, style=LEVEL_STYLE.get(level, "")), level


# Points that tell how an instrument is, not how the room is (docs/ARCHITECTURE.md "Values on
# screen"): every device's communication-health points, a counter's flow, laser, clock and
# record status. The zone screen lists them apart from the process values.
INSTRUMENT_KINDS = frozenset({"health", "comm"})
INSTRUMENT_QUANTITIES = frozenset({"comm", "health", "flow", "clock_offset", "duration"})
INSTRUMENT_NAMES = frozenset({"flow_cfm", "flow_fault", "laser_fault", "service_due",
                              "device_error", "not_sampling", "clock_offset_s", "records_lost",
                              "record_conflict", "clock_fault", "sample_time_s", "hold_time_s",
                              "fault"})


def is_instrument_point(name: str, row: dict) -> bool:
    """True for an instrument-health point (comm, latency, flow, laser, clock, records)."""
    return (row.get("kind") in INSTRUMENT_KINDS or row.get("quantity") in INSTRUMENT_QUANTITIES
            or name.rsplit(".", 1)[-1] in INSTRUMENT_NAMES)


def value_cell(snap: Snapshot, limits: LimitIndex, point: str, mode: str | None) -> Text:
    """A reading with its unit (``7 140 /m³``, ``OPEN``, ``0.004 ppm``), coloured against its
    limits; bad/comm/stale quality shown as the quality, never as a number."""
    meta = snap.points.get(point) or {}
    value, q, _ts = snap.value(point)
    if q is None:
        return Text("--", style="dim")
    if q != 0:
        return Text(QUALITY_LABEL.get(q, "?"), style=LEVEL_STYLE["bad"])
    level = classify(value, limits.for_point(point, mode))
    return Text(fmt_reading(value, meta.get("unit"), meta.get("quantity"), name=point),
                style=LEVEL_STYLE.get(level, ""))
