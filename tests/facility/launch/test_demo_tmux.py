"""The real `facility demo` in a real terminal (tmux): the story arrives on screen, an
acknowledgement typed in the TUI reaches the service with the login and the reason, and
`q` quits everything."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from facility.service.socket import current_login

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def _screen(session: str) -> str:
    return _tmux("capture-pane", "-p", "-t", session)


def _wait_screen(session: str, predicate, timeout_s: float = 90.0) -> str:
    end = time.monotonic() + timeout_s
    text = _screen(session)
    while not predicate(text) and time.monotonic() < end:
        time.sleep(0.5)
        text = _screen(session)
    return text


def test_demo_in_tmux(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed; `.ci/run` installs it (apt-get install tmux)")
    config = tmp_path / "config.toml"
    config.write_text((ROOT / "config.toml").read_text())
    session = f"demo-{uuid.uuid4().hex[:8]}"
    cmd = f"cd {tmp_path} && {sys.executable} -m facility demo --config {config}; sleep 5"
    _tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd)
    try:
        text = _wait_screen(session, lambda t: "MEC-LITHO" in t and "Overview" in t)
        assert "MEC-LITHO" in text and "MARS-LINE1" in text, text
        # the gas alarm of the story arrives (about 25 s in)
        _tmux("send-keys", "-t", session, "2")
        text = _wait_screen(session, lambda t: "MEC-GD-04:gas_high" in t)
        assert "MEC-GD-04:gas_high" in text and "UNACK" in text, text
        # select it and acknowledge through the modal, as the OS login
        acked = _ack_selected(session, "MEC-GD-04:gas_")
        db = tmp_path / "var" / "demo" / "facility.db"
        out = _wait_json_alarm(config, db, acked)
        assert out["ack_by"] == current_login()
        assert out["ack_reason"] == "leak test acknowledged in tmux"
        _tmux("send-keys", "-t", session, "q")
        text = _wait_screen(session, lambda t: "demo stopped" in t)
        assert "demo stopped" in text, text
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


ALARM_ROW = re.compile(r"^\s*(crit|high|med|low)\w*\s+(UNACK|ACKED|RTNUN)\s")


def _ack_selected(session: str, alarm_part: str, timeout_s: float = 90.0) -> str:
    """Move the cursor onto the alarm, press `a`, type the reason, confirm.

    The story keeps raising alarms, so the list can reorder between reading the screen and
    the keys arriving: the modal's title says which alarm was opened, and a wrong one is
    cancelled and the selection tried again.
    """
    end = time.monotonic() + timeout_s
    while True:
        text = _screen(session)
        rows = [ln for ln in text.splitlines() if ALARM_ROW.match(ln)]
        target = next(i for i, ln in enumerate(rows) if alarm_part in ln)
        # one write: the terminal delivers the keys in order and the TUI handles them in order
        _tmux("send-keys", "-t", session, "Home", *["Down"] * target, "a")
        modal = _wait_screen(session, lambda t: "reason" in t.lower())
        assert current_login() in modal, modal
        title = next(ln for ln in modal.splitlines() if "Acknowledge " in ln)
        acked = title.split("Acknowledge ", 1)[1].split()[0]
        if acked.startswith(alarm_part):  # one of the story's gas alarms
            break
        assert time.monotonic() < end, f"never opened {alarm_part}: {modal}"
        _tmux("send-keys", "-t", session, "Escape")
        _wait_screen(session, lambda t: "reason (required)" not in t.lower())
    _tmux("send-keys", "-t", session, "-l", "leak test acknowledged in tmux")
    _tmux("send-keys", "-t", session, "Enter")
    return acked


def _wait_json_alarm(config: Path, db: Path, alarm: str, timeout_s: float = 90.0) -> dict:
    """`facility alarms --json` on the demo database (a config pointing at it)."""
    cfg = config.parent / "demo-reader.toml"
    text = config.read_text().replace('path = "var/facility.db"', f'path = "{db}"')
    cfg.write_text(text)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        run = subprocess.run([sys.executable, "-m", "facility", "alarms", "--json", "--config",
                              str(cfg)], capture_output=True, text=True, cwd=ROOT)
        for line in run.stdout.splitlines():
            obj = json.loads(line)
            if obj["id"] == alarm and obj["ack_by"]:
                return obj
        time.sleep(0.5)
    raise AssertionError(f"{alarm} was never acknowledged: {run.stdout[-2000:]} {run.stderr}")
