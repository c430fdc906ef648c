"""The real `facility demo` in a real terminal (tmux): the story arrives on screen, one step
after another (door, then particles, then gas, each announced and each alarm detected
before the next), an acknowledgement typed in the TUI reaches the service with the login
and the reason, `facility pages --demo` lists what the on-call engineer was sent, the log
has no protocol dumps, and `q` quits everything."""

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
from facility.store import Store
from tests.fixtures.terminal import screen, tmux, wait_screen
from tests.fixtures.wait import wait_for

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def test_demo_in_tmux(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed; `.ci/run` installs it (apt-get install tmux)")
    config = tmp_path / "config.toml"
    config.write_text((ROOT / "config.toml").read_text())
    session = f"demo-{uuid.uuid4().hex[:8]}"
    cmd = f"cd {tmp_path} && {sys.executable} -m facility demo --config {config}; sleep 5"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd)
    db = tmp_path / "var" / "demo" / "facility.db"
    try:
        # each step is announced on screen as it starts (watched from the start: an
        # announcement stays 20 s), in the story's order
        seen: list[str] = []
        text = _watch(session, seen, lambda t: "MEC-LITHO" in t and ("Overview" in t
                                                                     or "Ovw" in t))
        assert "MEC-LITHO" in text and "MARS-LINE1" in text, text
        tmux("send-keys", "-t", session, "2")
        text = _watch(session, seen, lambda t: len(seen) == len(ANNOUNCED)
                      and "MEC-GD-04:gas_high" in t, timeout_s=180.0)
        assert seen == list(ANNOUNCED), (seen, text)
        assert "MEC-GD-04:gas_high" in text and "UNACK" in text, text
        # the alarms were detected in the story's order, one after another
        firsts = _wait_story_detected(db)
        door, particle, gas = (firsts[k] for k in STORY)
        assert door + 1000 < particle and particle + 1000 < gas, firsts
        # select it and acknowledge through the modal, as the OS login
        acked = _ack_selected(session, "MEC-GD-04:gas_")
        out = _wait_json_alarm(config, db, acked)
        assert out["ack_by"] == current_login()
        assert out["ack_reason"] == "leak test acknowledged in tmux"
        # what the on-call engineer received
        page = _wait_page(config, "MEC-GD-04:gas_high#1")
        assert page["channel"] == "demo-inbox" and page["priority"] == "critical", page
        assert "Gas-cabinet room" in page["text"], page
        # a readable log: INFO lines of the facility, no pymodbus frames or debug lines
        log = (db.parent / "demo.log").read_text()
        assert "demo story at" in log and "pymodbus" not in log and " DEBUG " not in log, log
        tmux("send-keys", "-t", session, "q")
        text = wait_screen(session, lambda t: "demo stopped" in t)
        assert "demo stopped" in text, text
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


ANNOUNCED = ("1/3 door", "2/3 particles", "3/3 gas")


def _watch(session: str, seen: list[str], predicate, timeout_s: float = 90.0) -> str:
    """Poll the screen until ``predicate``; note in ``seen`` each announcement (ANNOUNCED)
    the first time it shows."""
    last = [""]

    def shown() -> bool:
        last[0] = text = screen(session)
        seen.extend(m for m in ANNOUNCED if m in text and m not in seen)
        return predicate(text)
    wait_for(shown, timeout_s, step_s=0.5)
    return last[0]
# the alarms of each step: the lithography bay's cascade, counter MEC-PC-01, detector MEC-GD-04
STORY = {"door": ("MEC-LITHO.", "MEC-DP-01"), "particle": ("MEC-PC-01.pc_",),
         "gas": ("MEC-GD-04:gas",)}


