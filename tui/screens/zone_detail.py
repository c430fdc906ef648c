"""Zone detail: every point of a zone, its last hour from agg_1m, its limits and their source."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from tui.data import Snapshot
from tui.fmt import LEVEL_STYLE, QUALITY_LABEL, fmt_value
from tui.limits import classify, short_limits
from tui.screens.base import DataScreen
from tui.views.common import point_zone_map, site_tz, zone_class, zone_mode
from tui.widgets.live_table import LiveTable
from tui.widgets.trend import Trend, sparkline

POINT_COLUMNS = ("Point", "Value", "Unit", "Q", "Last hour", "Limits")
KIND_ORDER = {"derived": 0, "measured": 1, "status": 2, "comm": 3, "health": 4}


class ZoneDetailScreen(DataScreen):
    """One zone; ←/→ switch zones, the chart follows the highlighted point."""

    MODE = "zone"
    BINDINGS = [
        Binding("left,left_square_bracket", "step(-1)", "Prev zone", priority=True),
        Binding("right,right_square_bracket", "step(1)", "Next zone", priority=True),
        Binding("m", "mode", "Mode"),
    ]

    def body(self) -> ComposeResult:
        yield Static("", id="zone-title")
        yield LiveTable(POINT_COLUMNS, id="points")
        yield Trend(id="trend")
        yield Static("", id="limit-sources")

    def on_mount(self) -> None:
        self.query_one("#points", LiveTable).focus()

    def on_screen_resume(self) -> None:
        self.app.want_trends(self.app.zone_focus)
        super().on_screen_resume()

    def on_screen_suspend(self) -> None:
        self.app.want_trends(None)

    def _points(self, snap: Snapshot, zone: str) -> list[str]:
        pz = point_zone_map(self.app.cfg, snap)
        names = [p for p, z in pz.items() if z == zone]
        return sorted(names, key=lambda p: (KIND_ORDER.get(snap.points[p].get("kind"), 9), p))

    def show_body(self, snap: Snapshot) -> None:
        app = self.app
        zone = app.zone_focus
        z = app.cfg.zone(zone)
        mode = zone_mode(z, snap)
        self.query_one("#zone-title", Static).update(
            f"[b]{z.id}[/b] {z.name} · {zone_class(z)} · {mode} · ←/→ other zones")
        rows = []
        for p in self._points(snap, zone):
            meta = snap.points[p]
            value, q, _ts = snap.value(p)
            lims = app.limits.for_point(p, mode)
            if q is None:
                val = Text("--", style="dim")
            elif q != 0:
                val = Text(QUALITY_LABEL.get(q, "?"), style=LEVEL_STYLE["bad"])
            else:
                val = Text(fmt_value(value, meta.get("decimals")),
                           style=LEVEL_STYLE.get(classify(value, lims), ""))
            spark = ""
            if snap.trends_zone == zone:
                spark = sparkline([b["mean"] for b in snap.trends.get(p, [])], 12)
            rows.append((p, [p.split(".", 1)[1] if p.startswith(z.id + ".") else p, val,
                             meta.get("unit") or "", QUALITY_LABEL.get(q, "") if q else "",
                             spark, short_limits(lims)]))
        table = self.query_one("#points", LiveTable)
        table.sync(rows)
        self._chart(snap, mode)

    def _chart(self, snap: Snapshot, mode: str) -> None:
        point = self.query_one("#points", LiveTable).current_key
        trend = self.query_one(Trend)
        sources = self.query_one("#limit-sources", Static)
        if point is None:
            trend.update("")
            sources.update("")
            return
        lims = self.app.limits.for_point(point, mode)
        tz = site_tz(self.app.cfg, self.app.cfg.zone(self.app.zone_focus).site)
        trend.show(snap.trends.get(point, []) if snap.trends_zone == self.app.zone_focus else [],
                   lims, tz, f"{point} · last hour (1-min min–max)", snap.now_ms)
        if lims:
            lines = [f"{n} {fmt_value(lim.value, 2)}: {lim.source}"
                     + (" (active alarm)" if lim.from_alarm else "")
                     for n, lim in sorted(lims.items())]
            sources.update(Text("\n".join(lines)))
        else:
            sources.update(Text("no limit applies to this point", style="dim"))

    def on_data_table_row_highlighted(self, event) -> None:
        snap = self.app.snapshot
        if snap is not None:
            self._chart(snap, zone_mode(self.app.cfg.zone(self.app.zone_focus), snap))

    def action_step(self, delta: int) -> None:
        zones = [z.id for z in self.app.cfg.zones]
        i = zones.index(self.app.zone_focus) if self.app.zone_focus in zones else 0
        self.app.open_zone(zones[(i + delta) % len(zones)])

    def action_mode(self) -> None:
        self.app.open_mode_change(self.app.zone_focus)
