"""Actions from the centre stay authoritative at the edge.

The real service polls the real simulator into a real SQLite file; the uplink and central run
in threads, the broker is a real mosquitto. A technician acknowledges at central with the
ordinary ``facility ack --config central.toml``: the command travels as a Sparkplug NCMD, the
site's own service checks the roles and audits it with the operator's name and "via central",
and the answer comes back as the ``Records/Command result`` metric. A superseded occurrence
and a login that is not an operator of the site are refused there, as at the edge.
"""

from __future__ import annotations

import sqlite3

from click.testing import CliRunner

from facility.campus.central import Central
from facility.campus.uplink import Uplink
from facility.cli import cli
from facility.config import load_config
from facility.service.socket import current_login
from tests.fixtures.campus import Background, poll
from tests.fixtures.config import facility_toml
from tests.fixtures.service import CASCADE, Running, config_text


def _uplink_toml(port: int) -> str:
    return (f'\n[uplink]\nnode_id = "MEC"\nprimary_host_id = "central"\n'
            f'\n[uplink.broker]\nhost = "127.0.0.1"\nport = {port}\nkeepalive_s = 5.0\n')




def test_an_ack_at_central_is_applied_and_audited_at_the_edge(tmp_path, broker):
    site_toml = tmp_path / "site.toml"
    site_toml.write_text(config_text(str(tmp_path / "fms.db"), "http://127.0.0.1:9")
                         + _uplink_toml(broker.port))
    central_toml = tmp_path / "central.toml"
    central_toml.write_text(facility_toml(
        id="t", storage={"path": "central/central.db"},
        central={"host_id": "central", "broker": {"host": "127.0.0.1", "port": broker.port,
                                                  "keepalive_s": 5.0},
                 "sites": [{"id": "mec", "node_id": "MEC"}]}))
    central = Central(load_config(str(central_toml)))
    c = Background(central)
    run = Running(load_config(str(site_toml))).start()
    up = Background(Uplink(load_config(str(site_toml)), poll_s=0.05))
    try:
        run.call(run.sim.set_scenario, "door-open", "Z1")
        assert poll(lambda: run.state(CASCADE).state.value == "UNACK", 90)
        mirror = central.mirrors[("t", "MEC")]
        occ = run.state(CASCADE).occurrence

        def mirrored():
            if mirror.store is None:
                return False
            return any(a["id"] == CASCADE and a["state"] == "UNACK"
                       for a in mirror.store.alarms())
        assert poll(mirrored, 90), "the alarm did not reach central's mirror"
        res = CliRunner().invoke(cli, ["ack", CASCADE, "--reason", "seen from the control room",
                                       "--config", str(central_toml)])
        assert res.exit_code == 0, (res.stdout, res.stderr)
        assert "via central" in res.stdout and f"ack {CASCADE}#{occ}" in res.stdout
        assert poll(lambda: run.state(CASCADE).state.value == "ACKED", 30)
        # a superseded occurrence is refused at the edge, as there
        res = CliRunner().invoke(cli, ["ack", f"{CASCADE}#{occ + 5}", "--reason", "late",
                                       "--config", str(central_toml)])
        assert res.exit_code == 2 and "refused at mec" in res.stderr, (res.stdout, res.stderr)
        assert "superseded" in res.stderr
    finally:
        up.stop()
        run.call(run.sim.set_scenario, "normal", None)
        run.stop()
        c.stop()
    conn = sqlite3.connect(str(tmp_path / "fms.db"))
    try:
        rows = conn.execute("SELECT actor, action, reason, details FROM audit WHERE action IN"
                            " ('ack', 'refused:ack') ORDER BY id").fetchall()
    finally:
        conn.close()
    import json

    ack = [r for r in rows if r[1] == "ack"]
    assert ack and ack[0][0] == current_login() and ack[0][2] == "seen from the control room"
    details = json.loads(ack[0][3])
    assert details["via"] == "central" and details["name"] == "Test Technician"
    refused = [r for r in rows if r[1] == "refused:ack"]
    assert refused and json.loads(refused[0][3])["via"] == "central"


def test_only_the_service_account_may_relay(tmp_path):
    """A local user who is not the service's account cannot act for another operator."""
    import asyncio

    from facility.config import parse_config
    from tests.fixtures.desk import Desk

    db = str(tmp_path / "fms.db")
    cfg = parse_config(config_text(db, "http://127.0.0.1:9"), base_dir=str(tmp_path))
    desk = Desk(cfg, db)
    try:
        desk.handler.relay_login = "svc-fms"
        reply = asyncio.run(desk.handler.handle(current_login(), {
            "action": "mode", "zone": "Z1", "mode": "at_rest", "reason": "x",
            "on_behalf_of": current_login(), "via": "central"}))
        assert not reply["ok"] and "may not act on behalf" in reply["message"]
        reply = asyncio.run(desk.handler.handle("svc-fms", {
            "action": "mode", "zone": "Z1", "mode": "at_rest", "reason": "shift end",
            "on_behalf_of": current_login(), "via": "central"}))
        assert reply["ok"], reply
        row = desk.audit("mode")[-1]
        assert row["actor"] == current_login() and row["details"]["via"] == "central"
    finally:
        desk.close()
