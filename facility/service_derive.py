"""Derived samples of each cycle: pressure cascades and gas exposure (STEL/TWA).

DESIGN.md "Pressure cascade": a zone's pressure against its reference is derived at each
good sample of either input, using the other input's latest good sample if it is no older
than ``max_skew_s`` (default 2 x scan_s); its quality is the worse of the two. Inputs
measured directly ("ZONE - REFERENCE") pass through (inverted when measured the other way).
"""

from __future__ import annotations

from facility.catalogue import Catalogue
from facility.config_schema import Config
from facility.model import Quality, Sample, round_to


class Deriver:
    """Keeps the latest good input of each cascade and the gas exposure trackers."""

    def __init__(self, cat: Catalogue, cfg: Config):
        scan = {d.id: d.scan_s for d in cfg.devices}
        self.cascades = cat.cascades
        self.skew_ms = {}
        self.by_input: dict[str, list] = {}
        for c in cat.cascades:
            devs = [pid.split(".")[0] for pid in (c.plus, c.minus) if pid]
            self.skew_ms[c.id] = int(2 * max(scan.get(d, 1.0) for d in devs) * 1000)
            for pid in (c.plus, c.minus):
                if pid:
                    self.by_input.setdefault(pid, []).append(c)
        self.last: dict[str, Sample] = {}
        self.gas = _gas_tracker(cat, cfg)

    def derive(self, batch: list[Sample]) -> list[Sample]:
        """Derived samples for a batch, in arrival order of their inputs."""
        out: list[Sample] = []
        for s in batch:
            for c in self.by_input.get(s.point, ()):
                d = self._cascade(c, s)
                if d is not None:
                    out.append(d)
            if s.good:
                self.last[s.point] = s
        if self.gas is not None:
            out.extend(self.gas.derive(batch))
        return out

    def _cascade(self, c, s: Sample) -> Sample | None:
        if c.minus is None:
            if s.value is None:
                return Sample(c.id, s.ts_ms, None, s.quality)
            v = -s.value if c.invert else s.value
            return Sample(c.id, s.ts_ms, v, s.quality)
        if not s.good:
            return None  # derived only at good samples of either input
        other_id = c.minus if s.point == c.plus else c.plus
        other = self.last.get(other_id)
        if other is None or abs(s.ts_ms - other.ts_ms) > self.skew_ms[c.id]:
            return Sample(c.id, s.ts_ms, None, Quality.STALE)
        plus, minus = (s, other) if s.point == c.plus else (other, s)
        value = round_to(plus.value - minus.value, 3)
        return Sample(c.id, s.ts_ms, value, max(plus.quality, minus.quality))


def _gas_tracker(cat: Catalogue, cfg: Config):
    """The hazmat gas exposure deriver (STEL/TWA) when that package provides one."""
    try:
        from hazmat.gas import ExposureDeriver
    except ImportError:
        return None
    return ExposureDeriver(cfg, cat.points)
