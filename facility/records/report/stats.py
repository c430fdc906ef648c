"""Numbers behind report.html: compliance, excursions, ISA-18.2 alarm performance.

Everything is computed in one pass over the time-ordered sample stream of the export
(constant memory per point), plus the range's events.

Compliance (per point with limits) = time within the action limits ÷ time with good data.
Each sample holds from its time until the next sample of the point, for at most the
point's hold time (its stale time); a good sample's span is "good data", and "within" when
its value satisfies every action limit (a value exactly at the limit is compliant, DESIGN.md
"Limit rules"). Everything else in the range — bad, comm or stale samples and gaps — is
"not monitored": shown separately and never counted as compliant.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

from facility.records.classify import ZoneClassifier, size_of

DAY_MS = 86_400_000
FLOOD_WINDOW_MS = 600_000  # ISA-18.2: more than 10 alarms in 10 minutes is a flood
FLOOD_MAX = 10
CHATTER_WINDOW_MS = 60_000  # chattering: >= 3 raises of one alarm within 60 s
CHATTER_MIN = 3
STANDING_MS = DAY_MS  # standing (stale) alarm: active > 24 h


def _within(value: float, limits: dict[str, float]) -> bool:
    for name, lim in limits.items():
        if name.endswith("_high") and value > lim:
            return False
        if name.endswith("_low") and value < lim:
            return False
    return True


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
            if _within(value, self.action):
                self.within_ms += span
            if _within(value, self.alert):
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
    """ISA-18.2 / EEMUA 191 measures over the range (reference §6)."""
    raises = sorted(((e.get("detected_ms") or e["ts_ms"]), e["alarm_id"], e.get("occurrence"))
                    for e in events if e["event"] == "raise" and from_ms <= e["ts_ms"] < to_ms)
    days = max((to_ms - from_ms) / DAY_MS, 1e-9)
    bins = Counter((t - from_ms) // FLOOD_WINDOW_MS for t, _a, _o in raises)
    floods = sorted((b, n) for b, n in bins.items() if n > FLOOD_MAX)
    per_alarm: dict[str, list[int]] = {}
    for t, a, _o in raises:
        per_alarm.setdefault(a, []).append(t)
    chattering = {}
    for a, ts in per_alarm.items():
        best = 0
        j = 0
        for i in range(len(ts)):
            while ts[i] - ts[j] > CHATTER_WINDOW_MS:
                j += 1
            best = max(best, i - j + 1)
        if best >= CHATTER_MIN:
            chattering[a] = best
    occ: dict[tuple, dict] = {}
    for e in sorted(events, key=lambda e: e["id"]):
        o = occ.setdefault((e["alarm_id"], e.get("occurrence")), {})
        o.setdefault(e["event"], e)
    standing, ack_s, unacked = [], [], 0
    for (a, n), o in occ.items():
        rz = o.get("raise")
        if rz is None:
            continue
        end = o["clear"]["ts_ms"] if "clear" in o else to_ms
        if end - rz["ts_ms"] > STANDING_MS:
            standing.append((a, n, end - rz["ts_ms"], "clear" not in o))
        if "ack" in o:
            ack_s.append((o["ack"]["ts_ms"] - (rz.get("detected_ms") or rz["ts_ms"])) / 1000.0)
        else:
            unacked += 1
    total = len(raises)
    top = Counter(a for _t, a, _o in raises).most_common(10)
    return {
        "raises": total, "per_day": total / days, "days": days,
        "floods": [(from_ms + b * FLOOD_WINDOW_MS, n) for b, n in floods],
        "flood_time_pct": 100.0 * len(floods) * FLOOD_WINDOW_MS / max(to_ms - from_ms, 1),
        "top10": [(a, n, 100.0 * n / total) for a, n in top],
        "chattering": sorted(chattering.items()),
        "standing": sorted(standing),
        "ack_median_s": statistics.median(ack_s) if ack_s else None,
        "ack_p90_s": sorted(ack_s)[int(0.9 * (len(ack_s) - 1))] if ack_s else None,
        "ack_max_s": max(ack_s) if ack_s else None,
        "acked": len(ack_s), "unacked": unacked,
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


def point_limits(cfg, points: dict[int, dict]) -> dict[str, dict[str, float]]:
    """Compiled limits per point id for the zone's configured occupancy (alarms.rules)."""
    from alarms.rules import compile_rules

    explicit = {}
    for dev in cfg.devices:
        for pt in dev.points:
            if pt.limits:
                explicit[f"{dev.id}.{pt.name}"] = dict(pt.limits)
    objs = [SimpleNamespace(id=p["point"], device=p.get("device"), zone=p.get("zone"),
                            site=p.get("site"), quantity=p.get("quantity") or "",
                            unit=p.get("unit"), size_um=size_of(p["point"]),
                            limits=explicit.get(p["point"], {}), stale_after_s=None,
                            measures=None, between=None)
            for p in points.values()]
    rules, _problems, _warnings = compile_rules(cfg, objs)
    zones = {z.id: z for z in cfg.zones}
    out: dict[str, dict[str, float]] = {}
    for r in rules:
        zone = zones.get(r.zone)
        if r.mode is not None and zone is not None and r.mode != zone.occupancy:
            continue
        if r.kind != r.limit_name:
            continue
        out.setdefault(r.point, {})[r.limit_name] = r.limit
    return out


def hold_ms(cfg, point: dict) -> int:
    """How long one sample of a point stands for: its stale time (DESIGN.md "Stale")."""
    devices = {d.id: d for d in cfg.devices}
    dev = devices.get(point.get("device"))
    if point.get("quantity") in ("particle_conc", "particle_count"):
        return 3 * 60_000  # 3 x record interval of a record-based counter
    if dev is not None:
        return int(3 * dev.scan_s * 1000)
    scans = [d.scan_s for d in cfg.devices if d.zone == point.get("zone")] or [1.0]
    return int(3 * max(scans) * 1000)


class ReportData:
    """Fed by the export's sample stream; everything report.html shows."""

    def __init__(self, cfg, store, from_ms: int, to_ms: int, points: dict[int, dict],
                 site: str | None = None, zone: str | None = None):
        self.cfg, self.store, self.from_ms, self.to_ms = cfg, store, from_ms, to_ms
        self.points, self.site, self.zone = points, site, zone
        self.events: list[dict] = []
        try:
            limits = point_limits(cfg, points)
        except ImportError:
            limits = {}
        self.limits = limits
        self.compliance: dict[str, Compliance] = {}
        for p in points.values():
            lim = limits.get(p["point"])
            if not lim:
                continue
            action = {k: v for k, v in lim.items() if k.startswith("action")}
            alert = {k: v for k, v in lim.items() if k.startswith("alert")} or action
            self.compliance[p["point"]] = Compliance(from_ms, to_ms, hold_ms(cfg, p),
                                                     action or alert, alert)
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
            self._open.setdefault(point, []).append(x)

    def feed(self, s) -> None:
        """One sample row of the stream (``SampleRow``)."""
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
        self.performance = alarm_performance(self.events, self.from_ms, self.to_ms)
