"""``facility kpi``: exact text lines, the README's JSON schema, one-line errors with exit 2.

The database is written through the real ``Store.write_cycle``: at site S, one alarm raised
3 times within 60 s (chattering) and one high alarm still active and shelved by alice; the
service's own loop-lag alarm (no site). The range is the Hong Kong day 2026-11-23.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from facility.cli import cli
from facility.store import Cycle, Store
from tests.fixtures.config import site

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_795_392_000_000  # 2026-11-23T00:00:00Z = 08:00 in Hong Kong
S, H = 1000, 3_600_000
DAY = ["--from", "2026-11-23", "--to", "2026-11-23"]


def facility(args, *, code=0):
    """Run ``facility ...`` in-process; assert the exit code; return (stdout, stderr)."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr,
                                      result.exception)
    return result.stdout, result.stderr


def _events() -> tuple[list[dict], list[dict]]:
    alarms = [{"id": "S.c:comm", "site": "S", "zone": "Z", "priority": "low"},
              {"id": "S.p:action_high", "site": "S", "zone": "Z", "priority": "high"},
              {"id": "system:loop_lag", "site": None, "priority": "critical"}]
    ev = []

    def add(aid, occ, event, t, state_to, actor=None):
        ev.append({"alarm_id": aid, "occurrence": occ, "event": event, "state_from": "NORM",
                   "state_to": state_to, "ts_ms": t, "detected_ms": t, "actor": actor})

    for occ, dt in enumerate((0, 20, 50), 1):
        add("S.c:comm", occ, "raise", T0 + dt * S, "UNACK")
        add("S.c:comm", occ, "clear", T0 + (dt + 5) * S, "RTNUN")
    add("S.p:action_high", 1, "raise", T0 + H, "UNACK")
    add("S.p:action_high", 1, "shelve", T0 + H + 60 * S, "SHLVD", actor="alice")
    add("system:loop_lag", 1, "raise", T0 + 2 * H, "UNACK")
    add("system:loop_lag", 1, "clear", T0 + 2 * H + 10 * S, "NORM")
    return alarms, ev


@pytest.fixture
def kpi_config(config_file, tmp_path):
    path = config_file(storage={"path": "fms.db"}, sites=[site("S", name="Site one")])
    alarms, events = _events()
    with Store(str(tmp_path / "fms.db")) as store:
        store.write_cycle(Cycle(alarms=alarms, events=events))
    return path


TARGET = {
    "day": "target: ~150/day very likely acceptable, ~300/day maximum manageable (ISA-18.2)",
    "mean": 'target: < 1 alarm per 10 min steady state "very likely acceptable" (EEMUA 191)',
    "max": 'target: < 10 in the first 10 min after an upset "manageable" (EEMUA 191)',
    "flood": "target: time in flood < 1 % (ISA-18.2; flood = more than 10 alarms in 10 minutes)",
    "chatter": "target: chattering and fleeting alarms: zero (ISA-18.2)",
    "stale": "target: stale (standing > 24 h) < 5 a day (ISA-18.2)",
    "standing": "target: < 10 standing alarms (EEMUA 191)",
    "top": "target: the ten most frequent alarms < 1–5 % of all (ISA-18.2)",
    "mix": "target: ~80 % low / 15 % medium / 5 % high (ISA-18.2)",
    "none": "target: no figure in ISA-18.2 / EEMUA 191; every action names who and why",
}


def test_text_output_of_one_site_exact(kpi_config):
    out, err = facility(["kpi", "--config", kpi_config, *DAY, "--site", "S"])
    assert err == ""
    assert out.splitlines() == [
        "alarm KPIs for [2026-11-23T00:00:00+08:00, 2026-11-24T00:00:00+08:00): 144 ten-minute"
        " periods, 1.00 days",
        "",
        "site S (Site one)",
        "  alarms                                      4",
        f"  alarms per day                            4.0  ok         {TARGET['day']}",
        f"  alarms per 10 min, mean                  0.03  ok         {TARGET['mean']}",
        f"  alarms per 10 min, max                      3  ok         {TARGET['max']}",
        f"  10-min periods in flood        0.00 % (0/144)  ok         {TARGET['flood']}",
        f"  chattering alarms                           1  over       {TARGET['chatter']}",
        f"  stale > 24 h, most on a day                 0  ok         {TARGET['stale']}",
        f"  standing at the end                         1  ok         {TARGET['standing']}",
        f"  top 10 share of all                   100.0 %  over       {TARGET['top']}",
        f"  priority crit/high/med/low        0/25/0/75 %             {TARGET['mix']}",
        f"  shelved                                     1             {TARGET['none']}",
        "      by alice 1",
        f"  suppressed by operators                     0             {TARGET['none']}",
        f"  out of service (devices)                    0             {TARGET['none']}",
        "  suppressed by design                        0",
        "  acknowledged / not                      0 / 4",
        "  top 10:",
        "     1. S.c:comm                                         3   75.0 %",
        "     2. S.p:action_high                                  1   25.0 %",
        "  chattering:",
        "    S.c:comm  3 raises within 60 s",
    ]


