"""The broker and the recorder of every campus test (tests/fixtures/campus.py)."""

from __future__ import annotations

import signal

import pytest

from tests.fixtures.campus import Recorder
from tests.fixtures.mqtt import MOSQUITTO, Broker


@pytest.fixture
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (Debian package 'mosquitto'; .ci/run installs it)")
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def recorder(broker):
    r = Recorder(broker.port)
    yield r
    r.close()


@pytest.fixture
def procs():
    """Every uplink process a test starts, killed at the end whatever happened (a stopped
    one is continued first, so the kill is delivered)."""
    started: list = []
    yield started
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
        p.wait(30)
