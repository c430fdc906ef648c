"""Gas detection policy for gas cabinets and gas rooms (docs/ARCHITECTURE.md "Not a safety system",
"Gas exposure", "Critical alarms").

Per detector:

* Where it reports its own alarm bits (``alarm_low`` / ``alarm_high`` of the gas-detector
  profile), those bits are the authoritative instantaneous gas alarms (rules on the bit
  points are compiled by the catalogue). The set points computed from the gas table are then
  used only to cross-check the detector: a reading clearly above a set point with the bit
  off, or a bit on that never saw such a reading, is an *instrument* alarm on the derived
  point ``<det>.setpoint_mismatch``.
* Where it has no bits, the computed set points become the limits of ``<det>.conc``:
  alert_high = low alarm, action_high = high alarm (``alarms.standards.default_setpoints``:
  TLV-TWA and STEL / 2 x TLV / ceiling for room and cabinet monitors alike, never the IDLH;
  % LEL for a gas with no toxic limit; per-detector ``setpoints`` override).
* A configured ``setpoints`` value above what ACGIH TLV supports
  (``alarms.standards.supported_setpoints``) needs ``setpoints_justification``; without one
  it is a check-config problem.
* A disagreement between bits and computed set points is a MEDIUM instrument alarm at least
  (an instrument that may not alarm is worth a technician's visit, not a night call).
* STEL (15 min) and TWA (8 h) are derived points ``<det>.stel_15min`` / ``<det>.twa_8h``
  computed with the engine's exposure kernel; room monitors get action_high limits at the
  gas's STEL and TLV-TWA (exposure limits protect people in the room; the inside of an
  exhausted cabinet is not a workplace, so cabinet detectors get the values but no limit).
* Toxic or pyrophoric gas alarms, cabinet exhaust failure and loss of communication with
  or a fault of a toxic-gas detector are CRITICAL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from alarms.exposure import STEL_WINDOW_S, TWA_WINDOW_S, ExposureTracker
from alarms.rules import RulePoint
from alarms.standards import default_setpoints, supported_setpoints
from alarms.standards import gas as gas_entry
from facility.config.schema import Config, Device, LimitSpec
from facility.domain.display import format_value
from facility.domain.model import Quality, Sample
from facility.domain.vocab import PRIORITY_RANK
from hazmat.classes import all_classes

BIT = 0.5
"""A 0/1 point is "beyond" above 0.5."""

MISMATCH_TOLERANCE = 0.10
"""Relative band around a set point inside which bits and reading may differ (sensor and
relay hysteresis) before a disagreement is an instrument alarm. A site choice."""

MISMATCH_PRIORITY = "medium"
"""The least priority of the bits-vs-set-points instrument alarm, whatever
``[alarms.priorities] instrument`` says (docs/ARCHITECTURE.md "Gas exposure")."""


def GasPoint(**kw) -> RulePoint:  # noqa: N802 - reads as the point type it builds
    """A derived gas point for the catalogue (exposure, set-point mismatch, or a ``conc``
    replacement with computed limits for a detector without alarm bits)."""
    return RulePoint(**{"decimals": 4, "kind": "derived", **kw})


@dataclass(frozen=True)
class DetectorPolicy:
    """Everything decided about one gas detector."""

    device: str
    gas: str
    monitor: str  # room | cabinet
    cabinet: str | None
    zone: str | None
    site: str
    conc_point: str
    low: float  # ppm
    high: float  # ppm
    source: str
    has_bits: bool
    toxic: bool
    pyrophoric: bool
    stel_ppm: float | None
    twa_ppm: float | None
    max_hold_s: float
    stale_after_s: float

    @property
    def critical(self) -> bool:
        """docs/ARCHITECTURE.md: toxic or pyrophoric gas alarms are critical."""
        return self.toxic or self.pyrophoric

    @property
    def setpoints_text(self) -> str:
        """``low 0.005 ppm / high 0.01 ppm``: with the digits their range needs, so the two
        stages of a very toxic gas never read alike."""
        return f"low {format_value(self.low, 'ppm')} / high {format_value(self.high, 'ppm')}"

    @property
    def stel_point(self) -> str:
        return f"{self.device}.stel_15min"

    @property
    def twa_point(self) -> str:
        return f"{self.device}.twa_8h"

    @property
    def mismatch_point(self) -> str:
        return f"{self.device}.setpoint_mismatch"


def is_toxic_gas(cfg: Config, gas_name: str) -> bool:
    """Toxic: the configured substance of that gas has class 2.3 among its classes; a gas
    not configured as a substance is toxic when the gas table gives it an IDLH."""
    sub = next((s for s in cfg.hazmat.substances if s.id == gas_name), None)
    if sub is not None:
        return "2.3" in all_classes(sub.dg_class, sub.subsidiary)
    try:
        return gas_entry(gas_name).idlh_ppm is not None
    except ValueError:
        return True  # unknown gas: err on the safe side


def _ppm(value: float, unit: str, lel_pct_vol: float | None) -> float:
    """Set points in %LEL become ppm (1 %vol = 10 000 ppm) since detectors report ppm."""
    if unit == "%LEL":
        return round(value / 100.0 * float(lel_pct_vol) * 10_000.0, 9)
    return round(float(value), 9)


def policy(cfg: Config, dev: Device, has_bits: bool = True) -> DetectorPolicy:
    """The policy of one detector; raises ValueError (naming the gas) when it cannot be set."""
    g = gas_entry(dev.gas)
    monitor = dev.monitor or ("cabinet" if dev.cabinet else "room")
    sp = default_setpoints(g.name, monitor, dict(dev.setpoints) or None)
    low, high = _ppm(sp["low"], sp["unit"], g.lel_pct_vol), _ppm(sp["high"], sp["unit"], g.lel_pct_vol)
    why = f"; justification: {dev.setpoints_justification}" if (
        dev.setpoints and dev.setpoints_justification) else ""
    return DetectorPolicy(
        device=dev.id, gas=dev.gas, monitor=monitor, cabinet=dev.cabinet, zone=dev.zone,
        site=dev.site, conc_point=f"{dev.id}.conc", low=low, high=high,
        source=sp["source"] + (f" ({sp['unit']} -> ppm)" if sp["unit"] != "ppm" else "") + why,
        has_bits=has_bits, toxic=is_toxic_gas(cfg, dev.gas), pyrophoric=g.pyrophoric,
        stel_ppm=g.stel_ppm, twa_ppm=g.tlv_twa_ppm, max_hold_s=2.0 * dev.scan_s,
        stale_after_s=3.0 * dev.scan_s)


def detector_policies(cfg: Config, points: Iterable | None = None) -> tuple[list[DetectorPolicy], list[str]]:
    """Policies of every device with ``gas``; ``points`` (objects with id, device, quantity)
    tell which detectors have alarm bits (quantity "gas_alarm"); without them every detector
    is assumed to have the gas-detector profile's bits."""
    with_bits = None
    if points is not None:
        with_bits = {p.device for p in points if p.quantity == "gas_alarm"}
    out, problems = [], []
    for i, dev in enumerate(cfg.devices):
        if not dev.gas:
            continue
        try:
            out.append(policy(cfg, dev, True if with_bits is None else dev.id in with_bits))
        except ValueError as exc:
            problems.append(f"devices[{i}].gas: {dev.id}: {exc}")
            continue
        problems.extend(f"devices[{i}].{line}" for line in unsupported_setpoints(dev))
    return out, problems


