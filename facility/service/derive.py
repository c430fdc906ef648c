"""Derived samples of each cycle: pressure cascades and gas exposure (STEL/TWA).

DESIGN.md "Pressure cascade": a zone's pressure against its reference is derived at each
good sample of either input, using the other input's latest good sample if it is no older
than ``max_skew_s`` (default 2 x scan_s); its quality is the worse of the two. Inputs
measured directly ("ZONE - REFERENCE") pass through (inverted when measured the other way).
"""

from __future__ import annotations

from facility.catalogue import HAZMAT_KINDS, Catalogue
from facility.config.schema import Config
from facility.domain.model import Quality, Sample, round_to
from hazmat import ledger
from hazmat.checks import run_checks
from hazmat.gas import GasMonitor, detector_policies
from hazmat.licence import stock_values


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
            out.extend(self.gas.feed(batch))
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


def _gas_tracker(cat: Catalogue, cfg: Config) -> GasMonitor | None:
    """STEL, TWA and bits-vs-set-points samples of every gas detector (hazmat policy)."""
    policies, _problems = detector_policies(cfg, cat.points)
    return GasMonitor(policies) if policies else None


class HazmatProbe:
    """Stock per licensed class and per-site hazmat findings, as samples, every ``every_s``.

    Runs on the writer thread (it reads the ledger tables on the store's connection).
    """

    def __init__(self, cfg: Config, every_s: float = 10.0):
        self.cfg = cfg
        self.every_ms = int(every_s * 1000)
        self.next_ms = 0
        self.site_of = {s.id: s.site for s in cfg.hazmat.stores}

    def due(self, now: int) -> bool:
        """Whether a check is due (asked on the event loop, to skip the writer-thread hop)."""
        return bool(self.cfg.hazmat.stores) and now >= self.next_ms

    def samples(self, conn, now: int) -> list[Sample]:
        """Samples of ``<store>.stock_<class>`` and ``<site>.hazmat_<kind>``."""
        self.next_ms = now + self.every_ms
        containers = ledger.stock(conn)
        rows = [r for r in ledger.stock_rows(containers)]
        out = [Sample(pid, now, float(v)) for pid, v in stock_values(self.cfg.hazmat, rows).items()]
        level = {(site, kind): 0.0 for site in set(self.site_of.values()) for kind in HAZMAT_KINDS}
        for f in run_checks(self.cfg, conn):
            store = (f.store or "").split(",")[0]
            site = self.site_of.get(store) or (f.subject if f.subject in
                                               {s for s, _ in level} else None)
            if site is None or (site, f.kind) not in level:
                continue
            sev = 2.0 if f.severity == "action" else 1.0 if f.severity == "alert" else 0.0
            level[(site, f.kind)] = max(level[(site, f.kind)], sev)
        out += [Sample(f"{site}.hazmat_{kind}", now, v) for (site, kind), v in level.items()]
        return out
