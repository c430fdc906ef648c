"""Zone detail: the zone's process values first (value with unit, last hour from agg_1m, the
limits in force written out), then its instruments' health, one line per device, in their own
section; the chart and the limit sources follow the highlighted process value
(docs/ARCHITECTURE.md "Values on screen")."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from tui.data import Snapshot
from tui.fmt import QUALITY_LABEL
from tui.limits import limit_line, limit_text
from tui.screens.base import DataScreen
from tui.views.common import (
    is_instrument_point,
    point_zone_map,
    site_tz,
    value_cell,
    zone_class,
    zone_mode,
)
from tui.views.devices import INSTRUMENT_COLUMNS, instrument_rows
from tui.widgets.live_table import LiveTable, update_static
from tui.widgets.trend import Trend, sparkline

POINT_COLUMNS = ("Point", "Value", "Q", "Last hour", "Limits (alert / action)")
KIND_ORDER = {"derived": 0, "measured": 1, "status": 2}


class ZoneDetailScreen(DataScreen):
    """One zone; ←/→ switch zones, the chart follows the highlighted point."""

    DEFAULT_CSS = """
    ZoneDetailScreen #instruments {
        height: auto;
        max-height: 8;
    }
    ZoneDetailScreen #instruments-title {
        height: 1;
    }
    """

    MODE = "zone"
    BINDINGS = [
        Binding("left,left_square_bracket", "step(-1)", "Prev zone", priority=True),
        Binding("right,right_square_bracket", "step(1)", "Next zone", priority=True),
        Binding("m", "mode", "Mode"),
        Binding("t", "app.trend", "Trend 1h–30d"),
        Binding("e", "app.zone_history", "Alarm history"),
    ]

    def body(self) -> ComposeResult:
        yield Static("", id="zone-title")
        yield LiveTable(POINT_COLUMNS, id="points")
        yield Static("Instruments · health of the zone's devices (4: every device)",
                     id="instruments-title", classes="section")
        yield LiveTable(INSTRUMENT_COLUMNS, id="instruments")
        yield Trend(id="trend")
        yield Static("", id="limit-sources")

    def on_mount(self) -> None:
        self.query_one("#points", LiveTable).focus()
        self._fit_instruments()

    def on_resize(self, event) -> None:
        self._fit_instruments()

    def _fit_instruments(self) -> None:
        """The process values keep most of a small terminal: the instrument section takes
        at most 8 lines (header + 7 devices, the rest scrolls), fewer below 40 lines."""
        lines = max(3, min(8, (self.size.height - 18) // 2))
        self.query_one("#instruments", LiveTable).styles.max_height = lines

    def on_screen_resume(self) -> None:
        # DataScreen's handler runs after this one (Textual calls each class's handler), and
        # draws the latest snapshot: calling it here as well drew the zone twice
        self.app.want_trends(self.app.zone_focus)

    def on_screen_suspend(self) -> None:
        self.app.want_trends(None)

    def _points(self, snap: Snapshot, zone: str) -> list[str]:
        """The zone's process values: every point but instrument health, derived first."""
        pz = point_zone_map(self.app.cfg, snap)
        names = [p for p, z in pz.items() if z == zone and not is_instrument_point(p, snap.points[p])]
        # a counter's raw counts per record after the concentrations the limits apply to
        return sorted(names, key=lambda p: (KIND_ORDER.get(snap.points[p].get("kind"), 9),
                                            snap.points[p].get("quantity") == "particle_count", p))

    def show_body(self, snap: Snapshot) -> None:
        app = self.app
        zone = app.zone_focus
        z = app.cfg.zone(zone)
        mode = zone_mode(z, snap)
        update_static(self.query_one("#zone-title", Static),
                      f"[b]{z.id}[/b] {z.name} · {zone_class(z)} · {mode} · ←/→ other zones")
        rows = []
        for p in self._points(snap, zone):
            meta = snap.points[p]
            _value, q, _ts = snap.value(p)
            lims = app.limits.for_point(p, mode)
            spark = ""
            if snap.trends_zone == zone:
                spark = sparkline([b["mean"] for b in snap.trends.get(p, [])], 12)
            rows.append((p, [p.split(".", 1)[1] if p.startswith(z.id + ".") else p,
                             value_cell(snap, app.limits, p, mode),
                             QUALITY_LABEL.get(q, "") if q else "", spark,
                             limit_text(lims, meta.get("unit"), meta.get("quantity"), p)]))
        table = self.query_one("#points", LiveTable)
        table.sync(rows)
        self.query_one("#instruments", LiveTable).sync(instrument_rows(app.cfg, snap, zone))
        self._chart(snap, mode)

    def _chart(self, snap: Snapshot, mode: str) -> None:
        point = self.query_one("#points", LiveTable).current_key
        trend = self.query_one(Trend)
        sources = self.query_one("#limit-sources", Static)
        if point is None:
            trend.update("")
            update_static(sources, "")
            return
        lims = self.app.limits.for_point(point, mode)
        tz = site_tz(self.app.cfg, self.app.cfg.zone(self.app.zone_focus).site)
        trend.show(snap.trends.get(point, []) if snap.trends_zone == self.app.zone_focus else [],
                   lims, tz, f"{point} · last hour (1-min min–max)", snap.now_ms)
        if lims:
            meta = snap.points.get(point) or {}
            lines = [f"{limit_line(n, lim, meta.get('unit'), meta.get('quantity'), point)}"
                     f": {lim.source}" + (" (active alarm)" if lim.from_alarm else "")
                     for n, lim in sorted(lims.items())]
            update_static(sources, Text("\n".join(lines)))
        else:
            update_static(sources, Text("no limit applies to this point", style="dim"))

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
