"""report.html answers the auditor: who acted (name, login, time, reason), each zone's modes,
the configuration versions in force with what changed, instrument calibration, data
completeness, an approval block, and for GMP zones compliance per mode with the EU GMP
Annex 1 grade statement (docs/ARCHITECTURE.md "Reports").

Operator actions go through the real request path (``tests.fixtures.desk``: handler, alarm
book, SQLite store with its audit chain); samples and a second configuration version through
the Store API; the report through a real export of that database.
"""

from __future__ import annotations

import re
from html import unescape

import pytest

from facility.catalogue import build_catalogue
from facility.config import parse_config
from facility.domain.model import Sample
from facility.records.export import ExportRequest, export
from facility.store import Cycle, Store
from tests.fixtures.config import device, facility_toml, operator, zone
from tests.fixtures.desk import Desk

MIN = 60_000
TEMP = "T-1.temp:action_high"
AT_REST = "PC-1.pc_0_5um:action_high@at_rest"
CHANNELS = ("pc_0_3um", "pc_0_5um", "pc_1_0um", "pc_5_0um")


def config_text(db: str, alert_fraction: float = 0.7) -> str:
    return facility_toml(
        id="t-audit", name="Audit test plant", storage={"path": db},
        zones=[zone("G1", gmp_grade="B", area_m2=10), zone("G2", gmp_grade="D", area_m2=10)],
        devices=[
            device("PC-1", 15101, zone="G1", profile="particle-counter", location="filling line",
                   calibrated_on="2026-06-10", calibration_due="2099-06-01"),
            device("PC-2", 15102, zone="G2", profile="particle-counter", location="corridor"),
            device("T-1", 15103, zone="G1", calibrated_on="2024-11-20",
                   calibration_due="2025-11-20", points=[{
                       "name": "temp", "table": "holding", "address": 0, "type": "float32",
                       "unit": "C", "quantity": "temperature",
                       "limits": {"action_high": {"limit": 25.0}}}]),
        ],
        operators=[operator("tmchan", "Chan Tai Man", ["technician"]),
                   operator("kylee", "Lee Ka Yan", ["technician", "engineer", "shelve_critical"])],
        alarms={"alert_fraction": alert_fraction})


def _samples(t: int, pc1_0_5: float) -> list[Sample]:
    out = [Sample(f"PC-1.{c}", t, pc1_0_5 if c == "pc_0_5um" else 5.0) for c in CHANNELS]
    out += [Sample(f"PC-2.{c}", t, 100_000.0) for c in CHANNELS]
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit")
    db = str(tmp / "fms.db")
    cfg = parse_config(config_text(db), base_dir=str(tmp))
    desk = Desk(cfg, db)
    store = desk.store
    store.register_points(build_catalogue(cfg).infos)
    # a second configuration version: one changed line
    cfg2 = parse_config(config_text(db, alert_fraction=0.6), base_dir=str(tmp))
    store.record_config(cfg2.text, cfg2.sha256, actor="kylee")
    # people act through the service's request path
    desk.raise_(TEMP)
    occ = desk.state(TEMP).occurrence
    for login, req in (
            ("tmchan", {"action": "ack", "reason": "seen on the floor"}),
            ("kylee", {"action": "comment", "reason": "HVAC damper reset <script>x()</script>"}),
            ("kylee", {"action": "shelve", "duration_s": 600, "reason": "probe swap"})):
        assert desk.act(login, {**req, "alarm": TEMP, "occurrence": occ})["ok"]
    assert desk.act("kylee", {"action": "mode", "zone": "G1", "mode": "at_rest",
                              "reason": "filling finished, line cleared"})["ok"]
    tm = desk.audit("mode")[-1]["ts_ms"]
    # a record from before names were recorded: an audit row under a login alone
    store.write_cycle(Cycle(audit=[{"action": "comment", "actor": "olduser",
                                    "subject": f"{TEMP}#{occ}", "reason": "legacy note"}]))
    # G1 in operation for 20 min (10 000 /m3 >= 0.5 um is within grade B's 352 000), then at
    # rest with the same 10 000 for 3 of 10 min: beyond the at-rest 3 520 (Annex 1 Table 5)
    for k in range(20):
        store.write_cycle(Cycle(samples=_samples(tm - 20 * MIN + k * MIN,
                                                 10_000.0 if k in (5, 6) else 2_000.0)))
    for k in range(10):
        store.write_cycle(Cycle(samples=_samples(tm + k * MIN,
                                                 10_000.0 if k in (3, 4, 5) else 2_000.0)))
    desk.raise_(AT_REST, at=tm + 3 * MIN + 1000)
    desk.clear(AT_REST, at=tm + 6 * MIN)
    desk.close()
    out = tmp / "exp"
    with Store(db, readonly=True) as ro:
        export(cfg, ro, ExportRequest(tm - 20 * MIN, tm + 10 * MIN, str(out)))
        export(cfg, ro, ExportRequest(tm - 20 * MIN, tm + 10 * MIN, str(tmp / "g2"), zone="G2"))
    return (out / "report.html").read_text(), (tmp / "g2" / "report.html").read_text()