def unsupported_setpoints(dev: Device) -> list[str]:
    """``setpoints.<stage>=<value> ...`` for each configured set point above what
    ACGIH TLV supports, when the detector gives no ``setpoints_justification``.

    One line each, naming the value, the bound with its clause and the fix.
    """
    if not dev.setpoints or (dev.setpoints_justification or "").strip():
        return []
    g = gas_entry(dev.gas)
    monitor = dev.monitor or ("cabinet" if dev.cabinet else "room")
    bound = supported_setpoints(g.name, monitor)
    unit = " %LEL" if bound["unit"] == "%LEL" else " ppm"
    out = []
    for stage in ("low", "high"):
        value = dev.setpoints.get(stage)
        if value is None or value <= bound[stage] * (1 + 1e-9):
            continue
        out.append(f"setpoints.{stage}={value:g}{unit} is above {bound[stage]:g}{unit}, the most "
                   f"ACGIH TLV supports for {g.name} at a {monitor} monitor "
                   f"({bound['why']}); lower it or add setpoints_justification = \"...\"")
    return out


def gas_points(cfg: Config, points: Iterable | None = None) -> tuple[list[GasPoint], list[str]]:
    """Points the catalogue adds for gas policy, and problems for check-config.

    Returns the ``<det>.conc`` replacement with computed limits for detectors without bits
    (``replaces=True``), ``<det>.setpoint_mismatch`` for detectors with bits, and the
    ``<det>.stel_15min`` / ``<det>.twa_8h`` exposure points.
    """
    pols, problems = detector_policies(cfg, points)
    out: list[GasPoint] = []
    for p in pols:
        base = dict(device=p.device, zone=p.zone, site=p.site)
        if not p.has_bits:
            out.append(GasPoint(
                id=p.conc_point, quantity="gas_conc", unit="ppm", kind="measured", replaces=True,
                stale_after_s=p.stale_after_s, critical=p.critical,
                limits={"alert_high": LimitSpec(limit=p.low), "action_high": LimitSpec(limit=p.high)},
                limit_sources={"alert_high": f"gas low alarm: {p.source}",
                               "action_high": f"gas high alarm: {p.source}"}, **base))
        else:
            out.append(GasPoint(
                id=p.mismatch_point, quantity="status", unit="", decimals=0,
                stale_after_s=p.stale_after_s, alarm_kind="instrument", alarm_subject=p.device,
                min_priority=MISMATCH_PRIORITY,
                limits={"action_high": LimitSpec(
                    limit=BIT, on_delay_s=3.0 * p.max_hold_s / 2.0,
                    justification="detector relay filter: bits lag the reading by a scan or two")},
                limit_sources={"action_high": "detector alarm bits disagree with the set points"
                                              f" computed from the gas table: {p.setpoints_text}"
                                              f" ({p.source})"},
                **base))
        for pid, limit, words in ((p.stel_point, p.stel_ppm, "STEL 15 min"),
                                  (p.twa_point, p.twa_ppm, "TLV-TWA 8 h")):
            lims, srcs = {}, {}
            if p.monitor == "room" and limit is not None:
                lims = {"action_high": LimitSpec(limit=limit)}
                srcs = {"action_high": f"ACGIH TLV {p.gas} {words} {limit:g} ppm"}
            out.append(GasPoint(id=pid, quantity="gas_exposure", unit="ppm", limits=lims,
                                limit_sources=srcs, stale_after_s=p.stale_after_s,
                                alarm_kind="stel" if "STEL" in words else "twa",
                                alarm_subject=p.device, critical=p.critical, **base))
    return out, problems


