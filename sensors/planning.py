"""Request planning: coalesce the points of one device and table into the fewest reads.

Modbus limits one read to 125 registers (FC3/FC4) or 2000 bits (FC1/FC2). Points closer
than ``max_gap`` unused registers are read through the gap in one request; a gap wider
than that starts a new request (some devices answer "illegal address" for holes).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sensors.points import PointDef
from sensors.registers import register_count

MAX_REGISTERS = 125  # FC3/FC4, Modbus application protocol v1.1b3 6.3/6.4
MAX_BITS = 2000  # FC1/FC2
BIT_TABLES = ("coil", "discrete")
TABLE_ORDER = {"holding": 0, "input": 1, "coil": 2, "discrete": 3}


@dataclass(frozen=True)
class ReadRequest:
    """One Modbus read: table, first address, count, and the points it serves."""

    table: str
    address: int
    count: int
    points: tuple[PointDef, ...]

    def slice(self, p: PointDef, data: list) -> list:
        """The part of this read's data that belongs to point ``p``."""
        start = p.address - self.address
        return data[start:start + span(p)]


def span(p: PointDef) -> int:
    """Registers (or bits) point ``p`` occupies."""
    if p.table in BIT_TABLES:
        return 1
    return 1 if p.bit is not None else register_count(p.type, p.count)


def plan_reads(points: Iterable[PointDef], max_gap: int = 8, max_registers: int = MAX_REGISTERS,
               max_bits: int = MAX_BITS) -> list[ReadRequest]:
    """Group points by table and coalesce them into as few reads as the limits allow.

    Points must belong to one device (one unit). Reads are ordered holding, input,
    coil, discrete, then by address.
    """
    by_table: dict[str, list[PointDef]] = defaultdict(list)
    for p in points:
        if p.table is None or p.address is None:
            continue
        if span(p) > (max_bits if p.table in BIT_TABLES else max_registers):
            raise ValueError(f"point {p.id} spans {span(p)} registers, more than one read allows")
        by_table[p.table].append(p)
    out: list[ReadRequest] = []
    for table in sorted(by_table, key=lambda t: TABLE_ORDER.get(t, 9)):
        limit = max_bits if table in BIT_TABLES else max_registers
        group: list[PointDef] = []
        start = end = 0
        for p in sorted(by_table[table], key=lambda q: (q.address, span(q))):
            p_end = p.address + span(p)
            if group and p.address - end <= max_gap and max(end, p_end) - start <= limit:
                group.append(p)
                end = max(end, p_end)
                continue
            if group:
                out.append(ReadRequest(table, start, end - start, tuple(group)))
            group, start, end = [p], p.address, p_end
        if group:
            out.append(ReadRequest(table, start, end - start, tuple(group)))
    return out
