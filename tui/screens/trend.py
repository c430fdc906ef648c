"""One point's trend against its limits over 1 h, 24 h, 7 d or 30 d.

Opened with ``t`` from the zone screen (the highlighted point) or the alarm screen (the
alarm's point). The last hour and day come from the minute aggregates, the week and the
month from the hourly ones (``tui.data.SPANS``), read through the store's read API like
every other screen (docs/ARCHITECTURE.md "Data flow").
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from tui.data import BUCKET_MS, SPANS, Snapshot
from tui.fmt import fmt_value
from tui.screens.base import DataScreen
from tui.views.common import point_zone_map, site_tz, zone_mode
from tui.widgets.trend import Trend

SPAN_ORDER = tuple(SPANS)


class TrendScreen(DataScreen):
    """A point's min-max trend; t / → longer span, T / ← shorter, Escape back."""

    MODE = "zone"
    BINDINGS = [
        Binding("t,right,right_square_bracket", "span(1)", "Longer", priority=True),
        Binding("T,left,left_square_bracket", "span(-1)", "Shorter", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, point: str, span: str = "1h", **kwargs):
        super().__init__(**kwargs)
        self.point = point
        self.span = span if span in SPANS else "1h"

    def compose(self) -> ComposeResult:
        self.MODE = self.app.current_mode  # the top bar keeps the tab it was opened from
        yield from super().compose()

    def body(self) -> ComposeResult:
        yield Static("", id="trend-title")
        yield Trend(id="point-trend")
        yield Static("", id="trend-note")

    def on_screen_resume(self) -> None:
        self._ask()

    def on_screen_suspend(self) -> None:
        self.app.want_point_trend(None)

    def _ask(self) -> None:
        self.app.want_point_trend(self.point, self.span)

    def _tabs(self) -> Text:
        out = Text()
        for s in SPAN_ORDER:
            out.append(f" {s} ", style="bold reverse" if s == self.span else "dim")
        return out

    def show_body(self, snap: Snapshot) -> None:
        app = self.app
        zone = point_zone_map(app.cfg, snap).get(self.point)
        z = next((z for z in app.cfg.zones if z.id == zone), None)
        mode = zone_mode(z, snap) if z is not None else None
        tz = site_tz(app.cfg, z.site if z is not None else None)
        meta = snap.points.get(self.point) or {}
        unit = meta.get("unit") or ""
        title = Text.assemble((self.point, "bold"), f" {unit} · ", self._tabs(),
                              "  (t longer · T shorter · Esc back)")
        self.query_one("#trend-title", Static).update(title)
        lims = app.limits.for_point(self.point, mode)
        span_ms, res = SPANS[self.span]
        ready = snap.point_trend_of == (self.point, self.span)
        buckets = snap.point_trend if ready else []
        label = "1-min" if res == "1m" else "1-hour"
        self.query_one(Trend).show(buckets, lims, tz,
                                   f"{self.point} · last {self.span} ({label} min–max)",
                                   snap.now_ms, span_ms, BUCKET_MS[res])
        note = self.query_one("#trend-note", Static)
        good = [b for b in buckets if b.get("min") is not None]
        if not ready:
            note.update(Text("reading…", style="dim"))
        elif not good:
            note.update(Text(f"no data in the last {self.span}", style="dim"))
        else:
            lo = min(b["min"] for b in good)
            hi = max(b["max"] for b in good)
            lim_txt = "  ".join(f"{n} {fmt_value(lim.value, 2)}" for n, lim in sorted(lims.items()))
            note.update(Text(f"{len(good)} buckets · min {fmt_value(lo, 2)} · max "
                             f"{fmt_value(hi, 2)} {unit}" + (f" · {lim_txt}" if lim_txt else "")))

    def action_span(self, delta: int) -> None:
        i = SPAN_ORDER.index(self.span)
        self.span = SPAN_ORDER[max(0, min(len(SPAN_ORDER) - 1, i + delta))]
        self._ask()
        if self.app.snapshot is not None:
            self.show(self.app.snapshot)

    def action_back(self) -> None:
        self.app.pop_screen()
