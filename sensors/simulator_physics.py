"""Plausible physics for the simulator: particle counts, pressure cascade, T/RH, gas.

Pure functions of (time, scenario, random stream): the simulator asks for a device's values
when a client reads them, so nothing ticks unless someone is looking (counters excepted:
their records are generated for every elapsed sample period, even while "offline").
"""

from __future__ import annotations

import datetime
import math
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from facility.config.schema import Config, Device, LimitSpec, Zone
from facility.domain.vocab import ZONE_MODES
from sensors.counter import CUBIC_FOOT_L

# Annex 1 Table 5 grades as the nearest ISO 14644-1 class (0.5 um): in operation / at rest.
GRADE_ISO = {"in_operation": {"A": 5, "B": 7, "C": 8, "D": 8},
             "at_rest": {"A": 5, "B": 5, "C": 7, "D": 8}}
# Gas alarm set points (ppm) of a simulated detector without `setpoints`: those of
# ACGIH TLV's two-stage scheme (low TLV-TWA, high STEL or 2 x TLV), so its
# alarm bits agree with the set points the gas policy computes.
GAS_SETPOINTS = {"arsine": (0.005, 0.01), "phosphine": (0.3, 1.0), "silane": (5.0, 10.0),
                 "ammonia": (25.0, 35.0), "chlorine": (0.5, 1.0)}
NORMAL_FRACTION = (0.03, 0.12)  # normal particle level as a fraction of the class limit
EXCURSION_FRACTION = (2.0, 3.5)


def iso_limit_per_m3(iso_class: float, size_um: float) -> float:
    """ISO 14644-1:2015 eq. (1): Cn = 10^N x (0.1 / D)^2.08 particles/m^3 >= D."""
    return 10 ** iso_class * (0.1 / size_um) ** 2.08


MODE_RAMP_S = 300.0
"""After a zone goes into operation, its counts stay at at-rest levels this long (people and
machines start gradually): a record sampled across the switch never meets the at-rest limits
the service may still apply for a cycle or two. Going to rest, counts drop at once (the
service's Annex 1 clean-up time ``recovery_s`` covers the other direction)."""

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def zone_iso(zone: Zone | None, mode: str | None = None) -> float:
    """The ISO class a zone's particle counts are drawn from in ``mode`` (a GMP grade: the
    nearest class of that mode's Annex 1 limits; ``None``: the stricter of the two modes)."""
    if zone is None:
        return 8.0
    if zone.iso_class is not None:
        return float(zone.iso_class)
    if zone.gmp_grade:
        if mode in GRADE_ISO:
            return float(GRADE_ISO[mode][zone.gmp_grade])
        return float(min(GRADE_ISO[m][zone.gmp_grade] for m in GRADE_ISO))
    return 8.0


def scheduled_mode(zone: Zone, tz: datetime.tzinfo, t_s: float) -> str:
    """The mode a zone's ``schedule`` puts it in at ``t_s`` (Unix s): the entry whose latest
    firing in the week before ``t_s`` is the most recent (``"Mon-Sat 07:30 in_operation"``),
    else its configured ``occupancy``. The same reading of a schedule as the service's
    (``tests/sensors/test_simulator_modes.py`` compares the two); the simulator is a floor
    below the service, so it cannot call it."""
    now = datetime.datetime.fromtimestamp(t_s, tz)
    best: tuple[datetime.datetime, str] | None = None
    for entry in zone.schedule:
        try:
            days, hhmm, mode = entry.split(" ")
            first, _, last = days.partition("-")
            lo, hi = DAYS.index(first), DAYS.index(last or first)
            h, m = (int(x) for x in hhmm.split(":"))
        except ValueError:
            continue  # check-config refuses it; the configured occupancy stays
        allowed = set(range(lo, hi + 1)) if lo <= hi else set(range(lo, 7)) | set(range(hi + 1))
        for back in range(0, 8):
            day = (now - datetime.timedelta(days=back)).replace(hour=h, minute=m, second=0,
                                                                microsecond=0)
            if day <= now and day.weekday() in allowed:
                if best is None or day > best[0]:
                    best = (day, mode)
                break
    return best[1] if best is not None and best[1] in ZONE_MODES else zone.occupancy


def zone_tz(cfg: Config, zone: Zone) -> datetime.tzinfo:
    """The zone's site's time zone (UTC if it cannot be read)."""
    site = next((s for s in cfg.sites if s.id == zone.site), None)
    try:
        return ZoneInfo(site.timezone) if site is not None else datetime.timezone.utc
    except (KeyError, ValueError):
        return datetime.timezone.utc


