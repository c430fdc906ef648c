"""Devices: communication health and the worst latest quality of each instrument."""

from __future__ import annotations

from textual.app import ComposeResult

from tui.data import Snapshot
from tui.screens.base import DataScreen
from tui.views.devices import DEVICE_COLUMNS, device_rows
from tui.widgets.live_table import LiveTable


class DevicesScreen(DataScreen):
    """Which instrument is not answering, how slow, how far its clock is off."""

    MODE = "devices"

    def body(self) -> ComposeResult:
        yield LiveTable(DEVICE_COLUMNS, id="device-list")

    def on_mount(self) -> None:
        self.query_one(LiveTable).focus()

    def show_body(self, snap: Snapshot) -> None:
        self.query_one(LiveTable).sync(device_rows(self.app.cfg, snap))
