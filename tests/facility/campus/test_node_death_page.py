"""``facility central`` pages once when a site's edge node dies (facility/campus/watch.py).

Real parts: mosquitto on a loopback port, the site database written through the real
``Store``, ``facility uplink`` as a subprocess (SIGKILLed so the broker sends its NDEATH
will, SIGTERMed for a clean NDEATH, SIGSTOPped for a hung edge that keeps its session),
central in a thread of the test with its own database, and central's ``[paging]`` webhook
pointed at a loopback HTTP receiver. What was paged is read from the receiver; the alarm,
its events and the offline/online audit rows from central's database.
"""

from __future__ import annotations

import signal
import threading

import pytest
from click.testing import CliRunner

from facility.campus.central import Central
from facility.cli import cli
from facility.config import load_config, parse_config
from facility.config.loader import ConfigError
from facility.store import Store
from tests.fixtures.campus import (
    Background,
    Site,
    central_paging_config,
    poll,
    site_config,
    uplink_process,
)
from tests.fixtures.config import facility_toml, site
from tests.fixtures.wait import hold

ALARM = "campus:mec:offline"
RAISES = ("trigger", "realarm", "chattering", "repeat", "escalate")
"""The page events that tell someone the node is offline (first page or a repeat of it)."""


def pages_of(receiver) -> list[dict]:
    return [p for p in receiver.pages if f":{ALARM}#" in str(p.get("dedup_key"))]


def events(receiver, kinds) -> list[dict]:
    return [p for p in pages_of(receiver) if p.get("event") in kinds]


def central_rows(cfg_path: str) -> tuple[list[dict], list[dict], list[dict], int]:
    """Central's own database: the alarm rows, its events, the node audit rows, outbox rows."""
    cfg = load_config(cfg_path)
    with Store(cfg.db_path, readonly=True) as db:
        alarms = [a for a in db.alarms() if a["id"] == ALARM]
        evs = [e for e in db.events(0, 2**62) if e["alarm_id"] == ALARM]
        audit = [r for r in db.conn.execute(
            "SELECT action, reason FROM audit WHERE action LIKE 'node_%' ORDER BY id")]
        outbox = db.conn.execute("SELECT COUNT(*) FROM page_outbox").fetchone()[0]
    return alarms, evs, audit, outbox


def start(tmp_path, broker, receiver, procs, *, site_extra=None, **central):
    s = Site(site_config(tmp_path, broker.port, primary_host_id="central", **(site_extra or {})))
    s.cycle()
    cfgp = central_paging_config(tmp_path, broker.port, receiver.url, **central)
    c = Central(load_config(cfgp))
    run = Background(c)
    procs.append(uplink_process(tmp_path / "site.toml"))
    node = c.watch.nodes["mec"]
    assert poll(lambda: c.mirrors[("hk", "MEC")].born and node.back_ms is not None, 60), \
        "central did not see the edge's birth"
    return s, cfgp, c, run, node


class Writer:
    """The site's service, as far as the uplink sees it: a committed cycle every 0.3 s (the
    uplink sends once per cycle, so a silent site is one whose cycles stopped)."""

    def __init__(self, site: Site):
        self.site, self._stop = site, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.site.cycle()
            self._stop.wait(0.3)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(30)


def state(c: Central):
    return c.watch.book.states[ALARM]


