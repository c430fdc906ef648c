"""Help: every key, and where the numbers come from."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]Screens[/b]   1/o overview   2/a alarms   3/z zone detail   4/d devices   5/h hazmat
           ? this help   q quit (inside `facility run` it asks first: quitting stops the
           service; `facility tui` only closes the viewer)

[b]Overview[/b]  ↑↓ move   Enter zone detail   m change the zone's mode   e the zone's alarm history
          Alarms column: active alarms (worst priority, reversed while unacknowledged)
          and "+n rtn" returned but not yet acknowledged; returned-and-acknowledged = ok
[b]Alarms[/b]    a acknowledge   r reset   s shelve (duration)   u unshelve   c comment
          space mark/unmark   Z mark the zone's unacknowledged   * mark every unacknowledged
          x unmark all.  With marks, a/r/s/c act on every marked occurrence with one
          reason, each sent and audited on its own (a superseded one is refused alone).
          t trend of the alarm's point   e its zone's history   m mode of its zone.
          Each action asks for a reason and is sent to the service as your OS login; the
          service may refuse it (role, superseded #).  Order: unacknowledged active,
          acknowledged active, returned unacknowledged, latched, hidden; by priority,
          newest first.  A new critical alarm rings the terminal bell (\\[tui] bell).
[b]Zone[/b]      ←→ or [ ] previous/next zone   ↑↓ point   m mode
          t trend of the point: 1 h and 24 h from minute buckets, 7 d and 30 d from hourly
          ones (t/→ longer, T/← shorter, Esc back)   e the room's alarm history

[b]Colours[/b]   [bold red]beyond action limit[/]  [yellow]beyond alert level[/]  [green]within[/]  [magenta]bad/comm/stale[/]
          [bold reverse]UNACK[/] new, unacknowledged   RTNUN returned, not acknowledged
          SHLVD shelved   DSUPR suppressed by design or mode   OOSRV out of service
Limits come from the active alarm row (what the engine used) or from the compiled
rules; the zone screen shows each limit's source.  Times are site local with offset.
The TUI only reads the database; actions go through the service's socket.
"""


class HelpScreen(ModalScreen[None]):
    """Key bindings and legend; Escape, ? or q closes."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("question_mark", "close", "Close"),
                Binding("q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(HELP, id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)
