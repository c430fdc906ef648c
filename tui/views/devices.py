"""The devices screen: communication health per instrument, from its health points."""

from __future__ import annotations

from rich.text import Text

from facility.config.schema import Config
from tui.data import Snapshot
from tui.fmt import QUALITY_LABEL, fmt_duration, fmt_value

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
