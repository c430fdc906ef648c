"""Cross-checks of a built configuration: references, uniqueness, register maps, limits.

Each check yields ``(key path, message)``; the loader turns them into one line each.
Legal Modbus combinations are a table (``REGISTERS``), not an if-chain.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from facility.config.schema import Config, Device, LimitSpec, Point
from facility.domain.vocab import LIMIT_NAMES, PRIORITIES, ROLES, ZONE_MODES

# type -> (registers, tables it may live in). Coils and discrete inputs hold single bits.
REGISTERS: dict[str, tuple[int, tuple[str, ...]]] = {
    "bool": (1, ("coil", "discrete", "holding", "input")),
    "int16": (1, ("holding", "input")),
    "uint16": (1, ("holding", "input")),
    "int32": (2, ("holding", "input")),
    "uint32": (2, ("holding", "input")),
    "int64": (4, ("holding", "input")),
    "uint64": (4, ("holding", "input")),
    "float32": (2, ("holding", "input")),
    "float64": (4, ("holding", "input")),
    "string": (0, ("holding", "input")),  # count registers, 2 ASCII chars each
}
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
TABLES = ("holding", "input", "coil", "discrete")
ISA_PRIORITIES = PRIORITIES[::-1]  # messages list them least urgent first
ZONE_KINDS = ("cleanroom", "gas_room", "store", "service", "corridor", "gowning", "utility")
MODES = ZONE_MODES
CHANNEL_TYPES = ("pagerduty", "webhook", "smtp", "command")
DG_CLASSES = ("1", "2.1", "2.2", "2.3", "3", "3A", "4.1", "4.2", "4.3", "5.1", "5.2", "6.1",
              "8", "9")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
HIDE_LIMITS = {"max_shelve_s": 28800, "max_shelve_critical_s": 3600, "max_suppress_s": 28800,
               "max_oos_critical_s": 3600}
"""``[alarms]`` maxima on hiding an alarm (docs/ARCHITECTURE.md "Critical alarms"), each with
the shipped value the error message suggests."""


def _dupes(items, path: str, what: str) -> Iterator[tuple[str, str]]:
    seen: dict[str, int] = {}
    for i, key in enumerate(items):
        if key in seen:
            yield f"{path}[{i}]", f"duplicate {what} {key!r} (also at {path}[{seen[key]}]); ids must be unique"
        else:
            seen[key] = i


def parse_pair(text: str) -> tuple[str, str] | None:
    """Split ``"A - B"`` into ``("A", "B")``; None if malformed."""
    parts = [p.strip() for p in text.split(" - ")]
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


def check_limits(limits: dict[str, LimitSpec], path: str) -> Iterator[tuple[str, str]]:
    """Explicit limits: names, non-negative deadbands and delays, M-of-N, ordering."""
    for name, spec in limits.items():
        p = f"{path}.{name}"
        if name not in LIMIT_NAMES:
            yield p, f"unknown limit; allowed: {', '.join(LIMIT_NAMES)}"
            continue
        for attr in ("deadband", "on_delay_s", "off_delay_s"):
            if getattr(spec, attr) < 0:
                yield f"{p}.{attr}", f"={getattr(spec, attr)} is negative; must be >= 0"
        if spec.max_gap_s is not None and spec.max_gap_s <= 0:
            yield f"{p}.max_gap_s", "must be > 0"
        if spec.m_of_n is not None:
            mn = spec.m_of_n
            if len(mn) != 2 or not 1 <= mn[0] <= mn[1]:
                yield f"{p}.m_of_n", f"={list(mn)} is invalid; use [M, N] with 1 <= M <= N"
            elif spec.on_delay_s > 0:
                yield f"{p}.m_of_n", "cannot be combined with on_delay_s > 0; use one or the other"
    yield from check_order({k: v for k, v in limits.items() if k in LIMIT_NAMES},
                           {k: path for k in limits})


def check_order(limits: dict[str, LimitSpec], sources: dict[str, str]) -> Iterator[tuple[str, str]]:
    """action_low < alert_low < alert_high < action_high and L_high-D_high > L_low+D_low."""
    order = [n for n in reversed(LIMIT_NAMES) if n in limits]  # lowest limit first
    for lo, hi in zip(order, order[1:]):
        if not limits[lo].limit < limits[hi].limit:
            yield (sources[hi] + f".{hi}",
                   f"{hi}={limits[hi].limit} ({sources[hi]}) must be above {lo}={limits[lo].limit}"
                   f" ({sources[lo]}); order is action_low < alert_low < alert_high < action_high")
    for hi in ("alert_high", "action_high"):
        for lo in ("alert_low", "action_low"):
            if hi in limits and lo in limits:
                h, l_ = limits[hi], limits[lo]
                if not h.limit - h.deadband > l_.limit + l_.deadband:
                    yield (sources[hi] + f".{hi}",
                           f"{hi}={h.limit} minus deadband {h.deadband} ({sources[hi]}) must stay above"
                           f" {lo}={l_.limit} plus deadband {l_.deadband} ({sources[lo]})")


def _check_point(dev: Device, pt: Point, path: str, cfg: Config) -> Iterator[tuple[str, str]]:
    inline = dev.profile is None
    if inline and (pt.table is None or pt.address is None):
        yield path, "inline points need table and address (or give the device a profile)"
    if pt.table is not None and pt.table not in TABLES:
        yield f"{path}.table", f"={pt.table!r} is not allowed; use one of {', '.join(TABLES)}"
    if pt.type not in REGISTERS:
        yield f"{path}.type", f"={pt.type!r} is not allowed; use one of {', '.join(REGISTERS)}"
    else:
        needed, tables = REGISTERS[pt.type]
        if pt.table in TABLES and pt.table not in tables:
            yield f"{path}.type", f"={pt.type!r} cannot be read from table {pt.table!r}; allowed tables: {', '.join(tables)}"
        if pt.type == "string" and not pt.count:
            yield f"{path}.count", "type='string' needs count (registers, 2 characters each)"
        if pt.count is not None and needed and pt.count != needed:
            yield f"{path}.count", f"type={pt.type!r} needs {needed} registers but count={pt.count}"
        span = pt.count or needed or 1
        if pt.address is not None and not 0 <= pt.address <= 65536 - span:
            yield f"{path}.address", f"={pt.address} is out of range; 0-{65536 - span} for {pt.type}"
    if pt.order not in ORDERS:
        yield f"{path}.order", f"={pt.order!r} is not allowed; use one of {', '.join(ORDERS)}"
    if pt.bit is not None and not 0 <= pt.bit <= 15:
        yield f"{path}.bit", f"={pt.bit} is out of range; 0-15"
    if pt.scale == 0:
        yield f"{path}.scale", "must not be 0"
    zone_ids = {z.id for z in cfg.zones}
    for key in ("measures", "between"):
        text = getattr(pt, key)
        if text is None:
            continue
        pair = parse_pair(text)
        if pair is None:
            yield f"{path}.{key}", f"={text!r} is malformed; write \"ZONE-A - ZONE-B\" or \"ZONE - ambient\""
            continue
        for z in pair:
            if z != "ambient" and z not in zone_ids:
                yield f"{path}.{key}", f"zone {z!r} does not exist; known zones: {', '.join(sorted(zone_ids))}"
    yield from check_limits(pt.limits, f"{path}.limits")
    zone = next((z for z in cfg.zones if z.id == dev.zone), None)
    gmp = zone is not None and zone.gmp_grade is not None
    for name, spec in pt.limits.items():
        delayed = spec.on_delay_s > 0
        if delayed and not spec.justification and (
            (gmp and pt.quantity == "pressure_diff") or pt.quantity == "gas_conc"
        ):
            what = "GMP pressure" if pt.quantity == "pressure_diff" else "gas"
            yield (f"{path}.limits.{name}.on_delay_s",
                   f"a delay on a {what} alarm needs a justification (Annex 1 4.16); add justification = \"...\"")


def _check_setpoints(dev: Device, p: str) -> Iterator[tuple[str, str]]:
    """A gas detector's ``setpoints`` are alarm levels: low/high, positive, finite, ordered.

    Whether they are within what the gas table supports (else a justification is needed) is
    the gas policy's check (``hazmat.gas.detector_policies``), which knows the gas table.
    """
    sp = dev.setpoints
    if sp and not dev.gas:
        yield f"{p}.setpoints", "apply only to gas detectors; give gas = \"...\" or remove them"
    for key, val in sp.items():
        if key not in ("low", "high"):
            yield f"{p}.setpoints.{key}", "unknown set point; use low and/or high"
        elif not (math.isfinite(val) and val > 0):
            yield f"{p}.setpoints.{key}", f"={val!r} must be a positive finite alarm level, e.g. 0.3"
    lo, hi = sp.get("low"), sp.get("high")
    if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi) and not lo < hi:
        yield f"{p}.setpoints.high", f"={hi:g} must be above setpoints.low={lo:g}"
    if dev.setpoints_justification is not None and not dev.setpoints_justification.strip():
        yield f"{p}.setpoints_justification", "is empty; say why the set points are acceptable"


def _check_comm_timing(dev: Device, p: str) -> Iterator[tuple[str, str]]:
    """``comm_delay_s`` / ``comm_clear_s``: finite seconds > 0. The 10 s cap of a toxic-gas
    detector needs the gas table, so the catalogue checks it (``facility.catalogue``)."""
    for key in ("comm_delay_s", "comm_clear_s"):
        v = getattr(dev, key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not math.isfinite(v) or v <= 0):
            yield f"{p}.{key}", f"={v!r} must be a finite number of seconds > 0; remove it for the default"
    if dev.comm_justification is not None and not dev.comm_justification.strip():
        yield f"{p}.comm_justification", "is empty; say why the longer comm delay is acceptable"


def _check_devices(cfg: Config) -> Iterator[tuple[str, str]]:
    site_ids = {s.id for s in cfg.sites}
    zone_ids = {z.id for z in cfg.zones}
    yield from _dupes([d.id for d in cfg.devices], "devices", "device id")
    conns: dict[tuple[str, int], list[int]] = defaultdict(list)
    units: dict[tuple[str, int, int], int] = {}
    for i, dev in enumerate(cfg.devices):
        p = f"devices[{i}]"
        if dev.site not in site_ids:
            yield f"{p}.site", f"={dev.site!r} is not a configured site; known: {', '.join(sorted(site_ids))}"
        if dev.zone is not None and dev.zone not in zone_ids:
            yield f"{p}.zone", f"={dev.zone!r} is not a configured zone; known: {', '.join(sorted(zone_ids))}"
        if not 0 <= dev.unit <= 247:
            yield f"{p}.unit", f"={dev.unit} is out of range; Modbus units are 0-247"
        if not 1 <= dev.port <= 65535:
            yield f"{p}.port", f"={dev.port} is out of range; 1-65535"
        if dev.scan_s <= 0:
            yield f"{p}.scan_s", f"={dev.scan_s} must be > 0 seconds"
        if dev.timeout_s <= 0:
            yield f"{p}.timeout_s", f"={dev.timeout_s} must be > 0 seconds"
        if dev.sample_s is not None and dev.sample_s <= 0:
            yield f"{p}.sample_s", f"={dev.sample_s} must be > 0 seconds"
        if dev.retries < 0:
            yield f"{p}.retries", "must be >= 0"
        if dev.clock not in ("utc", "local"):
            yield f"{p}.clock", f"={dev.clock!r} is not allowed; use utc or local"
        if dev.monitor is not None and dev.monitor not in ("room", "cabinet"):
            yield f"{p}.monitor", f"={dev.monitor!r} is not allowed; use room or cabinet"
        if dev.cabinet is not None and dev.cabinet not in {c.id for c in cfg.hazmat.cabinets}:
            yield f"{p}.cabinet", f"={dev.cabinet!r} is not a configured gas cabinet"
        if dev.store is not None and dev.store not in {s.id for s in cfg.hazmat.stores}:
            yield f"{p}.store", f"={dev.store!r} is not a configured dangerous-goods store"
        yield from _check_setpoints(dev, p)
        yield from _check_comm_timing(dev, p)
        if dev.profile is None and not dev.points:
            yield p, "has neither a profile nor points; give profile = \"...\" or [[devices.points]]"
        key = (dev.host, dev.port, dev.unit)
        if key in units:
            yield p, (f"{dev.host}:{dev.port} unit {dev.unit} is also used by devices[{units[key]}];"
                      " each host:port:unit is one device")
        units.setdefault(key, i)
        conns[(dev.host, dev.port)].append(i)
        yield from _dupes([pt.name for pt in dev.points], f"{p}.points", "point name")
        for j, pt in enumerate(dev.points):
            yield from _check_point(dev, pt, f"{p}.points[{j}]", cfg)
    for (host, port), idx in conns.items():
        devs = [cfg.devices[i] for i in idx]
        total = sum(d.timeout_s for d in devs)
        fastest = min(d.scan_s for d in devs)
        if len(devs) > 1 and total >= fastest:
            yield (f"devices[{idx[-1]}].timeout_s",
                   f"units sharing {host}:{port} have timeouts summing to {total:g} s, not below the"
                   f" smallest scan_s {fastest:g} s; lower timeout_s or raise scan_s")


def _check_zones(cfg: Config) -> Iterator[tuple[str, str]]:
    site_ids = {s.id for s in cfg.sites}
    zone_ids = {z.id for z in cfg.zones}
    yield from _dupes([s.id for s in cfg.sites], "sites", "site id")
    for i, site in enumerate(cfg.sites):
        try:
            ZoneInfo(site.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            yield f"sites[{i}].timezone", f"={site.timezone!r} is not an IANA time zone (e.g. Asia/Hong_Kong)"
    yield from _dupes([z.id for z in cfg.zones], "zones", "zone id")
    for i, z in enumerate(cfg.zones):
        p = f"zones[{i}]"
        if z.site not in site_ids:
            yield f"{p}.site", f"={z.site!r} is not a configured site; known: {', '.join(sorted(site_ids))}"
        if z.iso_class is not None and not 1 <= z.iso_class <= 9:
            yield f"{p}.iso_class", f"={z.iso_class:g} is out of range; ISO 14644-1 classes are 1-9"
        if z.gmp_grade is not None and z.gmp_grade not in ("A", "B", "C", "D"):
            yield f"{p}.gmp_grade", f"={z.gmp_grade!r} is not allowed; EU GMP grades are A, B, C, D"
        if z.occupancy not in MODES:
            yield f"{p}.occupancy", f"={z.occupancy!r} is not allowed; use {' or '.join(MODES)}"
        if z.kind not in ZONE_KINDS:
            yield f"{p}.kind", f"={z.kind!r} is not allowed; use one of {', '.join(ZONE_KINDS)}"
        if z.area_m2 is not None and z.area_m2 <= 0:
            yield f"{p}.area_m2", "must be > 0"
        if z.reference is not None and z.reference != "ambient" and z.reference not in zone_ids:
            yield f"{p}.reference", f"={z.reference!r} is not a configured zone (or \"ambient\")"
        if z.min_dp_pa is not None and z.reference is None:
            yield f"{p}.min_dp_pa", "needs reference = \"ZONE\" (or \"ambient\") to say what it is against"
        for attr in ("door_grace_s", "door_open_max_s", "dp_deadband_pa"):
            if getattr(z, attr) < 0:
                yield f"{p}.{attr}", "must be >= 0"
        if z.max_skew_s is not None and not z.max_skew_s > 0:
            yield f"{p}.max_skew_s", (f"={z.max_skew_s:g} must be > 0 (the most two transmitters'"
                                      " samples may be apart; default 2 x scan_s)")
        for j, entry in enumerate(z.schedule):
            if not re.match(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)(-(Mon|Tue|Wed|Thu|Fri|Sat|Sun))? "
                            rf"([01]\d|2[0-3]):[0-5]\d ({'|'.join(MODES)})$", entry):
                yield f"{p}.schedule[{j}]", f"={entry!r} is malformed; write \"Mon-Fri 08:00 in_operation\""


def _check_people_and_alarms(cfg: Config) -> Iterator[tuple[str, str]]:
    yield from _dupes([o.login for o in cfg.operators], "operators", "login")
    for i, op in enumerate(cfg.operators):
        for role in op.roles:
            if role not in ROLES:
                yield f"operators[{i}].roles", f"role {role!r} is not known; use {', '.join(ROLES)}"
    a = cfg.alarms
    if a.alert_fraction is not None and not 0 < a.alert_fraction < 1:
        yield "alarms.alert_fraction", f"={a.alert_fraction} must be between 0 and 1 (exclusive)"
    for quantity, limits in a.defaults.items():
        yield from check_limits(limits, f"alarms.defaults.{quantity}")
    for kind, prio in a.priorities.items():
        if prio not in ISA_PRIORITIES:
            yield f"alarms.priorities.{kind}", f"={prio!r} is not allowed; use {', '.join(ISA_PRIORITIES)}"
    for attr in ("recovery_s", "clock_tolerance_s"):
        if getattr(a, attr) <= 0:
            yield f"alarms.{attr}", "must be > 0"
    if isinstance(a.skipped_runs_max, bool) or not isinstance(a.skipped_runs_max, int) \
            or not 0 <= a.skipped_runs_max < 60:
        yield "alarms.skipped_runs_max", (f"={a.skipped_runs_max!r} must be a whole number of"
                                          " scans from 0 to 59 (per 60 s); default 3")
    # The bounds on hiding an alarm: NaN would compare false and let any duration through.
    for attr in HIDE_LIMITS:
        val = getattr(a, attr)
        if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
            yield f"alarms.{attr}", (f"={val!r} must be a finite number of seconds > 0 (a hidden"
                                     f" alarm always has an end), e.g. {HIDE_LIMITS[attr]}")
    pg = cfg.paging
    yield from _dupes([c.id for c in pg.channels], "paging.channels", "channel id")
    channel_ids = {c.id for c in pg.channels}
    for i, ch in enumerate(pg.channels):
        p = f"paging.channels[{i}]"
        if ch.type not in CHANNEL_TYPES:
            yield f"{p}.type", f"={ch.type!r} is not allowed; use {', '.join(CHANNEL_TYPES)}"
        need = {"pagerduty": ("url", "routing_key_env"), "webhook": ("url",),
                "smtp": ("smtp_host", "smtp_from", "to"), "command": ("command",)}.get(ch.type, ())
        for attr in need:
            if not getattr(ch, attr):
                yield f"{p}.{attr}", f"is required for a {ch.type} channel"
        for attr in ("routing_key_env", "username_env", "password_env"):
            val = getattr(ch, attr)
            if val is not None and not ENV_NAME.match(val):
                yield f"{p}.{attr}", f"={val!r} must name an environment variable (e.g. PAGER_KEY), not hold a secret"
    for i, route in enumerate(pg.routes):
        for pr in route.priorities:
            if pr not in ISA_PRIORITIES:
                yield f"paging.routes[{i}].priorities", f"{pr!r} is not a priority; use {', '.join(ISA_PRIORITIES)}"
        if not route.levels:
            yield f"paging.routes[{i}].levels", "needs at least one escalation level"
        for j, lvl in enumerate(route.levels):
            for ch in lvl.channels:
                if ch not in channel_ids:
                    yield (f"paging.routes[{i}].levels[{j}].channels",
                           f"channel {ch!r} is not configured; known: {', '.join(sorted(channel_ids)) or 'none'}")
    if pg.heartbeat_s <= 0:
        yield "paging.heartbeat_s", "must be > 0"
    # Flood and chattering control (ISA-18.2): NaN would compare false and switch them off.
    if isinstance(pg.flood_max, bool) or not isinstance(pg.flood_max, int) or pg.flood_max < 1:
        yield "paging.flood_max", f"={pg.flood_max!r} must be a whole number >= 1, e.g. 10 (ISA-18.2)"
    for attr, example in (("flood_window_s", 600), ("min_repage_s", 300)):
        val = getattr(pg, attr)
        if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
            yield f"paging.{attr}", f"={val!r} must be a finite number of seconds > 0, e.g. {example}"
    if cfg.storage.retention_days < 1:
        yield "storage.retention_days", "must be >= 1"
    if not ENV_NAME.match(cfg.storage.audit_key_env):
        yield "storage.audit_key_env", "must name an environment variable (e.g. FACILITY_AUDIT_KEY_FILE)"


def _check_hazmat(cfg: Config) -> Iterator[tuple[str, str]]:
    hz = cfg.hazmat
    site_ids = {s.id for s in cfg.sites}
    zone_ids = {z.id for z in cfg.zones}
    device_ids = {d.id for d in cfg.devices}
    yield from _dupes([s.id for s in hz.substances], "hazmat.substances", "substance id")
    for i, sub in enumerate(hz.substances):
        p = f"hazmat.substances[{i}]"
        for j, cls in enumerate((sub.dg_class, *sub.subsidiary)):
            if cls not in DG_CLASSES:
                key = "class" if j == 0 else "subsidiary"
                yield f"{p}.{key}", f"={cls!r} is not an FSD class; use one of {', '.join(DG_CLASSES)}"
        if sub.unit not in ("L", "kg", "L_wc"):
            yield f"{p}.unit", f"={sub.unit!r} is not allowed; use L, kg or L_wc (litres water capacity)"
        if sub.special and sub.dg_class not in ("5.1", "6.1", "8"):
            yield f"{p}.special", "only 5.1, 6.1 and 8 substances can be \"special\""
    yield from _dupes([s.id for s in hz.stores], "hazmat.stores", "store id")
    for i, st in enumerate(hz.stores):
        p = f"hazmat.stores[{i}]"
        if st.site not in site_ids:
            yield f"{p}.site", f"={st.site!r} is not a configured site"
        if st.zone is not None and st.zone not in zone_ids:
            yield f"{p}.zone", f"={st.zone!r} is not a configured zone"
        if st.premises not in ("general", "industrial"):
            yield f"{p}.premises", f"={st.premises!r} is not allowed; use general or industrial"
        for cls, qty in st.licensed_max.items():
            if cls not in DG_CLASSES and cls != "2":
                yield f"{p}.licensed_max.{cls}", f"{cls!r} is not an FSD class"
            if qty < 0:
                yield f"{p}.licensed_max.{cls}", "must be >= 0"
        if not 0 < st.alert_fraction < 1:
            yield f"{p}.alert_fraction", "must be between 0 and 1"
        yield from _dupes(list(st.compartments), f"{p}.compartments", "compartment")
    yield from _dupes([c.id for c in hz.cabinets], "hazmat.cabinets", "cabinet id")
    for i, cab in enumerate(hz.cabinets):
        p = f"hazmat.cabinets[{i}]"
        if cab.site not in site_ids:
            yield f"{p}.site", f"={cab.site!r} is not a configured site"
        if cab.zone not in zone_ids:
            yield f"{p}.zone", f"={cab.zone!r} is not a configured zone"
        for det in cab.detectors:
            if det not in device_ids:
                yield f"{p}.detectors", f"device {det!r} is not configured"
        if cab.exhaust is not None and cab.exhaust.split(".")[0] not in device_ids:
            yield f"{p}.exhaust", f"={cab.exhaust!r} does not name a point of a configured device"
        if cab.cylinder_l_wc <= 0:
            yield f"{p}.cylinder_l_wc", "must be > 0"


def cross_check(cfg: Config) -> Iterator[tuple[str, str]]:
    """Every cross-section problem of a configuration, as (key path, message)."""
    if not cfg.sites:
        yield "sites", "at least one [[sites]] entry is required"
    yield from _check_zones(cfg)
    yield from _check_devices(cfg)
    yield from _check_people_and_alarms(cfg)
    yield from _check_hazmat(cfg)
