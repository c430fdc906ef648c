"""The demo's TUI: the technician's app with one more pane, the pages the on-call engineer
was sent (key 6 or p), for ``facility demo`` (docs/ARCHITECTURE.md "The command line")."""

from __future__ import annotations

from textual.binding import Binding

from facility.config.schema import Config
from tui.app import FacilityApp
from tui.screens.pages import PagesScreen


class DemoApp(FacilityApp):
    """:class:`~tui.app.FacilityApp` plus the pages pane."""

    MODES = {**FacilityApp.MODES, "pages": PagesScreen}
    BINDINGS = [Binding("6,p", "show('pages')", "Pages")]


def make_demo_app(cfg: Config, db_path: str, **kwargs) -> DemoApp:
    """The demo's TUI over ``db_path`` (keywords as for :func:`tui.app.make_app`)."""
    return DemoApp(cfg, db_path, **kwargs)
