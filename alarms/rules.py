"""Compile the configuration's limits into engine rules, each with its source.

docs/ARCHITECTURE.md "Where limits come from": the zone's standard (ISO 14644-1 class and/or EU GMP
grade + occupancy, the lower per size and mode winning with both sources recorded), site
defaults per quantity, and explicit per-point values, each replacing only the limit it
names. Points are passed in as plain objects (the sensors package expands them; alarms
never imports sensors) with the attributes ``id, device, zone, quantity, unit, size_um,
limits, stale_after_s, measures, between``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from alarms.standards import annex1_limit, iso14644_limit
from facility.config.checks import check_order, parse_pair
from facility.config.schema import Config, LimitSpec, Zone
from facility.domain.model import LIMIT_NAMES, limit_side
from facility.domain.vocab import PRIORITY_RANK
from facility.domain.vocab import ZONE_MODES as MODES


@dataclass(frozen=True)
class RulePoint:
    """A point as rule compilation sees it: zone and site resolved, implicit limits added.

    The top floor adapts the sensors' points into these; hazmat adds gas points.
    """

    id: str
    device: str
    zone: str | None
    site: str | None
    quantity: str
    unit: str
    size_um: float | None = None
    limits: dict = field(default_factory=dict)
    limit_sources: dict = field(default_factory=dict)
    stale_after_s: float | None = None
    measures: str | None = None
    between: str | None = None
    alarm_kind: str | None = None
    alarm_subject: str | None = None
    critical: bool = False
    decimals: int = 3
    kind: str = "measured"
    replaces: bool = False  # a derived definition that replaces a polled point of the same id
    record_volume_l: float | None = None  # particle channels: air volume of one record
    door: bool = False  # cascade points: a door contact between the rooms (door_grace_s)
    min_priority: str | None = None
    """The least priority this point's alarms get, whatever ``[alarms.priorities]`` says:
    the risk sets a floor (a counter fault that leaves an ISO <= 5 room without a valid
    record is high; a detector's bits disagreeing with its set points is medium)."""


# One record of a 1 CFM counter sampling 60 s: 28.3168 L (reference/particle-counter-modbus.md).
NOMINAL_RECORD_VOLUME_L = 28.3168
# Annex 1 (2022) note on occasional false counts of >=5 um particles: M of N rules.
LOW_COUNT_M_OF_N = (2, 3)
LOW_COUNT_SOURCE = "Annex 1 9.x note on occasional false counts: m_of_n [2, 3] below 2 counts/record"


@dataclass(frozen=True)
class CompiledRule:
    """One limit of one point, ready for the engine, with everything an alarm row records."""

    alarm_id: str  # "<subject>:<kind>", e.g. "MEC-PC-01.pc_0_5um:action_high"
    key: str  # engine state key "<point id>:<limit>[@mode]"
    point: str
    limit_name: str  # action_high | alert_high | alert_low | action_low
    side: str  # high | low
    limit: float
    deadband: float
    on_delay_s: float
    off_delay_s: float
    m_of_n: tuple[int, int] | None
    max_gap_s: float
    source: str
    priority: str  # low | medium | high | critical
    critical: bool
    mode: str | None  # None: applies in every mode
    zone: str | None
    site: str | None
    kind: str  # the alarm kind: the limit name, or comm, instrument, door_open, gas_high ...


def _std_limits(zone: Zone, size_um: float, mode: str) -> tuple[float | None, str]:
    """Action limit from the zone's standards for one size and mode: the lower wins."""
    found: list[tuple[float, str]] = []
    if zone.iso_class is not None:
        lim = iso14644_limit(zone.iso_class, size_um)
        if lim is not None:
            found.append((lim, f"ISO 14644-1:2015 class {zone.iso_class:g} at {size_um:g} um"))
    if zone.gmp_grade is not None and size_um in (0.5, 5.0):
        lim = annex1_limit(zone.gmp_grade, mode, size_um)
        if lim is not None:
            found.append((lim, f"EU GMP Annex 1 Table 5 grade {zone.gmp_grade} {mode} at {size_um:g} um"))
    if not found:
        return None, ""
    best = min(found)
    others = [s for v, s in found if s != best[1]]
    source = best[1] + (f" (lower than {'; '.join(others)})" if others else "")
    if len(found) > 1 and found[0][0] == found[1][0]:
        source = " = ".join(s for _, s in found)
    return best[0], source


def _zone_limits(cfg: Config, point, zone: Zone | None, mode: str) -> dict[str, tuple[LimitSpec, str]]:
    """Limits a point gets from its zone's standard or pressure cascade, per mode."""
    out: dict[str, tuple[LimitSpec, str]] = {}
    if zone is None:
        return out
    q = point.quantity
    if q == "particle_conc" and point.size_um is not None:
        action, source = _std_limits(zone, point.size_um, mode)
        if action is not None:
            mofn = None
            volume_l = getattr(point, "record_volume_l", None) or NOMINAL_RECORD_VOLUME_L
            if action * volume_l / 1000.0 < 2.0:
                mofn = LOW_COUNT_M_OF_N
                source += f"; {LOW_COUNT_SOURCE}"
            out["action_high"] = (LimitSpec(limit=action, m_of_n=mofn), source)
            frac = cfg.alarms.alert_fraction
            if frac is not None:
                out["alert_high"] = (
                    LimitSpec(limit=round(action * frac, 6), m_of_n=mofn),
                    f"alarms.alert_fraction={frac:g} x action limit (site choice, Annex 1 9.9)",
                )
    if q == "pressure_diff_zone" and zone.min_dp_pa is not None:
        # Derived cascade point "ZONE - REFERENCE": signed min_dp_pa (docs/ARCHITECTURE.md "Pressure cascade").
        name = "action_low" if zone.min_dp_pa > 0 else "action_high"
        delay = zone.door_grace_s if getattr(point, "door", False) else 0.0
        # A GMP room cites EU GMP Annex 1 4.14; a non-GMP room (the fab) cites its site
        # practice, since Annex 1 does not apply there.
        why = ("EU GMP Annex 1 4.14: >= 10 Pa between grades" if zone.gmp_grade is not None
               else "site practice, ISO 14644-4: 10-15 Pa between cleanliness classes")
        src = f"zones[{zone.id}].min_dp_pa={zone.min_dp_pa:+g} Pa vs {zone.reference} ({why})"
        if delay:
            src += f"; door_grace_s={delay:g} on-delay (door contact between the rooms)"
            if zone.justification:
                src += f": {zone.justification}"
        out[name] = (LimitSpec(limit=zone.min_dp_pa, deadband=zone.dp_deadband_pa,
                               on_delay_s=delay, justification=zone.justification), src)
    if q == "door":
        out["action_high"] = (LimitSpec(limit=0.5, on_delay_s=zone.door_open_max_s),
                              f"zones[{zone.id}].door_open_max_s={zone.door_open_max_s:g}")
    return out


def _merged(cfg: Config, point, zone: Zone | None, mode: str):
    """Standard, then site default per quantity, then explicit: each replaces only its limit."""
    merged: dict[str, tuple[LimitSpec, str]] = dict(_zone_limits(cfg, point, zone, mode))
    for name, spec in cfg.alarms.defaults.get(point.quantity, {}).items():
        if name not in merged:
            merged[name] = (spec, f"alarms.defaults.{point.quantity}.{name}")
    own = getattr(point, "limit_sources", None) or {}
    for name, spec in (point.limits or {}).items():
        merged[name] = (spec, own.get(name) or
                        f"devices[{point.device}].points[{point.id.split('.', 1)[1]}].limits.{name}")
    return merged


def _priority(cfg: Config, kind: str, zone: Zone | None, limit_name: str) -> tuple[str, bool]:
    prio = cfg.alarms.priorities.get(kind) or cfg.alarms.priorities.get(limit_name)
    prio = prio or ("high" if limit_name.startswith("action") else "medium")
    # docs/ARCHITECTURE.md: action limits in ISO <= 5 or grade A rooms are critical.
    critical = limit_name.startswith("action") and zone is not None and kind == limit_name and (
        (zone.iso_class is not None and zone.iso_class <= 5) or zone.gmp_grade == "A")
    return ("critical" if critical else prio), critical


def _modes_for(zone: Zone | None, point) -> tuple[str | None, ...]:
    """GMP particle limits differ by occupancy: compile one rule set per mode."""
    if zone is not None and zone.gmp_grade is not None and point.quantity == "particle_conc":
        return MODES
    return (None,)


def compile_rules(cfg: Config, points: Iterable) -> tuple[list[CompiledRule], list[str], list[str]]:
    """Compile every point's limits. Returns (rules, problems, warnings) as key-path lines."""
    zones = {z.id: z for z in cfg.zones}
    rules: list[CompiledRule] = []
    problems: list[str] = []
    warnings: list[str] = []
    for point in points:
        zone = zones.get(point.zone) if point.zone else None
        site = zone.site if zone else getattr(point, "site", None)
        stale = point.stale_after_s or math.inf
        any_limit = False
        for mode in _modes_for(zone, point):
            merged = _merged(cfg, point, zone, mode or (zone.occupancy if zone else "in_operation"))
            if not merged:
                continue
            any_limit = True
            specs = {n: s for n, (s, _) in merged.items()}
            sources = {n: src for n, (_, src) in merged.items()}
            for path, msg in check_order(specs, sources):
                problems.append(f"{path}: {msg}")
            for name in LIMIT_NAMES:
                if name not in merged:
                    continue
                spec, source = merged[name]
                kind = getattr(point, "alarm_kind", None) or name
                prio, critical = _priority(cfg, kind, zone, name)
                floor = getattr(point, "min_priority", None)
                if floor and PRIORITY_RANK[floor] < PRIORITY_RANK.get(prio, len(PRIORITY_RANK)):
                    prio = floor
                if getattr(point, "critical", False):
                    prio, critical = "critical", True
                suffix = f"@{mode}" if mode else ""
                subject = getattr(point, "alarm_subject", None) or point.id
                alarm_kind = name if kind == name else kind
                rules.append(CompiledRule(
                    alarm_id=f"{subject}:{alarm_kind}{suffix}", key=f"{point.id}:{name}{suffix}",
                    point=point.id, limit_name=name, side=limit_side(name), limit=spec.limit,
                    deadband=spec.deadband, on_delay_s=spec.on_delay_s, off_delay_s=spec.off_delay_s,
                    m_of_n=tuple(spec.m_of_n) if spec.m_of_n else None,
                    max_gap_s=spec.max_gap_s if spec.max_gap_s is not None else stale,
                    source=source, priority=prio, critical=critical, mode=mode,
                    zone=point.zone, site=site, kind=alarm_kind,
                ))
        if not any_limit and point.quantity in LIMITED_QUANTITIES:
            why = (f"the zone's standard gives none at {point.size_um:g} um (an ISO 14644-1:2015"
                   " blank cell, or a size Annex 1 does not list)"
                   if point.quantity == "particle_conc" else f"none for quantity {point.quantity!r}")
            warnings.append(f"{point.id}: no applicable limit: {why}; recorded, not alarmed;"
                            " add [devices.points.limits] or alarms.defaults to alarm on it")
    return rules, problems, warnings


# Quantities for which a point without any limit deserves a warning in check-config.
LIMITED_QUANTITIES = ("particle_conc", "pressure_diff_zone", "temperature", "humidity",
                      "gas_conc", "exhaust_pressure", "door")


def with_alert_fraction(cfg: Config, fraction: float) -> Config:
    """A copy of the config with another alert fraction: the backtest's "what if" override."""
    return replace(cfg, alarms=replace(cfg.alarms, alert_fraction=fraction))


def pair_of(point) -> tuple[str, str] | None:
    """The two zones a pressure point measures, e.g. ("MEC-LITHO", "MEC-CORRIDOR")."""
    return parse_pair(point.measures) if getattr(point, "measures", None) else None


@dataclass(frozen=True)
class CascadePoint:
    """A zone's pressure against its reference, derived from one or two transmitters.

    ``plus`` and ``minus`` are raw point ids: value = plus - minus (``minus`` None when a
    transmitter measures "ZONE - REFERENCE" directly). ``invert`` flips a transmitter
    that measures "REFERENCE - ZONE".
    """

    id: str  # "<zone>.dp_cascade"
    zone: str
    reference: str
    plus: str
    minus: str | None
    invert: bool
    door: bool  # a door contact between the two zones exists: door_grace_s applies


def cascade_points(cfg: Config, points: Iterable) -> tuple[list[CascadePoint], list[str]]:
    """Plan each zone's derived pressure point; problems name zones whose inputs are missing."""
    pts = list(points)
    by_pair: dict[tuple[str, str], str] = {}
    for p in pts:
        pair = pair_of(p) if p.quantity == "pressure_diff" else None
        if pair:
            by_pair[pair] = p.id
    doors = {frozenset(parse_pair(p.between)) for p in pts
             if p.quantity == "door" and getattr(p, "between", None) and parse_pair(p.between)}
    out: list[CascadePoint] = []
    problems: list[str] = []
    for i, z in enumerate(cfg.zones):
        if z.min_dp_pa is None or z.reference is None:
            continue
        ref = z.reference
        door = frozenset((z.id, ref)) in doors
        common = dict(id=f"{z.id}.dp_cascade", zone=z.id, reference=ref, door=door)
        if (z.id, ref) in by_pair:
            out.append(CascadePoint(plus=by_pair[(z.id, ref)], minus=None, invert=False, **common))
        elif (ref, z.id) in by_pair:
            out.append(CascadePoint(plus=by_pair[(ref, z.id)], minus=None, invert=True, **common))
        else:
            via = [(b, pid) for (a, b), pid in by_pair.items() if a == z.id]
            match = next(((pid, by_pair[(ref, b)]) for b, pid in via if (ref, b) in by_pair), None)
            if match is None:
                problems.append(f"zones[{i}].min_dp_pa: no pressure point measures \"{z.id} - {ref}\""
                                f" or both against a common reference; add a transmitter with measures")
                continue
            out.append(CascadePoint(plus=match[0], minus=match[1], invert=False, **common))
    return out, problems
