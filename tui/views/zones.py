"""The overview: each zone's key readings (the worst particle count, ΔP, T, RH) and its
alarm badge, under a heading per site."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from facility.config.schema import Config
from tui.data import Snapshot
from tui.limits import LimitIndex
from tui.views.alarms import needs_attention, zone_badge
from tui.views.common import (
    point_zone_map,
    reading_cell,
    zone_class,
    zone_mode,
)

# point-name suffix -> role in the overview (docs/ARCHITECTURE.md points and the zone's derived dp point)
KEY_ROLES = {".pc_0_5um": "pc05", ".pc_5_0um": "pc50", ".temperature": "t", ".humidity": "rh"}

_LEVEL_RANK = {"action": 3, "bad": 2, "alert": 1, "ok": 0, None: -1}


@dataclass
class ZoneKeys:
    """The key points of one zone."""

    pc05: list[str]
    pc50: list[str]
    dp: str | None
    t: str | None
    rh: str | None


def zone_keys(cfg: Config, snap: Snapshot) -> dict[str, ZoneKeys]:
    """Key points per zone (every particle counter; the first T and RH transmitter)."""
    zones = {z.id: ZoneKeys([], [], None, None, None) for z in cfg.zones}
    pzone = point_zone_map(cfg, snap)
    for name in sorted(snap.points):
        zone = pzone.get(name)
        keys = zones.get(zone) if zone else None
        if keys is None:
            continue
        if name == f"{zone}.dp_cascade":
            keys.dp = name
            continue
        for suffix, role in KEY_ROLES.items():
            if name.endswith(suffix):
                if role in ("pc05", "pc50"):
                    getattr(keys, role).append(name)
                elif getattr(keys, role) is None:
                    setattr(keys, role, name)
    return zones


OVERVIEW_COLUMNS = ("Zone", "Class", "Mode", "≥0.5µm/m³", "≥5µm/m³", "ΔP Pa", "T °C", "RH %",
                    "Alarms")


def overview_rows(cfg: Config, snap: Snapshot, limits: LimitIndex,
                  keys: dict[str, ZoneKeys]) -> list[tuple[str, list]]:
    """Rows of the overview: one per site (a heading), then its zones."""
    by_zone: dict[str, list[dict]] = {}
    for a in snap.alarms:
        if a.get("zone") and needs_attention(a):  # not returned-and-acknowledged ones
            by_zone.setdefault(a["zone"], []).append(a)
    rows: list[tuple[str, list]] = []
    for site in cfg.sites:
        rows.append((f"site:{site.id}", [Text(site.id, style="bold underline"), "", "", "", "",
                                         "", "", "", ""]))
        for z in cfg.zones:
            if z.site != site.id:
                continue
            mode = zone_mode(z, snap)
            k = keys.get(z.id) or ZoneKeys([], [], None, None, None)
            cells = [Text(z.id), Text(zone_class(z)),
                     Text("oper" if mode == "in_operation" else "rest" if mode == "at_rest" else mode)]
            for pts in (k.pc05, k.pc50):
                best: tuple[Text, str | None] = (Text(""), None)
                for p in pts:
                    cell = reading_cell(snap, limits, p, mode, 0)
                    if not best[0].plain or _LEVEL_RANK[cell[1]] > _LEVEL_RANK[best[1]] or (
                            cell[1] == best[1] and _num(cell[0]) > _num(best[0])):
                        best = cell
                cells.append(best[0])
            cells.append(reading_cell(snap, limits, k.dp, mode, 1, signed=True)[0])
            cells.append(reading_cell(snap, limits, k.t, mode, 1)[0])
            cells.append(reading_cell(snap, limits, k.rh, mode, 1)[0])
            cells.append(zone_badge(by_zone.get(z.id, [])))
            rows.append((z.id, cells))
    return rows


def _num(text: Text) -> float:
    """The number a cell shows (thousands are grouped with spaces: ``3 700``)."""
    try:
        return float(text.plain.replace(" ", ""))
    except ValueError:
        return -1.0
