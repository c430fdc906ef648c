"""The campus overview (``facility tui --config central.toml``) over real mirror databases.

Each mirror is written as ``facility central`` writes it: ``Mirror.open`` (the real ``Store``
with central's own tables), points and cycles through ``Store.register_points`` and
``write_cycle``, and the edge node's state through central's own ``_node_state`` and
``_checkpoint`` (no broker: these tests are about what the TUI makes of a mirror, and the
campus tests cover how central fills one). The app runs under Textual's pilot, reading the
files read-only as the TUI does in production.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from facility.campus.central import Central, mirror_path
from facility.cli import cli
from facility.config import load_config
from facility.config.paths import mirror_path as config_mirror_path
from facility.domain.model import PointInfo, Quality, Sample
from facility.store import Cycle
from tests.fixtures import sample_db
from tests.fixtures.config import facility_toml
from tests.fixtures.wait import DEADLINE_S, pilot_until
from tui.app import CampusApp, make_app
from tui.campus_data import SiteState
from tui.campus_data import mirror_path as tui_mirror_path
from tui.fmt import local_time
from tui.screens.action_modal import ActionModal
from tui.screens.alarms import AlarmsScreen
from tui.screens.campus import CampusHelp, CampusScreen
from tui.screens.devices import DevicesScreen
from tui.screens.hazmat import HazmatScreen
from tui.screens.overview import OverviewScreen
from tui.screens.zone_detail import ZoneDetailScreen
from tui.views.campus import link_cell, site_row, trust_cell
from tui.widgets.banner import StaleBanner
from tui.widgets.live_table import LiveTable

T0 = sample_db.T0
HK = "Asia/Hong_Kong"
OFF_MS = T0 - 15 * 60_000  # the MARS edge node went OFFLINE 15 minutes before T0
HOSTILE_ZONE = "[bold]GOWN[/bold]"
LITHO_CRIT = "PC-1.pc_0_5um:action_high"


def central_toml(tmp_path: Path) -> Path:
    path = tmp_path / "central.toml"
    path.write_text(facility_toml(
        id="hk", storage={"path": "central/central.db"},
        central={"host_id": "central", "sites": [
            {"id": "mec", "node_id": "MEC"}, {"id": "mars", "node_id": "MARS"},
            {"id": "lab", "node_id": "LAB"}]}))
    return path


def alarm(aid: str, zone: str, point: str, prio: str = "critical", state: str = "UNACK",
          occ: int = 1) -> dict:
    return {"id": aid, "state": state, "priority": prio, "occurrence": occ, "active": 1,
            "acked": 0 if state == "UNACK" else 1, "onset_ms": T0 - 120_000,
            "detected_ms": T0 - 119_500, "limit": 3520.0, "source": "ISO 14644-1 class 5",
            "zone": zone, "site": "S", "point": point}


class Campus:
    """Central's mirrors of two sites, written as central writes them; a third configured
    site (``lab``) has no mirror yet."""

    def __init__(self, tmp_path: Path):
        self.path = central_toml(tmp_path)
        self.cfg = load_config(str(self.path))
        self.central = Central(self.cfg)
        self.mec = self.central.mirrors[("hk", "MEC")]
        self.mars = self.central.mirrors[("hk", "MARS")]
        for m in (self.mec, self.mars):
            m.open()
        # MEC: online, two zones, a critical alarm in LITHO
        self.mec.store.register_points([
            PointInfo("PC-1.pc_0_5um", "PC-1", "S", "LITHO", "particle_conc", "count/m3", 0),
            PointInfo("PC-1.comm_ok", "PC-1", "S", "LITHO", "comm", "", 0, kind="comm"),
            PointInfo("TH-1.temperature", "TH-1", "S", "WET", "temperature", "degC", 1)])
        self.mec.store.write_cycle(Cycle(samples=[
            Sample("PC-1.pc_0_5um", T0 - 2000, 3700.0, Quality.GOOD),
            Sample("PC-1.comm_ok", T0 - 2000, 1.0, Quality.GOOD),
            Sample("TH-1.temperature", T0 - 2000, 21.0, Quality.GOOD)],
            alarms=[alarm(LITHO_CRIT, "LITHO", "PC-1.pc_0_5um")]))
        self.central._node_state(self.mec, online=True, bdseq=3, since_ms=T0 - 3_600_000,
                                 edge_head={"id": 41, "hash": "ab" * 32})
        # MARS: its edge node died; its gown room's counter stopped answering before that;
        # its signed checkpoint did not verify
        self.mars.store.register_points([
            PointInfo("PC-8.pc_0_5um", "PC-8", "S", HOSTILE_ZONE, "particle_conc",
                      "count/m3", 0),
            PointInfo("PC-8.comm_ok", "PC-8", "S", HOSTILE_ZONE, "comm", "", 0, kind="comm")])
        self.mars.store.write_cycle(Cycle(samples=[
            Sample("PC-8.pc_0_5um", OFF_MS - 5000, None, Quality.COMM),
            Sample("PC-8.comm_ok", OFF_MS - 5000, 0.0, Quality.GOOD)]))
        self.central._checkpoint(self.mars, "not a signed checkpoint")
        self.central._node_state(self.mars, online=False, since_ms=OFF_MS)
        self.central._node_state(self.mars, offline_paged={"at_ms": OFF_MS + 60_000})  # a key
        # the TUI does not know: kept, never in the way

    def close(self) -> None:
        self.central.close()


@pytest.fixture
def campus(tmp_path):
    c = Campus(tmp_path)
    yield c
    c.close()


async def wait_until(pilot, cond, what: str = "condition") -> None:
    await pilot_until(pilot, cond, what, timeout=DEADLINE_S)


def cells(table: LiveTable) -> dict[str, list[str]]:
    """The table as shown: row key -> plain text of each cell."""
    return {table._keys[i]: [getattr(c, "plain", str(c)) for c in table.get_row_at(i)]
            for i in range(table.row_count)}


def campus_drawn(app) -> bool:
    return (isinstance(app.screen, CampusScreen) and app.snapshot is not None
            and app.screen.drawn is app.snapshot)


def test_the_tui_and_central_agree_where_a_mirror_lives(tmp_path):
    """One rule, in facility.config.paths, for the writer (central) and the TUI."""
    assert tui_mirror_path is config_mirror_path and mirror_path is config_mirror_path
    cfg = load_config(str(central_toml(tmp_path)))
    assert tui_mirror_path(cfg, cfg.central.sites[0]).endswith("central/mirror/mec.db")


def test_a_node_record_central_may_grow_or_garble_never_breaks_a_row(tmp_path):
    """campus_node is central's to extend: unknown keys are kept, odd values read as unknown."""
    cfg = load_config(str(central_toml(tmp_path)))
    state = SiteState("mars", "MARS", "/nowhere.db", exists=True, node={
        "online": False, "since_ms": "yesterday", "trust": "garbled", "offline_paged": True})
    row = site_row(cfg, state)
    assert link_cell(row).plain == "OFFLINE since an unknown time"
    assert trust_cell(row).plain == "not checked" and not row.trust_failed
    assert row.node_state["offline_paged"] is True
    failed = site_row(cfg, SiteState("mars", "MARS", "/nowhere.db", exists=True, node={
        "online": True, "trust": {"ok": False, "why": "[red]forged[/red]"}}))
    assert link_cell(failed).plain == "online" and trust_cell(failed).plain == "FAILED"


