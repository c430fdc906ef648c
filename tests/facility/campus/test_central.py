"""``facility central`` on a real mosquitto: STATE, mirrors, repair of lost data, trust.

The site database is written through the real ``Store``; uplink and central run in threads
of the test (or as ``facility uplink`` subprocesses where a kill is the point); the mirror is
read back through the same store read API a site's own database has.
"""

from __future__ import annotations

import json
import signal
import threading

import paho.mqtt.client as mqtt
import pytest

from facility.campus import sparkplug as sp
from facility.campus.central import Central, mirror_path
from facility.campus.uplink import Uplink
from facility.config import load_config, parse_config
from facility.store import Store
from tests.fixtures.campus import Background, Site, poll, site_config, uplink_process, wait_for
from tests.fixtures.config import facility_toml
from tests.fixtures.mqtt import Broker, needs_mosquitto


def central_config(tmp_path, port: int, node: str = "MEC", trust: str | None = None) -> str:
    path = tmp_path / "central.toml"
    site = {"id": "mec", "node_id": node, **({"trust": trust} if trust else {})}
    path.write_text(facility_toml(
        id="hk", storage={"path": "central/central.db"},
        central={"host_id": "central", "broker": {"host": "127.0.0.1", "port": port,
                                                  "keepalive_s": 5.0},
                 "sites": [site]}))
    return str(path)




def mirror_samples(cfg_path: str) -> list[tuple]:
    cfg = load_config(cfg_path)
    with Store(mirror_path(cfg, cfg.central.sites[0]), readonly=True) as m:
        return sorted((r.point, r.ts_ms, r.value, r.quality) for r in m.iter_samples(0, 2**62))


@pytest.fixture
def site(tmp_path, broker):
    s = Site(site_config(tmp_path, broker.port, primary_host_id="central"))
    s.cycle()
    yield s
    s.close()


def test_state_is_retained_with_an_offline_will(tmp_path, broker, recorder):
    """tck-id-host-topic-phid-birth-topic, -qos, -retain, -payload, -payload-timestamp;
    tck-id-host-topic-phid-death-qos, -retain, -payload (offline STATE, retained, QoS 1)."""
    got: list = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="state-watch")
    c.on_message = lambda cl, u, m: got.append((m.topic, json.loads(m.payload), m.qos,
                                               m.retain))
    c.on_connect = lambda cl, *a: cl.subscribe("spBv1.0/STATE/#", qos=1)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    central = Central(load_config(central_config(tmp_path, broker.port)))
    run = Background(central)
    try:
        assert poll(lambda: any(g[1]["online"] for g in got), 60)
        online = next(g for g in got if g[1]["online"])
        assert online[0] == "spBv1.0/STATE/central" and online[2] == 1
        born = online[1]["timestamp"]
    finally:
        run.stop()
    assert poll(lambda: any(not g[1]["online"] for g in got), 60)
    # a late subscriber gets the retained offline STATE
    late: list = []
    c2 = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="state-late")
    c2.on_message = lambda cl, u, m: late.append((json.loads(m.payload), m.retain))
    c2.on_connect = lambda cl, *a: cl.subscribe("spBv1.0/STATE/central", qos=1)
    c2.connect("127.0.0.1", broker.port)
    c2.loop_start()
    try:
        assert poll(lambda: late, 30)
        assert late[0][0]["online"] is False and late[0][1] is True
    finally:
        c2.loop_stop()
        c.loop_stop()
    # tck-id-host-topic-phid-death-payload-disconnect-clean: offline, a later timestamp
    assert late[0][0]["timestamp"] >= born > 0


def test_the_mirror_equals_the_site(site, tmp_path, broker):
    up = Background(Uplink(load_config(str(tmp_path / "site.toml")), poll_s=0.05))
    central = Central(load_config(central_config(tmp_path, broker.port)))
    run = Background(central)
    try:
        assert poll(lambda: central.mirrors[("hk", "MEC")].born, 60)
        for i in range(30):
            site.cycle(bad=(i == 3))
        want = site.samples()
        assert poll(lambda: len(mirror_samples(central_config(tmp_path, broker.port)))
                    >= len(want), 60)
    finally:
        up.stop()
        run.stop()
    got = mirror_samples(str(tmp_path / "central.toml"))
    assert got == want  # sample for sample, the failed read as None with quality COMM
    assert any(v is None and q == 2 for _p, _t, v, q in got)
    cfg = load_config(str(tmp_path / "central.toml"))
    with Store(mirror_path(cfg, cfg.central.sites[0]), readonly=True) as m:
        units = {p["point"]: p["unit"] for p in m.points()}
    assert units["DP-1.dp"] == "Pa"


