"""The service end to end: simulator -> pollers -> engine -> lifecycle -> store -> paging.

Real parts only: a pymodbus simulator on ephemeral loopback ports, a real SQLite file,
a real HTTP receiver for pages and heartbeats, the real Unix socket for operator actions.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from facility.domain.model import Quality, Sample, now_ms
from facility.service.health import ServiceLock, ServiceLocked
from facility.service.service import Service
from facility.service.socket import ActionRefused, current_login, request
from facility.store import Store
from sensors.simulator import Simulator
from tests.fixtures.service import Receiver, make_config, wait_for

CASCADE = "Z1.dp_cascade:action_low"
ROOT = Path(__file__).resolve().parents[3]


class Running:
    """Simulator + service on an event loop in a thread, so tests can block and poll."""

    def __init__(self, cfg, before=None):
        self.cfg = cfg
        self.before = before  # (scenario, device) set before the service starts
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.error = None

    def _main(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._run())
        except BaseException as exc:  # surfaced by the test
            self.error = exc
            self.ready.set()

    async def _run(self):
        self.sim = Simulator(self.cfg, ephemeral=True, record_s=2)
        await self.sim.start()
        if self.before:
            self.sim.set_scenario(*self.before)
        self.svc = Service(self.sim.client_config(self.cfg), cycle_s=0.5)
        self.task = asyncio.create_task(self.svc.run())
        while self.svc.cycles < 2 and not self.task.done():
            await asyncio.sleep(0.05)
        if self.task.done():
            self.task.result()  # raise the start-up error in _main
        self.ready.set()
        await self.task
        await self.sim.stop()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(90), "service did not start"
        if self.error:
            raise self.error
        return self

    def call(self, fn, *args):
        """Run ``fn`` on the service's loop (scenarios, state peeks)."""
        done = threading.Event()
        box = {}

        def run():
            try:
                box["v"] = fn(*args)
            except BaseException as exc:  # re-raised in the test's thread
                box["e"] = exc
            done.set()

        self.loop.call_soon_threadsafe(run)
        assert done.wait(20), "the service loop did not answer within 20 s"
        if "e" in box:
            raise box["e"]
        return box.get("v")

    def state(self, aid):
        return self.call(lambda: self.svc.book.states[aid])

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.svc.stopping.set)
        self.thread.join(60)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _audit(db, action):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT actor, subject, reason FROM audit WHERE action=? ORDER BY id",
                            (action,)).fetchall()
    finally:
        conn.close()


def test_door_open_pages_ack_recovers_and_resolves(tmp_path, receiver):
    cfg = make_config(tmp_path, receiver.url)
    with Running(cfg) as run:
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
    with Store(cfg.db_path, readonly=True) as store:
        row = next(r for r in store.alarms() if r["id"] == CASCADE)
        assert row["ack_reason"] == "door held for a pallet transfer"
        events = [e["event"] for e in store.events(alarm_id=CASCADE)]
        assert events[:3] == ["raise", "ack", "clear"]
        assert store.verify_audit().ok
    acks = _audit(cfg.db_path, "ack")
    assert acks and acks[-1][2] == "door held for a pallet transfer"
    assert acks[-1][1] == f"{CASCADE}#{occ}"


def test_gas_leak_is_critical_and_never_mode_suppressed(tmp_path, receiver):
    cfg = make_config(tmp_path, receiver.url)
    with Running(cfg) as run:
        run.call(run.sim.set_scenario, "gas-leak", "GD-1")
        aid = "GD-1:gas_high"
        assert wait_for(lambda: run.state(aid).state.value == "UNACK")
        st = run.state(aid)
        assert st.critical and st.priority == "critical"
        assert wait_for(lambda: any(
            (p.get("severity") or p.get("payload", {}).get("severity")) == "critical"
            for p in receiver.pages if aid in json.dumps(p)))


def test_operator_identity_role_and_stale_occurrence_are_refused_and_audited(tmp_path, receiver):
    cfg = make_config(tmp_path, receiver.url)
    with Running(cfg) as run:
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


def test_restart_restores_alarm_states_without_re_raising(tmp_path, receiver):
    cfg = make_config(tmp_path, receiver.url)
    with Running(cfg) as run:
        run.call(run.sim.set_scenario, "door-open", "Z1")
        assert wait_for(lambda: run.state(CASCADE).state.value == "UNACK")
        occ = run.state(CASCADE).occurrence
    with Running(cfg, before=("door-open", "Z1")) as run:
        st = run.state(CASCADE)
        assert st.state.value == "UNACK" and st.active and st.occurrence == occ
        # several more cycles with the door still open: still the same occurrence
        cycles = run.call(lambda: run.svc.cycles)
        assert wait_for(lambda: run.call(lambda: run.svc.cycles) >= cycles + 4)
        assert run.state(CASCADE).occurrence == occ
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


def test_failed_reads_are_never_values(tmp_path, receiver):
    """A dead device yields comm quality with no value, and a comm alarm."""
    cfg = make_config(tmp_path, receiver.url)
    with Running(cfg) as run:
        run.call(run.sim.set_scenario, "offline", "DP-1")
        assert wait_for(lambda: run.state("DP-1:comm").active, timeout_s=30)
    with Store(cfg.db_path, readonly=True) as store:
        rows = [r for r in store.iter_samples(0, now_ms() + 1)
                if r.point == "DP-1.dp" and r.quality == int(Quality.COMM)]
    assert rows and all(r.value is None for r in rows)


def test_sample_model_good_flag():
    assert not Sample("p", 1, None, Quality.COMM).good
    assert not Sample("p", 1, float("nan")).good
    assert Sample("p", 1, 0.0).good


def test_systemd_ready_and_watchdog_after_a_full_cycle(tmp_path, receiver, monkeypatch):
    """Under systemd (NOTIFY_SOCKET set) READY=1 comes after the first committed cycle and
    WATCHDOG=1 every cycle; a real datagram socket plays systemd."""
    import socket

    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    cfg = make_config(tmp_path, receiver.url)
    with Running(cfg) as run:
        first = sock.recv(64).decode()
        assert first == "READY=1"
        assert run.call(lambda: run.svc.cycles) >= 1
        assert sock.recv(64).decode() == "WATCHDOG=1"
    sock.close()


def test_mode_change_is_state_in_the_database_and_audited(tmp_path, receiver):
    cfg = make_config(tmp_path, receiver.url)
    with Running(cfg) as run:
        reply = request(cfg.db_path, {"action": "mode", "zone": "Z1", "mode": "at_rest",
                                      "reason": "end of shift clean-down"})
        assert reply["ok"] and "at_rest" in reply["message"]
        assert run.call(lambda: run.svc.modes["Z1"][0]) == "at_rest"
        with pytest.raises(ActionRefused, match="unknown zone"):
            request(cfg.db_path, {"action": "mode", "zone": "NOPE", "mode": "at_rest",
                                  "reason": "typo"})
    with Store(cfg.db_path, readonly=True) as store:
        assert store.zone_modes()["Z1"]["mode"] == "at_rest"
    rows = _audit(cfg.db_path, "mode")
    assert rows and rows[-1][1] == "Z1" and rows[-1][2] == "end of shift clean-down"
