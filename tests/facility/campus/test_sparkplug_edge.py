"""Sparkplug B 3.0 edge-node conformance of ``facility uplink``, on a real mosquitto.

Each test names the assertions of the Sparkplug 3.0 specification it covers (the ``tck-id-*``
of its chapters 4-6). The site database is written through the real ``Store``; the uplink runs
as a real ``facility uplink`` subprocess where a will or a signal is involved, in a thread
otherwise; a recorder subscribed to ``spBv1.0/#`` sees exactly what the broker delivers.
"""

from __future__ import annotations

import json
import signal
import threading

import pytest

from facility.campus import sparkplug as sp
from facility.campus.uplink import POINT_ALIAS_BASE, Uplink, UplinkState
from facility.config import load_config
from tests.fixtures.campus import Site, metrics, poll, site_config, uplink_process, wait_for


class Thread:
    """The uplink in a thread of the test process."""

    def __init__(self, cfg_path):
        self.up = Uplink(load_config(str(cfg_path)), poll_s=0.05)
        self.thread = threading.Thread(target=self.up.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.up.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def site(tmp_path, broker):
    s = Site(site_config(tmp_path, broker.port))
    s.cycle()
    yield s
    s.close()


def test_nbirth_content(site, recorder, tmp_path):
    """tck-id-topics-nbirth-topic, -mqtt, -seq-num, -timestamp, -bdseq-included,
    -rebirth-metric, -metrics; tck-id-payloads-alias-birth-requirement,
    tck-id-payloads-alias-uniqueness, tck-id-payloads-name-birth-data-requirement."""
    up = Thread(tmp_path / "site.toml")
    try:
        (topic, nb, qos, retain), = wait_for(recorder, "NBIRTH")[:1]
        dbirths = wait_for(recorder, "DBIRTH", 3)
    finally:
        up.stop()
    assert topic == "spBv1.0/hk/NBIRTH/MEC"
    assert (qos, retain) == (0, False)
    assert nb.seq == 0 and nb.timestamp > 0
    m = metrics(nb)
    assert m["bdSeq"].datatype == sp.INT64 and sp.metric_value(m["bdSeq"]) == 0
    rebirth = m["Node Control/Rebirth"]
    assert rebirth.datatype == sp.BOOLEAN and sp.metric_value(rebirth) is False
    aliases = [x.alias for x in nb.metrics]
    for _t, p, q, r in dbirths:
        assert (q, r) == (0, False)
        for x in p.metrics:
            assert x.name and x.alias and x.timestamp and x.datatype == sp.DOUBLE
            aliases.append(x.alias)
    assert len(aliases) == len(set(aliases))  # unique across the node's metrics
    assert all(x.name and x.timestamp for x in nb.metrics)


def test_dbirth_per_instrument_with_units_limits_and_quality(site, recorder, tmp_path):
    """tck-id-topics-dbirth-topic, -mqtt, -seq, -timestamp, -metric-reqs, -metrics;
    tck-id-payloads-propertyset-quality-value-type/-value."""
    up = Thread(tmp_path / "site.toml")
    try:
        dbirths = wait_for(recorder, "DBIRTH", 3)
    finally:
        up.stop()
    by_topic = {t: p for t, p, _q, _r in dbirths}
    assert set(by_topic) == {"spBv1.0/hk/DBIRTH/MEC/PC-1", "spBv1.0/hk/DBIRTH/MEC/DP-1",
                             "spBv1.0/hk/DBIRTH/MEC/Z1"}  # derived: under its zone
    assert sorted(p.seq for p in by_topic.values()) == [1, 2, 3]
    pc = metrics(by_topic["spBv1.0/hk/DBIRTH/MEC/PC-1"])
    props = sp.properties(pc["PC-1.pc_0_5um"])
    assert props["engUnit"] == "count/m3" and props["fms.zone"] == "Z1"
    assert props["Quality"] == sp.SP_GOOD
    qtype = pc["PC-1.pc_0_5um"].properties.values[
        list(pc["PC-1.pc_0_5um"].properties.keys).index("Quality")].type
    assert qtype == sp.INT32
    limits = json.loads(props["fms.limits"])
    assert limits and all(isinstance(v, float) for v in limits.values())  # ISO 5 limits
    assert sp.metric_value(pc["PC-1.pc_0_5um"]) == site.samples()[[
        s[0] for s in site.samples()].index("PC-1.pc_0_5um")][2]


def test_data_sequence_aliases_quality_and_cycles(site, recorder, tmp_path):
    """tck-id-topics-ndata-seq-num, tck-id-payloads-sequence-num-always-included,
    tck-id-payloads-sequence-num-incrementing (wrap 255 -> 0),
    tck-id-payloads-alias-data-cmd-requirement, tck-id-payloads-name-birth-data-requirement,
    tck-id-topics-ndata-mqtt; a failed read travels as is_null with Quality 0, never 0.0."""
    up = Thread(tmp_path / "site.toml")
    try:
        wait_for(recorder, "DBIRTH", 3)
        for i in range(90):  # 4 messages a cycle (3 DDATA + NDATA): past seq 255
            site.cycle(bad=(i == 5))
        wait_for(recorder, "NDATA", 91)
    finally:
        up.stop()
    seqs = [p.seq for _k, p in recorder.edge_sequence()]
    assert seqs[0] == 0
    assert all(b == (a + 1) % 256 for a, b in zip(seqs, seqs[1:])), seqs
    assert 255 in seqs and seqs.count(0) >= 2
    for _t, p, qos, retain in recorder.of("DDATA"):
        assert (qos, retain) == (0, False)
        for x in p.metrics:
            assert not x.name and x.alias >= POINT_ALIAS_BASE and x.timestamp
    nulls = [x for _t, p, _q, _r in recorder.of("DDATA") for x in p.metrics if x.is_null]
    assert len(nulls) == 1
    assert sp.properties(nulls[0])["Quality"] == sp.SP_BAD
    chain = []  # (cycle, previous cycle, historical) of every NDATA that closes a cycle
    for _t, p, _q, _r in recorder.of("NDATA"):
        by = {x.alias: x for x in p.metrics}
        if 4 in by:
            chain.append((sp.metric_value(by[4]), sp.metric_value(by[5]), by[4].is_historical))
    live = [c for c in chain if not c[2]]
    # a chain central can check: live cycles in order, each naming the one before it; the
    # cycle committed before the uplink started is history, sent in a gap of the live flow
    assert [c for c, _p, _h in live] == list(range(2, 92)), chain
    assert [pv for _c, pv, _h in live] == list(range(1, 91)), chain
    assert [(c, h) for c, _p, h in chain if h] == [(1, True)], chain


def test_will_is_ndeath_with_bdseq_and_reconnect_increments_it(site, recorder, tmp_path):
    """tck-id-message-flow-edge-node-birth-publish-will-message (-topic, -payload, -payload-bdSeq,
    -qos, -will-retained), tck-id-topics-ndeath-payload, tck-id-payloads-ndeath-seq,
    tck-id-payloads-ndeath-bdseq, tck-id-topics-nbirth-bdseq-matching, -bdseq-increment."""
    cfg = tmp_path / "site.toml"
    proc = uplink_process(cfg)
    try:
        wait_for(recorder, "NBIRTH")
        proc.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker publishes the will
        proc.wait(30)
        (topic, death, qos, retain), = wait_for(recorder, "NDEATH", 1, 90)[:1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert topic == "spBv1.0/hk/NDEATH/MEC" and (qos, retain) == (1, False)
    assert not death.HasField("seq")
    assert [x.name for x in death.metrics] == ["bdSeq"]
    assert death.metrics[0].datatype == sp.INT64
    birth = recorder.of("NBIRTH")[0][1]
    assert sp.metric_value(death.metrics[0]) == sp.metric_value(metrics(birth)["bdSeq"]) == 0
    proc = uplink_process(cfg)
    try:
        births = wait_for(recorder, "NBIRTH", 2)
    finally:
        proc.terminate()
        proc.wait(30)
    assert sp.metric_value(metrics(births[1][1])["bdSeq"]) == 1
    assert UplinkState.load(str(tmp_path / "uplink.state.json")).bdseq == 1


def test_a_clean_stop_publishes_ndeath_first(site, recorder, tmp_path):
    """tck-id-payloads-ndeath-will-message-publisher (NDEATH before an intended disconnect)."""
    proc = uplink_process(tmp_path / "site.toml")
    wait_for(recorder, "NBIRTH")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, proc.stderr.read()
    (_t, death, qos, _r), = wait_for(recorder, "NDEATH")
    assert sp.metric_value(death.metrics[0]) == 0 and qos == 1
    assert "uplink stopped" in proc.stdout.read()


def test_rebirth_command(site, recorder, tmp_path):
    """tck-id-operational-behavior-data-commands-rebirth-action-1, -action-2, -action-3: on
    'Node Control/Rebirth' = true a complete birth sequence, with the same bdSeq."""
    up = Thread(tmp_path / "site.toml")
    try:
        wait_for(recorder, "DBIRTH", 3)
        cmd = sp.Payload()
        cmd.timestamp = 1
        sp.add_metric(cmd, name="Node Control/Rebirth", ts_ms=1, datatype=sp.BOOLEAN,
                      value=True)
        recorder.publish("spBv1.0/hk/NCMD/MEC", cmd.SerializeToString(), qos=0)
        births = wait_for(recorder, "NBIRTH", 2)
        wait_for(recorder, "DBIRTH", 6)
    finally:
        up.stop()
    second = births[1][1]
    assert second.seq == 0
    assert sp.metric_value(metrics(second)["bdSeq"]) == sp.metric_value(
        metrics(births[0][1])["bdSeq"])


def test_primary_host_state(tmp_path, broker, recorder):
    """tck-id-operational-behavior-edge-node-birth-sequence-wait (no birth before the primary
    host is online), tck-id-operational-behavior-edge-node-termination-host-offline (offline
    STATE: leave the session), -host-offline-timestamp (an older offline STATE is ignored)."""
    site = Site(site_config(tmp_path, broker.port, primary_host_id="central"))
    site.cycle()
    up = Thread(tmp_path / "site.toml")
    try:
        poll(lambda: up.up.stats["sessions"] >= 1, 60)
        assert not poll(lambda: recorder.of("NBIRTH"), 1.0)  # waits for the host
        recorder.publish(sp.state_topic("central"), sp.state_payload(True, 1000), retain=True)
        wait_for(recorder, "NBIRTH")
        recorder.publish(sp.state_topic("central"), sp.state_payload(False, 999), retain=True)
        site.cycle()
        wait_for(recorder, "NDATA")  # still in session after the stale offline message
        assert not recorder.of("NDEATH")
        recorder.publish(sp.state_topic("central"), sp.state_payload(False, 2000), retain=True)
        wait_for(recorder, "NDEATH")
        recorder.publish(sp.state_topic("central"), sp.state_payload(True, 3000), retain=True)
        births = wait_for(recorder, "NBIRTH", 2)
    finally:
        up.stop()
        site.close()
    assert sp.metric_value(metrics(births[1][1])["bdSeq"]) == 1  # a new session


def test_malformed_command_is_ignored(site, recorder, tmp_path):
    up = Thread(tmp_path / "site.toml")
    try:
        wait_for(recorder, "DBIRTH", 3)
        recorder.publish("spBv1.0/hk/NCMD/MEC", b"\xff\xfe not protobuf", qos=0)
        site.cycle()
        wait_for(recorder, "NDATA")
    finally:
        up.stop()
    assert up.up.stats["sessions"] == 1