def mode_clock(cfg: Config, zone: Zone | None,
               override: Mapping[str, str] | None = None) -> Callable[[float], str]:
    """``t_s -> mode`` of a zone: ``override[zone.id]`` if set (``Simulator.set_mode``), else
    what its schedule says (``scheduled_mode``)."""
    if zone is None:
        return lambda _t: "in_operation"
    tz = zone_tz(cfg, zone)
    over = override if override is not None else {}

    def mode_at(t_s: float) -> str:
        return over.get(zone.id) or scheduled_mode(zone, tz, t_s)
    return mode_at


def band(quantity: str, limits: Mapping[str, LimitSpec],
         defaults: Mapping[str, Mapping[str, LimitSpec]]) -> tuple[float, float] | None:
    """(centre, half width) of the innermost band a point's limits allow: alert levels if
    set, else action limits (its own limits first, then ``alarms.defaults``); None without a
    high and a low limit. A normal plant sits in the middle of it."""
    merged = dict(defaults.get(quantity, {})) | dict(limits)
    hi = next((merged[n].limit for n in ("alert_high", "action_high") if n in merged), None)
    lo = next((merged[n].limit for n in ("alert_low", "action_low") if n in merged), None)
    if hi is None or lo is None or not hi > lo:
        return None
    return (hi + lo) / 2.0, (hi - lo) / 2.0


def gas_setpoints(dev: Device) -> tuple[float, float]:
    """(low, high) alarm set points of a gas detector, ppm."""
    low, high = GAS_SETPOINTS.get((dev.gas or "").lower(), (10.0, 20.0))
    return dev.setpoints.get("low", low), dev.setpoints.get("high", high)


def zone_pressure(cfg: Config, zone_id: str, _depth: int = 0) -> float:
    """Nominal pressure of a zone against ambient (Pa), walking its reference chain: each
    zone sits at its ``min_dp_pa`` plus a 5 Pa margin (same sign) above its reference."""
    if zone_id == "ambient" or _depth > 20:
        return 0.0
    zone = next((z for z in cfg.zones if z.id == zone_id), None)
    if zone is None or zone.min_dp_pa is None or zone.reference is None:
        return 0.0
    m = zone.min_dp_pa
    return math.copysign(abs(m) + 5.0, m) + zone_pressure(cfg, zone.reference, _depth + 1)


def dp_target(cfg: Config, measures: str | None, zone_id: str | None) -> float:
    """Nominal differential pressure (Pa) for ``"A - B"`` = P(A) - P(B) against ambient."""
    if not measures:
        return zone_pressure(cfg, zone_id or "") or 12.0
    a, _, b = (x.strip() for x in measures.partition(" - "))
    return round(zone_pressure(cfg, a) - zone_pressure(cfg, b), 3)


@dataclass
class SimRecord:
    """One counter data record (differential counts per channel)."""

    ts_s: int
    sample_time_s: int
    location: int
    status: int
    counts: tuple[int, ...]


