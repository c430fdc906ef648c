"""The campus overview (``facility tui --config central.toml``), and the app side of it.

:class:`CampusScreen` lists every mirrored site (``tui/views/campus.py``), with a line for
each of central's own alarms needing attention (``campus:<site>:offline``, read from central's
own database); Enter opens the highlighted site's overview, and the screen keys (1-5, o a z d
h) open that site's other screens, all read from its mirror. ``0`` or Escape comes back to
the campus.

:class:`CampusMode` is mixed into the app (``tui.app.CampusApp``): it reads every mirror on
each refresh (:class:`~tui.campus_data.CampusReader`), describes the open site as a
configuration (:func:`~tui.campus_data.mirror_config`) so the site screens show a mirror as
they show a site database, rings the bell for a new critical alarm at any site or of
central's own, and keeps operator actions off: a mirror is read-only and its site decides
(actions from the centre go through ``facility ack ... --config central.toml``, which central
decides for its own alarms; docs/ARCHITECTURE.md "Campus (Sparkplug B)").
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from tui.campus_data import CampusReader, CampusSnapshot, SiteSnapshot, mirror_config
from tui.data import ReadRequest, Snapshot
from tui.fmt import local_time
from tui.limits import LimitIndex
from tui.screens.base import DataScreen
from tui.screens.help import HELP, HelpScreen
from tui.views.campus import (
    CAMPUS_COLUMNS,
    campus_alerts,
    campus_rows,
    campus_summary,
    central_alerts,
    site_banner,
    site_detail,
    site_row,
    site_rows,
)
from tui.views.common import site_tz
from tui.widgets.banner import StaleBanner
from tui.widgets.live_table import LiveTable

CAMPUS_HELP = """\
[b]Campus[/b]    ↑↓ site   Enter the site's overview   1-5 (o a z d h) the site's screens
          0 or Esc back to the campus.  Each row: the edge node online, or OFFLINE since
          when; zones and the worst one; alarms needing attention per priority; devices with
          a comm fault or stale data; age of the newest mirrored value; the signed-head trust
          check.  Above the sites' alerts, central's own alarms needing attention (an edge
          node offline: campus:<site>:offline).  The site screens read the site's mirror
          (central's copy): acknowledge from the centre with `facility ack ... --config
          central.toml`, which the site decides (central for its own campus: alarms).

"""

SITE_MODES = ("overview", "alarms", "zone", "devices", "hazmat")


class CampusHelp(HelpScreen):
    """The help with the campus keys first."""

    def compose(self) -> ComposeResult:
        from textual.containers import VerticalScroll

        with VerticalScroll(id="help-box"):
            yield Static(CAMPUS_HELP + HELP, id="help-text")


class CampusScreen(DataScreen):
    """Every mirrored site at a glance; Enter opens the highlighted site's overview."""

    MODE = "campus"
    BINDINGS = [Binding("enter", "open_site", "Site overview")]
    DEFAULT_CSS = """
    #campus-bar { height: 1; background: $panel; }
    #campus-summary { height: 1; padding: 0 1; }
    #site-list { height: 1fr; }
    #campus-alerts { height: auto; max-height: 8; padding: 0 1; }
    #site-detail { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="campus-bar")
        yield Static("", id="campus-summary")
        yield LiveTable(CAMPUS_COLUMNS, id="site-list")
        yield Static("", id="campus-alerts")
        yield Static("", id="site-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#site-list", LiveTable).focus()

    @property
    def current_site(self) -> str | None:
        """The site under the cursor."""
        return self.query_one("#site-list", LiveTable).current_key

    def show(self, snap: Snapshot) -> None:
        """Draw the campus part of a snapshot (the open site's part is for its screens)."""
        app = self.app
        cfg = app.central_cfg
        campus = getattr(snap, "campus", None) or app.campus
        bar = Table.grid(expand=True)
        bar.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        bar.add_column(justify="right", no_wrap=True)
        name = cfg.facility.name or cfg.facility.id
        bar.add_row(Text.assemble((" CAMPUS OVERVIEW ", "bold reverse"), f" {name}  ",
                                  ("Enter: the site's overview · 1-5: its screens", "dim")),
                    Text(f"{app.login} {local_time(snap.now_ms, site_tz(cfg, None))}"))
        self.query_one("#campus-bar", Static).update(bar)
        alerts = self.query_one("#campus-alerts", Static)
        if campus is None:
            alerts.update(Text(f"mirrors not readable: {snap.error or 'not read yet'}",
                               style="bold red"))
            self.drawn = snap
            return
        rows = site_rows(cfg, campus)
        self.rows = {r.site: r for r in rows}
        self.now_ms = campus.now_ms
        self.query_one("#campus-summary", Static).update(
            campus_summary(rows, campus.central_alarms))
        self.query_one("#site-list", LiveTable).sync(campus_rows(rows))
        lines = Text("\n").join([t for t in (central_alerts(cfg, campus), campus_alerts(rows))
                                 if t.plain])
        alerts.update(lines)
        alerts.display = bool(lines.plain)
        self._detail()
        self.drawn = snap

    def _detail(self) -> None:
        rows = getattr(self, "rows", {})
        self.query_one("#site-detail", Static).update(
            site_detail(rows.get(self.current_site), getattr(self, "now_ms", 0)))

    def on_data_table_row_highlighted(self, event) -> None:
        self._detail()

    async def on_data_table_row_selected(self, event) -> None:
        await self.action_open_site()

    async def action_open_site(self) -> None:
        site = self.current_site
        if site:
            await self.app.open_site(site, "overview")


class CampusMode(App):
    """What the app does differently over central's mirrors; mixed in before ``FacilityApp``
    (``tui.app.CampusApp``), whose refresh, screens and quitting it keeps."""

    DEFAULT_MODE = "campus"
    BINDINGS = [Binding("0,escape", "campus", "Campus")]

    def __init__(self, cfg, db_path: str, **kwargs):
        super().__init__(cfg, db_path, **kwargs)
        self.central_cfg = cfg
        self.reader = CampusReader(cfg)  # read and close like a DbReader
        self.site: str | None = None  # the site whose screens are open (None: none yet)
        self.campus: CampusSnapshot | None = None
        self.limits = LimitIndex({})
        self.zone_focus = None
        self._cfg_sig: object = None
        self._critical_seen_campus: set | None = None
        self.sub_title = f"{cfg.facility.name or cfg.facility.id} · campus"
        self.add_mode("campus", CampusScreen)

    # ---- data ------------------------------------------------------------------------------

    def on_snapshot_ready(self, message) -> None:
        message.prevent_default()  # FacilityApp's handler runs below, once, when it applies
        snap = message.snapshot
        if isinstance(snap, SiteSnapshot):
            self.campus = snap.campus
            if snap.site != self.site:  # read before another site was opened: read again
                self._reading = False
                self.refresh_data()
                return
        super().on_snapshot_ready(message)

    def watch_snapshot(self, snap: Snapshot | None) -> None:
        if snap is None:
            return
        state = self.campus.site(self.site) if self.campus is not None and self.site else None
        if state is not None and state.snapshot is not None:
            sig = (id(snap.points), len(snap.points),
                   frozenset(a.get("zone") for a in snap.alarms))
            if sig != self._cfg_sig:  # the edge announced new points (a DBIRTH), or zones
                self.cfg, self._cfg_sig = mirror_config(self.central_cfg, state), sig
        super().watch_snapshot(snap)
        screen = self._data_screen()
        if screen is not None and not isinstance(screen, CampusScreen) and state is not None:
            row = site_row(self.central_cfg, state)
            screen.query_one(StaleBanner).message = site_banner(row, snap.error)

    def _ring_for_new_critical(self, snap: Snapshot) -> None:
        """As at a site (EEMUA 191), over every mirrored site: once per critical occurrence
        that turned up unacknowledged since the last refresh."""
        campus = getattr(snap, "campus", None)
        if campus is None:
            return
        now = {(s.id, a["id"], a.get("occurrence")) for s in campus.sites
               if s.snapshot is not None and s.snapshot.error is None
               for a in s.snapshot.alarms
               if a.get("priority") == "critical" and a.get("state") == "UNACK"}
        now |= {(None, a["id"], a.get("occurrence")) for a in campus.central_alarms
                if a.get("priority") == "critical" and a.get("state") == "UNACK"}
        seen = self._critical_seen_campus
        self._critical_seen_campus = (seen or set()) | now
        if seen is None or not (now - seen) or not self.central_cfg.tui.bell:
            return
        self.bells += 1
        self.bell()

    # ---- navigation ------------------------------------------------------------------------

    async def open_site(self, site_id: str, mode: str = "overview") -> None:
        """Show a site's screen ``mode``, read from its mirror."""
        state = self.campus.site(site_id) if self.campus is not None else None
        if state is None or not state.exists:
            self.notify(f"no mirror of {site_id} yet: run `facility central`",
                        severity="warning", markup=False)
            return
        if site_id != self.site:
            if self.current_mode != "campus":
                self.switch_mode("campus")
            for m in SITE_MODES:  # the last site's screens (cursor, marks) go with it
                await self.remove_mode(m)
                self.add_mode(m, type(self).MODES[m])
            self.site = site_id
            self.reader.open_site = site_id
            self.cfg = mirror_config(self.central_cfg, state)
            self._cfg_sig = None
            self.db_path = state.path
            self.limits = LimitIndex({})
            self.zone_focus = self.cfg.zones[0].id if self.cfg.zones else None
            self.request = ReadRequest()
            self.snapshot = None
            self.sub_title = f"{self.central_cfg.facility.name or self.central_cfg.facility.id}" \
                             f" · campus · site {site_id}"
        self.request.hazmat = mode == "hazmat"
        self.switch_mode(mode)
        self.refresh_data()

    async def action_show(self, mode: str) -> None:
        if self.current_mode == "campus" or self.site is None:
            site = self.screen.current_site if isinstance(self.screen, CampusScreen) else None
            if site is None:
                self.notify("choose a site first", severity="warning", markup=False)
                return
            await self.open_site(site, mode)
            return
        super().action_show(mode)

    def action_campus(self) -> None:
        """``0`` or Escape: back to the campus overview."""
        if self.current_mode != "campus":
            self.switch_mode("campus")

    def action_help(self) -> None:
        self.push_screen(CampusHelp())

    # ---- operator actions ------------------------------------------------------------------

    def _read_only(self) -> None:
        self.notify(f"the mirror of {self.site} is read-only: act with `facility ack|reset|"
                    "shelve|comment ... --config` on central's configuration (the site decides)",
                    severity="warning", timeout=8, markup=False)

    def open_action(self, action: str, **kwargs) -> None:
        self._read_only()

    def open_mode_change(self, zone: str) -> None:
        self._read_only()