def _wait_story_detected(db: Path, timeout_s: float = 90.0) -> dict[str, int]:
    """When the first alarm of each step was detected (UTC ms), from the demo's events."""
    firsts: dict[str, int] = {}

    def detected() -> bool:
        with Store(str(db), readonly=True) as store:
            raises = [e for e in store.events() if e["event"] == "raise"]
        for step, prefixes in STORY.items():
            times = [e["detected_ms"] or e["ts_ms"] for e in raises
                     if e["alarm_id"].startswith(prefixes)]
            if times:
                firsts[step] = min(times)
        return len(firsts) == len(STORY)
    assert wait_for(detected, timeout_s, step_s=0.5), f"story alarms missing: {firsts}"
    return firsts


def _wait_page(config: Path, alarm: str, timeout_s: float = 90.0) -> dict:
    """The trigger page of ``alarm`` as `facility pages --demo --json` lists it, once sent."""
    last: dict = {}

    def paged():
        run = last["run"] = subprocess.run(
            [sys.executable, "-m", "facility", "pages", "--demo", "--json", "--limit", "0",
             "--config", str(config)], capture_output=True, text=True, cwd=ROOT)
        return next((obj for obj in map(json.loads, run.stdout.splitlines())
                     if obj["alarm"] == alarm and obj["event"] == "trigger"
                     and obj["delivery"] == "sent"), None)
    found = wait_for(paged, timeout_s, step_s=0.5)
    assert found, f"{alarm} was never paged: {last['run'].stdout[-2000:]} {last['run'].stderr}"
    return found


ALARM_ROW = re.compile(r"^\s*(crit|high|med|low)\w*\s+(UNACK|ACKED|RTNUN)\s")


def _ack_selected(session: str, alarm_part: str, timeout_s: float = 90.0) -> str:
    """Move the cursor onto the alarm, press `a`, type the reason, confirm.

    The story keeps raising alarms, so the list can reorder between reading the screen and
    the keys arriving: the modal's title says which alarm was opened, and a wrong one is
    cancelled and the selection tried again.
    """
    end = time.monotonic() + timeout_s
    while True:
        text = screen(session)
        rows = [ln for ln in text.splitlines() if ALARM_ROW.match(ln)]
        target = next(i for i, ln in enumerate(rows) if alarm_part in ln)
        # one write: the terminal delivers the keys in order and the TUI handles them in order;
        # Up to the first row (a DataTable's Home scrolls left, it does not move the cursor)
        tmux("send-keys", "-t", session, *["Up"] * (len(rows) + 1), *["Down"] * target, "a")
        modal = wait_screen(session, lambda t: "reason" in t.lower())
        assert current_login() in modal, modal
        title = next(ln for ln in modal.splitlines() if "Acknowledge " in ln)
        acked = title.split("Acknowledge ", 1)[1].split()[0]
        if acked.startswith(alarm_part):  # one of the story's gas alarms
            break
        assert time.monotonic() < end, f"never opened {alarm_part}: {modal}"
        tmux("send-keys", "-t", session, "Escape")
        wait_screen(session, lambda t: "reason (required)" not in t.lower())
    tmux("send-keys", "-t", session, "-l", "leak test acknowledged in tmux")
    tmux("send-keys", "-t", session, "Enter")
    return acked


def _wait_json_alarm(config: Path, db: Path, alarm: str, timeout_s: float = 90.0) -> dict:
    """`facility alarms --json` on the demo database (a config pointing at it)."""
    cfg = config.parent / "demo-reader.toml"
    text = config.read_text().replace('path = "var/facility.db"', f'path = "{db}"')
    cfg.write_text(text)
    last: dict = {}

    def acked():
        run = last["run"] = subprocess.run(
            [sys.executable, "-m", "facility", "alarms", "--json", "--config", str(cfg)],
            capture_output=True, text=True, cwd=ROOT)
        return next((obj for obj in map(json.loads, run.stdout.splitlines())
                     if obj["id"] == alarm and obj["ack_by"]), None)
    found = wait_for(acked, timeout_s, step_s=0.5)
    assert found, (f"{alarm} was never acknowledged: {last['run'].stdout[-2000:]}"
                   f" {last['run'].stderr}")
    return found