def gas_rules(cfg: Config, points: Iterable | None = None) -> list[dict]:
    """Every gas rule as a plain dict: point, limit, value, source, priority, critical, kind.

    Describes the whole policy (bits, fault, comm, set points, exposure, cabinet exhaust) for
    check-config, reports and tests; the catalogue compiles the same rules from
    :func:`gas_points` and its own bit/comm/exhaust handling.
    """
    pri = cfg.alarms.priorities
    pols, _problems = detector_policies(cfg, points)
    rules: list[dict] = []

    def add(point, limit, value, source, kind, critical, subject, on_delay_s=0.0, floor=None):
        prio = "critical" if critical else pri.get(kind) or pri.get(limit) or (
            "high" if limit.startswith("action") else "medium")
        if floor and PRIORITY_RANK[floor] < PRIORITY_RANK.get(prio, len(PRIORITY_RANK)):
            prio = floor
        rules.append(dict(point=point, limit=limit, value=value, source=source, kind=kind,
                          priority=prio, critical=critical, subject=subject,
                          on_delay_s=on_delay_s))

    for p in pols:
        det = p.device
        if p.has_bits:
            add(f"{det}.alarm_low", "action_high", BIT, "detector's own low alarm bit (authoritative)",
                "gas_low", p.critical, det)
            add(f"{det}.alarm_high", "action_high", BIT, "detector's own high alarm bit (authoritative)",
                "gas_high", p.critical, det)
            add(p.mismatch_point, "action_high", BIT,
                f"bits vs computed set points {p.setpoints_text} ({p.source})",
                "instrument", False, det, 1.5 * p.max_hold_s, MISMATCH_PRIORITY)
            add(f"{det}.fault", "action_high", BIT, "detector fault bit", "fault", p.toxic, det)
        else:
            add(p.conc_point, "alert_high", p.low, f"gas low alarm: {p.source}", "gas_low", p.critical, det)
            add(p.conc_point, "action_high", p.high, f"gas high alarm: {p.source}", "gas_high",
                p.critical, det)
        add(det, "comm", None, "no answer from a gas detector", "comm", p.toxic, det)
        if p.monitor == "room":
            if p.stel_ppm is not None:
                add(p.stel_point, "action_high", p.stel_ppm, f"{p.gas} STEL (reference §3)", "stel",
                    p.critical, det)
            if p.twa_ppm is not None:
                add(p.twa_point, "action_high", p.twa_ppm, f"{p.gas} TLV-TWA (reference §3)", "twa",
                    p.critical, det)
    rules.extend(exhaust_rules(cfg))
    return rules


