"""Derived samples of each cycle: pressure cascades and gas exposure (STEL/TWA).

docs/ARCHITECTURE.md "Pressure cascade": a zone's pressure against its reference is derived at each
good sample of either input, using the other input's latest good sample if it is no older
than ``max_skew_s`` (the zone's, default 2 x scan_s); its quality is the worse of the two.
The arithmetic is ``alarms.cascade`` (the kernel the tests check against a plain-Python
twin). Inputs measured directly ("ZONE - REFERENCE") pass through (inverted when measured
the other way).
"""

from __future__ import annotations

import numpy as np

from alarms.cascade import Cascade
from alarms.rules import CascadePoint
from facility.catalogue import HAZMAT_KINDS, Catalogue
from facility.config.schema import Config
from facility.domain.model import Quality, Sample, round_to
from hazmat import ledger
from hazmat.checks import run_checks
from hazmat.gas import GasMonitor, detector_policies
from hazmat.licence import stock_values

CASCADE_DECIMALS = 3  # a difference of two decoded values, kept to their finest resolution
SKEW_SCANS = 2.0  # docs/ARCHITECTURE.md "Pressure cascade": max_skew_s defaults to 2 x scan_s


def max_skew_s(cat: Catalogue, c: CascadePoint) -> float:
    """How far apart a pair's two samples may be: the zone's ``max_skew_s``, else
    2 x the slower input's ``scan_s`` (docs/ARCHITECTURE.md "Pressure cascade")."""
    zone = next(z for z in cat.cfg.zones if z.id == c.zone)
    if zone.max_skew_s is not None:
        return float(zone.max_skew_s)
    scan = {d.id: d.scan_s for d in cat.cfg.devices}
    return SKEW_SCANS * max(scan[cat.point(pid).device] for pid in (c.plus, c.minus) if pid)


class Deriver:
    """The cascade kernels of every zone and the gas exposure trackers."""

    def __init__(self, cat: Catalogue, cfg: Config):
        self.cascades = cat.cascades
        self.direct: dict[str, list] = {}  # input point -> cascades it passes through to
        self.pairs: list[tuple] = []  # (cascade, Cascade kernel state)
        self.pair_inputs: set[str] = set()
        for c in cat.cascades:
            if c.minus is None:
                self.direct.setdefault(c.plus, []).append(c)
                continue
            self.pairs.append((c, Cascade(max_skew_s(cat, c))))
            self.pair_inputs.update((c.plus, c.minus))
        self.gas = _gas_tracker(cat, cfg)

    def derive(self, batch: list[Sample]) -> list[Sample]:
        """Derived samples for a batch: pass-throughs in arrival order, then each pair's
        samples in time order, then gas exposure."""
        out: list[Sample] = []
        inputs: dict[str, list[Sample]] = {}
        for s in batch:
            for c in self.direct.get(s.point, ()):
                v = s.value if s.value is None or not c.invert else -s.value
                out.append(Sample(c.id, s.ts_ms, v, s.quality))
            if s.point in self.pair_inputs:
                inputs.setdefault(s.point, []).append(s)
        for c, kernel in self.pairs:
            a, b = inputs.get(c.plus, ()), inputs.get(c.minus, ())
            if a or b:
                out.extend(_pair(c.id, kernel, a, b))
        if self.gas is not None:
            out.extend(self.gas.feed(batch))
        return out


def _arrays(samples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts s, value, quality) of one input in time order (arrival order breaks ties)."""
    n = len(samples)
    ts_ms = np.fromiter((s.ts_ms for s in samples), dtype=np.int64, count=n)
    order = np.argsort(ts_ms, kind="stable")
    value = np.fromiter((np.nan if s.value is None else s.value for s in samples),
                        dtype=np.float64, count=n)
    quality = np.fromiter((int(s.quality) for s in samples), dtype=np.int8, count=n)
    return ts_ms[order] / 1000.0, value[order], quality[order]


def _pair(cid: str, kernel: Cascade, a, b) -> list[Sample]:
    """``plus - minus`` at each good sample of either input (``alarms.cascade``)."""
    ts, value, quality = kernel.feed(*_arrays(a), *_arrays(b))
    return [Sample(cid, int(round(t * 1000.0)),
                   round_to(float(v), CASCADE_DECIMALS) if q == Quality.GOOD else None,
                   Quality(int(q)))
            for t, v, q in zip(ts.tolist(), value.tolist(), quality.tolist())]


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