def test_every_site_then_the_alarms_without_one(kpi_config):
    out, _ = facility(["kpi", "--config", kpi_config, *DAY])
    heads = [ln for ln in out.splitlines() if ln and not ln.startswith(" ")]
    assert heads[1:] == ["site S (Site one)", "no site (the monitoring's own health alarms)"]
    tail = out.split("no site (the monitoring's own health alarms)\n", 1)[1].splitlines()
    assert tail[0] == "  alarms                                      1"
    assert tail[-2:] == ["  top 10:",
                         "     1. system:loop_lag                                  1  100.0 %"]


def _readme_kpi_schema() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### `facility kpi --json` schema", 1)[1]
    return json.loads(section.split("```json", 1)[1].split("```", 1)[0])


def test_json_has_exactly_the_readme_fields(kpi_config):
    out, _ = facility(["kpi", "--config", kpi_config, *DAY, "--json"])
    assert len(out.splitlines()) == 1
    doc, readme = json.loads(out), _readme_kpi_schema()
    assert set(doc) == set(readme)
    assert (doc["from"], doc["to"], doc["period_s"], doc["days"]) == (
        "2026-11-22T16:00:00.000Z", "2026-11-23T16:00:00.000Z", 600, 1.0)
    assert [s["site"] for s in doc["sites"]] == ["S", None]
    s = doc["sites"][0]
    assert set(s) == set(readme["sites"][0])
    assert list(s["figures"]) == list(readme["sites"][0]["figures"])
    for key, fig in s["figures"].items():
        assert set(fig) == set(readme["sites"][0]["figures"][key]), key
        assert {"value", "target", "verdict"} <= set(fig)
    f = s["figures"]
    assert f["alarms"] == {"value": 4, "target": None, "verdict": None}
    assert f["chattering"]["value"] == 1 and f["chattering"]["verdict"] == "over"
    assert f["shelved"] == {"value": 1, "target": TARGET["none"][len("target: "):],
                            "verdict": None, "by": {"alice": 1}, "alarms": ["S.p:action_high"]}
    assert f["priority_mix_pct"]["value"] == {"critical": 0.0, "high": 25.0, "medium": 0.0,
                                              "low": 75.0}
    assert s["chattering"] == [{"alarm": "S.c:comm", "raises_in_60s": 3}]
    assert s["standing_at_end"] == ["S.p:action_high"]
    assert s["top10"][0] == {"alarm": "S.c:comm", "raises": 3, "share_pct": 75.0}
    assert doc["sites"][1]["name"] == "no site (the monitoring's own health alarms)"


@pytest.mark.parametrize("args,message", [
    (["--from", "yesterdayish", "--to", "2026-11-23"],
     r"--from/--to: 'yesterdayish' is not a time; use ISO 8601 .*"),
    (["--from", "2026-11-24", "--to", "2026-11-23T00:00"],
     r"--from/--to: --to 2026-11-23T00:00 is not after --from 2026-11-24: .*"),
    ([*DAY, "--site", "NOPE"], r"--site NOPE: no such site; known: S"),
])
def test_bad_arguments_are_one_line_exit_2(kpi_config, args, message):
    out, err = facility(["kpi", "--config", kpi_config, *args], code=2)
    assert out == "" and err.count("\n") == 1
    assert re.fullmatch(message, err.strip()), err


def test_no_database_is_one_line_exit_3(config_file):
    path = config_file(storage={"path": "missing.db"}, sites=[site("S")])
    out, err = facility(["kpi", "--config", path, *DAY], code=3)
    assert out == "" and err.count("\n") == 1 and "missing.db" in err
