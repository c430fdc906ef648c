"""The top line: screen keys (current one highlighted), who you are, site local time."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

SCREENS = (("1", "overview", "Overview"), ("2", "alarms", "Alarms"), ("3", "zone", "Zone"),
           ("4", "devices", "Devices"), ("5", "hazmat", "Hazmat"))


class TopBar(Static):
    """Screen tabs on the left, ``login · local time`` on the right."""

    clock: reactive[str] = reactive("")
    login: reactive[str] = reactive("")
    unack: reactive[int] = reactive(0)

    def __init__(self, current: str, **kwargs):
        super().__init__(**kwargs)
        self.current = current

    def render(self) -> Table:
        width = self.size.width or 80
        right = f"{self.login} {self.clock}"
        tabs = [(key, label) for key, _m, label in SCREENS]
        need = sum(len(label) + 3 for _k, label in tabs) + (len(f" {self.unack} UNACK ") if self.unack else 0)
        if need + len(right) + 1 > width:
            right = self.clock  # the login is shown again in every action dialog
        if need + len(right) + 1 > width:
            short = {"Overview": "Ovw", "Devices": "Dev", "Hazmat": "Haz", "Alarms": "Alm"}
            tabs = [(key, short.get(label, label)) for key, label in tabs]
        left = Text()
        for (key, label), (_k, mode, _l) in zip(tabs, SCREENS):
            style = "bold reverse" if mode == self.current else ""
            left.append(f" {key} {label} ", style=style)
        if self.unack:
            left.append(f" {self.unack} UNACK ", style="bold reverse red")
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        grid.add_row(left, Text(right))
        return grid
