"""Numbers behind report.html: compliance, excursions, ISA-18.2 alarm performance.

Everything is computed in one pass over the time-ordered sample stream of the export
(constant memory per point), plus the range's events.

Compliance (per point with limits) = time within the action limits ÷ time with good data.
The limits are the catalogue's compiled rules (the very objects the service runs) in each
zone's configured occupancy. Each sample holds from its time until the next sample of the
point, for at most the point's hold time (its stale time); a good sample's span is "good
data", and "within" when ``facility.catalogue.within_limits`` says its value satisfies every
action limit (a value exactly at the limit is compliant, docs/ARCHITECTURE.md "Limit rules").
Everything else in the range — bad, comm or stale samples and gaps — is "not monitored":
shown separately and never counted as compliant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from alarms.rules import CompiledRule
from facility.catalogue import Catalogue, build_catalogue, within_limits
from facility.domain.vocab import ZONE_MODES
from facility.records import kpi
from facility.records.classify import ZoneClassifier
from facility.records.report.auditor import (
    completeness,
    config_history,
    grade_statement,
    instruments,
    people_actions,
    prepared_by,
)
from facility.records.report.modes import (
    ModeCompliance,
    ModeSpan,
    mode_at,
    mode_history,
    mode_limits,
    split_limits,
)


@dataclass
class Compliance:
    """Time accounting of one point over ``[from_ms, to_ms)``."""

    from_ms: int
    to_ms: int
    hold_ms: int
    action: dict[str, float]
    alert: dict[str, float] = field(default_factory=dict)
    good_ms: int = 0
    within_ms: int = 0
    within_alert_ms: int = 0
    _last: tuple | None = None

    def feed(self, ts_ms: int, value: float | None, quality: int) -> None:
        """Next sample of the point (time order)."""
        if self._last is not None and ts_ms <= self._last[0]:
            return  # duplicate or out of order: never evaluated
        self._close(ts_ms)
        self._last = (ts_ms, value, quality)

    def _close(self, until_ms: int) -> None:
        if self._last is None:
            return
        ts, value, q = self._last
        end = min(until_ms, ts + self.hold_ms, self.to_ms)
        span = max(0, end - max(ts, self.from_ms))
        if span and q == 0 and value is not None and math.isfinite(value):
            self.good_ms += span
            if within_limits(value, self.action):
                self.within_ms += span
            if within_limits(value, self.alert):
                self.within_alert_ms += span

    def finish(self) -> "Compliance":
        """Account the last sample's span (call once, after the last feed)."""
        self._close(self.to_ms)
        self._last = None
        return self

    @property
    def not_monitored_ms(self) -> int:
        """Range time without good data."""
        return (self.to_ms - self.from_ms) - self.good_ms

    @property
    def ratio(self) -> float | None:
        """Within ÷ good data (None when there was no good data at all)."""
        return self.within_ms / self.good_ms if self.good_ms else None


def alarm_performance(events: list[dict], from_ms: int, to_ms: int) -> dict:
    """ISA-18.2 / EEMUA 191 measures of ``events`` over the range, all sites together, as
    ``facility.records.kpi`` computes them for ``facility kpi`` (one computation)."""
    return performance(kpi.compute(events, [], {}, from_ms, to_ms).total)


def performance(k: kpi.SiteKpi) -> dict:
    """One KPI group as the report's summary names its measures."""
    return {
        "raises": k.alarms, "per_day": k.per_day, "days": k.days, "floods": list(k.floods),
        "flood_time_pct": k.flood_pct,
        "top10": [(a, n, 100.0 * n / k.alarms) for a, n in k.top10],
        "chattering": list(k.chattering),
        "standing": [(s.alarm, s.occurrence, s.active_ms, s.still_active) for s in k.stale],
        "ack_median_s": k.ack_median_s, "ack_p90_s": k.ack_p90_s, "ack_max_s": k.ack_max_s,
        "acked": k.acked, "unacked": k.unacked,
    }


