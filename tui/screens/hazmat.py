"""Hazmat: dangerous-goods stock against licence, gas readings against set points."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from tui.data import Snapshot
from tui.screens.base import DataScreen
from tui.views.hazmat import GAS_COLUMNS, STOCK_COLUMNS, gas_rows, stock_rows
from tui.widgets.live_table import LiveTable


class HazmatScreen(DataScreen):
    """Stores and gas detectors."""

    MODE = "hazmat"

    def body(self) -> ComposeResult:
        yield Static("Gas detectors (set points: engine limits, else gas table §3)",
                     classes="section")
        yield LiveTable(GAS_COLUMNS, id="gas", cursor_type="none")
        yield Static("Dangerous-goods stores: stock vs licence", classes="section")
        yield Static("no ledger yet", id="no-ledger")
        yield LiveTable(STOCK_COLUMNS, id="stock", cursor_type="none")

    def show_body(self, snap: Snapshot) -> None:
        cfg = self.app.cfg
        self.query_one("#gas", LiveTable).sync(gas_rows(cfg, snap, self.app.limits))
        stock = self.query_one("#stock", LiveTable)
        self.query_one("#no-ledger").display = snap.hazmat is None
        stock.display = snap.hazmat is not None
        stock.sync(stock_rows(cfg, snap))
