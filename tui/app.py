"""The technician's terminal: a Textual app over the facility database (read-only).

``make_app(cfg, db_path)`` is shared by the CLI (``facility tui``, ``facility demo``) and
the tests. Data flow: a timer (every ``refresh_s``) starts a worker thread that reads one
:class:`~tui.data.Snapshot` and posts it; the app stores it in the reactive ``snapshot``
and hands it to the screen in view. Operator actions go to the service over its socket
from :class:`~tui.screens.action_modal.ActionModal`.

Inside ``facility run`` the app is handed ``stop_service``: the service lives in this process,
so ``q`` asks first (:class:`~tui.screens.quit_confirm.QuitConfirm`) and stops it only when
confirmed. ``facility tui`` and ``facility demo`` pass none; quitting only closes the viewer.
A new critical alarm occurrence rings the terminal bell once (``[tui] bell``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from facility.config.schema import Config
from facility.service.socket import current_login
from tui.data import DbReader, ReadRequest, Snapshot
from tui.limits import LimitIndex, compile_limits
from tui.screens.action_modal import ActionModal, ActionOutcome
from tui.screens.alarms import AlarmsScreen
from tui.screens.base import DataScreen
from tui.screens.campus import CampusMode
from tui.screens.devices import DevicesScreen
from tui.screens.hazmat import HazmatScreen
from tui.screens.help import HelpScreen
from tui.screens.history import ZoneHistoryScreen
from tui.screens.overview import OverviewScreen
from tui.screens.quit_confirm import QuitConfirm
from tui.screens.trend import TrendScreen
from tui.screens.zone_detail import ZoneDetailScreen
from tui.views.common import zone_mode


def wall_clock_ms() -> int:
    """Now in UTC milliseconds (the default clock; tests inject a fixed one)."""
    return int(time.time() * 1000)


class SnapshotReady(Message):
    """Posted by the refresh worker with a fresh snapshot."""

    def __init__(self, snapshot: Snapshot):
        super().__init__()
        self.snapshot = snapshot


class FacilityApp(App):
    """Screens as modes: overview, alarms, zone, devices, hazmat; ``?`` opens help."""

    CSS_PATH = "app.tcss"
    TITLE = "facility"
    MODES = {"overview": OverviewScreen, "alarms": AlarmsScreen, "zone": ZoneDetailScreen,
             "devices": DevicesScreen, "hazmat": HazmatScreen}
    DEFAULT_MODE = "overview"
    BINDINGS = [
        Binding("1,o", "show('overview')", "Overview", show=False),
        Binding("2,a", "show('alarms')", "Alarms", show=False),
        Binding("3,z", "show('zone')", "Zone", show=False),
        Binding("4,d", "show('devices')", "Devices", show=False),
        Binding("5,h", "show('hazmat')", "Hazmat", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("t", "trend", "Trend", show=False),
        Binding("e", "zone_history", "History", show=False),
    ]

    snapshot: reactive[Snapshot | None] = reactive(None, init=False, always_update=True,
                                                   repaint=False)
    """The latest snapshot; ``repaint=False``: the screen in view redraws only what changed
    (``DataScreen.show``), not every widget each second."""

    def __init__(self, cfg: Config, db_path: str, *, refresh_s: float = 1.0,
                 login: str | None = None, clock: Callable[[], int] | None = None,
                 on_quit: Callable[[], None] | None = None,
                 stop_service: Callable[[], None] | None = None):
        super().__init__()
        self.cfg = cfg
        self.db_path = db_path
        self.refresh_s = refresh_s
        self.login = login or current_login()
        self.clock = clock or wall_clock_ms
        self.on_quit = on_quit
        self.stop_service = stop_service  # facility run: the service lives in this process
        self.bells = 0  # bells rung for new critical alarms (tests and the log read it)
        self._critical_seen: set[tuple[str, int | None]] | None = None
        self.limits = LimitIndex(compile_limits(cfg))
        self.reader = DbReader(db_path)
        self.request = ReadRequest()
        self.zone_focus: str | None = cfg.zones[0].id if cfg.zones else None
        self.snapshots_seen = 0
        self.last_outcome: ActionOutcome | None = None
        self._reading = False
        self.sub_title = cfg.facility.name

    # ---- data ------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.set_interval(self.refresh_s, self.refresh_data)
        self.refresh_data()

    def on_unmount(self) -> None:
        self.reader.close()  # waits for a read still running in the worker thread

    def refresh_data(self) -> None:
        """Start one read unless the previous one is still running."""
        if self._reading:
            return
        self._reading = True
        r = self.request
        req = ReadRequest(r.trend_zone, r.history_alarm, r.hazmat or self.current_mode == "hazmat",
                          r.trend_every_s, r.trend_point, r.trend_span, r.zone_history)
        self.run_worker(lambda: self._read(req), thread=True, group="refresh",
                        exit_on_error=False)

    def _read(self, req: ReadRequest) -> None:
        """Worker thread: read and post; never touches widgets."""
        try:
            snap = self.reader.read(self.clock(), req)
        except Exception as exc:  # noqa: BLE001 - shown in the banner, retried next tick
            snap = Snapshot(now_ms=self.clock(), error=f"{type(exc).__name__}: {exc}")
        self.post_message(SnapshotReady(snap))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self._reading = False
        self.snapshot = message.snapshot

    def watch_snapshot(self, snap: Snapshot | None) -> None:
        if snap is None:
            return
        self.snapshots_seen += 1
        self.limits.update_alarms(snap.alarms)
        self._ring_for_new_critical(snap)
        screen = self._data_screen()
        if screen is not None:
            screen.show(snap)

    def _ring_for_new_critical(self, snap: Snapshot) -> None:
        """Ring once per critical occurrence that turned up unacknowledged since the last
        snapshot (those already there when the TUI started are not new: they rang, or were
        seen, elsewhere). ISA-18.2 / EEMUA 191: the highest priority gets an audible alert."""
        if snap.error is not None:
            return
        now = {(a["id"], a.get("occurrence")) for a in snap.alarms
               if a.get("priority") == "critical" and a.get("state") == "UNACK"}
        seen, self._critical_seen = self._critical_seen, (self._critical_seen or set()) | now
        if seen is None or not (now - seen) or not self.cfg.tui.bell:
            return
        self.bells += 1
        self.bell()

    def _data_screen(self) -> DataScreen | None:
        """The data screen a snapshot is drawn on: the one in view, or the one under a modal.

        None while the app shuts down. The refresh worker posts snapshots from its thread, so
        one can be handled after shutdown has begun: Textual clears ``is_running`` first,
        then prunes every screen (their widgets go before they do) and empties the screen
        stacks while this message loop still runs. ``self.screen`` would then raise
        ScreenStackError, and a screen being pruned has lost the widgets ``show`` fills.

        A screen just pushed or switched to is on the stack before its widgets are composed
        (on a busy machine a snapshot can come in between): it is skipped until mounted, and
        draws the latest snapshot itself when it comes into view (``on_screen_resume``).
        """
        if not self.is_running:
            return None
        for s in reversed(self.screen_stack):
            if isinstance(s, DataScreen):
                return s if s.is_mounted else None
        return None

    def want_trends(self, zone: str | None) -> None:
        """Ask the reader for a zone's 1-minute aggregates (None: no trends needed)."""
        self.request.trend_zone = zone
        if zone is not None:
            self.refresh_data()

    def want_point_trend(self, point: str | None, span: str = "1h") -> None:
        """Ask the reader for one point's trend over a span of ``tui.data.SPANS`` (None: no)."""
        changed = (point, span) != (self.request.trend_point, self.request.trend_span)
        self.request.trend_point, self.request.trend_span = point, span
        if point is not None and changed:
            self.refresh_data()

    def want_zone_history(self, zone: str | None) -> None:
        """Ask the reader for the events of one zone's alarms (None: no)."""
        changed = zone != self.request.zone_history
        self.request.zone_history = zone
        if zone is not None and changed:
            self.refresh_data()

    def focus_alarm(self, alarm_id: str | None) -> None:
        """Ask the reader for one alarm's history (None: the most recent events)."""
        if alarm_id != self.request.history_alarm:
            self.request.history_alarm = alarm_id
            self.refresh_data()

    # ---- navigation ------------------------------------------------------------------------

    def action_show(self, mode: str) -> None:
        if mode != self.current_mode:
            self.request.hazmat = mode == "hazmat"
            self.switch_mode(mode)
            if mode == "hazmat":
                self.refresh_data()

    def open_zone(self, zone: str) -> None:
        """Show a zone's detail screen."""
        self.zone_focus = zone
        if self.current_mode == "zone":
            self.want_trends(zone)
            if self.snapshot is not None and isinstance(self.screen, DataScreen):
                self.screen.show(self.snapshot)
        else:
            self.switch_mode("zone")

    def open_trend(self, point: str, span: str = "1h") -> None:
        """Show one point's trend (1 h to 30 d) over the screen in view."""
        self.push_screen(TrendScreen(point, span))

    def open_zone_history(self, zone: str) -> None:
        """Show the alarm history of one zone over the screen in view."""
        self.push_screen(ZoneHistoryScreen(zone))

    def action_trend(self) -> None:
        """``t``: the trend of the highlighted point (zone screen) or alarm's point."""
        point = None
        if isinstance(self.screen, ZoneDetailScreen):
            point = self.screen.query_one("#points").current_key
        elif isinstance(self.screen, AlarmsScreen):
            point = (self.screen.current_alarm or {}).get("point")
        if point:
            self.open_trend(point)
        elif isinstance(self.screen, (ZoneDetailScreen, AlarmsScreen)):
            self.notify("no point to show a trend of", severity="warning")

    def action_zone_history(self) -> None:
        """``e``: the alarm history of the zone in view (zone screen) or the alarm's zone."""
        zone = None
        if isinstance(self.screen, ZoneDetailScreen):
            zone = self.zone_focus
        elif isinstance(self.screen, AlarmsScreen):
            zone = (self.screen.current_alarm or {}).get("zone")
        elif isinstance(self.screen, OverviewScreen):
            zone = self.screen.query_one("#zones").current_zone
        if zone:
            self.open_zone_history(zone)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        if self.stop_service is None:
            if self.on_quit is not None:
                self.on_quit()
            self.exit()
            return
        if not isinstance(self.screen, QuitConfirm):
            self.push_screen(QuitConfirm(), self._quit_answer)

    def _quit_answer(self, stop: bool | None) -> None:
        if not stop:
            self.notify("the monitoring service keeps running")
            return
        self.notify("stopping the monitoring service…", timeout=30)
        self.run_worker(self._stop_and_exit, thread=True, group="quit", exit_on_error=False)

    def _stop_and_exit(self) -> None:
        """Worker thread: stop the service (it commits what it holds), then close the TUI."""
        try:
            if self.on_quit is not None:
                self.on_quit()
            self.stop_service()
        finally:
            self.call_from_thread(self.exit)

    # ---- operator actions ------------------------------------------------------------------

    def operator_name(self) -> str | None:
        """The display name of this login in [[operators]] (None when unknown)."""
        return next((o.name for o in self.cfg.operators if o.login == self.login), None)

    def open_action(self, action: str, *, alarm: dict | None = None,
                    alarms: list[dict] | None = None) -> None:
        """Open the action dialog for an alarm occurrence, or several (one reason)."""
        self.push_screen(ActionModal(action, self.db_path, self.login, self.operator_name(),
                                     alarm=alarm, alarms=alarms), self._action_done)

    def open_mode_change(self, zone: str) -> None:
        """Open the dialog to change a zone's mode (at_rest / in_operation)."""
        current = (zone_mode(self.cfg.zone(zone), self.snapshot) if self.snapshot
                   else self.cfg.zone(zone).occupancy)
        self.push_screen(ActionModal("mode", self.db_path, self.login, self.operator_name(),
                                     zone=zone, current_mode=current), self._action_done)

    def _action_done(self, outcome: ActionOutcome | None) -> None:
        if outcome is None:
            return
        self.last_outcome = outcome
        what = outcome.payload.get("alarm") or outcome.payload.get("zone")
        text = f"{outcome.payload['action']} {what}: {outcome.message}"
        self.notify(text, severity="information" if outcome.ok else "error")
        if isinstance(self.screen, AlarmsScreen):
            self.screen.set_status(text, outcome.ok)
            if outcome.results:
                self.screen.unmark([(r.payload["alarm"], r.payload.get("occurrence"))
                                    for r in outcome.accepted])
        self.refresh_data()


class CampusApp(CampusMode, FacilityApp):
    """The TUI over central's mirrors (a config with ``[[central.sites]]``): the campus
    overview first, each site's screens read from its mirror (tui/screens/campus.py)."""


def make_app(cfg: Config, db_path: str, *, refresh_s: float = 1.0, login: str | None = None,
             clock: Callable[[], int] | None = None,
             on_quit: Callable[[], None] | None = None,
             stop_service: Callable[[], None] | None = None) -> FacilityApp:
    """The TUI over ``db_path`` (opened read-only); ``clock`` returns UTC ms (tests fix it);
    ``stop_service``: the service runs in this process (``facility run``), so quitting asks
    and then calls it. A central configuration (``[[central.sites]]``) gets the campus
    overview over its mirrors; ``db_path`` (central's own) need not exist then."""
    cls = CampusApp if cfg.central.sites else FacilityApp
    return cls(cfg, db_path, refresh_s=refresh_s, login=login, clock=clock,
               on_quit=on_quit, stop_service=stop_service)


def run_tui(cfg: Config, db_path: str, *, on_quit: Callable[[], None] | None = None) -> None:
    """Run the TUI in this terminal until the operator quits."""
    make_app(cfg, db_path, on_quit=on_quit).run()
