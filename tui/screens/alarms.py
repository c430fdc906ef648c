"""Alarms: what needs attention first, with ISA-18.2 state; actions on one or many; history.

Marks (space, ``Z`` for the zone, ``*`` for every shown alarm awaiting an acknowledgement)
collect occurrences for one action with one reason; each marked occurrence is then sent on
its own (``tui.screens.action_modal``), so each is audited and refused on its own.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from facility.domain.display import fmt_value
from tui.data import Snapshot
from tui.screens.base import DataScreen
from tui.views.alarms import (
    ALARM_COLUMNS,
    HISTORY_COLUMNS,
    alarm_rows,
    history_rows,
    needs_ack,
    sorted_alarms,
)
from tui.widgets.live_table import LiveTable, plain


class AlarmsScreen(DataScreen):
    """The alarm list; a, r, s, c act on the marked occurrences, else the highlighted one."""

    MODE = "alarms"
    COUNTS = True
    BINDINGS = [
        Binding("a", "act('ack')", "Ack"),
        Binding("space", "mark", "Mark"),
        Binding("Z", "mark_zone", "Mark zone"),
        Binding("asterisk", "mark_all", "Mark all"),
        Binding("x", "clear_marks", "Unmark", show=False),
        Binding("r", "act('reset')", "Reset"),
        Binding("s", "act('shelve')", "Shelve"),
        Binding("u", "act('unshelve')", "Unshelve", show=False),
        Binding("c", "act('comment')", "Comment"),
        Binding("m", "mode", "Mode"),
    ]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.marked: dict[str, int | None] = {}  # alarm id -> occurrence marked

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

    def marked_alarms(self) -> list[dict]:
        """The marked alarms still listed, in list order, at the occurrence that was marked
        (a newer occurrence since is the service's to refuse: it was not what was marked)."""
        snap = self.app.snapshot
        if snap is None:
            return []
        return [{**a, "occurrence": self.marked[a["id"]]} for a in sorted_alarms(snap)
                if a["id"] in self.marked]

    def show_body(self, snap: Snapshot) -> None:
        cfg = self.app.cfg
        table = self.query_one("#alarm-list", LiveTable)
        listed = {a["id"] for a in sorted_alarms(snap)}
        for aid in [k for k in self.marked if k not in listed]:
            del self.marked[aid]  # gone from the list (returned to normal, reset)
        table.sync(alarm_rows(cfg, snap, self.marked.keys()))
        self.query_one("#history", LiveTable).sync(history_rows(cfg, snap))
        self._detail()

    def _redraw(self) -> None:
        snap = self.app.snapshot
        if snap is not None:
            self.show(snap)

    def _detail(self) -> None:
        a = self.current_alarm
        detail = self.query_one("#alarm-detail", Static)
        marks = f"{len(self.marked)} marked · " if self.marked else ""
        if a is None:
            n = 0 if self.app.snapshot is None else len(self.app.snapshot.active_alarms())
            detail.update("no active alarms" if n == 0 else marks)
            self.app.focus_alarm(None)
            return
        src = a.get("source") or "-"
        who = f" · acked by {a['ack_by']}" if a.get("ack_by") else ""
        pt = (self.app.snapshot.points.get(a.get("point") or "") if self.app.snapshot else
              None) or {}
        limit = (f"limit {fmt_value(a['limit'], pt.get('unit'), pt.get('quantity'))} from {src}"
                 if a.get("limit") is not None else src)
        detail.update(plain(f"{marks}{a['id']} #{a.get('occurrence')} · {limit}{who}"))
        self.app.focus_alarm(a["id"])

    def on_data_table_row_highlighted(self, event) -> None:
        if event.data_table.id == "alarm-list" and self.app.snapshot is not None:
            self._detail()

    # ---- marks -------------------------------------------------------------------------

    def action_mark(self) -> None:
        """Mark or unmark the highlighted occurrence, then move down (space, space, ...)."""
        a = self.current_alarm
        if a is None:
            return
        if a["id"] in self.marked:
            del self.marked[a["id"]]
        else:
            self.marked[a["id"]] = a.get("occurrence")
        self.query_one("#alarm-list", LiveTable).action_cursor_down()
        self._redraw()

    def _mark_where(self, keep) -> None:
        snap = self.app.snapshot
        if snap is None:
            return
        chosen = {a["id"]: a.get("occurrence") for a in sorted_alarms(snap) if keep(a)}
        if chosen and all(self.marked.get(k, object()) == v for k, v in chosen.items()):
            for k in chosen:  # pressed again: unmark them
                del self.marked[k]
        else:
            self.marked.update(chosen)
        if not chosen:
            self.app.notify("nothing there awaits an acknowledgement", severity="warning")
        self._redraw()

    def action_mark_zone(self) -> None:
        """Mark every alarm of the highlighted alarm's zone awaiting an acknowledgement."""
        a = self.current_alarm
        if a is None or not a.get("zone"):
            self.app.notify("the highlighted alarm has no zone", severity="warning")
            return
        self._mark_where(lambda b: b.get("zone") == a["zone"] and needs_ack(b))

    def action_mark_all(self) -> None:
        """Mark every shown alarm awaiting an acknowledgement."""
        self._mark_where(needs_ack)

    def action_clear_marks(self) -> None:
        self.marked.clear()
        self._redraw()

    # ---- actions -----------------------------------------------------------------------

    def action_act(self, action: str) -> None:
        batch = self.marked_alarms()
        if batch:
            self.app.open_action(action, alarms=batch)
            return
        a = self.current_alarm
        if a is None:
            self.app.notify("no alarm selected", severity="warning")
            return
        self.app.open_action(action, alarm=a)

    def action_mode(self) -> None:
        a = self.current_alarm
        if a is not None and a.get("zone"):
            self.app.open_mode_change(a["zone"])

    def unmark(self, done: list[tuple[str, int | None]]) -> None:
        """Forget the marks of occurrences the service accepted."""
        for aid, occ in done:
            if self.marked.get(aid, object()) == occ:
                del self.marked[aid]
        self._redraw()

    def set_status(self, text: str, ok: bool) -> None:
        """Show the last action's reply (or refusal)."""
        st = self.query_one("#action-status", Static)
        st.set_class(not ok, "refused")
        st.update(plain(text))