@pytest.mark.timeout(600)
def test_a_dead_edge_pages_once_through_flaps_and_its_return_once(tmp_path, broker, receiver,
                                                                 procs):
    """SIGKILL: the broker's NDEATH will, then one page after offline_grace_s. Three flaps
    (back for less than online_hold_s, then a clean NDEATH) page nothing more; back for
    good, the alarm returns after the hold and the pager sends its return update once."""
    s, cfgp, c, run, node = start(tmp_path, broker, receiver, procs, offline_grace_s=2,
                                  online_hold_s=15, silence_s=600)
    try:
        assert not pages_of(receiver) and state(c).occurrence == 0
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait(30)
        assert poll(lambda: events(receiver, RAISES), 90), "no page for the dead edge node"
        first = events(receiver, RAISES)
        assert len(first) == 1 and first[0]["action"] == "trigger"
        assert "edge node hk/MEC offline" in first[0]["summary"]
        assert "NDEATH" in first[0]["summary"] and "Mechanical (mec)" in first[0]["summary"]
        assert first[0]["severity"] == "error"  # high
        for _ in range(3):  # flaps: back for less than online_hold_s, then gone again
            procs.append(uplink_process(tmp_path / "site.toml"))
            assert poll(lambda: node.dead_ms is None and not node.down, 60), "no rebirth"
            procs[-1].send_signal(signal.SIGTERM)  # a clean stop: NDEATH at once
            procs[-1].wait(30)
            assert poll(lambda: node.dead_ms is not None, 60), "no NDEATH after the stop"
            assert state(c).active and state(c).state.value == "UNACK"
        procs.append(uplink_process(tmp_path / "site.toml"))  # back for good
        assert poll(lambda: not state(c).active, 90), "the alarm did not return"
        assert state(c).state.value == "RTNUN"  # returned, nobody acknowledged it
        assert poll(lambda: events(receiver, ("update",)), 150), "no return page"
        judged = c.watch.judged_ms
        assert poll(lambda: c.watch.judged_ms > judged + 3000, 60)  # nothing else follows
    finally:
        run.stop()
        s.close()
    raises, updates = events(receiver, RAISES), events(receiver, ("update",))
    listing = [(p.get("event"), p.get("summary")) for p in pages_of(receiver)]
    assert len(raises) == 1 and len(updates) == 1, listing
    assert "returned at" in updates[0]["summary"]
    assert {p["dedup_key"] for p in pages_of(receiver)} == {f"hk:{ALARM}#1"}
    alarms, evs, audit, _ = central_rows(cfgp)
    assert alarms[0]["state"] == "RTNUN" and alarms[0]["occurrence"] == 1
    assert [e["event"] for e in evs] == ["raise", "clear"]
    raise_ev = evs[0]
    assert raise_ev["detected_ms"] - raise_ev["ts_ms"] >= 2000  # raised after the grace
    offline = [a for a, _ in audit if a == "node_offline"]
    online = [a for a, _ in audit if a == "node_online"]
    assert len(offline) == 4 and len(online) == 5, audit  # every flap is on record
    out = CliRunner().invoke(cli, ["pages", "--config", cfgp])
    assert out.exit_code == 0, out.output
    assert f"{ALARM}#1" in out.output and "trigger" in out.output and "update" in out.output


@pytest.mark.timeout(300)
def test_a_restart_within_the_grace_pages_nothing(tmp_path, broker, receiver, procs):
    """The uplink is SIGKILLed and started again at once: central sees the NDEATH and the
    new NBIRTH within offline_grace_s, records both, and pages nothing."""
    s, cfgp, c, run, node = start(tmp_path, broker, receiver, procs, offline_grace_s=20,
                                  online_hold_s=1, silence_s=600)
    try:
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait(30)
        assert poll(lambda: node.dead_ms is not None, 60), "no NDEATH will"
        died = node.dead_ms
        procs.append(uplink_process(tmp_path / "site.toml"))
        assert poll(lambda: not node.down, 60), "no rebirth"
        assert node.back_ms - died < c.watch.grace_ms  # the restart was within the grace
        assert poll(lambda: c.watch.judged_ms > died + c.watch.grace_ms + 2000, 90)
    finally:
        run.stop()
        s.close()
    assert pages_of(receiver) == []
    alarms, evs, audit, outbox = central_rows(cfgp)
    assert outbox == 0 and evs == []
    assert all(a["occurrence"] == 0 and a["state"] == "NORM" for a in alarms)
    assert [a for a, _ in audit] == ["node_online", "node_offline", "node_online"]