def test_lost_messages_are_asked_for_again(site, tmp_path, broker):
    """A DDATA lost on the wire (QoS 0) is repaired: central sees the cycle's sample count or
    the chain of cycles broken and sends 'Node Control/Resend'; the edge replays the cycles."""
    up = Uplink(load_config(str(tmp_path / "site.toml")), poll_s=0.05)
    real = up._publish
    dropped, ddata = [], [0]

    def lossy(topic, payload, qos=0):  # the wire drops some messages; said so in the test
        if "DDATA" in topic:
            ddata[0] += 1
            if ddata[0] in (10, 22, 23):  # some DDATA after the birth, whatever the timing
                dropped.append(topic)
                return True
        return real(topic, payload, qos)

    up._publish = lossy
    uprun = Background(up)
    central = Central(load_config(central_config(tmp_path, broker.port)))
    run = Background(central)
    try:
        assert poll(lambda: central.mirrors[("hk", "MEC")].born, 60)
        for _ in range(20):
            site.cycle()
        want = site.samples()
        cfgp = central_config(tmp_path, broker.port)
        assert poll(lambda: mirror_samples(cfgp) == want, 90), (
            len(mirror_samples(cfgp)), len(want))
    finally:
        uprun.stop()
        run.stop()
    assert len(dropped) == 3 and central.stats["resend_requests"] >= 1
    assert up.stats["history_cycles"] >= 1


def test_uplink_killed_while_the_broker_is_down_loses_nothing(site, tmp_path, broker):
    """Store and forward: the broker goes away, the uplink is SIGKILLed, the site keeps
    writing; on return every sample reaches the mirror, live first, history in the gaps."""
    cfgp = central_config(tmp_path, broker.port)
    central = Central(load_config(cfgp))
    run = Background(central)
    proc = uplink_process(tmp_path / "site.toml")
    try:
        assert poll(lambda: central.mirrors[("hk", "MEC")].born, 60)
        for _ in range(5):
            site.cycle()
        assert poll(lambda: len(mirror_samples(cfgp)) == len(site.samples()), 60)
        broker.stop()
        for _ in range(40):
            site.cycle()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        broker.start()
        proc = uplink_process(tmp_path / "site.toml")
        for _ in range(10):
            site.cycle()
        want = site.samples()
        assert poll(lambda: mirror_samples(cfgp) == want, 120), (
            len(mirror_samples(cfgp)), len(want))
    finally:
        proc.terminate()
        proc.wait(30)
        run.stop()