def excursions(events: list[dict], to_ms: int) -> list[dict]:
    """Occurrences with a raise: onset -> clear, duration, limit (peak filled by the stream)."""
    out = {}
    for e in sorted(events, key=lambda e: e["id"]):
        key = (e["alarm_id"], e.get("occurrence"))
        if e["event"] == "raise" and key not in out:
            out[key] = {"alarm_id": e["alarm_id"], "occurrence": e.get("occurrence"),
                        "onset_ms": e["ts_ms"], "clear_ms": None, "limit": e.get("limit"),
                        "source": e.get("source"), "value": e.get("value"), "peak": None,
                        "high": not e["alarm_id"].split("@")[0].endswith("_low")}
        elif e["event"] == "clear" and key in out and out[key]["clear_ms"] is None:
            out[key]["clear_ms"] = e["ts_ms"]
    for x in out.values():
        x["duration_ms"] = (x["clear_ms"] or to_ms) - x["onset_ms"]
    return sorted(out.values(), key=lambda x: (x["onset_ms"], x["alarm_id"]))


def point_limits(cat: Catalogue, points: dict[int, dict]) -> dict[str, dict[str, CompiledRule]]:
    """The compiled limit rules of each reported point in its zone's configured occupancy
    (``Catalogue.limit_rules``), for points with a hold time (``hold_ms``); a stored point
    the configuration no longer has gets none."""
    rules = cat.limit_rules({})
    return {p["point"]: rules[p["point"]] for p in points.values()
            if p["point"] in rules and hold_ms(cat, p) is not None}


def hold_ms(cat: Catalogue, point: dict) -> int | None:
    """How long one sample of a point stands for: its stale time (docs/ARCHITECTURE.md "Stale") as the
    catalogue compiled it (3 x scan_s, or 3 x the record time of a particle counter).

    None for a point that never goes stale (stock, hazmat findings, the service's own
    health): without a hold time its samples cannot be turned into time within limits.
    """
    p = cat.point(point["point"])
    if p is None or not p.stale_after_s:
        return None
    return int(round(p.stale_after_s * 1000))


