"""What every data screen shares: the top bar, the stale banner, the alarm counts and the footer.

The app hands each new snapshot to the current screen only (``show``); a screen coming
back into view redraws from the app's latest snapshot, so hidden screens cost nothing.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui.data import Snapshot
from tui.fmt import local_time
from tui.views.alarms import alarm_counts, counts_text
from tui.views.banner import banner_text
from tui.views.common import site_tz
from tui.widgets.banner import StaleBanner
from tui.widgets.live_table import update_static
from tui.widgets.topbar import TopBar


class DataScreen(Screen):
    """A screen fed with snapshots; subclasses compose ``body()`` and draw in ``show_body``."""

    MODE = ""
    COUNTS = False
    """Whether the screen shows the alarm counts per state and priority under the top bar
    (the screens where the operator decides what to do next: overview and alarms)."""
    drawn: Snapshot | None = None  # the snapshot now on screen (what tests wait for)

    def compose(self) -> ComposeResult:
        yield TopBar(self.MODE, id="topbar")
        yield StaleBanner(id="banner")
        if self.COUNTS:
            yield Static("", id="alarm-counts")
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:  # pragma: no cover - overridden
        yield from ()

    def on_screen_resume(self) -> None:
        snap = getattr(self.app, "snapshot", None)
        if snap is not None:
            self.show(snap)

    def show(self, snap: Snapshot) -> None:
        """Draw a snapshot (called on the UI thread)."""
        app = self.app
        cfg = app.cfg
        tz = site_tz(cfg, None)
        bar = self.query_one(TopBar)
        bar.clock = local_time(snap.now_ms, tz)
        bar.login = app.login
        bar.unack = sum(1 for a in snap.alarms if a.get("state") == "UNACK")
        if self.COUNTS:
            update_static(self.query_one("#alarm-counts", Static),
                          counts_text(alarm_counts(snap.alarms)))
        self.query_one(StaleBanner).message = banner_text(snap, app.refresh_s, tz)
        self.show_body(snap)
        self.drawn = snap

    def show_body(self, snap: Snapshot) -> None:  # pragma: no cover - overridden
        """Draw the screen's own widgets."""