def _section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, sid
    return m.group(1)


def _rows(html: str, cls: str) -> list[list[str]]:
    m = re.search(rf'<table class="{cls}">(.*?)</table>', html, re.S)
    assert m, cls
    return [[unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", r,
                                                                      re.S)]
            for r in re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S) if "<td" in r]


def _zone(html: str, zid: str) -> str:
    m = re.search(rf'<section class="zone" id="zone-{zid}">(.*?)</section>', html, re.S)
    assert m, zid
    return m.group(1)


def test_who_acted_with_name_login_time_and_reason(report):
    html = report[0]
    rows = _rows(_section(html, "operator-actions"), "actions")
    acts = {(r[1], r[3], r[5]) for r in rows}
    assert ("Chan Tai Man (tmchan)", "ack", "seen on the floor") in acts
    assert ("Lee Ka Yan (kylee)", "comment", "HVAC damper reset <script>x()</script>") in acts
    assert "<script" not in html  # operator text is data, never markup
    assert ("Lee Ka Yan (kylee)", "shelve", "probe swap") in acts
    assert ("Lee Ka Yan (kylee)", "mode", "filling finished, line cleared") in acts
    assert ("olduser", "comment", "legacy note") in acts  # no name recorded: the login
    ack = next(r for r in rows if r[3] == "ack")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", ack[0])  # local time
    assert ack[2] == "technician" and ack[4] == f"{TEMP}#1"
    assert not any(r[1] in ("engine", "timer", "schedule") for r in rows)  # people only


def test_a_zone_report_lists_that_zone_and_the_site_wide_actions(report):
    g2 = report[1]
    rows = _rows(_section(g2, "operator-actions"), "actions")
    assert [r[3] for r in rows] == ["config_loaded"]  # G1's acks and mode change left out
    assert set(re.findall(r'<section class="zone" id="zone-([^"]+)">', g2)) == {"G2"}
    inst = _rows(_section(g2, "instruments"), "instruments")
    assert [r[0] for r in inst] == ["PC-2"]


def test_mode_history_per_zone(report):
    html = report[0]
    modes = _rows(_zone(html, "G1"), "modes")
    assert [r[0] for r in modes] == ["in operation", "at rest"]
    assert modes[0][4] == "in force at the start"
    assert modes[1][4:] == ["Lee Ka Yan (kylee)", "filling finished, line cleared"]
    assert modes[1][3] == "00:10:00"
    assert [r[0] for r in _rows(_zone(html, "G2"), "modes")] == ["in operation"]


def test_config_versions_in_force_with_their_diff(report):
    html = report[0]
    sec = _section(html, "configuration")
    assert re.findall(r"Version (\d+): loaded", sec) == ["1", "2"]
    assert "first stored version" in sec and "by kylee" in sec
    diff = unescape(re.search(r'<pre class="config-diff">(.*?)</pre>', sec, re.S).group(1))
    assert "-alert_fraction = 0.7" in diff and "+alert_fraction = 0.6" in diff
    assert "1 lines added, 1 removed" in sec
    assert 'class="muted config-note"' in html  # compliance says which limits it used


def test_instrument_calibration(report):
    html = report[0]
    rows = {r[0]: r for r in _rows(_section(html, "instruments"), "instruments")}
    assert set(rows) == {"PC-1", "PC-2", "T-1"}
    assert rows["T-1"][4:6] == ["2024-11-20", "2025-11-20"]
    assert rows["T-1"][6].startswith("OVERDUE by ")
    assert rows["PC-1"][6].startswith("in calibration") and rows["PC-1"][2] == "filling line"
    assert rows["PC-2"][6] == "no calibration date configured"


def test_data_completeness_per_location(report):
    html = report[0]
    rows = {r[0]: r for r in _rows(_section(html, "completeness"), "completeness")}
    pc1 = rows["PC-1"]  # one counter location: its records, whatever its channels
    assert pc1[2] == "filling line" and pc1[3] == "8" and pc1[4] == "60 s"
    assert int(pc1[6]) >= int(pc1[5]) >= 20 and pc1[8] == "100.00 %"
    assert not any(k.startswith("PC-1.") for k in rows)
    assert rows["T-1.temp"][6] == "0" and rows["T-1.temp"][8] == "0.00 %"  # never recorded