async def test_campus_overview_shows_every_site_its_link_alarms_comm_and_trust(campus):
    """The overview of a central config: MEC online with its critical alarm counted there,
    MARS OFFLINE since the time central recorded (site time), its failed trust check, its
    dead counter, and a zone name that looks like markup shown as typed; LAB without a mirror."""
    cfg = campus.cfg
    assert not Path(cfg.db_path).exists()  # central's own database is not needed
    app = make_app(cfg, cfg.db_path, login="tmchan", clock=lambda: T0)
    assert isinstance(app, CampusApp)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: campus_drawn(app), "campus drawn")
        rows = cells(app.screen.query_one("#site-list", LiveTable))
        assert list(rows) == ["mec", "mars", "lab"]
        mec, mars, lab = rows["mec"], rows["mars"], rows["lab"]
        # Site, Node, Edge node, Zones, Worst zone, Alarms, Comm, Data age, Trust
        assert mec[:6] == ["mec", "MEC", "online", "2", "LITHO 1 crit", "1 crit (1 unack)"]
        assert mec[6] == "ok (2)" and mec[7] == "2s ago" and mec[8] == "not checked"
        assert mars[2] == f"OFFLINE since {local_time(OFF_MS, HK)}"
        assert mars[4] == f"{HOSTILE_ZONE} comm"  # text, not markup
        assert mars[5] == "ok" and mars[6] == "1 comm / 1" and mars[8] == "FAILED"
        assert mars[7] == "15m ago"  # its newest value: 5 s before the node died
        assert lab[2] == "no mirror yet" and lab[3] == "--" and lab[8] == "--"
        summary = str(app.screen.query_one("#campus-summary").render())
        assert "3 sites" in summary and "1 OFFLINE" in summary and "1 trust FAILED" in summary
        assert "need attention: 1 crit" in summary
        alerts = str(app.screen.query_one("#campus-alerts").render())
        assert f"mars: edge node MARS OFFLINE since {local_time(OFF_MS, HK)}" in alerts
        assert "mars: trust check FAILED: the signed checkpoint's signature does not verify" \
            in alerts
        assert "mec" not in alerts  # nothing wrong there
        table = app.screen.query_one("#site-list", LiveTable)
        table.select_key("mars")
        await wait_until(pilot, lambda: "comm fault: PC-8" in str(
            app.screen.query_one("#site-detail").render()), "detail of mars")


