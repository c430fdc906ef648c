"""Everything the service evaluates: points (configured, derived, health, system) and rules.

The sensors package expands devices into points, ``alarms.rules`` compiles limits and
cascades, ``hazmat.gas`` adds gas-detection policy; this module joins them (it is on the
top floor because it imports all three) so the service, check-config and backtest see
one and the same list.
"""

from __future__ import annotations

from dataclasses import dataclass

from alarms.rules import CascadePoint, CompiledRule, RulePoint, cascade_points, compile_rules
from facility.config.schema import Config, Device, LimitSpec
from facility.domain.model import PointInfo
from hazmat.gas import gas_points, is_toxic_gas
from hazmat.licence import licence_rules
from sensors.points import PointDef, expand_points

BIT = 0.5  # a 0/1 status point is "beyond" above 0.5 (1 = the condition)
HAZMAT_KINDS = ("exempt", "segregation", "ledger")  # per-site hazmat findings as points


# System health points of the service itself (DESIGN.md "The monitoring watches itself").
SYSTEM_DEVICE = "system"


def system_points(cfg: Config, cycle_s: float) -> list[RulePoint]:
    """Self-monitoring points; their alarms are critical by DESIGN.md's list."""
    src = "DESIGN.md self-monitoring"
    return [
        RulePoint("system.loop_lag_s", SYSTEM_DEVICE, None, None, "health", "s",
                  limits={"action_high": LimitSpec(limit=2 * cycle_s)},
                  limit_sources={"action_high": f"{src}: event-loop lag over two cycles"},
                  alarm_kind="loop_lag", alarm_subject="system", critical=True, kind="health"),
        RulePoint("system.skipped_runs", SYSTEM_DEVICE, None, None, "health", "",
                  limits={"action_high": LimitSpec(limit=BIT)},
                  limit_sources={"action_high": f"{src}: skipped poll job runs"},
                  alarm_kind="skipped_runs", alarm_subject="system", critical=True, kind="health"),
        RulePoint("system.free_disk_mb", SYSTEM_DEVICE, None, None, "health", "MB",
                  limits={"action_low": LimitSpec(limit=float(cfg.storage.free_disk_min_mb))},
                  limit_sources={"action_low": "storage.free_disk_min_mb"},
                  alarm_kind="disk_low", alarm_subject="system", critical=True, kind="health"),
        RulePoint("system.clock_unsynced", SYSTEM_DEVICE, None, None, "health", "",
                  limits={"action_high": LimitSpec(limit=BIT)},
                  limit_sources={"action_high": f"{src}: host clock not synchronised"},
                  alarm_kind="clock_unsynced", alarm_subject="system", critical=True, kind="health"),
    ]


def _rule_point(cfg: Config, p: PointDef, dev: Device) -> RulePoint:
    """Adapt a device point; status, comm, leak and detector bits get their implicit limits."""
    base = dict(id=p.id, device=p.device, zone=dev.zone, site=dev.site, quantity=p.quantity,
                unit=p.unit, size_um=p.size_um, limits=dict(p.limits),
                stale_after_s=p.stale_after_s, measures=p.measures, between=p.between,
                decimals=p.decimals, kind=p.kind, record_volume_l=p.record_volume_l)
    toxic = dev.gas is not None and is_toxic_gas(cfg, dev.gas)
    if p.quantity == "comm":
        return RulePoint(**base | dict(
            limits={"action_low": LimitSpec(limit=BIT)},
            limit_sources={"action_low": "no answer from the device (DESIGN.md comm quality)"},
            alarm_kind="comm", alarm_subject=dev.id, critical=toxic))
    if p.quantity == "status" and p.name in ("fault",):
        return RulePoint(**base | dict(
            limits={"action_high": LimitSpec(limit=BIT)},
            limit_sources={"action_high": "detector fault bit (the detector's own status)"},
            alarm_kind="fault", alarm_subject=dev.id, critical=toxic))
    if p.quantity == "status" and not p.limits:
        return RulePoint(**base | dict(
            limits={"action_high": LimitSpec(limit=BIT)},
            limit_sources={"action_high": "instrument status bit (reference: particle counter)"},
            alarm_kind="instrument"))
    if p.quantity == "gas_alarm":
        kind = "gas_high" if p.name.endswith("high") else "gas_low"
        return RulePoint(**base | dict(
            limits={"action_high": LimitSpec(limit=BIT)},
            limit_sources={"action_high": "detector's own alarm bit (authoritative, DESIGN.md)"},
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

    def rules_for(self, point_id: str) -> list[CompiledRule]:
        """The rules evaluating one point."""
        return [r for r in self.rules if r.point == point_id]


def build_catalogue(cfg: Config, *, cycle_s: float = 1.0) -> Catalogue:
    """Expand, derive and compile everything the service evaluates."""
    devices = {d.id: d for d in cfg.devices}
    zones = {z.id: z for z in cfg.zones}
    polled = expand_points(cfg)
    points = [_rule_point(cfg, p, devices[p.device]) for p in polled]
    cascades, problems = cascade_points(cfg, points)
    derived = [RulePoint(id=c.id, device=c.zone, zone=c.zone, site=zones[c.zone].site,
                         quantity="pressure_diff_zone", unit="Pa", decimals=1, kind="derived",
                         door=c.door,
                         stale_after_s=max((p.stale_after_s or 0) for p in points
                                           if p.id in (c.plus, c.minus)) or None,
                         between=f"{c.zone} - {c.reference}" if c.door else None)
               for c in cascades]
    gas, gas_problems = gas_points(cfg, points)
    problems += gas_problems
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
    return Catalogue(every, polled, cascades, rules, infos, problems + errs, warns)


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
    src = "facility hazmat check: {} (reference/standards.md section 4)"
    for site in sorted({s.site for s in cfg.hazmat.stores}):
        for kind in HAZMAT_KINDS:
            out.append(RulePoint(
                f"{site}.hazmat_{kind}", f"{site}.hazmat", None, site, "hazmat_finding", "",
                decimals=0, kind="derived",
                limits={"action_high": LimitSpec(limit=1.5), "alert_high": LimitSpec(limit=0.5)},
                limit_sources={"action_high": src.format(kind) + ", action finding",
                               "alert_high": src.format(kind) + ", alert finding"}))
    return out
