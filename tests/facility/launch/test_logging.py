"""The log of `facility run` and `facility demo` is readable: INFO lines of the facility,
no pymodbus frames (hex dumps at DEBUG) unless --verbose asks for them."""

from __future__ import annotations

import logging

import pytest

from facility.launch import configure_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level,
             {n: logging.getLogger(n).level for n in ("pymodbus", "asyncio", "apscheduler")})
    yield
    for h in root.handlers[:]:
        if h not in saved[0]:
            root.removeHandler(h)
            h.close()
    for h in saved[0]:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("verbose", [False, True])
def test_protocol_dumps_only_when_verbose(tmp_path, restore_logging, verbose):
    path = tmp_path / "demo.log"
    configure_logging(str(path), verbose=verbose)
    frames = logging.getLogger("pymodbus.logging")  # where pymodbus writes its frames
    frames.debug("send: 0x0 0x1 0x0 0x0 0x0 0x6 0x1 0x3 0x0 0x0 0x0 0xa")
    frames.error("Connection to (127.0.0.1, 15044) failed: timeout")  # the poller says it once
    logging.getLogger("facility.launch").info("demo story at 2 s: 1/3 door")
    logging.getLogger("sensors.poller").debug("poll plan: 31 connections")
    for h in logging.getLogger().handlers:
        h.flush()
    text = path.read_text()
    assert "demo story at 2 s" in text
    assert ("0x0 0x1" in text) is verbose and ("poll plan" in text) is verbose, text
    assert ("failed: timeout" in text) is verbose, text
