"""Asked before the TUI of ``facility run`` quits: quitting it stops the monitoring service.

``facility run`` runs the service in the same process as this terminal (``facility.launch``),
so ``q`` there would end polling, alarms and pages at once; the dialog says so and keeps the
service running unless the operator confirms. ``facility tui`` only views a service running
elsewhere and quits without asking (docs/ARCHITECTURE.md "The command line").
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

WARNING = ("Quitting stops the monitoring service running in this terminal: no polling, no "
           "alarms and no pages until it is started again. To look away without stopping it, "
           "switch screens instead; a viewer that never stops it is `facility tui`.")


class QuitConfirm(ModalScreen[bool]):
    """``True``: stop the service and quit; ``False`` (Escape, n, the default button): keep
    running."""

    BINDINGS = [Binding("escape,n", "keep", "Keep running"), Binding("y", "stop", "Stop")]

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            yield Label("[b]Stop the monitoring service?[/b]", id="quit-title")
            yield Static(WARNING, id="quit-text")
            with Horizontal(id="quit-buttons"):
                yield Button("Keep running (n)", variant="primary", id="keep")
                yield Button("Stop service and quit (y)", variant="error", id="stop")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()  # Enter alone never stops the service

    @on(Button.Pressed, "#keep")
    def action_keep(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        self.dismiss(True)
