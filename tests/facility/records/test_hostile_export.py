"""Hostile text in an export: CSV formula cells neutralised (and still verified), HTML escaped.

Reasons, logins, names and limit sources are typed by people; an auditor opens the CSVs in
a spreadsheet and report.html in a browser. A real store is filled with formula-like and
markup-like text, exported, and every text cell of every CSV and the report are checked.
"""

from __future__ import annotations

import csv
import json

import pytest

from facility.config import load_config
from facility.domain.model import Sample
from facility.domain.text import FORMULA_PREFIXES, restore_cell
from facility.records.export import NUMERIC_COLUMNS, ExportRequest, export
from facility.records.verify import verify_export
from facility.store import Cycle, Store
from tests.fixtures.export import MIN, build, key_file

ACTOR = '=HYPERLINK("http://evil.example/","<b>click</b>")'
REASON = "=cmd|' /C calc'!A0"
AUDIT = {"action": "comment", "actor": "@SUM(1+1)", "subject": "-2+3",
         "reason": "+1+1 <script>alert('audit')</script>"}
SOURCE = '\tzones[Z1] "</td><script>alert(1)</script>'
FACILITY = "<script>alert('facility')</script>"
ZONE_NAME = "<img src=x onerror=alert('zone')>"
SITE_NAME = "'quoted & <b>bold</b>"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    _kpath, key = key_file(tmp)
    cfg, db, t0 = build(tmp, key=key, minutes=30)
    alarm = "Z1.dp_cascade:action_low"
    with Store(db, key=key) as store:
        ts = t0 + 26 * MIN
        store.write_cycle(Cycle(
            samples=[Sample("DP-1.dp", ts + 5_000, -3.5)],  # between the fixture's samples
            events=[{"alarm_id": alarm, "occurrence": 2, "event": "raise", "state_from": "NORM",
                     "state_to": "UNACK", "ts_ms": ts, "detected_ms": ts, "value": -3.5,
                     "limit": 10.0, "source": SOURCE},
                    {"alarm_id": alarm, "occurrence": 2, "event": "ack", "state_from": "UNACK",
                     "state_to": "ACKED", "ts_ms": ts + 1000, "actor": ACTOR, "reason": REASON}],
            audit=[dict(AUDIT)]))
        from hazmat import ledger

        ledger.receive(store.conn, cfg.hazmat, actor="engineer", container="IPA-0002",
                       substance="ipa", quantity=5.0, unit="L", store="DGS",
                       compartment="flammables", reason="=1+2 delivery", key=key,
                       ts_ms=t0 + 31 * MIN)
    text = (tmp / "config.toml").read_text()
    text = text.replace('name = "Export test site"', f"name = {json.dumps(FACILITY)}", 1)
    text = text.replace('[[zones]]\nid = "Z1"\n', f'[[zones]]\nid = "Z1"\nname = {json.dumps(ZONE_NAME)}\n', 1)
    text = text.replace('[[sites]]\nid = "S"\n', f'[[sites]]\nid = "S"\nname = {json.dumps(SITE_NAME)}\n', 1)
    (tmp / "config.toml").write_text(text)
    cfg = load_config(str(tmp / "config.toml"))
    out = tmp / "exp"
    with Store(db, readonly=True) as store:
        export(cfg, store, ExportRequest(0, 2**42, str(out), key=key))
    return out, key


def _rows(folder, name):
    with open(folder / name, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("name", sorted(NUMERIC_COLUMNS))
def test_no_text_cell_starts_a_formula(exported, name):
    rows = _rows(exported[0], name)
    assert rows
    for row in rows:
        for col, cell in row.items():
            if col not in NUMERIC_COLUMNS[name]:
                assert not cell.startswith(FORMULA_PREFIXES), (name, col, cell)


def test_hostile_cells_are_neutralised_and_restorable(exported):
    folder = exported[0]
    acks = [r for r in _rows(folder, "events.csv") if r["event"] == "ack" and r["occurrence"] == "2"]
    assert [(r["actor"], r["reason"]) for r in acks] == [("'" + ACTOR, "'" + REASON)]
    assert restore_cell(acks[0]["actor"]) == ACTOR and restore_cell(acks[0]["reason"]) == REASON
    (raised,) = [r for r in _rows(folder, "events.csv") if r["event"] == "raise"
                 and r["occurrence"] == "2"]
    assert raised["source"] == "'" + SOURCE and raised["value"] == "-3.5"  # a number stays one
    (row,) = [r for r in _rows(folder, "alarms.csv") if r["occurrence"] == "2"]
    assert row["acknowledged_by"] == "'" + ACTOR and row["ack_reason"] == "'" + REASON
    (audit,) = [r for r in _rows(folder, "audit.csv") if r["action"] == "comment"]
    assert {k: restore_cell(audit[k]) for k in AUDIT} == AUDIT
    assert audit["actor"] == "'@SUM(1+1)" and audit["subject"] == "'-2+3"
    assert any(r["value"] == "-3.5" for r in _rows(folder, "samples.csv"))
    (moved,) = [r for r in _rows(folder, "hazmat_ledger.csv") if r["container_id"] == "IPA-0002"]
    assert moved["reason"] == "'=1+2 delivery" and moved["quantity"] == "5.0"


def test_neutralised_export_still_verifies(exported):
    folder, key = exported
    res = verify_export(str(folder), key)
    assert res.ok, res.problem


def test_report_escapes_every_hostile_text(exported):
    html = (exported[0] / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "<b>" not in html
    assert "&lt;script&gt;alert(&#x27;facility&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(&#x27;zone&#x27;)&gt;" in html
