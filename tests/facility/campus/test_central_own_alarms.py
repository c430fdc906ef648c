"""Central's own alarms (``campus:<site>:offline``) are listed and acted on like a site's.

Real parts: mosquitto on a loopback port, the site database written through the real
``Store``, ``facility uplink`` as a subprocess (SIGKILLed so the broker sends its NDEATH
will), central in a thread of the test with its own database and its action socket, the
ordinary ``facility alarms`` / ``facility ack --config central.toml`` commands talking to that
socket, and central's ``[paging]`` webhook pointed at a loopback HTTP receiver. What was
paged is read from the receiver; rows, events and audit rows from central's database.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from click.testing import CliRunner

from facility.campus.central import Central
from facility.cli import cli
from facility.config import load_config
from facility.service.socket import current_login, socket_path
from facility.store import Store
from tests.fixtures.campus import (
    Background,
    Site,
    central_paging_config,
    poll,
    site_config,
    uplink_process,
)
from tests.fixtures.config import operator

ALARM = "campus:mec:offline"
NAME = "Tom Chan"


def triggers(receiver, occurrence: int) -> list[dict]:
    return [p for p in receiver.pages if p.get("event") == "trigger"
            and p.get("dedup_key") == f"hk:{ALARM}#{occurrence}"]


def state(c: Central):
    return c.watch.book.states[ALARM] if c.watch.book is not None else None


def is_(c: Central, value: str, occurrence: int) -> bool:
    st = state(c)
    return st is not None and st.state.value == value and st.occurrence == occurrence


def facility(*args: str):
    return CliRunner().invoke(cli, list(args))


def audit_rows(cfg_path: str, action: str) -> list[dict]:
    cfg = load_config(cfg_path)
    with Store(cfg.db_path, readonly=True) as db:
        rows = db.conn.execute("SELECT actor, subject, reason, details FROM audit"
                               " WHERE action = ? ORDER BY id", (action,)).fetchall()
    return [{"actor": a, "subject": s, "reason": r, "details": json.loads(d or "{}")}
            for a, s, r, d in rows]


@pytest.mark.timeout(600)
def test_an_operator_acks_a_returned_outage_and_the_next_one_pages_again(tmp_path, broker,
                                                                        receiver, procs):
    """The edge dies: central raises and pages occurrence #1, and `facility alarms` on
    central's config lists it. The edge comes back (RTNUN); a configured operator's
    `facility ack` (no #: the occurrence is looked up in central's own database) makes it
    NORM, audited with the operator's name. The edge dies again: occurrence #2, paged again;
    an ack of #1 is now refused as superseded, and audited."""
    login = current_login()
    s = Site(site_config(tmp_path, broker.port, primary_host_id="central"))
    s.cycle()
    cfgp = central_paging_config(tmp_path, broker.port, receiver.url,
                          [operator(login, NAME, ["technician"])], offline_grace_s=1,
                          online_hold_s=1, silence_s=600)
    cfg = load_config(cfgp)
    c = Central(cfg)
    run = Background(c)
    procs.append(uplink_process(tmp_path / "site.toml"))
    node = c.watch.nodes["mec"]
    try:
        assert poll(lambda: node.back_ms is not None and not node.down, 60), "no birth"
        assert poll(lambda: os.path.exists(socket_path(cfg.db_path)), 60), "no action socket"
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait(30)
        assert poll(lambda: is_(c, "UNACK", 1), 90), "no alarm for the dead edge node"
        assert poll(lambda: triggers(receiver, 1), 90), "occurrence #1 was not paged"
        listed = facility("alarms", "--config", cfgp)
        assert listed.exit_code == 0, listed.output
        line = next((x for x in listed.output.splitlines() if f"{ALARM}#1" in x), "")
        assert line.startswith("UNACK") and "high" in line, listed.output

        procs.append(uplink_process(tmp_path / "site.toml"))  # back: returned, not acked
        assert poll(lambda: is_(c, "RTNUN", 1), 90), "the alarm did not return"
        acked = facility("ack", ALARM, "--reason", "edge restarted after the power cut",
                         "--config", cfgp)
        assert acked.exit_code == 0, acked.output
        assert f"central: ack {ALARM}#1: now NORM (by {login})" in acked.output
        assert is_(c, "NORM", 1)  # answered once applied

        procs[-1].send_signal(signal.SIGKILL)  # the next outage
        procs[-1].wait(30)
        assert poll(lambda: is_(c, "UNACK", 2), 90), "no new occurrence for the next outage"
        assert poll(lambda: triggers(receiver, 2), 90), "occurrence #2 was not paged"
        late = facility("ack", f"{ALARM}#1", "--reason", "acked from an old list",
                        "--config", cfgp)
        assert late.exit_code == 2, late.output
        assert f"occurrence #1 of {ALARM} is superseded by #2" in late.output
        assert is_(c, "UNACK", 2)
    finally:
        run.stop()
        s.close()
    assert not os.path.exists(socket_path(cfg.db_path))  # removed at close
    assert len(triggers(receiver, 1)) == 1 and len(triggers(receiver, 2)) == 1
    acks = audit_rows(cfgp, "ack")
    assert [(a["actor"], a["subject"], a["reason"]) for a in acks] == [
        (login, f"{ALARM}#1", "edge restarted after the power cut")]
    assert acks[0]["details"]["name"] == NAME
    assert (acks[0]["details"]["from"], acks[0]["details"]["to"]) == ("RTNUN", "NORM")
    refused = audit_rows(cfgp, "refused:ack")
    assert [(r["actor"], r["subject"]) for r in refused] == [(login, f"{ALARM}#1")]
    assert "superseded by #2" in refused[0]["details"]["refusal"]
    with Store(cfg.db_path, readonly=True) as db:
        row = next(a for a in db.alarms() if a["id"] == ALARM)
        events = [(e["event"], e["occurrence"]) for e in db.events(0, 2**62)
                  if e["alarm_id"] == ALARM]
    assert (row["state"], row["occurrence"]) == ("UNACK", 2)
    assert events == [("raise", 1), ("clear", 1), ("ack", 1), ("raise", 2)]


@pytest.mark.timeout(300)
def test_a_login_that_is_not_centrals_operator_is_refused_and_audited(tmp_path, broker):
    """No edge ever speaks: after silence_s + offline_grace_s the node alarm is raised.
    Central's [[operators]] lists someone else, so this login's `facility ack` is refused by
    central (exit 2, one line), audited with the reason given, and the alarm stays UNACK."""
    login = current_login()
    cfgp = central_paging_config(tmp_path, broker.port, "http://127.0.0.1:9",
                          [operator("kwlee", "K. W. Lee", ["technician"])],
                          offline_grace_s=0.5, online_hold_s=1, silence_s=1)
    cfg = load_config(cfgp)
    c = Central(cfg)
    run = Background(c)
    try:
        assert poll(lambda: is_(c, "UNACK", 1), 90), "no alarm for the silent edge node"
        assert poll(lambda: os.path.exists(socket_path(cfg.db_path)), 60), "no action socket"
        listed = facility("alarms", "--active", "--json", "--config", cfgp)
        assert listed.exit_code == 0, listed.output
        rows = [json.loads(x) for x in listed.output.splitlines() if x.startswith("{")]
        assert [(r["id"], r["state"], r["occurrence"]) for r in rows] == [(ALARM, "UNACK", 1)]
        res = facility("ack", ALARM, "--reason", "seen on the wall screen", "--config", cfgp)
        assert res.exit_code == 2, res.output
        assert f"refused by central: login {login!r} is not an operator" in res.output
        assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
        assert is_(c, "UNACK", 1)
    finally:
        run.stop()
    refused = audit_rows(cfgp, "refused:ack")
    assert [(r["actor"], r["subject"], r["reason"]) for r in refused] == [
        (login, ALARM, "seen on the wall screen")]
    assert "is not an operator" in refused[0]["details"]["refusal"]
    assert audit_rows(cfgp, "ack") == []


def test_an_action_on_centrals_alarm_while_central_is_down_says_so(tmp_path):
    """No central running (no socket, no database yet): one line naming the fix, exit 3;
    the action is not relayed to a site, which does not know the alarm."""
    cfgp = central_paging_config(tmp_path, 9, "http://127.0.0.1:9", [])
    res = facility("ack", f"{ALARM}#1", "--reason", "seen", "--config", cfgp)
    assert res.exit_code == 3, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "central is not running" in lines[0], res.output
    assert "start it with `facility central" in lines[0]
