"""Overview: sites and their zones with key readings coloured against limits."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from tui.data import Snapshot
from tui.fmt import local_time
from tui.screens.base import DataScreen
from tui.views.common import site_tz, zone_mode
from tui.views.zones import overview_rows, zone_keys
from tui.widgets.live_table import update_static
from tui.widgets.zone_table import ZoneTable


class OverviewScreen(DataScreen):
    """Every zone at a glance; Enter opens the zone, m changes its mode."""

    MODE = "overview"
    COUNTS = True
    BINDINGS = [
        Binding("enter", "open_zone", "Zone detail"),
        Binding("m", "mode", "Mode"),
    ]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._keys_sig: object = None
        self._keys: dict = {}

    def body(self) -> ComposeResult:
        yield ZoneTable(id="zones")
        yield Static("", id="zone-info")

    def on_mount(self) -> None:
        self.query_one(ZoneTable).focus()

    def show_body(self, snap: Snapshot) -> None:
        cfg = self.app.cfg
        sig = (id(snap.points), len(snap.points))
        if sig != self._keys_sig:
            self._keys, self._keys_sig = zone_keys(cfg, snap), sig
        table = self.query_one(ZoneTable)
        table.sync(overview_rows(cfg, snap, self.app.limits, self._keys))
        if table.current_zone is None and table.cursor_row == 0 and table.row_count > 1:
            table.move_cursor(row=1, animate=False)
        self._info(snap)

    def _info(self, snap: Snapshot) -> None:
        zone = self.query_one(ZoneTable).current_zone
        info = self.query_one("#zone-info", Static)
        if zone is None:
            update_static(info, "")
            return
        z = self.app.cfg.zone(zone)
        row = snap.zone_modes.get(zone)
        mode = zone_mode(z, snap)
        since = (f" since {local_time(row['since_ms'], site_tz(self.app.cfg, z.site))}"
                 if row and row.get("since_ms") else " (configured)")
        ref = f" · ΔP {z.min_dp_pa:+g} Pa vs {z.reference}" if z.reference and z.min_dp_pa else ""
        update_static(info, f"{z.name or z.id} · {mode}{since}{ref}")

    def on_data_table_row_highlighted(self, event) -> None:
        snap = getattr(self.app, "snapshot", None)
        if snap is not None:
            self._info(snap)

    def on_data_table_row_selected(self, event) -> None:
        self.action_open_zone()

    def action_open_zone(self) -> None:
        zone = self.query_one(ZoneTable).current_zone
        if zone:
            self.app.open_zone(zone)

    def action_mode(self) -> None:
        zone = self.query_one(ZoneTable).current_zone
        if zone:
            self.app.open_mode_change(zone)
