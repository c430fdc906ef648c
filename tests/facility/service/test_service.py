"""The service end to end: simulator -> pollers -> engine -> lifecycle -> store -> paging.

Real parts only: a pymodbus simulator on ephemeral loopback ports, a real SQLite file,
a real HTTP receiver for pages and heartbeats, the real Unix socket for operator actions
(the ``start_service`` and ``receiver`` fixtures of ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from facility.domain.model import Quality, Sample, now_ms
from facility.service.health import ServiceLock, ServiceLocked
from facility.service.socket import ActionRefused, current_login, request
from facility.store import Store
from tests.fixtures.service import CASCADE, wait_for
from tests.fixtures.wait import DEADLINE_S

ROOT = Path(__file__).resolve().parents[3]


def _audit(db, action):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT actor, subject, reason FROM audit WHERE action=? ORDER BY id",
                            (action,)).fetchall()
    finally:
        conn.close()


def test_door_open_pages_ack_recovers_and_resolves(tmp_path, receiver, start_service):
    run = start_service()
    cfg = run.cfg
    assert run.state(CASCADE).state.value == "NORM"
    run.call(run.sim.set_scenario, "door-open", "Z1")
    assert wait_for(lambda: run.state(CASCADE).state.value == "UNACK"), "no alarm raised"
    assert wait_for(lambda: "trigger" in receiver.actions_for(CASCADE)), receiver.pages
    occ = run.state(CASCADE).occurrence
    # the technician's command line, as a separate process (identity: the OS login)
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text(cfg.text)
    ack = subprocess.run([sys.executable, "-m", "facility", "ack", CASCADE, "--reason",
                          "door held for a pallet transfer", "--config", str(cfg_file)],
                         capture_output=True, text=True, cwd=ROOT)
    assert ack.returncode == 0, ack.stderr
    assert ack.stdout.strip() == f"ack {CASCADE}#{occ}: now ACKED (by {current_login()})"
    assert run.state(CASCADE).state.value == "ACKED"
    listed = subprocess.run([sys.executable, "-m", "facility", "alarms", "--active", "--json",
                             "--config", str(cfg_file)], capture_output=True, text=True,
                            cwd=ROOT)
    row = next(json.loads(ln) for ln in listed.stdout.splitlines() if CASCADE in ln)
    assert row["state"] == "ACKED" and row["ack_by"] == current_login()
    assert row["ack_reason"] == "door held for a pallet transfer"
    assert row["limit"] == 10.0 and "min_dp_pa" in row["source"]
    assert wait_for(lambda: "acknowledge" in receiver.actions_for(CASCADE)), receiver.pages
    run.call(run.sim.set_scenario, "normal", None)
    assert wait_for(lambda: run.state(CASCADE).state.value == "NORM")
    assert wait_for(lambda: "resolve" in receiver.actions_for(CASCADE)), receiver.pages
    assert receiver.actions_for(CASCADE) == ["trigger", "acknowledge", "resolve"]
    run.stop()
    with Store(cfg.db_path, readonly=True) as store:
        row = next(r for r in store.alarms() if r["id"] == CASCADE)
        assert row["ack_reason"] == "door held for a pallet transfer"
        events = [e["event"] for e in store.events(alarm_id=CASCADE)]
        assert events[:3] == ["raise", "ack", "clear"]
        assert store.verify_audit().ok
    acks = _audit(cfg.db_path, "ack")
    assert acks and acks[-1][2] == "door held for a pallet transfer"
    assert acks[-1][1] == f"{CASCADE}#{occ}"


def test_gas_leak_is_critical_and_never_mode_suppressed(receiver, start_service):
    run = start_service()
    run.call(run.sim.set_scenario, "gas-leak", "GD-1")
    aid = "GD-1:gas_high"
    assert wait_for(lambda: run.state(aid).state.value == "UNACK")
    st = run.state(aid)
    assert st.critical and st.priority == "critical"
    assert wait_for(lambda: any(
        (p.get("severity") or p.get("payload", {}).get("severity")) == "critical"
        for p in receiver.pages if aid in json.dumps(p)))


def test_operator_identity_role_and_stale_occurrence_are_refused_and_audited(start_service):
    run = start_service()
    cfg = run.cfg
    run.call(run.sim.set_scenario, "door-open", "Z1")
    assert wait_for(lambda: run.state(CASCADE).state.value == "UNACK")
    occ = run.state(CASCADE).occurrence
    # a stale occurrence
    with pytest.raises(ActionRefused, match="superseded"):
        request(cfg.db_path, {"action": "ack", "alarm": CASCADE, "occurrence": occ + 1,
                              "reason": "wrong one"})
    # outside the role: technicians may not suppress
    with pytest.raises(ActionRefused, match="lacks role 'engineer'"):
        request(cfg.db_path, {"action": "suppress", "alarm": CASCADE, "occurrence": occ,
                              "reason": "maintenance"})
    # no reason
    with pytest.raises(ActionRefused, match="needs --reason"):
        request(cfg.db_path, {"action": "ack", "alarm": CASCADE, "occurrence": occ})
    # an unknown login: forget the operator list while running
    ops = run.call(lambda: run.svc.book.operators)
    run.call(lambda: setattr(run.svc.book, "operators", {}))
    with pytest.raises(ActionRefused, match="is not an operator"):
        request(cfg.db_path, {"action": "ack", "alarm": CASCADE, "occurrence": occ,
                              "reason": "who am I"})
    run.call(lambda: setattr(run.svc.book, "operators", ops))
    assert run.state(CASCADE).state.value == "UNACK"  # nothing was changed
    run.stop()
    refused = [r for r in _refusals(cfg.db_path)]
    assert {"refused:ack", "refused:suppress"} <= {r[0] for r in refused}
    assert len(refused) == 4
    assert any("superseded" in r[2] for r in refused)


def _refusals(db):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT action, actor, details FROM audit WHERE action LIKE 'refused:%'"
                            " ORDER BY id").fetchall()
    finally:
        conn.close()


def test_restart_restores_alarm_states_without_re_raising(receiver, start_service):
    run = start_service()
    cfg = run.cfg
    run.call(run.sim.set_scenario, "door-open", "Z1")
    assert wait_for(lambda: run.state(CASCADE).state.value == "UNACK")
    occ = run.state(CASCADE).occurrence
    run.stop()
    run = start_service(cfg, before=("door-open", "Z1"))
    st = run.state(CASCADE)
    assert st.state.value == "UNACK" and st.active and st.occurrence == occ
    # several more cycles with the door still open: still the same occurrence
    cycles = run.call(lambda: run.svc.cycles)
    assert wait_for(lambda: run.call(lambda: run.svc.cycles) >= cycles + 4)
    assert run.state(CASCADE).occurrence == occ
    run.stop()
    triggers = [p for p in receiver.pages if CASCADE in json.dumps(p)
                and (p.get("event_action") or p.get("action")) == "trigger"]
    assert len(triggers) == 1


def test_second_service_on_one_database_is_refused(tmp_path):
    db = str(tmp_path / "x.db")
    lock = ServiceLock(db)
    lock.acquire()
    try:
        with pytest.raises(ServiceLocked, match=r"another service \(pid \d+\) owns"):
            ServiceLock(db).acquire()
    finally:
        lock.release()
    ServiceLock(db).acquire()  # free again once released


def test_failed_reads_are_never_values(start_service):
    """A dead device yields comm quality with no value, and a comm alarm."""
    run = start_service()
    cfg = run.cfg
    run.call(run.sim.set_scenario, "offline", "DP-1")
    assert wait_for(lambda: run.state("DP-1:comm").active)
    run.stop()
    with Store(cfg.db_path, readonly=True) as store:
        rows = [r for r in store.iter_samples(0, now_ms() + 1)
                if r.point == "DP-1.dp" and r.quality == int(Quality.COMM)]
    assert rows and all(r.value is None for r in rows)


def test_sample_model_good_flag():
    assert not Sample("p", 1, None, Quality.COMM).good
    assert not Sample("p", 1, float("nan")).good
    assert Sample("p", 1, 0.0).good


def test_systemd_ready_and_watchdog_after_a_full_cycle(tmp_path, monkeypatch, start_service):
    """Under systemd (NOTIFY_SOCKET set) READY=1 comes after the first committed cycle and
    WATCHDOG=1 every cycle; a real datagram socket plays systemd."""
    import socket

    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(DEADLINE_S)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    run = start_service()
    first = sock.recv(64).decode()
    assert first == "READY=1"
    assert run.call(lambda: run.svc.cycles) >= 1
    assert sock.recv(64).decode() == "WATCHDOG=1"
    run.stop()
    sock.close()


def test_mode_change_is_state_in_the_database_and_audited(start_service):
    run = start_service()
    cfg = run.cfg
    reply = request(cfg.db_path, {"action": "mode", "zone": "Z1", "mode": "at_rest",
                                  "reason": "end of shift clean-down"})
    assert reply["ok"] and "at_rest" in reply["message"]
    assert run.call(lambda: run.svc.modes["Z1"][0]) == "at_rest"
    with pytest.raises(ActionRefused, match="unknown zone"):
        request(cfg.db_path, {"action": "mode", "zone": "NOPE", "mode": "at_rest",
                              "reason": "typo"})
    run.stop()
    with Store(cfg.db_path, readonly=True) as store:
        assert store.zone_modes()["Z1"]["mode"] == "at_rest"
    rows = _audit(cfg.db_path, "mode")
    assert rows and rows[-1][1] == "Z1" and rows[-1][2] == "end of shift clean-down"
