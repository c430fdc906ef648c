"""`facility backtest` on the shipped configuration, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "facility", "backtest", *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_backtest_json_on_shipped_config(tmp_path):
    csv = tmp_path / "s.csv"
    # MEC-PC-01 is in the ISO 5 litho bay: 0.5 um action limit 3 520 /m3, alert 0.7 x.
    csv.write_text("ts,point,value\n"
                   "1700000000,MEC-PC-01.pc_0_5um,100\n"
                   "1700000060,MEC-PC-01.pc_0_5um,3000\n"
                   "1700000120,MEC-PC-01.pc_0_5um,4000\n"
                   "1700000180,MEC-PC-01.pc_0_5um,100\n"
                   "1700000180,MEC-TH-01.temperature,21\n")
    run = _run("--samples", str(csv), "--json")
    assert run.returncode == 0, run.stderr
    got = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(g["limit"], g["event"]) for g in got] == [
        ("alert_high", "raise"), ("action_high", "raise"),
        ("action_high", "clear"), ("alert_high", "clear")]
    assert got[1]["onset"] == "2023-11-14T22:15:20.000Z" and got[1]["value"] == 4000.0
    # "what if the alert level had been 90 % of action?": 3 000 no longer alerts
    run = _run("--samples", str(csv), "--json", "--alert-fraction", "0.9")
    got = [json.loads(line) for line in run.stdout.splitlines()]
    assert got[0]["limit"] == "action_high" and got[0]["event"] == "raise"


def test_backtest_bad_input_is_one_line(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("ts,point,value\n1700000000,NOPE.x,1\n")
    run = _run("--samples", str(csv))
    assert run.returncode == 2 and "NOPE.x" in run.stderr
    assert "Traceback" not in run.stderr and run.stderr.strip().count("\n") == 0
    run = _run("--samples", str(tmp_path / "missing.csv"))
    assert run.returncode == 2 and "not found" in run.stderr
