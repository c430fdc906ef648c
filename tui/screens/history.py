"""A room's alarm history: every event of the alarms of one zone, newest first.

Opened with ``e`` from the zone screen (or the alarm screen, for the alarm's zone); read through
the store's read API (``StoreReaders.zone_events``), the last 200 events.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from tui.data import Snapshot
from tui.screens.base import DataScreen
from tui.views.alarms import HISTORY_COLUMNS, history_rows
from tui.views.common import site_tz
from tui.widgets.live_table import LiveTable


class ZoneHistoryScreen(DataScreen):
    """The zone's alarm events; Escape back."""

    MODE = "zone"
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, zone: str, **kwargs):
        super().__init__(**kwargs)
        self.zone = zone

    def compose(self) -> ComposeResult:
        self.MODE = self.app.current_mode  # the top bar keeps the tab it was opened from
        yield from super().compose()

    def body(self) -> ComposeResult:
        yield Static("", id="zone-history-title")
        yield LiveTable(HISTORY_COLUMNS, id="zone-history")

    def on_mount(self) -> None:
        self.query_one("#zone-history", LiveTable).focus()

    def on_screen_resume(self) -> None:
        self.app.want_zone_history(self.zone)

    def on_screen_suspend(self) -> None:
        self.app.want_zone_history(None)

    def show_body(self, snap: Snapshot) -> None:
        cfg = self.app.cfg
        z = next((z for z in cfg.zones if z.id == self.zone), None)
        tz = site_tz(cfg, z.site if z is not None else None)
        ready = snap.zone_history_of == self.zone
        events = snap.zone_history if ready else []
        title = Text.assemble(("Alarm history ", "bold"), (self.zone, "bold"),
                              f" {z.name if z is not None and z.name else ''} · ",
                              "reading…" if not ready else f"{len(events)} events (newest first)",
                              " · Esc back")
        self.query_one("#zone-history-title", Static).update(title)
        self.query_one("#zone-history", LiveTable).sync(history_rows(cfg, snap, events, tz))

    def action_back(self) -> None:
        self.app.pop_screen()
