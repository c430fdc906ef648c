"""Store and forward across a broker outage and a killed uplink, with the plant running.

The real service polls the real simulator (Modbus on loopback) into a real SQLite file; the
uplink is a ``facility uplink`` subprocess, central runs in a thread, the broker is a real
mosquitto. The broker is stopped for 60 s and the uplink SIGKILLed once during it. Then
central's ``facility export`` of the window, run on the mirror, must equal the site's own
export sample for sample, and live cycles must keep arriving within a second while the
backlog replays (live first, history in the gaps).
"""

from __future__ import annotations

import csv
import signal
import statistics
import threading

from click.testing import CliRunner

from facility.campus.central import Central, mirror_path
from facility.cli import cli
from facility.config import load_config
from facility.domain.model import iso_ms, now_ms
from facility.store import Store
from tests.fixtures.campus import poll, uplink_process
from tests.fixtures.config import facility_toml
from tests.fixtures.service import Running, config_text
from tests.fixtures.wait import hold

OUTAGE_S = 60.0


def _uplink_toml(port: int) -> str:
    return (f'\n[uplink]\nnode_id = "MEC"\nprimary_host_id = "central"\nhistory_rate = 2000.0\n'
            f'\n[uplink.broker]\nhost = "127.0.0.1"\nport = {port}\nkeepalive_s = 5.0\n')


def _export(cfg_path: str, frm: int, to: int, out) -> list[list[str]]:
    res = CliRunner().invoke(cli, ["export", "--config", cfg_path, "--from", iso_ms(frm),
                                   "--to", iso_ms(to), "--out", str(out)])
    assert res.exit_code == 0, (res.stdout, res.stderr)
    with open(out / "samples.csv", encoding="utf-8", newline="") as fh:
        return [row for row in csv.reader(fh)]


def test_broker_outage_and_killed_uplink_lose_no_sample(tmp_path, broker):
    site_text = config_text(str(tmp_path / "fms.db"), "http://127.0.0.1:9") + _uplink_toml(
        broker.port)
    site_toml = tmp_path / "site.toml"
    site_toml.write_text(site_text)
    central_toml = tmp_path / "central.toml"
    central_toml.write_text(facility_toml(
        id="t", storage={"path": "central/central.db"},
        central={"host_id": "central", "broker": {"host": "127.0.0.1", "port": broker.port,
                                                  "keepalive_s": 5.0},
                 "sites": [{"id": "mec", "node_id": "MEC"}]}))
    ccfg = load_config(str(central_toml))
    central = Central(ccfg)
    arrivals: list[tuple[int, float, bool]] = []  # (edge cycle, arrival ms, live?)
    mirror = central.mirrors[("t", "MEC")]

    def on_cycle(m, cid, historical):
        arrivals.append((cid, now_ms(), not historical))

    replay_from = [0]
    central.on_cycle = on_cycle
    cthread = threading.Thread(target=central.run, daemon=True)
    cthread.start()
    svc = Running(load_config(str(site_toml))).start()
    proc = uplink_process(site_toml)
    try:
        assert poll(lambda: mirror.born, 90), proc.stderr.read() if proc.poll() else ""
        assert poll(lambda: len(arrivals) >= 5, 60)
        t_from = now_ms()
        broker.stop()
        hold(OUTAGE_S / 3)
        proc.send_signal(signal.SIGKILL)  # killed mid-outage; its cursor is on disk
        proc.wait(30)
        proc = uplink_process(site_toml)
        hold(OUTAGE_S * 2 / 3)
        with Store(str(tmp_path / "fms.db"), readonly=True) as edge:
            replay_from[0] = edge.cycle_head()  # cycles after this are live on return
            digest_ts = {cid: ts for cid, ts, _d in edge.cycle_digests(0, 10**6)}
        broker.start()
        assert poll(lambda: any(live and c > replay_from[0] for c, _t, live in arrivals)
                    and any(not live for _c, _t, live in arrivals), 120)
        hold(5)  # live cycles keep coming while the backlog replays
        t_to = now_ms()
        svc.stop()
        with Store(str(tmp_path / "fms.db"), readonly=True) as edge:
            head = edge.cycle_head()
            digest_ts.update({cid: ts for cid, ts, _d in edge.cycle_digests(0, 10**6)})
        first = min(c for c, _t, _l in arrivals)
        assert poll(lambda: all(c in mirror.received for c in digest_ts if first <= c <= head),
                    180), (len(mirror.received), head)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        svc.stop()
        central.stop()
        cthread.join(30)
    # sample for sample: the site's export and the export of central's mirror
    mirror_toml = tmp_path / "mirror.toml"
    mirror_toml.write_text(site_text.replace(str(tmp_path / "fms.db"),
                                             mirror_path(ccfg, ccfg.central.sites[0])))
    edge_rows = _export(str(site_toml), t_from, t_to, tmp_path / "edge-export")
    mirror_rows = _export(str(mirror_toml), t_from, t_to, tmp_path / "mirror-export")
    assert len(edge_rows) > OUTAGE_S * 2  # two points a second at least, through the outage
    assert mirror_rows[0] == edge_rows[0]  # the same columns
    # the same rows (within one timestamp the order follows each database's point ids)
    missing = sorted(set(map(tuple, edge_rows[1:])) - set(map(tuple, mirror_rows[1:])))
    assert not missing, (len(missing), missing[:5])
    assert sorted(mirror_rows[1:]) == sorted(edge_rows[1:])
    # live first: cycles committed after the broker returned arrived within a second
    live = [t - digest_ts[c] for c, t, is_live in arrivals
            if is_live and c > replay_from[0] and c in digest_ts]
    assert live, "no live cycle arrived during the replay"
    assert statistics.median(live) < 1000, sorted(live)
    # ... and they did not wait for the backlog: one came before the last replayed cycle
    last_history = max(t for c, t, is_live in arrivals if not is_live and c <= replay_from[0])
    assert min(t for c, t, is_live in arrivals if is_live) < last_history
