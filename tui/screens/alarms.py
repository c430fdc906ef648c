"""Alarms: active alarms by priority then onset, with ISA-18.2 state; actions; history."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from tui.data import Snapshot
from tui.screens.base import DataScreen
from tui.views.alarms import ALARM_COLUMNS, HISTORY_COLUMNS, alarm_rows, history_rows
from tui.widgets.live_table import LiveTable, plain


class AlarmsScreen(DataScreen):
    """The alarm list; a, r, s, c act on the highlighted occurrence through a modal."""

    MODE = "alarms"
    BINDINGS = [
        Binding("a", "act('ack')", "Ack"),
        Binding("r", "act('reset')", "Reset"),
        Binding("s", "act('shelve')", "Shelve"),
        Binding("u", "act('unshelve')", "Unshelve", show=False),
        Binding("c", "act('comment')", "Comment"),
        Binding("m", "mode", "Mode"),
    ]

    def body(self) -> ComposeResult:
        yield LiveTable(ALARM_COLUMNS, id="alarm-list")
        yield Static("", id="alarm-detail")
        yield LiveTable(HISTORY_COLUMNS, id="history", cursor_type="none")
        yield Static("", id="action-status")

    def on_mount(self) -> None:
        self.query_one("#alarm-list", LiveTable).focus()

    @property
    def current_alarm(self) -> dict | None:
        """The alarm row under the cursor."""
        key = self.query_one("#alarm-list", LiveTable).current_key
        snap = self.app.snapshot
        if key is None or snap is None:
            return None
        return next((a for a in snap.alarms if a["id"] == key), None)

    def show_body(self, snap: Snapshot) -> None:
        cfg = self.app.cfg
        table = self.query_one("#alarm-list", LiveTable)
        rows = alarm_rows(cfg, snap)
        table.sync(rows)
        self.query_one("#history", LiveTable).sync(history_rows(cfg, snap))
        self._detail()

    def _detail(self) -> None:
        a = self.current_alarm
        detail = self.query_one("#alarm-detail", Static)
        if a is None:
            n = 0 if self.app.snapshot is None else len(self.app.snapshot.active_alarms())
            detail.update("no active alarms" if n == 0 else "")
            self.app.focus_alarm(None)
            return
        src = a.get("source") or "-"
        who = f" · acked by {a['ack_by']}" if a.get("ack_by") else ""
        limit = f"limit {a['limit']:g} from {src}" if a.get("limit") is not None else src
        detail.update(plain(f"{a['id']} #{a.get('occurrence')} · {limit}{who}"))
        self.app.focus_alarm(a["id"])

    def on_data_table_row_highlighted(self, event) -> None:
        if event.data_table.id == "alarm-list" and self.app.snapshot is not None:
            self._detail()

    def action_act(self, action: str) -> None:
        a = self.current_alarm
        if a is None:
            self.app.notify("no alarm selected", severity="warning")
            return
        self.app.open_action(action, alarm=a)

    def action_mode(self) -> None:
        a = self.current_alarm
        if a is not None and a.get("zone"):
            self.app.open_mode_change(a["zone"])

    def set_status(self, text: str, ok: bool) -> None:
        """Show the last action's reply (or refusal)."""
        st = self.query_one("#action-status", Static)
        st.set_class(not ok, "refused")
        st.update(plain(text))
