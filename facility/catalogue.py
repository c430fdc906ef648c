"""Everything the service evaluates: points (configured, derived, health, system) and rules.

The sensors package expands devices into points, ``alarms.rules`` compiles limits and
cascades, ``hazmat.gas`` adds gas-detection policy; this module joins them (it is on the
top floor because it imports all three) so the service, check-config and backtest see
one and the same list.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from alarms.rules import CascadePoint, CompiledRule, RulePoint, cascade_points, compile_rules
from facility.config.schema import Config, Device, LimitSpec
from facility.domain.model import PointInfo, limit_side
from hazmat.gas import gas_points, is_toxic_gas
from hazmat.licence import licence_rules
from sensors.points import PointDef, expand_points

BIT = 0.5  # a 0/1 status point is "beyond" above 0.5 (1 = the condition)
HAZMAT_KINDS = ("exempt", "segregation", "ledger")  # per-site hazmat findings as points


# System health points of the service itself (docs/ARCHITECTURE.md "The monitoring watches itself").
SYSTEM_DEVICE = "system"


SLOW_CHECK_S = 60.0
"""Free disk and clock sync are sampled once a minute (``facility.service.health``): both
change over minutes to hours and need no finer resolution."""
SKIPPED_WINDOW_S = 60.0  # skipped scans are counted per connection over the last minute
LOST_CYCLES_POINT = "system.lost_cycles"  # engine cycles lost in the last SKIPPED_WINDOW_S


def connections(cfg: Config) -> dict[tuple[str, int], list[str]]:
    """host:port -> the ids of the devices polled over it, in configuration order: one poll
    job each (``sensors.poller``), so one skipped-runs alarm each."""
    out: dict[tuple[str, int], list[str]] = {}
    for d in cfg.devices:
        out.setdefault((d.host, d.port), []).append(d.id)
    return out


def skipped_point(device_ids: list[str]) -> str:
    """Point id of one connection's skipped scans, named after the devices behind it (the
    cause a technician looks at): ``system.<dev>[+<dev>...].skipped_runs``."""
    return f"{SYSTEM_DEVICE}.{'+'.join(device_ids)}.skipped_runs"


def system_points(cfg: Config, cycle_s: float) -> list[RulePoint]:
    """Self-monitoring points; their alarms are critical (docs/ARCHITECTURE.md "Critical
    alarms"). Each is a condition over a window or with on/off delays, never a per-cycle
    delta (ISA-18.2 hysteresis, ISA-18.2 / EEMUA 191): the loop-lag value is already
    the lag sustained over two cycles (``facility.service.health``) and clears after two
    cycles without; skipped runs count one connection's misses over 60 s; disk and clock,
    sampled once a minute, raise on the second consecutive bad reading and clear after three
    good ones (a change of minutes, not a flicker)."""
    src = 'docs/ARCHITECTURE.md "The monitoring watches itself"'
    k = cfg.alarms.skipped_runs_max
    out = [
        RulePoint("system.loop_lag_s", SYSTEM_DEVICE, None, None, "health", "s",
                  limits={"action_high": LimitSpec(limit=2 * cycle_s, off_delay_s=2 * cycle_s)},
                  limit_sources={"action_high": f"{src}: event-loop lag over two cycles"},
                  alarm_kind="loop_lag", alarm_subject="system", critical=True, kind="health"),
    ]
    for (host, port), ids in connections(cfg).items():
        out.append(RulePoint(
            skipped_point(ids), SYSTEM_DEVICE, None, None, "health", "",
            limits={"action_high": LimitSpec(limit=float(k),
                                             off_delay_s=SKIPPED_WINDOW_S)},
            limit_sources={"action_high": (
                f"{src}: more than {k} skipped scans in {SKIPPED_WINDOW_S:g} s of the poll job"
                f" {host}:{port} ({', '.join(ids)}); alarms.skipped_runs_max")},
            alarm_kind="skipped_runs", alarm_subject=f"{SYSTEM_DEVICE}.{'+'.join(ids)}",
            critical=True, kind="health"))
    disk = float(cfg.storage.free_disk_min_mb)
    out += [
        RulePoint("system.free_disk_mb", SYSTEM_DEVICE, None, None, "health", "MB",
                  limits={"action_low": LimitSpec(limit=disk, deadband=0.05 * disk,
                                                  on_delay_s=SLOW_CHECK_S,
                                                  off_delay_s=2 * SLOW_CHECK_S)},
                  limit_sources={"action_low": "storage.free_disk_min_mb"},
                  alarm_kind="disk_low", alarm_subject="system", critical=True, kind="health"),
        RulePoint(LOST_CYCLES_POINT, SYSTEM_DEVICE, None, None, "health", "cycles",
                  limits={"action_high": LimitSpec(limit=float(k), off_delay_s=SKIPPED_WINDOW_S)},
                  limit_sources={"action_high": (
                      f"{src}: more than {k} engine cycles lost (the loop fell whole cycles"
                      f" behind) in {SKIPPED_WINDOW_S:g} s; alarms.skipped_runs_max")},
                  alarm_kind="lost_cycles", alarm_subject="system", critical=True,
                  kind="health"),
        RulePoint("system.store_unwritten", SYSTEM_DEVICE, None, None, "health", "cycles",
                  limits={"action_high": LimitSpec(limit=BIT)},
                  limit_sources={"action_high": f"{src}: cycles held unwritten (disk full)"},
                  alarm_kind="store_full", alarm_subject="system", critical=True, kind="health"),
        RulePoint("system.clock_unsynced", SYSTEM_DEVICE, None, None, "health", "",
                  limits={"action_high": LimitSpec(limit=BIT, on_delay_s=SLOW_CHECK_S,
                                                   off_delay_s=2 * SLOW_CHECK_S)},
                  limit_sources={"action_high": f"{src}: host clock not synchronised"},
                  alarm_kind="clock_unsynced", alarm_subject="system", critical=True, kind="health"),
    ]
    return out


# Comm hysteresis (ISA-18.2 on/off delay, ISA-18.2 / EEMUA 191): a device is lost after
# this long without an answer, the larger of 3 scans and 10 s; a toxic-gas detector sooner,
# since nobody sees the gas while it is blind (docs/ARCHITECTURE.md "Critical alarms").
COMM_DELAY_MIN_S = 10.0
COMM_DELAY_SCANS = 3
TOXIC_COMM_DELAY_S = 5.0
TOXIC_COMM_DELAY_MAX_S = 10.0  # beyond this a toxic-gas detector's delay needs a justification


def comm_timing(cfg: Config, dev: Device) -> tuple[float, float]:
    """(raise after, clear after) seconds of a device's comm alarm: ``comm_delay_s`` and
    ``comm_clear_s`` or their defaults (``facility.config.schema.Device``)."""
    toxic = dev.gas is not None and is_toxic_gas(cfg, dev.gas)
    default = TOXIC_COMM_DELAY_S if toxic else max(COMM_DELAY_SCANS * dev.scan_s, COMM_DELAY_MIN_S)
    delay = float(dev.comm_delay_s) if dev.comm_delay_s is not None else default
    return delay, float(dev.comm_clear_s) if dev.comm_clear_s is not None else delay


def comm_problems(cfg: Config) -> list[str]:
    """A toxic-gas detector whose comm delay exceeds 10 s without ``comm_justification``."""
    out = []
    for i, dev in enumerate(cfg.devices):
        if (dev.gas is not None and is_toxic_gas(cfg, dev.gas) and dev.comm_delay_s is not None
                and dev.comm_delay_s > TOXIC_COMM_DELAY_MAX_S and not dev.comm_justification):
            out.append(f"devices[{i}].comm_delay_s: ={dev.comm_delay_s:g} s exceeds"
                       f" {TOXIC_COMM_DELAY_MAX_S:g} s for toxic-gas detector {dev.id}; lower it"
                       ' or add comm_justification = "..."')
    return out


CALIBRATION_WARN_DAYS = 30
"""A calibration due within this many days is "due_soon" (an advisory in check-config, the TUI
and the report; docs/ARCHITECTURE.md "Calibration tracking")."""


def calibration_status(device_cfg: Device, today: datetime.date) -> tuple[str, int | None]:
    """``("ok" | "due_soon" | "overdue", days)`` of a device's calibration on ``today``.

    ``days`` is ``calibration_due - today`` in days: how many are left (0 on the due day),
    negative once overdue. The due day itself is still in calibration; "overdue" starts the
    day after (ISO 21501-4 asks for a yearly particle-counter calibration; the date is the
    site's, ``devices[].calibration_due``). Within ``CALIBRATION_WARN_DAYS`` it is
    "due_soon". A device without ``calibration_due`` is ``("ok", None)``: nothing to track.
    """
    due = device_cfg.calibration_due
    if due is None:
        return "ok", None
    days = (due - today).days
    if days < 0:
        return "overdue", days
    return ("due_soon" if days <= CALIBRATION_WARN_DAYS else "ok"), days


# Particle counter faults after which its records are not valid (sensors.counter marks a
# flow fault's records BAD; a laser out of spec or a counter not sampling records nothing
# that counts): in a room that must be monitored continuously the room then has no valid
# record, so the fault is a HIGH alarm whatever [alarms.priorities] instrument says.
RECORD_FAULTS = {"flow_fault": "flow", "laser_fault": "laser",
                 "not_sampling": "sampling (or no usable channels)"}
RECORD_FAULT_PRIORITY = "high"


def _record_fault(cfg: Config, p: PointDef, dev: Device,
                  zones: Mapping[str, object] | None = None) -> tuple[str, str] | None:
    """(priority floor, source) for a counter's flow, laser or sampling fault in a room of
    ISO class <= 5 or grade A/B (EU GMP Annex 1 §9.17 / §9.18: grade A, and B similarly,
    monitored continuously; ISO <= 5 rooms are treated alike, as their action limits are
    critical); None elsewhere, where the configured instrument priority stays."""
    what = RECORD_FAULTS.get(p.name)
    if what is None:
        return None
    zone = (zones.get(dev.zone) if zones is not None
            else next((z for z in cfg.zones if z.id == dev.zone), None))
    if what is None or zone is None or not (
            (zone.iso_class is not None and zone.iso_class <= 5) or zone.gmp_grade in ("A", "B")):
        return None
    room = (f"ISO {zone.iso_class:g}" if zone.iso_class is not None and zone.iso_class <= 5
            else f"grade {zone.gmp_grade}")
    return RECORD_FAULT_PRIORITY, (
        f"particle counter {what} fault: no valid record of {zone.id} ({room}, continuous"
        " monitoring: EU GMP Annex 1 9.17/9.18)")


def _rule_point(cfg: Config, p: PointDef, dev: Device,
                zones: Mapping[str, object] | None = None) -> RulePoint:
    """Adapt a device point; status, comm, leak and detector bits get their implicit limits."""
    base = dict(id=p.id, device=p.device, zone=dev.zone, site=dev.site, quantity=p.quantity,
                unit=p.unit, size_um=p.size_um, limits=dict(p.limits),
                stale_after_s=p.stale_after_s, measures=p.measures, between=p.between,
                decimals=p.decimals, kind=p.kind, record_volume_l=p.record_volume_l)
    toxic = dev.gas is not None and is_toxic_gas(cfg, dev.gas)
    if p.quantity == "comm":
        on_s, off_s = comm_timing(cfg, dev)
        return RulePoint(**base | dict(
            limits={"action_low": LimitSpec(limit=BIT, on_delay_s=on_s, off_delay_s=off_s)},
            limit_sources={"action_low": f"no answer from the device for {on_s:g} s"
                           " (docs/ARCHITECTURE.md \"Alarm lifecycle\": hysteresis)"},
            alarm_kind="comm", alarm_subject=dev.id, critical=toxic))
    if p.quantity == "status" and p.name in ("fault",):
        return RulePoint(**base | dict(
            limits={"action_high": LimitSpec(limit=BIT)},
            limit_sources={"action_high": "detector fault bit (the detector's own status)"},
            alarm_kind="fault", alarm_subject=dev.id, critical=toxic))
    if p.quantity == "status" and not p.limits:
        floor = _record_fault(cfg, p, dev, zones)
        return RulePoint(**base | dict(
            limits={"action_high": LimitSpec(limit=BIT)},
            limit_sources={"action_high": floor[1] if floor else
                           "instrument status bit (reference: particle counter)"},
            alarm_kind="instrument", min_priority=floor[0] if floor else None))
    if p.quantity == "gas_alarm":
        kind = "gas_high" if p.name.endswith("high") else "gas_low"
        return RulePoint(**base | dict(
            limits={"action_high": LimitSpec(limit=BIT)},
            limit_sources={"action_high": "the detector's own alarm set point (its outputs are"
                                          " the authoritative gas alarm)"},
            alarm_kind=kind, alarm_subject=dev.id, critical=True))
    if p.quantity == "leak" and not p.limits:
        return RulePoint(**base | dict(
            limits={"action_high": LimitSpec(limit=BIT)},
            limit_sources={"action_high": "store leak sensor (hazmat)"}, alarm_kind="leak"))
    if p.quantity == "exhaust_pressure":
        return RulePoint(**base | dict(alarm_kind="exhaust_fail", critical=True))
    return RulePoint(**base)


@dataclass
class Catalogue:
    """Points, derived points, compiled rules and what check-config must report."""

    points: list[RulePoint]
    polled: list[PointDef]
    cascades: list[CascadePoint]
    rules: list[CompiledRule]
    infos: list[PointInfo]
    problems: list[str]
    warnings: list[str]
    cfg: Config

    _by_point: dict[str, list[CompiledRule]] = field(default_factory=dict, init=False, repr=False)
    _points: dict[str, RulePoint] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for r in self.rules:
            self._by_point.setdefault(r.point, []).append(r)
        self._points = {p.id: p for p in self.points}

    def rules_for(self, point_id: str) -> list[CompiledRule]:
        """The rules evaluating one point."""
        return list(self._by_point.get(point_id, ()))

    def point(self, point_id: str) -> RulePoint | None:
        """The point with this id (configured, derived, health or system), if any."""
        return self._points.get(point_id)

    def stale_points(self) -> dict[str, float]:
        """Point id -> ``stale_after_s`` of every point with a stale alarm (docs/ARCHITECTURE.md
        "Stale"): measured points and derived cascades that have a stale time and a rule
        (status and health points are covered by their device's communication alarm)."""
        return {p.id: float(p.stale_after_s) for p in self.points
                if p.stale_after_s and p.id in self._by_point
                and (p.kind == "measured" or p.quantity == "pressure_diff_zone")}

    def limit_rules(self, modes: Mapping[str, str]) -> dict[str, dict[str, CompiledRule]]:
        """Point id -> limit name -> the compiled rule in force when each zone is in the
        mode ``modes`` gives it (rules of other modes left out; a zone not named keeps its
        configured occupancy). Only limits a value complies with: rules named after their
        limit, and those of measured points whose alarm has a kind of its own (a cabinet's
        exhaust failure); communication, status, detector-bit, exposure and health alarms
        are conditions with kinds of their own."""
        occupancy = {z.id: z.occupancy for z in self.cfg.zones} | dict(modes)
        out: dict[str, dict[str, CompiledRule]] = {}
        for r in self.rules:
            if r.kind != r.limit_name and self._points[r.point].kind != "measured":
                continue
            if r.mode is not None and r.mode != occupancy.get(r.zone):
                continue
            out.setdefault(r.point, {})[r.limit_name] = r
        return out


def within_limits(value: float, limits: Mapping[str, float]) -> bool:
    """Whether a value complies with limits given as ``{limit name: L}``.

    docs/ARCHITECTURE.md "Limit rules": a high limit is exceeded by ``v > L``, a low one by ``v < L``,
    so a value exactly at a limit is compliant; this is the engine's ``beyond`` without its
    delays. A value that is not finite complies with nothing (only good samples can).
    """
    if not math.isfinite(value):
        return False
    for name, lim in limits.items():
        if value > lim if limit_side(name) == "high" else value < lim:
            return False
    return True


def build_catalogue(cfg: Config, *, cycle_s: float = 1.0) -> Catalogue:
    """Expand, derive and compile everything the service evaluates."""
    devices = {d.id: d for d in cfg.devices}
    zones = {z.id: z for z in cfg.zones}
    polled = expand_points(cfg)
    # one pass, dictionary lookups: nothing here scans every point or zone per point
    points = [_rule_point(cfg, p, devices[p.device], zones) for p in polled]
    cascades, problems = cascade_points(cfg, points)
    stale_of = {p.id: p.stale_after_s or 0 for p in points}
    derived = [RulePoint(id=c.id, device=c.zone, zone=c.zone, site=zones[c.zone].site,
                         quantity="pressure_diff_zone", unit="Pa", decimals=1, kind="derived",
                         door=c.door,
                         stale_after_s=max(stale_of.get(c.plus, 0),
                                           stale_of.get(c.minus, 0)) or None,
                         between=f"{c.zone} - {c.reference}" if c.door else None)
               for c in cascades]
    gas, gas_problems = gas_points(cfg, points)
    problems += gas_problems + comm_problems(cfg)
    replaced = {g.id for g in gas if getattr(g, "replaces", False)}
    points = [p for p in points if p.id not in replaced]
    every = points + derived + list(gas) + hazmat_points(cfg) + system_points(cfg, cycle_s)
    rules, errs, warns = compile_rules(cfg, every)
    infos = [PointInfo(id=p.id, device=p.device, site=p.site or "", zone=p.zone,
                       quantity=p.quantity, unit=p.unit, decimals=p.decimals,
                       gmp=bool(p.zone and zones.get(p.zone) and zones[p.zone].gmp_grade),
                       kind=p.kind) for p in every]
    with_bits = {p.device for p in points if p.quantity == "gas_alarm"}
    warns = [w for w in warns if not (w.split(".")[0] in with_bits and ".conc:" in w)]
    return Catalogue(every, polled, cascades, rules, infos, problems + errs, warns, cfg)


def hazmat_points(cfg: Config) -> list[RulePoint]:
    """Stock per licensed class (limits from the FSD licence) and per-site hazmat findings."""
    out: list[RulePoint] = []
    stores = {s.id: s for s in cfg.hazmat.stores}
    by_point: dict[str, list[dict]] = {}
    for rule in licence_rules(cfg.hazmat, dict(cfg.alarms.priorities)):
        by_point.setdefault(rule["point"], []).append(rule)
    for pid, rules in by_point.items():
        st = stores[pid.split(".")[0]]
        out.append(RulePoint(
            pid, st.id, st.zone, st.site, "stock", "", decimals=3, kind="derived",
            limits={r["limit"]: LimitSpec(limit=r["value"]) for r in rules},
            limit_sources={r["limit"]: r["source"] for r in rules},
            alarm_kind=None, alarm_subject=None))
    src = "facility hazmat check: {} (HK Cap. 295 (FSD))"
    for site in sorted({s.site for s in cfg.hazmat.stores}):
        for kind in HAZMAT_KINDS:
            out.append(RulePoint(
                f"{site}.hazmat_{kind}", f"{site}.hazmat", None, site, "hazmat_finding", "",
                decimals=0, kind="derived",
                limits={"action_high": LimitSpec(limit=1.5), "alert_high": LimitSpec(limit=0.5)},
                limit_sources={"action_high": src.format(kind) + ", action finding",
                               "alert_high": src.format(kind) + ", alert finding"}))
    return out
