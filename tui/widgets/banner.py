"""The stale-service banner: shown only while the service's heartbeat is stale."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static

from tui.widgets.live_table import plain


class StaleBanner(Static):
    """One line, hidden when ``message`` is empty."""

    message: reactive[str] = reactive("", init=False)

    def on_mount(self) -> None:
        self.display = bool(self.message)

    def watch_message(self, message: str) -> None:
        self.update(plain(message))
        self.display = bool(message)
