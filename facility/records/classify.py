"""ISO 14644-1:2015 classification statement from continuous monitoring data.

Reference §1 (Annex A of the 2015 edition): each particle counter is one sampling location
(its ``location`` in the config); the room passes when the **average at every location**
is within the class limit at every considered size, with at least ``min_locations(area)``
locations and a single-sample volume of at least ``min_sample_volume_l`` at the largest
considered size. Sizes where the 2015 Table 1 is blank are stated as "not applicable".

This is a statement from monitoring data (records of a 1 CFM counter, 28.3 L each), to
support — not replace — a formal classification test with its own sampling plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from alarms.standards import iso14644_limit, min_locations, min_sample_volume_l

RECORD_VOLUME_L = 28.3168
"""One record of a 1 CFM counter sampling 60 s (1 ft³ = 28.3168 L, ISO 14644-1): the volume
of a counter whose ``sample_s`` is not configured (the profile's 60 s record)."""


def record_volume_l(dev) -> float:
    """Litres in one record of a 1 CFM counter: 28.3168 L x ``sample_s`` / 60."""
    sample_s = getattr(dev, "sample_s", None)
    return RECORD_VOLUME_L * sample_s / 60.0 if sample_s else RECORD_VOLUME_L

_PC_RE = re.compile(r"\.pc_(\d+)_(\d+)um$")


def size_of(point_id: str) -> float | None:
    """``MEC-PC-01.pc_0_5um`` -> 0.5 (cumulative concentration points only)."""
    m = _PC_RE.search(point_id)
    return float(f"{m.group(1)}.{m.group(2)}") if m else None


@dataclass
class SizeResult:
    """One size: class limit (None = not applicable) and each location's average."""

    size_um: float
    limit: float | None
    averages: dict[str, float | None] = field(default_factory=dict)  # location -> mean /m³
    samples: dict[str, int] = field(default_factory=dict)

    @property
    def applicable(self) -> bool:
        """False where the 2015 table is blank for this class."""
        return self.limit is not None

    @property
    def passed(self) -> bool:
        """Every location with data averages within the limit."""
        vals = [v for v in self.averages.values() if v is not None]
        return self.applicable and bool(vals) and all(v <= self.limit for v in vals)


@dataclass
class Classification:
    """The statement for one zone."""

    zone: str
    iso_class: float
    area_m2: float | None
    locations: dict[str, str]  # device id -> location text
    sizes: list[SizeResult]
    required_locations: int | None
    present_locations: int
    record_volume_l: float = RECORD_VOLUME_L
    min_volume_l: float | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Pass only when every check passes."""
        return not self.reasons

    def lines(self) -> list[str]:
        """The human statement, one fact per line."""
        out = [f"ISO 14644-1:2015 classification of {self.zone} against ISO class "
               f"{self.iso_class:g} from monitoring data"]
        req = "area_m2 not configured" if self.required_locations is None else \
            f"{self.required_locations} required for {self.area_m2:g} m2"
        out.append(f"  locations: {self.present_locations} present with data, {req}")
        for dev, loc in sorted(self.locations.items()):
            out.append(f"    {dev}: {loc}")
        for s in self.sizes:
            if not s.applicable:
                out.append(f"  >= {s.size_um:g} um: not applicable for class {self.iso_class:g}"
                           " (blank in the 2015 Table 1)")
                continue
            out.append(f"  >= {s.size_um:g} um: class limit {s.limit:g} /m3 -> "
                       + ("PASS" if s.passed else "FAIL"))
            for dev in sorted(self.locations):
                avg = s.averages.get(dev)
                if avg is None:
                    out.append(f"    {dev}: no good data")
                else:
                    mark = "ok" if avg <= s.limit else "EXCEEDS"
                    out.append(f"    {dev}: average {avg:.1f} /m3 over {s.samples.get(dev, 0)}"
                               f" samples ({mark})")
        if self.min_volume_l is not None:
            ok = self.record_volume_l >= self.min_volume_l
            out.append(f"  sample volume: {self.record_volume_l:.2f} L per record, minimum "
                       f"{self.min_volume_l:.2f} L -> {'adequate' if ok else 'INADEQUATE'}")
        out.append("  result: " + ("PASS" if self.passed else "FAIL: " + "; ".join(self.reasons)))
        return out


def is_particle_counter(dev) -> bool:
    """A sampling location is a particle counter: the built-in counter profile, or a device
    with an inline ``pc_<size>um`` point (pressure and T/RH transmitters are not locations)."""
    return dev.profile == "particle-counter" or any(
        size_of(f"{dev.id}.{p.name}") is not None for p in dev.points)


class ZoneClassifier:
    """Accumulates good samples of a zone's ``pc_<size>um`` points (feed in any order)."""

    def __init__(self, zone, devices):
        self.zone = zone
        counters = [d for d in devices if d.zone == zone.id and is_particle_counter(d)]
        self.locations = {d.id: (d.location or d.id) for d in counters}
        # the smallest record of the zone's counters decides the sample-volume check
        self.record_volume_l = min((record_volume_l(d) for d in counters),
                                   default=RECORD_VOLUME_L)
        self.sums: dict[tuple[str, float], list] = {}

    def wants(self, point: str) -> bool:
        """True for this zone's cumulative concentration points."""
        return point.split(".", 1)[0] in self.locations and size_of(point) is not None

    def feed(self, point: str, value: float | None, quality: int) -> None:
        """Add one sample (only good, finite values count)."""
        if quality != 0 or value is None or value != value:
            return
        size = size_of(point)
        if size is None:
            return
        acc = self.sums.setdefault((point.split(".", 1)[0], size), [0.0, 0])
        acc[0] += value
        acc[1] += 1

    def result(self) -> Classification:
        """The classification statement from what was fed."""
        z = self.zone
        sizes = sorted({s for (_d, s) in self.sums} | set())
        results = []
        for size in sizes:
            r = SizeResult(size, iso14644_limit(z.iso_class, size))
            for dev in self.locations:
                acc = self.sums.get((dev, size))
                r.averages[dev] = acc[0] / acc[1] if acc and acc[1] else None
                r.samples[dev] = acc[1] if acc else 0
            results.append(r)
        present = sum(1 for dev in self.locations
                      if any(self.sums.get((dev, s), [0, 0])[1] for s in sizes))
        required = min_locations(z.area_m2) if z.area_m2 else None
        considered = [r for r in results if r.applicable]
        reasons = []
        if not considered:
            reasons.append("no particle data at a size where the class applies")
        for r in considered:
            if not r.passed:
                bad = [d for d, v in r.averages.items() if v is not None and v > r.limit]
                reasons.append(f">= {r.size_um:g} um exceeded at {', '.join(sorted(bad))}" if bad
                               else f">= {r.size_um:g} um has no good data")
        if required is None:
            reasons.append("area_m2 not configured: the number of locations cannot be checked")
        elif present < required:
            reasons.append(f"{present} locations with data, {required} required for "
                           f"{z.area_m2:g} m2")
        min_vol = min_sample_volume_l(z.iso_class, max(r.size_um for r in considered)) \
            if considered else None
        vol = self.record_volume_l
        if min_vol is not None and vol < min_vol:
            reasons.append(f"sample volume {vol:.2f} L per record below the ISO 14644-1 A.4.4"
                           f" minimum {min_vol:.2f} L")
        return Classification(z.id, z.iso_class, z.area_m2, dict(self.locations), results,
                              required, present, vol, min_vol, reasons)


def classify_zone(cfg, store, zone_id: str, from_ms: int, to_ms: int) -> Classification:
    """Stream the zone's particle points in ``[from_ms, to_ms)`` and classify."""
    zone = cfg.zone(zone_id)
    if zone.iso_class is None:
        raise ValueError(f"zone {zone_id} has no iso_class: ISO 14644-1 classification does "
                         "not apply (set zones.iso_class)")
    clf = ZoneClassifier(zone, cfg.devices)
    ids = [p["id"] for p in store.points() if clf.wants(p["point"])]
    for s in store.iter_samples(from_ms, to_ms, ids):
        clf.feed(s.point, s.value, s.quality)
    return clf.result()
