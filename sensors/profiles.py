"""Built-in device profiles: register maps as TOML data under ``sensors/profiles/``.

A profile is data, not code (STYLE.md "Declarative device maps"): each ``[[points]]`` entry
is a ``facility.config.schema.Point`` plus a ``kind``; legality of type/table/count
combinations comes from the same table the config check uses
(``facility.config.checks.REGISTERS``). Record-based particle counters add a register
map written with the manual's 1-based register NUMBERS, converted here to protocol
ADDRESSES by :func:`protocol_address`.
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

from facility.config.checks import ORDERS, REGISTERS, TABLES
from facility.config.schema import Point

PROFILE_DIR = Path(__file__).with_name("profiles")
POINT_KINDS = ("measured", "status", "health", "derived")


class ProfileError(ValueError):
    """A profile file that is missing or does not describe a legal register map."""


def protocol_address(number: int) -> tuple[str, int]:
    """Manual register NUMBER -> (table, zero-based protocol ADDRESS).

    1-9999 coils, 10001-19999 discrete inputs, 30001-39999 input registers,
    40001-49999 holding registers: 40025 -> ("holding", 24), 31009 -> ("input", 1008).
    """
    for base, table in ((40001, "holding"), (30001, "input"), (10001, "discrete"), (1, "coil")):
        if base <= number < base + 9999:
            return table, number - base
    raise ProfileError(f"register number {number} is not in a 0xxxx/1xxxx/3xxxx/4xxxx range")


@dataclass(frozen=True)
class ProfilePoint:
    """One point of a profile: the register entry and what kind of point it is."""

    point: Point
    kind: str = "measured"  # measured | status


@dataclass(frozen=True)
class Channel:
    """A particle channel of a counter: lower size bound and its record address."""

    size_um: float
    address: int  # input register address of the u32 count in the record
    enable_address: int  # input register address of the u32 enable flag (31xxx)


@dataclass(frozen=True)
class CounterMap:
    """Register map of a record-based particle counter, as protocol addresses."""

    map_version: int
    command: int
    status: int
    flow: int
    record_count: int
    record_index: int
    rtc: int
    hold_time: int
    sample_time: int
    ext_status: int
    last_sample_ts: int
    record_ts: int
    record_sample_time: int
    record_location: int
    record_status: int
    record_len: int
    enable_base: int
    type_base: int
    bits: dict[str, int]
    channels: tuple[Channel, ...]
    record_interval_s: float = 60.0
    min_map_version: int = 100

    @property
    def holding_span(self) -> tuple[int, int]:
        """(first address, count) of one read covering every holding register used."""
        last = max(self.map_version, self.status, self.flow, self.record_count, self.record_index,
                   self.rtc + 1, self.hold_time + 1, self.sample_time + 1, self.ext_status,
                   self.last_sample_ts + 1)
        return 0, last + 1


@dataclass(frozen=True)
class Profile:
    """A device profile: its points and, for record-based counters, the register map."""

    name: str
    description: str
    kind: str  # live | record
    points: tuple[ProfilePoint, ...] = ()
    counter: CounterMap | None = None

    def point(self, name: str) -> ProfilePoint | None:
        """The profile point with this name, or None."""
        return next((p for p in self.points if p.point.name == name), None)


_INPUT_KEYS = {"record_ts", "record_sample_time", "record_location", "record_status",
               "enable_base", "type_base"}
_POINT_FIELDS = {f.name for f in dataclasses.fields(Point)}


def _build_point(entry: dict, where: str) -> ProfilePoint:
    entry = dict(entry)
    kind = entry.pop("kind", "measured")
    if kind not in POINT_KINDS:
        raise ProfileError(f"{where}.kind={kind!r} is not allowed; use {', '.join(POINT_KINDS)}")
    unknown = set(entry) - _POINT_FIELDS
    if unknown:
        raise ProfileError(f"{where}: unknown keys {sorted(unknown)}")
    if "nan" in entry:
        entry["nan"] = tuple(entry["nan"])
    pt = Point(**entry)
    if pt.table not in TABLES or pt.address is None:
        raise ProfileError(f"{where}: needs table (one of {', '.join(TABLES)}) and address")
    if pt.type not in REGISTERS:
        raise ProfileError(f"{where}.type={pt.type!r} is not allowed; use one of {', '.join(REGISTERS)}")
    needed, tables = REGISTERS[pt.type]
    if pt.table not in tables:
        raise ProfileError(f"{where}.type={pt.type!r} cannot be read from table {pt.table!r};"
                           f" allowed tables: {', '.join(tables)}")
    if pt.type == "string" and not pt.count:
        raise ProfileError(f"{where}: type='string' needs count")
    if pt.count is not None and needed and pt.count != needed:
        raise ProfileError(f"{where}.count: type={pt.type!r} needs {needed} registers but count={pt.count}")
    if pt.order not in ORDERS:
        raise ProfileError(f"{where}.order={pt.order!r} is not allowed; use one of {', '.join(ORDERS)}")
    if pt.bit is not None and (not 0 <= pt.bit <= 15 or pt.table in ("coil", "discrete")):
        raise ProfileError(f"{where}.bit={pt.bit} needs a register table and 0-15")
    return ProfilePoint(pt, kind)


def _build_counter(data: dict, where: str) -> CounterMap:
    regs = data.get("registers", {})
    addr: dict[str, int] = {}
    for key, number in regs.items():
        if key == "record_len":
            continue
        table, a = protocol_address(int(number))
        want = "input" if key in _INPUT_KEYS else "holding"
        if table != want:
            raise ProfileError(f"{where}.registers.{key}={number} must be a {want} register")
        addr[key] = a
    channels = []
    for i, ch in enumerate(data.get("channels", ())):
        table, a = protocol_address(int(ch["register"]))
        if table != "input":
            raise ProfileError(f"{where}.channels[{i}].register={ch['register']} must be a 3xxxx input register")
        channels.append(Channel(float(ch["size_um"]), a, addr["enable_base"] + a))
    try:
        return CounterMap(**addr, record_len=int(regs["record_len"]), bits=dict(data.get("bits", {})),
                          channels=tuple(sorted(channels, key=lambda c: c.size_um)),
                          record_interval_s=float(data.get("record_interval_s", 60.0)),
                          min_map_version=int(data.get("min_map_version", 100)))
    except (TypeError, KeyError) as exc:
        raise ProfileError(f"{where}: incomplete counter register map: {exc}") from None


def available() -> list[str]:
    """Names of the built-in profiles."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


@functools.cache
def load_profile(name: str) -> Profile:
    """Load and validate ``sensors/profiles/<name>.toml`` (cached)."""
    path = PROFILE_DIR / f"{name}.toml"
    if not path.is_file():
        raise ProfileError(f"profile {name!r} does not exist; built-in profiles: {', '.join(available())}")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    where = f"sensors/profiles/{name}.toml"
    kind = data.get("kind", "live")
    points = tuple(_build_point(e, f"{where}:points[{i}]") for i, e in enumerate(data.get("points", ())))
    counter = _build_counter(data, where) if kind == "record" else None
    return Profile(name=name, description=data.get("description", ""), kind=kind,
                   points=points, counter=counter)
