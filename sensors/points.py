"""Every point of every configured device, with profile points merged with config annotations.

A device with a profile may list ``[[devices.points]]`` entries that carry only ``name``
(+ ``measures``, ``between``, ``limits``, ``stale_after_s``, ``unit``, ``quantity``,
``decimals``) to annotate a profile point; an unknown name is a problem reported by
``facility check-config`` through :func:`point_problems`.

Point ids are ``<device id>.<name>``. Every device also gets communication-health points
(:data:`HEALTH_POINTS`); record-based particle counters get their channel, status and
instrument-event points (:func:`counter_point_defs`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from facility.config.schema import Config, Device, LimitSpec, Point
from facility.domain.model import PointInfo
from sensors.profiles import ProfileError, load_profile
from sensors.registers import derive_decimals

# name -> (quantity, unit, decimals) of the communication-health points of every device.
HEALTH_POINTS: dict[str, tuple[str, str, int]] = {
    "comm_ok": ("comm", "", 0),
    "latency_ms": ("health", "ms", 1),
    "consecutive_failures": ("health", "", 0),
    "errors_timeout": ("health", "", 0),
    "errors_refused": ("health", "", 0),
    "errors_exception": ("health", "", 0),
    "errors_decode": ("health", "", 0),
    "last_good_age_s": ("health", "s", 1),
}

# Status points of a record-based particle counter: name -> (quantity, unit, decimals).
# records_lost / record_conflict / clock_fault are the instrument EVENTS (docs/ARCHITECTURE.md
# "record conflict", reference step 2 "records lost", "clock alarm"), reported as samples
# so the alarm side can raise instrument alarms on them (value > 0 = event).
COUNTER_STATUS: dict[str, tuple[str, str, int]] = {
    "flow_cfm": ("flow", "CFM", 2),
    "flow_fault": ("status", "", 0),
    "laser_fault": ("status", "", 0),
    "service_due": ("status", "", 0),
    "device_error": ("status", "", 0),
    "not_sampling": ("status", "", 0),
    "clock_offset_s": ("clock_offset", "s", 0),
    "records_lost": ("status", "s", 0),
    "record_conflict": ("status", "", 0),
    "clock_fault": ("status", "", 0),
    # the sample and hold time the instrument reports (40033 / 40031), for the devices screen
    "sample_time_s": ("duration", "s", 0),
    "hold_time_s": ("duration", "s", 0),
}


CFM_L_PER_MIN = 28.3168  # 1 ft3/min (ISO 14644-1:2015)


def size_tag(size_um: float) -> str:
    """0.3 -> "0_3um", 5.0 -> "5_0um" (the channel part of a point name)."""
    return f"{size_um:.1f}".replace(".", "_") + "um"


@dataclass(frozen=True)
class PointDef:
    """A fully resolved point: where it is read from and what it means."""

    id: str
    device: str
    name: str
    table: str | None
    address: int | None
    type: str = "uint16"
    order: str = "ABCD"
    count: int | None = None
    bit: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    decimals: int = 0
    unit: str = ""
    quantity: str = ""
    measures: str | None = None
    between: str | None = None
    nan: tuple[int, ...] = ()
    size_um: float | None = None
    kind: str = "measured"  # measured | health | status | derived
    stale_after_s: float | None = None
    limits: dict[str, LimitSpec] = field(default_factory=dict)
    record_volume_l: float | None = None  # particle channels: air volume of one record

    @property
    def polled(self) -> bool:
        """True for a live register point the poller reads and decodes directly."""
        return self.table is not None and self.address is not None and self.kind != "health"


def _from_point(dev: Device, pt: Point, kind: str) -> PointDef:
    return PointDef(
        id=f"{dev.id}.{pt.name}", device=dev.id, name=pt.name, table=pt.table, address=pt.address,
        type=pt.type, order=pt.order, count=pt.count, bit=pt.bit, scale=pt.scale, offset=pt.offset,
        decimals=derive_decimals(pt.scale, pt.type, pt.decimals), unit=pt.unit, quantity=pt.quantity,
        measures=pt.measures, between=pt.between, nan=tuple(pt.nan), kind=kind,
        stale_after_s=pt.stale_after_s if pt.stale_after_s is not None else 3 * dev.scan_s,
        limits=dict(pt.limits),
    )


def counter_point_defs(dev: Device) -> list[PointDef]:
    """Channel, status and event points of a record-based particle counter."""
    cmap = load_profile(dev.profile).counter
    interval = dev.sample_s or cmap.record_interval_s  # the counter refines it from 40031/40033
    stale = 3 * interval
    volume_l = CFM_L_PER_MIN * interval / 60.0  # nominal 1 CFM for the low-count M-of-N default
    out = []
    for ch in cmap.channels:
        tag = size_tag(ch.size_um)
        out.append(PointDef(id=f"{dev.id}.pc_{tag}", device=dev.id, name=f"pc_{tag}", table="input",
                            address=ch.address, type="uint32", decimals=1, unit="count/m3",
                            quantity="particle_conc", size_um=ch.size_um, stale_after_s=stale,
                            record_volume_l=volume_l))
        out.append(PointDef(id=f"{dev.id}.count_{tag}", device=dev.id, name=f"count_{tag}",
                            table="input", address=ch.address, type="uint32", decimals=0,
                            unit="count", quantity="particle_count", size_um=ch.size_um,
                            stale_after_s=stale))
    for name, (quantity, unit, dec) in COUNTER_STATUS.items():
        table, address, bit, scale = "holding", None, None, 1.0
        if name == "flow_cfm":
            address, scale = cmap.flow, 0.01
        elif name in ("flow_fault", "laser_fault", "service_due", "device_error"):
            address, bit = cmap.status, cmap.bits[{"flow_fault": "flow", "laser_fault": "laser"}.get(name, name)]
        elif name == "clock_offset_s":
            address = cmap.rtc
        else:
            table = None
        out.append(PointDef(id=f"{dev.id}.{name}", device=dev.id, name=name, table=table,
                            address=address, bit=bit, scale=scale, decimals=dec, unit=unit,
                            quantity=quantity, kind="status", stale_after_s=3 * dev.scan_s))
    return out


def health_point_defs(dev: Device) -> list[PointDef]:
    """The communication-health points every device has."""
    return [PointDef(id=f"{dev.id}.{name}", device=dev.id, name=name, table=None, address=None,
                     decimals=dec, unit=unit, quantity=quantity, kind="health")
            for name, (quantity, unit, dec) in HEALTH_POINTS.items()]


def _annotate(base: PointDef, pt: Point) -> PointDef:
    changes: dict = {}
    for attr in ("measures", "between", "stale_after_s"):
        if getattr(pt, attr) is not None:
            changes[attr] = getattr(pt, attr)
    if pt.limits:
        changes["limits"] = dict(pt.limits)
    if pt.unit:
        changes["unit"] = pt.unit
    if pt.quantity:
        changes["quantity"] = pt.quantity
    if pt.decimals is not None:
        changes["decimals"] = pt.decimals
    return dataclasses.replace(base, **changes)


def _device_points(dev: Device, i: int, problems: list[tuple[str, str]]) -> list[PointDef]:
    if dev.profile is None:
        pts = [_from_point(dev, pt, "status" if pt.type == "bool" else "measured") for pt in dev.points]
        return pts + health_point_defs(dev)
    try:
        prof = load_profile(dev.profile)
    except ProfileError as exc:
        problems.append((f"devices[{i}].profile", str(exc)))
        return health_point_defs(dev)
    if prof.kind == "record":
        base = counter_point_defs(dev)
    else:
        base = [_from_point(dev, pp.point, pp.kind) for pp in prof.points]
    by_name = {p.name: k for k, p in enumerate(base)}
    for j, pt in enumerate(dev.points):
        k = by_name.get(pt.name)
        if k is None:
            problems.append((f"devices[{i}].points[{j}].name",
                             f"={pt.name!r} is not a point of profile {dev.profile!r}; known:"
                             f" {', '.join(sorted(by_name))}"))
            continue
        base[k] = _annotate(base[k], pt)
    return base + health_point_defs(dev)


def expand_points(cfg: Config, problems: list[tuple[str, str]] | None = None) -> list[PointDef]:
    """Every point of every device (profile + annotations, inline, counter, health).

    Problems (unknown annotated names, unknown profiles) are appended to ``problems``
    as ``(key path, message)`` when a list is given; see :func:`point_problems`.
    """
    sink: list[tuple[str, str]] = [] if problems is None else problems
    out: list[PointDef] = []
    for i, dev in enumerate(cfg.devices):
        out.extend(_device_points(dev, i, sink))
    return out


def point_problems(cfg: Config) -> list[tuple[str, str]]:
    """``(key path, message)`` for each annotated name a profile lacks (for check-config)."""
    problems: list[tuple[str, str]] = []
    expand_points(cfg, problems)
    return problems


def device_points(cfg: Config, device_id: str) -> list[PointDef]:
    """The points of one device."""
    i, dev = next((i, d) for i, d in enumerate(cfg.devices) if d.id == device_id)
    return _device_points(dev, i, [])


def point_infos(cfg: Config) -> list[PointInfo]:
    """What the store and readers need about each point (gmp = its zone has a GMP grade)."""
    zones = {z.id: z for z in cfg.zones}
    devices = {d.id: d for d in cfg.devices}
    out = []
    for p in expand_points(cfg):
        dev = devices[p.device]
        zone = zones.get(dev.zone) if dev.zone else None
        out.append(PointInfo(id=p.id, device=p.device, site=dev.site, zone=dev.zone,
                             quantity=p.quantity, unit=p.unit, decimals=p.decimals,
                             gmp=bool(zone is not None and zone.gmp_grade), kind=p.kind))
    return out