def exhaust_rules(cfg: Config) -> list[dict]:
    """Cabinet exhaust failure (critical): ``exhaust_min`` as action_low, else the exhaust
    point's own configured limits (e.g. action_high -50 Pa on an exhaust pressure)."""
    out = []
    for cab in cfg.hazmat.cabinets:
        if not cab.exhaust:
            continue
        base = dict(point=cab.exhaust, kind="exhaust_fail", priority="critical", critical=True,
                    subject=cab.id, on_delay_s=0.0)
        if cab.exhaust_min is not None:
            out.append(dict(base, limit="action_low", value=cab.exhaust_min,
                            source=f"hazmat.cabinets[{cab.id}].exhaust_min"))
            continue
        dev_id, _, name = cab.exhaust.partition(".")
        dev = next((d for d in cfg.devices if d.id == dev_id), None)
        pt = next((q for q in (dev.points if dev else ()) if q.name == name), None)
        for lname, spec in (pt.limits.items() if pt else ()):
            out.append(dict(base, limit=lname, value=spec.limit,
                            source=f"devices[{dev_id}].points[{name}].limits.{lname}"))
    return out


class GasMonitor:
    """Derived gas samples per cycle: STEL, TWA and the bits-vs-set-points check.

    Feed every sample of a cycle (any points; only detector points are used) in time order;
    returns the derived samples. State (exposure windows, latched-bit memory) carries over
    between calls, so one batch or any split gives the same result.
    """

    def __init__(self, policies: Iterable[DetectorPolicy]):
        self.policies = {p.device: p for p in policies}
        self._stel = {d: ExposureTracker(STEL_WINDOW_S, p.max_hold_s) for d, p in self.policies.items()}
        self._twa = {d: ExposureTracker(TWA_WINDOW_S, p.max_hold_s) for d, p in self.policies.items()}
        self._bits: dict[tuple[str, str], tuple[int, float]] = {}  # (det, stage) -> (ts, bit)
        self._conc: dict[str, tuple[int, float]] = {}
        self._seen_high: dict[tuple[str, str], bool] = {}  # while a bit is on: reading seen?

    def feed(self, samples: Iterable[Sample]) -> list[Sample]:
        out: list[Sample] = []
        by_det: dict[str, list[Sample]] = {}
        for s in samples:
            det, _, name = s.point.rpartition(".")
            if det in self.policies and name in ("conc", "alarm_low", "alarm_high"):
                by_det.setdefault(det, []).append(s)
        for det, ss in by_det.items():
            pol = self.policies[det]
            conc = [s for s in ss if s.point.endswith(".conc")]
            if conc:
                ts = np.array([s.ts_ms / 1000.0 for s in conc], dtype=np.float64)
                vals = np.array([s.value if s.value is not None else np.nan for s in conc],
                                dtype=np.float64)
                good = np.array([s.good for s in conc], dtype=bool)
                for tracker, pid in ((self._stel[det], pol.stel_point), (self._twa[det], pol.twa_point)):
                    mean, ok = tracker.feed(ts, vals, good)
                    for s, m, g in zip(conc, mean, ok):
                        if s.good and m == m:
                            out.append(Sample(pid, s.ts_ms, round(float(m), 6),
                                              Quality.GOOD if g else Quality.BAD))
            if pol.has_bits:
                out.extend(self._mismatch(pol, sorted(ss, key=lambda s: s.ts_ms)))
        return out

    def _mismatch(self, pol: DetectorPolicy, ss: list[Sample]) -> list[Sample]:
        out = []
        for s in ss:
            name = s.point.rpartition(".")[2]
            if not s.good:
                continue
            if name == "conc":
                self._conc[pol.device] = (s.ts_ms, s.value)
            else:
                self._bits[(pol.device, name)] = (s.ts_ms, s.value)
            c = self._conc.get(pol.device)
            lo, hi = self._bits.get((pol.device, "alarm_low")), self._bits.get((pol.device, "alarm_high"))
            if c is None or lo is None or hi is None or not (c[0] == lo[0] == hi[0] == s.ts_ms):
                continue  # judge only a consistent read of reading and both bits
            bad = False
            for stage, sp, bit in (("alarm_low", pol.low, lo[1]), ("alarm_high", pol.high, hi[1])):
                bad |= self.disagrees(pol.device, stage, sp, c[1], bit >= BIT)
            out.append(Sample(pol.mismatch_point, s.ts_ms, 1.0 if bad else 0.0))
        return out

    def disagrees(self, det: str, stage: str, setpoint: float, conc: float, bit_on: bool) -> bool:
        """Missed alarm: reading above set point × (1 + tol) with the bit off. Spurious alarm:
        bit on and no reading above set point × (1 − tol) since it came on (a latched bit
        after a real excursion is fine)."""
        key = (det, stage)
        if not bit_on:
            self._seen_high.pop(key, None)
            return conc > setpoint * (1 + MISMATCH_TOLERANCE)
        seen = self._seen_high.get(key, False) or conc >= setpoint * (1 - MISMATCH_TOLERANCE)
        self._seen_high[key] = seen
        return not seen
