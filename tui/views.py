"""Pure view models: what each screen shows, computed from a snapshot and the config.

No Textual here, so the rules (which reading is the zone's key reading, how it is
coloured, what the banner says) are testable without a terminal. Cells are Rich ``Text``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from facility.config.schema import Config, Zone
from tui.data import Snapshot
from tui.fmt import (
    LEVEL_STYLE,
    PRIORITY_STYLE,
    QUALITY_LABEL,
    STATE_STYLE,
    fmt_duration,
    fmt_signed,
    fmt_value,
    local_time,
    priority_rank,
    short_time,
)
from tui.limits import LimitIndex, classify

# point-name suffix -> role in the overview (DESIGN.md points and the zone's derived dp point)
KEY_ROLES = {".pc_0_5um": "pc05", ".pc_5_0um": "pc50", ".temperature": "t", ".humidity": "rh"}
ALARM_STATES_ACTIVE = ("UNACK", "ACKED", "RTNUN")


def stale_after_ms(refresh_s: float) -> int:
    """A heartbeat older than 3 x refresh, and at least 10 s, means the service is gone."""
    return int(max(3 * refresh_s, 10.0) * 1000)


def banner_text(snap: Snapshot | None, refresh_s: float, tz: str) -> str:
    """The stale-service banner ("" when the service's heartbeat is fresh)."""
    if snap is None:
        return ""
    if snap.error:
        return f"database not readable: {snap.error}"
    if snap.heartbeat_ms is None:
        return "service not running: no heartbeat recorded"
    if snap.now_ms - snap.heartbeat_ms > stale_after_ms(refresh_s):
        return f"service not running since {local_time(snap.heartbeat_ms, tz)}"
    return ""


def site_tz(cfg: Config, site_id: str | None) -> str:
    """The IANA zone of a site (the first site's for None; UTC without sites)."""
    for s in cfg.sites:
        if site_id is None or s.id == site_id:
            return s.timezone
    return "UTC"


def zone_mode(cfg_zone: Zone, snap: Snapshot) -> str:
    """Mode from the zone_modes table, else the configured occupancy."""
    row = snap.zone_modes.get(cfg_zone.id)
    return (row or {}).get("mode") or cfg_zone.occupancy


def zone_class(z: Zone) -> str:
    """``ISO 5``, ``GMP C`` or ``ISO 5/C``."""
    parts = []
    if z.iso_class is not None:
        parts.append(f"ISO {z.iso_class:g}")
    if z.gmp_grade:
        parts.append(f"GMP {z.gmp_grade}" if not parts else z.gmp_grade)
    return "/".join(parts) or "-"


def point_zone_map(cfg: Config, snap: Snapshot) -> dict[str, str | None]:
    """Zone of every known point: the points table's zone, else its device's configured zone."""
    dev_zone = {d.id: d.zone for d in cfg.devices}
    out = {}
    for name, row in snap.points.items():
        out[name] = row.get("zone") or dev_zone.get(row.get("device") or name.split(".", 1)[0])
    return out


def reading_cell(snap: Snapshot, limits: LimitIndex, point: str | None, mode: str | None,
                 decimals: int = 1, signed: bool = False) -> tuple[Text, str | None]:
    """A value coloured against its limits; bad/comm/stale quality shown as the quality."""
    if point is None:
        return Text(""), None
    value, q, _ts = snap.value(point)
    if q is None:
        return Text("--", style="dim"), None
    if q != 0:
        return Text(QUALITY_LABEL.get(q, "?"), style=LEVEL_STYLE["bad"]), "bad"
    level = classify(value, limits.for_point(point, mode))
    text = fmt_signed(value, decimals) if signed else fmt_value(value, decimals)
    return Text(text, style=LEVEL_STYLE.get(level, "")), level


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


def alarm_badge(alarms: list[dict]) -> Text:
    """``2 crit``: the count of a zone's active alarms and the worst priority."""
    if not alarms:
        return Text("ok", style="green")
    worst = min((a.get("priority") for a in alarms), key=priority_rank)
    label = {"critical": "crit", "medium": "med"}.get(worst or "", worst or "?")
    unack = any(a.get("state") == "UNACK" for a in alarms)
    style = PRIORITY_STYLE.get(worst or "", "") + (" reverse" if unack else "")
    return Text(f"{len(alarms)} {label}", style=style.strip())


OVERVIEW_COLUMNS = ("Zone", "Class", "Mode", "≥0.5µm/m³", "≥5µm/m³", "ΔP Pa", "T °C", "RH %",
                    "Alarms")


def overview_rows(cfg: Config, snap: Snapshot, limits: LimitIndex,
                  keys: dict[str, ZoneKeys]) -> list[tuple[str, list]]:
    """Rows of the overview: one per site (a heading), then its zones."""
    by_zone: dict[str, list[dict]] = {}
    for a in snap.alarms:
        if a.get("zone") and a.get("state") in ALARM_STATES_ACTIVE:
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
            cells.append(alarm_badge(by_zone.get(z.id, [])))
            rows.append((z.id, cells))
    return rows


def _num(text: Text) -> float:
    s = text.plain
    mult = 1e6 if s.endswith("M") else 1e3 if s.endswith("k") else 1.0
    try:
        return float(s.rstrip("Mk")) * mult
    except ValueError:
        return -1.0


def sorted_alarms(snap: Snapshot) -> list[dict]:
    """Annunciated alarms by priority (critical first), then onset (oldest first); shelved,
    out-of-service and suppressed ones (the latter only while their condition is active)
    follow, so they stay visible without burying what needs attention."""
    shown = [a for a in snap.active_alarms()
             if not (a.get("state") == "DSUPR" and not a.get("active"))]
    return sorted(shown, key=lambda a: (a.get("state") not in ALARM_STATES_ACTIVE,
                                        priority_rank(a.get("priority")),
                                        a.get("onset_ms") or 0, a["id"]))


ALARM_COLUMNS = ("Prio", "State", "Alarm", "#", "Onset", "Value", "Limit")


def alarm_rows(cfg: Config, snap: Snapshot) -> list[tuple[str, list]]:
    """Rows of the alarm list; UNACK rows are bold and reversed across every cell."""
    rows = []
    for a in sorted_alarms(snap):
        tz = site_tz(cfg, a.get("site"))
        state = a.get("state") or "?"
        if state == "SHLVD" and a.get("shelved_until_ms"):
            left = (a["shelved_until_ms"] - snap.now_ms) / 1000.0
            state_txt = f"SHLVD {fmt_duration(left)}"
        else:
            state_txt = state
        value = None
        if a.get("point"):
            value = snap.value(a["point"])[0]
        prio = a.get("priority") or ""
        base = "bold reverse" if state == "UNACK" else ""
        cells = [Text({"medium": "med", "critical": "crit"}.get(prio, prio), style=f"{PRIORITY_STYLE.get(prio, '')} {base}".strip()),
                 Text(state_txt, style=STATE_STYLE.get(state, "") or base),
                 Text(a["id"], style=base), Text(str(a.get("occurrence") or ""), style=base),
                 Text(short_time(a.get("onset_ms"), tz), style=base),
                 Text(fmt_value(value, 2), style=base),
                 Text(fmt_value(a.get("limit"), 2) if a.get("limit") is not None else "",
                      style=base)]
        rows.append((a["id"], cells))
    return rows


HISTORY_COLUMNS = ("Time", "Alarm", "#", "Event", "From→To", "Actor", "Reason")


def history_rows(cfg: Config, snap: Snapshot) -> list[tuple[str, list]]:
    """Events of the focused alarm (or the most recent events), newest first."""
    tz = site_tz(cfg, None)
    rows = []
    for ev in reversed(snap.history):
        trans = f"{ev.get('state_from') or ''}→{ev.get('state_to') or ''}"
        rows.append((str(ev["id"]), [short_time(ev.get("ts_ms"), tz), ev.get("alarm_id") or "",
                                     str(ev.get("occurrence") or ""), ev.get("event") or "", trans,
                                     ev.get("actor") or "", (ev.get("reason") or "")[:60]]))
    return rows


DEVICE_COLUMNS = ("Device", "Zone", "Comm", "Lat ms", "Fails", "Good age", "Clock s", "Quality",
                  "Updated")


def device_rows(cfg: Config, snap: Snapshot) -> list[tuple[str, list]]:
    """Communication health per device from its health points in ``latest``."""
    per_dev: dict[str, list[str]] = {}
    for name, row in snap.points.items():
        if row.get("kind") in ("measured", "derived", None):
            per_dev.setdefault(row.get("device") or name.split(".", 1)[0], []).append(name)
    rows = []
    for d in cfg.devices:
        def v(name: str):
            return snap.value(f"{d.id}.{name}")[0]
        comm = v("comm_ok")
        comm_cell = (Text("--", style="dim") if comm is None else
                     Text("OK", style="green") if comm >= 1 else Text("FAIL", style="bold red"))
        fails = v("consecutive_failures")
        age = v("last_good_age_s")
        offset = v("clock_offset_s")
        worst, newest = None, None
        for p in per_dev.get(d.id, ()):
            _val, q, ts = snap.value(p)
            if q is not None:
                worst = q if worst is None else max(worst, q)
            if ts is not None:
                newest = ts if newest is None else max(newest, ts)
        qual = (Text("--", style="dim") if worst is None else
                Text(QUALITY_LABEL.get(worst, "?"), style="green" if worst == 0 else "magenta"))
        off_style = "red" if offset is not None and abs(offset) > cfg.alarms.clock_tolerance_s else ""
        rows.append((d.id, [
            Text(d.id), Text(d.zone or d.site), comm_cell,
            Text(fmt_value(v("latency_ms"), 1)),
            Text(fmt_value(fails, 0), style="red" if fails else ""),
            Text(fmt_duration(age) if age is not None else "--"),
            Text(fmt_value(offset, 0) if offset is not None else "", style=off_style),
            qual,
            Text(fmt_duration((snap.now_ms - newest) / 1000) + " ago" if newest else "--"),
        ]))
    return rows