@pytest.mark.timeout(300)
def test_a_hung_edge_that_keeps_its_session_pages_after_the_silence(tmp_path, broker,
                                                                    receiver, procs):
    """SIGSTOP: the edge's MQTT session lives on (keep-alive 60 s, no will within the test)
    but nothing comes; after silence_s + offline_grace_s central pages, saying so."""
    s, cfgp, c, run, node = start(
        tmp_path, broker, receiver, procs, offline_grace_s=1, online_hold_s=1, silence_s=6,
        site_extra={"broker": {"host": "127.0.0.1", "port": broker.port, "keepalive_s": 60.0}})
    writer = Writer(s)
    try:
        before = c.stats["cycles"]
        assert poll(lambda: c.stats["cycles"] >= before + 5, 60), "no live cycles mirrored"
        procs[-1].send_signal(signal.SIGSTOP)
        assert poll(lambda: events(receiver, RAISES), 90), "no page for the hung edge"
        page = events(receiver, RAISES)[0]
        assert "no message for silence_s=6 s" in page["summary"]
        assert node.dead_ms is None  # no NDEATH: the broker still holds its session
        procs[-1].send_signal(signal.SIGCONT)
        assert poll(lambda: not state(c).active, 60), "the alarm did not return"
    finally:
        writer.stop()
        run.stop()
        s.close()
    assert len(events(receiver, RAISES)) == 1
    _, evs, audit, _ = central_rows(cfgp)
    assert [e["event"] for e in evs] == ["raise", "clear"]
    assert ("node_offline", "no message for silence_s=6 s") in audit


@pytest.mark.timeout(300)
def test_a_broker_outage_is_not_a_node_outage(tmp_path, broker, receiver, procs):
    """The broker goes away for longer than silence_s + offline_grace_s: central's own session
    is down too, so it judges nothing (it is blind, not the nodes dead) and starts the silence
    and grace clocks again when it is back (mosquitto delivers the edge's NDEATH will as it
    shuts down); the edge reconnects and is born again; nothing pages."""
    s, cfgp, c, run, node = start(tmp_path, broker, receiver, procs, offline_grace_s=8,
                                  online_hold_s=1, silence_s=4)
    writer = Writer(s)
    try:
        broker.stop()
        assert poll(lambda: not c._connected.is_set(), 60), "central did not see the outage"
        hold(15.0)  # the outage: longer than silence_s + offline_grace_s
        broker.start()
        assert poll(lambda: c._connected.is_set(), 60), "central did not reconnect"
        back = c.watch.clock()
        assert poll(lambda: c.mirrors[("hk", "MEC")].born and not node.down, 60)
        assert poll(lambda: c.watch.judged_ms > back + c.watch.silence_ms
                    + c.watch.grace_ms + 2000, 90)
    finally:
        writer.stop()
        run.stop()
        s.close()
    assert pages_of(receiver) == []
    alarms, evs, _, outbox = central_rows(cfgp)
    assert outbox == 0 and evs == []
    assert all(a["occurrence"] == 0 and a["state"] == "NORM" for a in alarms)


@pytest.mark.parametrize("key,value,words", [
    ("offline_priority", '"urgent"', "offline_priority"),
    ("offline_grace_s", "-1", "offline_grace_s"),
    ("silence_s", '"long"', "silence_s"),
])
def test_bad_watch_settings_are_one_line(key, value, words):
    text = facility_toml(id="hk", central={"sites": [{"id": "mec", "node_id": "MEC"}]})
    text = text.replace("[central]\n", f"[central]\n{key} = {value}\n", 1)
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert words in str(info.value) and "\n" not in str(info.value).strip()


def test_watch_defaults_page_high_after_a_minute():
    cfg = parse_config(facility_toml(id="hk", central={"sites": [{"id": "mec",
                                                                  "node_id": "MEC"}]}))
    c = cfg.central
    assert (c.offline_grace_s, c.silence_s, c.online_hold_s, c.offline_priority) == (
        60.0, 90.0, 120.0, "high")


def test_a_route_can_select_the_offline_kind():
    """A central may route dead-node pages on their own (``kinds = ["offline"]``): the kind is
    one config accepts, and the route matches the watch's alarm and not another kind."""
    from alarms.paging import route_matches
    from facility.campus.watch import KIND

    cfg = parse_config(facility_toml(
        id="hk", sites=[site("mec", name="Mechanical")],
        paging={"channels": [{"id": "hook", "type": "webhook", "url": "http://127.0.0.1:9/p"}],
                "routes": [{"kinds": [KIND], "levels": [{"after_s": 0, "channels": ["hook"]}]}]},
        central={"sites": [{"id": "mec", "node_id": "MEC"}]}))
    route = cfg.paging.routes[0]
    assert route_matches(route, priority="high", site="mec", zone=None, kind=KIND)
    assert not route_matches(route, priority="high", site="mec", zone=None, kind="comm")