async def test_enter_opens_a_sites_own_screens_read_from_its_mirror(campus):
    """Enter on a site opens the site overview (its zones from the mirror), 2 its alarm list,
    0 the campus again; an OFFLINE site's screens say so in the red banner."""
    cfg = campus.cfg
    app = make_app(cfg, cfg.db_path, login="tmchan", clock=lambda: T0)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: campus_drawn(app), "campus drawn")
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, CampusHelp)
                         and app.screen.is_mounted, "help")
        assert "0 or Esc back to the campus" in str(app.screen.query_one("#help-text").render())
        await pilot.press("escape")
        await wait_until(pilot, lambda: campus_drawn(app), "campus after help")
        await pilot.press("enter")  # the cursor starts on mec
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen)
                         and app.snapshot is not None and app.screen.drawn is app.snapshot,
                         "mec overview")
        assert app.site == "mec" and app.current_mode == "overview"
        zones = cells(app.screen.query_one("#zones", LiveTable))
        assert {"LITHO", "WET"} <= set(zones)
        assert zones["LITHO"][-1] == "1 crit"
        await pilot.press("2")
        await wait_until(pilot, lambda: isinstance(app.screen, AlarmsScreen)
                         and app.screen.drawn is app.snapshot, "mec alarms")
        alarms = cells(app.screen.query_one("#alarm-list", LiveTable))
        assert list(alarms) == [LITHO_CRIT]
        for key, screen in (("3", ZoneDetailScreen), ("4", DevicesScreen), ("5", HazmatScreen),
                            ("2", AlarmsScreen)):  # every site screen draws from a mirror
            await pilot.press(key)
            await wait_until(pilot, lambda s=screen: isinstance(app.screen, s)
                             and app.screen.drawn is app.snapshot, f"mec {key}")
        assert app.is_running
        await pilot.press("a")  # acknowledging from a mirror is refused here, not sent
        await wait_until(pilot, lambda: any("is read-only" in n.message
                                            for n in app._notifications), "read-only notice")
        assert not isinstance(app.screen, ActionModal)
        await pilot.press("0")
        await wait_until(pilot, lambda: campus_drawn(app), "campus again")
        app.screen.query_one("#site-list", LiveTable).select_key("mars")
        await wait_until(pilot, lambda: app.screen.current_site == "mars")
        await pilot.press("1")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen)
                         and app.site == "mars" and app.snapshot is not None
                         and app.screen.drawn is app.snapshot, "mars overview")
        zones = cells(app.screen.query_one("#zones", LiveTable))
        assert HOSTILE_ZONE in zones and zones[HOSTILE_ZONE][0] == HOSTILE_ZONE
        assert "LITHO" not in zones  # the last site's zones went with it
        banner = app.screen.query_one(StaleBanner)
        await wait_until(pilot, lambda: banner.message.startswith(
            f"site mars: edge node MARS OFFLINE since {local_time(OFF_MS, HK)}"), "banner")
        assert "trust check FAILED" in banner.message
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.current_mode == "campus")


