"""Crash safety: SIGKILL the real `facility run --headless` repeatedly while it polls and
writes; after each restart the database is intact, the audit chain verifies, committed
samples are still there, active alarms are still active, and the dead-man's switch (a
loopback receiver of heartbeats) sees the gap."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sensors.simulator import Simulator
from tests.fixtures.service import Receiver, config_text, make_config, wait_for

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


class SimThread:
    """The simulator on its own loop, ports bound before the service config is written."""

    def __init__(self, cfg, scenario=None):
        self.loop = asyncio.new_event_loop()
        self.cfg = cfg
        self.scenario = scenario
        self.ready = threading.Event()
        threading.Thread(target=self._main, daemon=True).start()
        assert self.ready.wait(30)

    def _main(self):
        asyncio.set_event_loop(self.loop)
        self.sim = Simulator(self.cfg, ephemeral=True, record_s=2)
        self.loop.run_until_complete(self.sim.start())
        if self.scenario:
            self.sim.set_scenario(*self.scenario)
        self.ready.set()
        self.loop.run_forever()

    def port(self, cfg_port):
        return self.sim.bound[cfg_port]

    def stop(self):
        fut = asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop)
        fut.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def _q(db, sql, args=()):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _samples(db):
    total = 0
    for f in sorted(Path(db + ".d").glob("samples-*.db")):
        total += _q(str(f), "SELECT count(*) FROM samples")[0][0]
    return total


def test_sigkill_loses_nothing_committed(tmp_path):
    receiver = Receiver()
    base = make_config(tmp_path, receiver.url)
    sim = SimThread(base, scenario=("door-open", "Z1"))
    try:
        cfg_file = tmp_path / "config.toml"
        cfg_file.write_text(config_text(str(tmp_path / "fms.db"), receiver.url,
                                        dp_port=sim.port(15020), gd_port=sim.port(15021),
                                        heartbeat_s=0.5))
        db = str(tmp_path / "fms.db")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        committed = 0
        gaps = []
        for round_ in range(3):
            proc = subprocess.Popen([sys.executable, "-m", "facility", "run", "--headless",
                                     "--cycle-s", "0.5", "--config", str(cfg_file)],
                                    cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            try:
                assert wait_for(lambda: os.path.exists(db) and _alarm_active(db), 60), \
                    "service never raised the door alarm"
                if round_:  # the alarm came back from the database, not from a new raise
                    assert _occurrences(db) == 1
                assert _samples(db) >= committed
                time.sleep(1.5)  # let it poll and write
                committed = _samples(db)
                assert committed > 0
            finally:
                beats_before = len(receiver.beats)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            killed_at = time.monotonic()
            time.sleep(1.5)  # the dead-man's switch hears nothing while the service is dead
            assert len(receiver.beats) == beats_before
            gaps.append(time.monotonic() - killed_at)
            assert _q(db, "PRAGMA integrity_check")[0][0] == "ok"
            assert _samples(db) >= committed, "committed samples lost after SIGKILL"
            assert _alarm_active(db), "active alarm forgotten after SIGKILL"
            verify = subprocess.run([sys.executable, "-m", "facility", "audit", "verify",
                                     "--config", str(cfg_file)], cwd=ROOT, capture_output=True,
                                    text=True)
            assert verify.returncode == 0, verify.stdout + verify.stderr
        assert all(g >= 1.5 for g in gaps)  # each gap exceeds 2 x heartbeat_s: a switch pages
    finally:
        sim.stop()
        receiver.close()


def _alarm_active(db):
    try:
        rows = _q(db, "SELECT active FROM alarms WHERE id='Z1.dp_cascade:action_low'")
    except sqlite3.OperationalError:
        return False
    return bool(rows and rows[0][0])


def _occurrences(db):
    return _q(db, "SELECT occurrence FROM alarms WHERE id='Z1.dp_cascade:action_low'")[0][0]