def test_approval_block(report):
    html = report[0]
    rows = _rows(_section(html, "approval"), "approval")
    assert [r[0] for r in rows] == ["Prepared by", "Reviewed by", "Approved by (QA)"]
    assert rows[0][1] and rows[0][2].endswith("+08:00")
    assert rows[1][1:3] == ["", ""] and rows[1][4] == ""  # to be signed later
    assert "signature" in _section(html, "approval")


def test_an_at_rest_excursion_never_reads_as_full_compliance(report):
    html = report[0]
    g1 = _zone(html, "G1")
    exc = [r for r in _rows(g1, "excursions") if r[0] == AT_REST]
    assert exc and exc[0][2] == "at rest" and exc[0][5] == "00:03:00"
    comp = {(r[0], r[1]): r for r in _rows(g1, "compliance")}
    at_rest = comp[("PC-1.pc_0_5um", "at rest")]
    assert at_rest[2] == "action 3 520 /m³" and at_rest[6] == "00:03:00"
    assert at_rest[7] == "70.00 %"
    # the same 10 000 /m3 in operation is within grade B's in-operation limit
    assert comp[("PC-1.pc_0_5um", "in operation")][7] == "100.00 %"
    for r in _rows(g1, "excursions"):  # every excursion shows in its mode's compliance
        point = r[0].split(":", 1)[0]
        if (point, r[2]) in comp:
            assert comp[(point, r[2])][7] != "100.00 %", r


def test_annex1_grade_statement_per_gmp_zone(report):
    html = report[0]
    g1, g2 = _zone(html, "G1"), _zone(html, "G2")
    for body, grade in ((g1, "B"), (g2, "D")):
        assert f"EU GMP Annex 1 (2022) grade {grade}" in body and "Table 5" in body
        assert "&sect;9.15" in body and "no ISO class" not in body
    b = {(r[0], r[1]): r for r in _rows(g1, "grade")}
    assert b[("at rest", "≥ 0.5 µm")][2] == "3 520"
    assert b[("in operation", "≥ 5 µm")][2] == "2 930"
    assert "grade B in_operation at 0.5 um" in b[("in operation", "≥ 0.5 µm")][3]
    d = {(r[0], r[1]): r for r in _rows(g2, "grade")}
    assert d[("at rest", "≥ 0.5 µm")][2] == "3 520 000"
    assert d[("in operation", "≥ 0.5 µm")][2] == "none: Annex 1 leaves it to the site"
    assert d[("in operation", "≥ 0.5 µm")][3] == "none set: the site must set it"
    comp = {(r[0], r[1]): r for r in _rows(g2, "compliance")}
    assert comp[("PC-2.pc_0_5um", "in operation")][2] == (
        "no action limit in this mode: the site must set it")
    assert comp[("PC-2.pc_0_5um", "in operation")][7] == "n/a"


def test_a_sample_held_across_a_mode_change_counts_in_both_modes():
    from facility.records.report.modes import ModeCompliance, ModeSpan

    spans = [ModeSpan("G1", "in_operation", 0, 10_000), ModeSpan("G1", "at_rest", 10_000, 20_000)]
    lim = {"action_high": 3520.0}
    c = ModeCompliance(0, 20_000, 6_000, spans, {"in_operation": ({"action_high": 352_000.0},) * 2,
                                                  "at_rest": (lim, lim)})
    c.feed(7_000, 10_000.0, 0)  # held 6 s: 3 s in operation (within), 3 s at rest (beyond)
    c.feed(15_000, 10_000.0, 0)  # held to the end of the range: 5 s at rest (beyond)
    c.finish()
    op, rest = c.by_mode["in_operation"], c.by_mode["at_rest"]
    assert (op.time_ms, op.good_ms, op.within_ms) == (10_000, 3_000, 3_000)
    assert (rest.time_ms, rest.good_ms, rest.within_ms, rest.outside_ms) == (10_000, 8_000, 0, 8_000)
    assert c.ratio == 3_000 / 11_000 and c.not_monitored_ms == 9_000


def test_a_share_short_of_all_never_reads_100_percent():
    from facility.records.report.html import _pct

    assert _pct(1 - 166 / (30 * 86_400)) == "99.99 %"  # 2:46 in 30 days
    assert _pct(1 - 166 / (365 * 86_400)) == "99.99 %"  # rounds to 100.00 % half-up
    assert _pct(1 - 1e-12) == "99.99 %"
    assert _pct(0.57) == "57.00 %" and _pct(0.7) == "70.00 %"  # no binary-fraction loss
    assert _pct(1.0) == "100.00 %" and _pct(None) == "n/a"