def test_an_edge_death_marks_the_site_offline(site, tmp_path, broker):
    """tck-id-operational-behavior-edge-node-termination-host-action-ndeath-node-offline."""
    central = Central(load_config(central_config(tmp_path, broker.port)))
    run = Background(central)
    proc = uplink_process(tmp_path / "site.toml")
    try:
        m = central.mirrors[("hk", "MEC")]
        assert poll(lambda: m.born and m.online, 60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert poll(lambda: not m.online, 90)  # the will, after 1.5 x keep-alive
    finally:
        if proc.poll() is None:
            proc.kill()
        run.stop()


def test_data_from_a_node_without_birth_gets_a_rebirth_request(tmp_path, broker, recorder):
    central = Central(load_config(central_config(tmp_path, broker.port)))
    run = Background(central)
    try:
        assert poll(lambda: central._connected.is_set(), 60)
        p = sp.Payload()
        p.timestamp, p.seq = 1, 5
        sp.add_metric(p, alias=1001, ts_ms=1, datatype=sp.DOUBLE, value=1.0)
        recorder.publish("spBv1.0/hk/DDATA/MEC/PC-1", p.SerializeToString(), qos=0)
        cmds = wait_for(recorder, "NCMD")
    finally:
        run.stop()
    assert cmds[0][0] == "spBv1.0/hk/NCMD/MEC"
    rebirth = [m for m in cmds[0][1].metrics if m.name == "Node Control/Rebirth"]
    assert rebirth and sp.metric_value(rebirth[0]) is True


def test_central_config_without_sites_is_one_line(tmp_path):
    from click.testing import CliRunner

    from facility.cli import cli

    path = tmp_path / "c.toml"
    path.write_text(facility_toml(id="hk", central={"host_id": "central"}))
    res = CliRunner().invoke(cli, ["central", "--config", str(path)])
    assert res.exit_code == 2 and "lists no sites" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    with pytest.raises(Exception) as exc:
        parse_config(facility_toml(id="hk", central={"host_id": "bad id!"}))
    assert "central.host_id" in str(exc.value)


@needs_mosquitto
def test_the_acl_keeps_a_site_to_its_own_node(tmp_path):
    """deploy/mosquitto/acl: a site's login publishes only under its own edge node id."""
    from pathlib import Path

    acl = (Path(__file__).resolve().parents[3] / "deploy" / "mosquitto" / "acl").read_text()
    broker = Broker(tmp_path / "b", users={"MEC": "mec-pw", "MARS": "mars-pw",
                                            "central": "central-pw"}, acl=acl).start()
    got: list = []
    try:
        watch = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watch")
        watch.username_pw_set("central", "central-pw")
        watch.on_message = lambda c, u, m: got.append(m.topic)
        ready = threading.Event()
        watch.on_subscribe = lambda *a: ready.set()
        watch.on_connect = lambda c, *a: c.subscribe("spBv1.0/#", qos=1)
        watch.connect("127.0.0.1", broker.port)
        watch.loop_start()
        assert ready.wait(30)
        mec = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mec")
        mec.username_pw_set("MEC", "mec-pw")
        mec.connect("127.0.0.1", broker.port)
        mec.loop_start()
        for topic in ("spBv1.0/hk/NDATA/MARS", "spBv1.0/hk/DDATA/MARS/PC-1",
                      "spBv1.0/STATE/central", "spBv1.0/hk/NDATA/MEC"):
            mec.publish(topic, b"x", qos=1).wait_for_publish(10)
        assert poll(lambda: "spBv1.0/hk/NDATA/MEC" in got, 30)
        mec.loop_stop()
        watch.loop_stop()
    finally:
        broker.stop()
    assert got == ["spBv1.0/hk/NDATA/MEC"]  # the other node's topics and STATE were refused


def test_central_compares_the_mirror_with_the_edges_signed_head(site, tmp_path, broker,
                                                               recorder):
    """The edge's signed chain checkpoint (chain.witness) is mirrored; central flags one that
    does not verify, is signed by another key than the trusted one, or names a head the
    mirror received differently."""
    from facility.store.keys import fingerprint, public_raw, signing_key
    from facility.store.witness import append_checkpoint, witness_path

    scfg = load_config(str(tmp_path / "site.toml"))
    key = signing_key(scfg, create=True)
    fp = fingerprint(public_raw(key))
    cpath = central_config(tmp_path, broker.port, trust=fp)
    site.cycle()
    head = site.store.audit_head()
    append_checkpoint(witness_path(scfg), key, head["id"], head["hash"])
    central = Central(load_config(cpath))
    run = Background(central)
    up = Background(Uplink(scfg, poll_s=0.05))
    try:
        m = central.mirrors[("hk", "MEC")]
        assert poll(lambda: m.trust.get("row_id") == head["id"], 60), m.trust
        assert m.trust["ok"] and m.trust["origin"] == "trusted key", m.trust
        # a checkpoint for the same row with another hash: the mirror differs
        assert poll(lambda: up.obj._sent_checkpoint, 60)
        forged = json.loads(up.obj._sent_checkpoint)
        forged["hash"] = "0" * 64  # without the key, the signature cannot follow
        p = sp.Payload()
        p.timestamp, p.seq = 1, 1
        sp.add_metric(p, alias=13, ts_ms=1, datatype=sp.STRING, value=json.dumps(forged))
        recorder.publish("spBv1.0/hk/NDATA/MEC", p.SerializeToString(), qos=0)
        assert poll(lambda: not m.trust.get("ok", True), 60)
        assert "signature does not verify" in m.trust["why"]
    finally:
        up.stop()
        run.stop()
    ccfg = load_config(cpath)
    with Store(mirror_path(ccfg, ccfg.central.sites[0]), readonly=True) as mirror:
        assert mirror.conn.execute("SELECT count(*) FROM campus_node WHERE key = 'trust'"
                                   ).fetchone()[0] == 1