async def test_a_new_critical_alarm_at_any_site_rings_once(campus):
    """The bell (EEMUA 191) over the campus: the critical alarm there at start does not ring,
    a new one at MEC's mirror does, once."""
    cfg = campus.cfg
    app = make_app(cfg, cfg.db_path, login="tmchan", clock=lambda: T0, refresh_s=0.2)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: campus_drawn(app), "campus drawn")
        assert app.bells == 0
        campus.mec.store.write_cycle(Cycle(alarms=[
            alarm("TH-1.temperature:action_high", "WET", "TH-1.temperature")]))
        await wait_until(pilot, lambda: app.bells == 1, "one bell")
        rows = cells(app.screen.query_one("#site-list", LiveTable))
        await wait_until(pilot, lambda: cells(app.screen.query_one(
            "#site-list", LiveTable))["mec"][5] == "2 crit (2 unack)", "two at mec")
        assert rows["mars"][5] == "ok"
        assert app.bells == 1


OFFLINE_MARS = "campus:mars:offline"


def raise_mars_offline(campus: Campus) -> int:
    """Central's own alarm ``campus:mars:offline`` raised and written to central's own
    database by central's real ``NodeWatch``, on a clock of the test (its session counts as
    up, and silences are not judged: no edge speaks here): MARS's node dies, and stays dead
    past offline_grace_s. Returns the onset."""
    watch = campus.central.watch
    clock = [T0 - 10 * 60_000]
    watch.clock, watch.connected, watch.silence_ms = (lambda: clock[0]), (lambda: True), 0
    watch.tick()  # opens central's own database
    watch.death("mars")
    onset = clock[0]
    clock[0] += watch.grace_ms + 1000
    watch.tick()
    assert watch.book.states[OFFLINE_MARS].state.value == "UNACK"
    return onset


async def test_centrals_own_alarm_is_a_line_and_counts_as_needing_attention(campus):
    """Central's own alarm (an edge node offline, in central's own database, read read-only)
    is a line above the sites' alerts, in site time, and counts in the summary beside MEC's
    critical alarm; returned but not acknowledged, it still does, saying RTNUN."""
    cfg = campus.cfg
    onset = raise_mars_offline(campus)
    app = make_app(cfg, cfg.db_path, login="tmchan", clock=lambda: T0, refresh_s=0.2)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: campus_drawn(app), "campus drawn")
        lines = str(app.screen.query_one("#campus-alerts").render()).splitlines()
        assert lines[0] == f"central: {OFFLINE_MARS} HIGH UNACK since {local_time(onset, HK)}"
        assert any(x.startswith("mars: edge node MARS OFFLINE") for x in lines[1:])
        summary = str(app.screen.query_one("#campus-summary").render())
        assert "need attention: 1 crit  1 high" in summary
        watch = campus.central.watch
        back = watch.clock() + 1000
        watch.clock = lambda: back
        watch.birth("mars")  # back for longer than online_hold_s: returned, unacknowledged
        watch.clock = lambda: back + watch.hold_ms + 1000
        watch.tick()
        assert watch.book.states[OFFLINE_MARS].state.value == "RTNUN"
        await wait_until(pilot, lambda: str(app.screen.query_one("#campus-alerts").render())
                         .startswith(f"central: {OFFLINE_MARS} HIGH RTNUN since"), "RTNUN")
        assert "1 high" in str(app.screen.query_one("#campus-summary").render())


def test_a_mirror_without_centrals_tables_has_no_node_record(tmp_path):
    """``Store.campus_node`` on a database central has not set up: empty, not an error."""
    from facility.store import Store
    from tui.campus_data import read_node

    path = str(tmp_path / "plain.db")
    Store(path).close()
    with Store(path, readonly=True) as store:
        assert store.campus_node() == {} and read_node(store) == ({}, {})


def test_tui_on_a_central_config_without_mirrors_says_so_in_one_line(tmp_path):
    path = central_toml(tmp_path)
    res = CliRunner().invoke(cli, ["tui", "--config", str(path)])
    assert res.exit_code == 3, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no mirror yet: run `facility central`" in lines[0], res.stderr
    assert "Traceback" not in res.stdout + res.stderr