class CounterModel:
    """A particle counter's record ring buffer; records keep coming while 'offline'."""

    def __init__(self, sizes: tuple[float, ...], iso_class: float, rng: random.Random,
                 sample_s: float, hold_s: float, buffer_size: int, location: int = 1,
                 flow_cfm: float = 1.0, mode_at: Callable[[float], str] | None = None,
                 mode_iso: Mapping[str, float] | None = None, ramp_s: float = MODE_RAMP_S):
        """``iso_class`` is the class counts are drawn from, unless ``mode_at`` (time -> the
        zone's mode) and ``mode_iso`` (mode -> class) say otherwise (``class_at``)."""
        self.sizes = sizes
        self.iso_class = iso_class
        self.mode_at = mode_at
        self.mode_iso = dict(mode_iso or {})
        self.ramp_s = ramp_s
        self.rng = rng
        self.sample_s = sample_s
        self.hold_s = hold_s
        self.buffer: deque[SimRecord] = deque(maxlen=buffer_size)
        self.location = location
        self.flow_cfm = flow_cfm
        self.next_ts: float | None = None
        self.new_data = False
        self.index = -1  # 40025

    @property
    def interval_s(self) -> float:
        """Seconds between two records (sample time + hold time)."""
        return self.sample_s + self.hold_s

    def class_at(self, ts_s: float) -> float:
        """The class a record ending at ``ts_s`` is drawn from: that of the zone's mode, the
        stricter one if the mode changed during the sample or the ramp before it."""
        if self.mode_at is None or not self.mode_iso:
            return self.iso_class
        start = ts_s - self.sample_s - self.ramp_s
        modes = {self.mode_at(t) for t in (start, ts_s - self.sample_s, ts_s)}
        return min(self.mode_iso.get(m, self.iso_class) for m in modes)

    def make_record(self, ts_s: int, scenario: str) -> SimRecord:
        """Draw one record for the zone's class in its mode (or an excursion)."""
        lo, hi = EXCURSION_FRACTION if scenario == "particle-excursion" else NORMAL_FRACTION
        frac = self.rng.uniform(lo, hi)
        iso_class = self.class_at(ts_s)
        flow = 0.7 if scenario == "flow-fault" else self.flow_cfm
        volume_m3 = flow * CUBIC_FOOT_L * self.sample_s / 60.0 / 1000.0
        cum = []
        for size in self.sizes:
            mean = iso_limit_per_m3(iso_class, size) * frac * volume_m3
            n = max(0, int(round(self.rng.gauss(mean, math.sqrt(mean) if mean > 0 else 0))))
            cum.append(n)
        for i in range(len(cum) - 2, -1, -1):  # cumulative counts never grow with size
            cum[i] = max(cum[i], cum[i + 1])
        diff = tuple(cum[i] - (cum[i + 1] if i + 1 < len(cum) else 0) for i in range(len(cum)))
        status = 0b11  # running, sampling
        if scenario == "flow-fault":
            status |= 1 << 12
        if scenario == "garbage":
            status |= 1 << 3  # device error: data may be invalid
        return SimRecord(int(ts_s), int(self.sample_s), self.location, status, diff)

    def catch_up(self, now_s: float, scenario: str) -> None:
        """Append every record whose sample period has ended by ``now_s``."""
        if self.next_ts is None:
            self.next_ts = now_s + self.sample_s
        while self.next_ts <= now_s:
            self.buffer.append(self.make_record(int(self.next_ts), scenario))
            self.new_data = True
            self.next_ts += self.interval_s

    def prefill(self, now_s: float, n: int, scenario: str = "normal") -> None:
        """History of ``n`` records ending just before ``now_s`` (so a first poll finds data)."""
        for k in range(n, 0, -1):
            self.buffer.append(self.make_record(int(now_s - (k - 1) * self.interval_s), scenario))
        self.next_ts = (self.buffer[-1].ts_s + self.interval_s) if self.buffer else now_s + self.sample_s

    def record(self, index: int) -> SimRecord | None:
        """Record at ``index`` (0 = oldest, -1 = latest), None if out of range."""
        if not self.buffer:
            return None
        if index == -1:
            return self.buffer[-1]
        return self.buffer[index] if 0 <= index < len(self.buffer) else None


def live_value(cfg: Config, dev: Device, name: str, quantity: str, measures: str | None,
               t: float, rng: random.Random, scenario: str,
               limits: Mapping[str, LimitSpec] | None = None) -> float | bool:
    """Current engineering value of one live point under ``scenario``; ``limits`` are the
    point's own (temperature and humidity sit in the middle of their band)."""
    g = rng.gauss
    if quantity in ("temperature", "humidity"):
        b = band(quantity, limits or {}, cfg.alarms.defaults)
        if b is not None:
            centre, half = b
            period = 600.0 if quantity == "temperature" else 900.0
            return centre + 0.3 * half * math.sin(t / period) + g(0, 0.03 * half)
    if quantity == "pressure_diff":
        base = dp_target(cfg, measures, dev.zone)
        if scenario == "door-open":
            return round(base * 0.1 + g(0, 0.3), 2)
        return round(base + 0.8 * math.sin(t / 47.0) + g(0, 0.3), 2)
    if quantity == "temperature":
        return 21.0 + 0.5 * math.sin(t / 600.0) + g(0, 0.05)
    if quantity == "humidity":
        return 45.0 + 2.0 * math.sin(t / 900.0) + g(0, 0.2)
    if quantity == "gas_conc":
        low, high = gas_setpoints(dev)
        if scenario == "gas-leak":
            return high * (2.0 + 0.2 * math.sin(t)) + abs(g(0, high * 0.05))
        return abs(g(0, low * 0.02))
    if quantity == "gas_alarm":
        low, high = gas_setpoints(dev)
        return scenario == "gas-leak" and (name == "alarm_low" or name == "alarm_high")
    if quantity == "door":
        return scenario == "door-open"
    if quantity == "leak":
        return False
    if quantity == "flow":
        return 350.0 + g(0, 3.0)
    if quantity == "exhaust_pressure":
        return -120.0 + g(0, 2.0)
    if quantity == "frequency":
        return 50.0 + g(0, 0.05)
    if quantity == "status":
        return 0.0
    return 0.0