class ReportData:
    """Fed by the export's sample stream; everything report.html shows."""

    def __init__(self, cfg, store, from_ms: int, to_ms: int, points: dict[int, dict],
                 site: str | None = None, zone: str | None = None,
                 catalogue: Catalogue | None = None):
        self.cfg, self.store, self.from_ms, self.to_ms = cfg, store, from_ms, to_ms
        self.points, self.site, self.zone = points, site, zone
        self.events: list[dict] = []
        self.catalogue = catalogue if catalogue is not None else build_catalogue(cfg)
        self.rules = point_limits(self.catalogue, points)
        self.limits = {pid: {name: r.limit for name, r in rules.items()}
                       for pid, rules in self.rules.items()}
        zone_ids = [z.id for z in cfg.zones]
        self.modes = mode_history(cfg, store, from_ms, to_ms)
        self.mode_limits = mode_limits(self.catalogue, zone_ids)
        self.compliance: dict[str, ModeCompliance] = {}
        for p in points.values():
            if hold_ms(self.catalogue, p) is None or not any(
                    p["point"] in self.mode_limits[m] for m in ZONE_MODES):
                continue
            zone_id = next((z for z in (p.get("zone"), getattr(self.catalogue.point(p["point"]),
                                                               "zone", None)) if z), None)
            spans = self.modes.get(zone_id) or [ModeSpan(zone_id or "", "in_operation",
                                                         from_ms, to_ms)]
            by_mode = {m: split_limits(self.mode_limits[m].get(p["point"], {}))
                       for m in ZONE_MODES}
            self.compliance[p["point"]] = ModeCompliance(from_ms, to_ms,
                                                         hold_ms(self.catalogue, p), spans,
                                                         by_mode)
        self.counts: dict[str, list[int]] = {}
        from facility.domain.model import now_ms

        self._count_to_ms = min(to_ms, now_ms())  # completeness counts what time has passed
        self.classifiers = {z.id: ZoneClassifier(z, cfg.devices) for z in cfg.zones
                            if z.iso_class is not None and (zone is None or z.id == zone)
                            and (site is None or z.site == site)}
        self._pc_zone = {}
        for p in points.values():
            for zid, c in self.classifiers.items():
                if c.wants(p["point"]):
                    self._pc_zone[p["point"]] = c
        self._open: dict[str, list[dict]] = {}

    def set_events(self, events: list[dict]) -> None:
        """The range's events (before streaming, so excursion peaks come from the stream)."""
        self.events = events
        self.excursions = excursions(events, self.to_ms)
        for x in self.excursions:
            point = x["alarm_id"].split(":", 1)[0]
            rp = self.catalogue.point(point)
            spans = self.modes.get(getattr(rp, "zone", None) or point.split(".", 1)[0])
            x["mode"] = mode_at(spans, x["onset_ms"]) if spans else None
            self._open.setdefault(point, []).append(x)

    def feed(self, s) -> None:
        """One sample row of the stream (``SampleRow``)."""
        if s.ts_ms < self._count_to_ms:
            n = self.counts.get(s.point)
            if n is None:
                n = self.counts[s.point] = [0, 0]
            n[0] += 1
            if s.quality == 0 and s.value is not None:
                n[1] += 1
        c = self.compliance.get(s.point)
        if c is not None:
            c.feed(s.ts_ms, s.value, s.quality)
        z = self._pc_zone.get(s.point)
        if z is not None:
            z.feed(s.point, s.value, s.quality)
        xs = self._open.get(s.point)
        if xs and s.quality == 0 and s.value is not None:
            for x in xs:
                if x["onset_ms"] <= s.ts_ms < (x["clear_ms"] or self.to_ms):
                    if x["peak"] is None or (s.value > x["peak"] if x["high"] else s.value < x["peak"]):
                        x["peak"] = s.value

    def finish(self) -> None:
        """Close every accumulator (after the stream)."""
        for c in self.compliance.values():
            c.finish()
        self.classification = {zid: c.result() for zid, c in self.classifiers.items()
                               if c.sums}
        # the alarm KPIs of `facility kpi`: per site, read through the store for the range
        if self.site is not None or self.zone is None:
            sites = [self.site] if self.site is not None else [
                *(s.id for s in self.cfg.sites), None]
        else:
            sites = [next((z.site for z in self.cfg.zones if z.id == self.zone), None)]
        self.kpi = kpi.alarm_kpis(self.store, self.from_ms, self.to_ms, sites=sites,
                                  zone=self.zone)
        self.performance = performance(self.kpi.total)
        # the auditor's questions: who acted, modes, configurations, instruments, data
        zones = self.zone_ids()
        self.actions = people_actions(self.store, self.cfg, self.from_ms, self.to_ms,
                                      self.events, zones)
        self.config_versions = config_history(self.store, self.from_ms, self.to_ms)
        from facility.domain.model import now_ms

        self.instruments = instruments(self.cfg, self.catalogue, self.events, self.actions,
                                       min(self.to_ms - 1, now_ms()), zones)
        self.completeness = completeness(self.cfg, self.catalogue, self.points, self.counts,
                                         self.from_ms, self.to_ms, zones, self._count_to_ms)
        self.grades = {z.id: grade_statement(z, self.catalogue) for z in self.cfg.zones
                       if z.gmp_grade and (zones is None or z.id in zones)}
        self.prepared = prepared_by(self.cfg)
        self.prepared["ts_ms"] = now_ms()

    def zone_ids(self) -> set[str] | None:
        """The zones the report covers (None: every zone, no filter)."""
        if self.zone is None and self.site is None:
            return None
        return {z.id for z in self.cfg.zones if (self.zone is None or z.id == self.zone)
                and (self.site is None or z.site == self.site)}
