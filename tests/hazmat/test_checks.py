"""run_checks and the CLI command functions on the shipped config and a real SQLite file."""

from __future__ import annotations

import sqlite3

import pytest

from facility.config import load_config
from facility.domain.model import Quality, Sample
from hazmat import ledger
from hazmat.checks import run_checks
from hazmat.classes import HazmatError
from hazmat.commands import cmd_check, cmd_issue, cmd_move, cmd_receive, cmd_stock

CFG = load_config("config.toml")


@pytest.fixture
def conn(tmp_path):
    c = sqlite3.connect(tmp_path / "f.db", isolation_level=None, timeout=30)
    ledger.ensure_schema(c)
    yield c
    c.close()


def rx(conn, cid, sub, qty, unit, store, comp):
    return cmd_receive(CFG, conn, "alice", cid, sub, qty, unit, store, comp, "delivery")


def test_empty_ledger_has_no_problems(conn):
    lines, code = cmd_check(CFG, conn)
    assert (lines, code) == (["no problems found"], 0)


def test_chlorine_beside_silane_is_reported_separated_from(conn):
    rx(conn, "CYL-1", "silane", 47.0, "L_wc", "MEC-GAS-STORE", "spare-rack")
    out = rx(conn, "CYL-2", "chlorine", 10.0, "L_wc", "MEC-GAS-STORE", "spare-rack")
    assert any("separated from" in line and line.startswith("warning: ACTION") for line in out)
    (f,) = [f for f in run_checks(CFG, conn) if f.kind == "segregation"]
    assert (f.severity, f.store) == ("action", "MEC-GAS-STORE")
    assert "chlorine (class 5.1)" in f.message and "silane (class 2.1)" in f.message
    lines, code = cmd_check(CFG, conn)
    assert code == 1 and lines[0].startswith("ACTION MEC-GAS-STORE segregation:")
    cmd_move(CFG, conn, "bob", "CYL-2", "MEC-GAS-STORE", "GC-03", "segregate")
    assert [f for f in run_checks(CFG, conn) if f.kind == "segregation"] == []


def test_peroxide_beside_ipa_and_acid(conn):
    rx(conn, "B1", "ipa", 20.0, "L", "MEC-DGS-1", "flammables")
    rx(conn, "B2", "hydrogen-peroxide", 5.0, "L", "MEC-DGS-1", "flammables")  # 5.1 + 3: code 2
    rx(conn, "B3", "sulfuric-acid", 5.0, "L", "MEC-DGS-1", "corrosives")
    rx(conn, "B4", "hf-acid", 5.0, "L", "MEC-DGS-1", "corrosives")  # 8 + 8/6.1: compatible
    seg = [f for f in run_checks(CFG, conn) if f.kind == "segregation"]
    assert [(f.severity, f.subject) for f in seg] == [("action", "flammables:hydrogen-peroxide+ipa")]


def test_licence_alert_and_action_through_the_ledger(conn):
    rx(conn, "D1", "ipa", 200.0, "L", "MEC-DGS-1", "flammables")
    rx(conn, "D2", "acetone", 120.0, "L", "MEC-DGS-1", "flammables")  # 320 of 400: 80 %
    (f,) = run_checks(CFG, conn)
    assert (f.severity, f.kind, f.subject) == ("alert", "licence", "3")
    out = rx(conn, "D3", "acetone", 81.0, "L", "MEC-DGS-1", "flammables")  # 401 > 400
    assert any("over the licensed maximum" in line for line in out)
    assert [(f.severity, f.kind) for f in run_checks(CFG, conn)] == [("action", "licence")]
    cmd_issue(CFG, conn, "bob", "D3", 2.0, "L", "cleaning")
    assert [(f.severity, f.kind) for f in run_checks(CFG, conn)] == [("alert", "licence")]


def test_class_not_on_the_licence_counts_against_exempt(conn):
    # MEC-GAS-STORE is licensed for 2.1 and 2.3 only; IPA there is unlicensed class 3:
    # industrial premises, 150 L exempt
    rx(conn, "X1", "ipa", 151.0, "L", "MEC-GAS-STORE", "spare-rack")
    assert [(f.severity, f.kind, f.subject) for f in run_checks(CFG, conn)] == [("action", "exempt", "3")]


def test_store_monitor_snapshot(conn):
    latest = {"MEC-DGM-01.temperature": Sample("MEC-DGM-01.temperature", 0, 38.5),
              "MEC-DGM-01.exhaust_flow": (0.0, Quality.GOOD),
              "MEC-DGM-01.leak": (1.0, Quality.GOOD),
              "MEC-DGM-01.door": (None, Quality.COMM)}
    got = {(f.severity, f.kind) for f in run_checks(CFG, conn, latest)}
    assert got == {("action", "temperature"), ("action", "exhaust"), ("action", "leak"),
                   ("info", "sensor")}
    ok = {"MEC-DGM-01.temperature": (25.0, 0), "MEC-DGM-01.exhaust_flow": (300.0, 0),
          "MEC-DGM-01.leak": (0.0, 0), "MEC-DGM-01.door": (0.0, 0)}
    assert run_checks(CFG, conn, ok) == []


def test_cmd_stock_and_refusal(conn):
    rx(conn, "B1", "ipa", 20.0, "L", "MEC-DGS-1", "flammables")
    lines = cmd_stock(CFG, conn)
    assert lines[0] == "MEC-DGS-1 (industrial premises, licence DG-LIC-MEC-0001)"
    assert any("B1" in ln and "ipa" in ln and "20 L" in ln for ln in lines)
    assert "  class 3: 20 of 400 L (5%)" in lines
    with pytest.raises(HazmatError, match="holds 20 L; nothing was issued"):
        cmd_issue(CFG, conn, "bob", "B1", 25, "L", "too much")
