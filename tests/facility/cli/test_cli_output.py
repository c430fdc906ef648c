"""Exact output of the commands people script against (sqlite-utils habit).

The README's "The command line" is the contract: stdout carries the data, stderr one line
per problem, and the exit code says which kind of outcome it was (0 ok, 1 a check found a
problem, 2 bad usage / configuration / refused action, 3 runtime failure).  Each test here
pins a line or a JSON field set that a script could depend on.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from facility.cli import cli
from facility.domain.model import PointInfo, Sample
from facility.service.socket import current_login
from facility.store import Cycle, Store
from tests.fixtures.config import device, zone

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z

ZONES = [zone("Z1", iso_class=5, area_m2=10, reference="Z2", min_dp_pa=10),
         zone("Z2", iso_class=7)]
DP = device("DP-1", 15002, zone="Z1", scan_s=1.0, timeout_s=0.5,
            points=[{"name": "dp", "table": "holding", "address": 0, "type": "float32",
                     "unit": "Pa", "quantity": "pressure_diff", "measures": "Z1 - Z2"}])
PC = device("PC-1", 15001, zone="Z1", profile="particle-counter")


def facility(cli_args, *, code=0):
    """Run ``facility ...`` in-process; assert the exit code; return (stdout, stderr)."""
    result = CliRunner().invoke(cli, [str(a) for a in cli_args])
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr,
                                      result.exception)
    return result.stdout, result.stderr


@pytest.fixture
def small(config_file):
    """A two-room facility with a DP transmitter and a particle counter; database fms.db."""
    return config_file(storage={"path": "fms.db"}, zones=ZONES, devices=[PC, DP],
                       alarms={"alert_fraction": 0.7})


# -- check-config -------------------------------------------------------------------------
def test_check_config_names_file_line_key_problem_and_fix(config_file):
    path = config_file(zones=[zone("Z1", isoclass=5)])
    line = path.read_text().splitlines().index("isoclass = 5") + 1
    out, err = facility(["check-config", "--config", path], code=2)
    assert out == ""
    assert err == f"{path}:{line}:zones[0].isoclass: unknown key; did you mean 'iso_class'?\n"


def test_check_config_every_problem_one_line_each(config_file):
    path = config_file(zones=[zone("Z1", iso_class=12)],
                       devices=[device("DP-1", 70000, zone="Z1", profile="dp-transmitter")])
    out, err = facility(["check-config", "--config", path], code=2)
    lines = err.splitlines()
    assert out == "" and len(lines) == 2, lines
    assert all(ln.startswith(f"{path}:") for ln in lines)
    assert any("iso_class" in ln for ln in lines) and any("port" in ln for ln in lines)


def test_check_config_ok_line(small):
    from facility.catalogue import build_catalogue
    from facility.config import load_config

    cat = build_catalogue(load_config(small))
    out, err = facility(["check-config", "--config", small])
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == len(err.splitlines())  # stderr holds warnings only
    assert out == (f"{small}: ok (1 sites, 2 zones, 2 devices, {len(cat.infos)} points, "
                   f"{len(cat.rules)} limit rules; {len(warnings)} warnings)\n")


def test_missing_config_is_one_line_exit_2(tmp_path):
    out, err = facility(["check-config", "--config", tmp_path / "nope.toml"], code=2)
    assert out == "" and err.count("\n") == 1 and "nope.toml" in err


# -- alarms ---------------------------------------------------------------------------------
def _readme_alarm_schema() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### `facility alarms --json` schema", 1)[1]
    block = section.split("```json", 1)[1].split("```", 1)[0]
    return set(json.loads(block))


ACKED = {"id": "Z1.dp_cascade:action_low", "state": "ACKED", "priority": "critical",
         "occurrence": 3, "active": 1, "acked": 1, "onset_ms": T0, "detected_ms": T0 + 9_412,
         "limit": 10.0, "source": "zones[Z1].min_dp_pa=+10 Pa vs Z2", "zone": "Z1",
         "site": "S", "point": "Z1.dp_cascade", "ack_by": "technician",
         "ack_reason": "door held for transfer", "ack_ms": T0 + 31_101}
CLEARED = {"id": "PC-1.pc_0_5um:action_high", "state": "NORM", "priority": "high",
           "occurrence": 1, "active": 0, "acked": 1, "onset_ms": T0 - 60_000,
           "detected_ms": T0 - 59_000, "limit": 3520.0, "source": "ISO 5", "zone": "Z1",
           "site": "S", "point": "PC-1.pc_0_5um"}
NEVER = {"id": "DP-1:comm", "state": "NORM", "priority": "high", "occurrence": 0, "active": 0}


@pytest.fixture
def with_alarms(small, tmp_path):
    with Store(str(tmp_path / "fms.db")) as store:
        store.write_cycle(Cycle(alarms=[dict(ACKED), dict(CLEARED), dict(NEVER)]))
    return small


def test_alarms_json_has_exactly_the_readme_fields(with_alarms):
    out, _ = facility(["alarms", "--json", "--config", with_alarms])
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [ACKED["id"], CLEARED["id"]]  # never raised: not listed
    assert all(set(r) == _readme_alarm_schema() for r in rows)
    assert out.splitlines()[0] == json.dumps({
        "id": "Z1.dp_cascade:action_low", "state": "ACKED", "priority": "critical",
        "occurrence": 3, "active": True, "onset": "2023-11-14T22:13:20.000Z",
        "detected": "2023-11-14T22:13:29.412Z", "limit": 10.0,
        "source": "zones[Z1].min_dp_pa=+10 Pa vs Z2", "zone": "Z1", "site": "S",
        "point": "Z1.dp_cascade", "ack_by": "technician", "ack_by_name": None,
        "ack_reason": "door held for transfer",
        "acked_at": "2023-11-14T22:13:51.101Z", "shelved_until": None})


def test_alarms_text_and_active_lines(with_alarms):
    acked = ("ACKED critical Z1.dp_cascade:action_low#3 onset 2023-11-14T22:13:20.000Z limit 10"
             " (zones[Z1].min_dp_pa=+10 Pa vs Z2) acked by technician: door held for transfer")
    cleared = ("NORM  high     PC-1.pc_0_5um:action_high#1 onset 2023-11-14T22:12:20.000Z"
               " limit 3520 (ISO 5)")
    assert facility(["alarms", "--config", with_alarms]) == (f"{acked}\n{cleared}\n", "")
    assert facility(["alarms", "--active", "--config", with_alarms]) == (f"{acked}\n", "")


def test_alarms_on_an_empty_database(small, tmp_path):
    Store(str(tmp_path / "fms.db")).close()
    assert facility(["alarms", "--config", small]) == ("no alarms\n", "")
    assert facility(["alarms", "--active", "--config", small]) == ("no alarms active\n", "")
    assert facility(["alarms", "--json", "--config", small]) == ("", "")


def test_alarms_without_a_database_is_exit_3(small, tmp_path):
    out, err = facility(["alarms", "--config", small], code=3)
    assert out == "" and err.count("\n") == 1 and str(tmp_path / "fms.db") in err


# -- poll --once --json ---------------------------------------------------------------------
POLL_FIELDS = ["device", "point", "ts", "value", "quality", "unit"]  # docs/ARCHITECTURE.md, in order
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_poll_once_json_objects_from_a_live_device(config_file, tmp_path):
    from facility.config import load_config
    from tests.fixtures.service import SimulatorThread

    planned = config_file("planned.toml", zones=ZONES, devices=[DP])
    sim = SimulatorThread(load_config(planned))
    try:
        live = config_file(zones=ZONES, devices=[{**DP, "port": sim.port(15002)}])
        out, err = facility(["poll", "--once", "--json", "--config", live])
    finally:
        sim.stop()
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and all(list(r) == POLL_FIELDS for r in rows)
    assert all(ISO_MS.match(r["ts"]) for r in rows)
    (dp,) = [r for r in rows if r["point"] == "DP-1.dp"]
    assert dp["device"] == "DP-1" and dp["quality"] == "good" and dp["unit"] == "Pa"
    assert isinstance(dp["value"], float)
    assert {r["point"] for r in rows} >= {"DP-1.comm_ok", "DP-1.latency_ms"}


def test_poll_once_json_every_device_dead_is_exit_3(config_file):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    path = config_file(zones=ZONES, devices=[{**DP, "port": port}])
    out, _ = facility(["poll", "--once", "--json", "--config", path], code=3)
    rows = {json.loads(line)["point"]: json.loads(line) for line in out.splitlines()}
    dp = rows["DP-1.dp"]
    assert dp == {"device": "DP-1", "point": "DP-1.dp", "ts": dp["ts"], "value": None,
                  "quality": "comm", "unit": "Pa"}
    assert ISO_MS.match(dp["ts"])
    assert rows["DP-1.comm_ok"]["value"] == 0


def test_poll_unknown_device_is_exit_2(small):
    out, err = facility(["poll", "--once", "--device", "NOPE", "--config", small], code=2)
    assert out == "" and err.count("\n") == 1 and "'NOPE'" in err


# -- backtest --json ------------------------------------------------------------------------
CSV = ("ts,point,value\n"
       "1700000000,PC-1.pc_0_5um,100\n"
       "1700000060,PC-1.pc_0_5um,3000\n"  # above the alert level (0.7 x 3 520), below action
       "1700000120,PC-1.pc_0_5um,4000\n"  # above the ISO 5 action limit
       "1700000180,PC-1.pc_0_5um,100\n")


def _line(ts, limit, event, value):
    return json.dumps({"ts": ts, "point": "PC-1.pc_0_5um", "limit": limit, "event": event,
                       "value": value, "onset": ts})


def test_backtest_json_exact_lines(small, tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text(CSV)
    out, err = facility(["backtest", "--samples", csv, "--json", "--config", small])
    assert out.splitlines() == [
        _line("2023-11-14T22:14:20.000Z", "alert_high", "raise", 3000.0),
        _line("2023-11-14T22:15:20.000Z", "action_high", "raise", 4000.0),
        _line("2023-11-14T22:16:20.000Z", "action_high", "clear", 100.0),
        _line("2023-11-14T22:16:20.000Z", "alert_high", "clear", 100.0)]
    # what if the alert level were 90 % of action: 3 000 no longer alerts; at one time the
    # order is action_high, alert_high, alert_low, action_low
    out, _ = facility(["backtest", "--samples", csv, "--json", "--alert-fraction", "0.9",
                       "--config", small])
    assert out.splitlines() == [
        _line("2023-11-14T22:15:20.000Z", "action_high", "raise", 4000.0),
        _line("2023-11-14T22:15:20.000Z", "alert_high", "raise", 4000.0),
        _line("2023-11-14T22:16:20.000Z", "action_high", "clear", 100.0),
        _line("2023-11-14T22:16:20.000Z", "alert_high", "clear", 100.0)]


def test_backtest_text_exact_lines(small, tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text(CSV)
    out, _ = facility(["backtest", "--samples", csv, "--config", small])
    assert out.splitlines() == [
        "2023-11-14T22:14:20.000Z raise PC-1.pc_0_5um alert_high value 3000"
        " onset 2023-11-14T22:14:20.000Z",
        "2023-11-14T22:15:20.000Z raise PC-1.pc_0_5um action_high value 4000"
        " onset 2023-11-14T22:15:20.000Z",
        "2023-11-14T22:16:20.000Z clear PC-1.pc_0_5um action_high value 100"
        " onset 2023-11-14T22:16:20.000Z",
        "2023-11-14T22:16:20.000Z clear PC-1.pc_0_5um alert_high value 100"
        " onset 2023-11-14T22:16:20.000Z"]


def test_backtest_unknown_point_is_one_line_exit_2(small, tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("ts,point,value\n1700000000,NOPE.x,1\n")
    out, err = facility(["backtest", "--samples", csv, "--config", small], code=2)
    assert out == "" and err.count("\n") == 1 and "NOPE.x" in err


# -- export / verify / audit verify --------------------------------------------------------
@pytest.fixture
def exported(small, tmp_path):
    """Two days of DP samples written through the store, exported with the CLI."""
    from tests.fixtures.export import day0, ms

    t0 = ms(day0())
    with Store(str(tmp_path / "fms.db")) as store:
        store.register_points([PointInfo("DP-1.dp", "DP-1", "S", "Z1", "pressure_diff", "Pa", 1)])
        for m in range(3):
            store.write_cycle(Cycle(samples=[Sample("DP-1.dp", t0 + m * 60_000 + k * 1000, 12.5)
                                             for k in range(10)]))
    out = tmp_path / "exp"
    stdout, _ = facility(["export", "--from", "2000-01-01", "--to", "2100-01-01", "--out", out,
                          "--config", small])
    # no service ever ran here, so there is no signing key: the line says the export is unsigned
    assert re.fullmatch(rf"{re.escape(str(out))}: \d+ files, 30 samples, manifest sha256"
                        r" [0-9a-f]{64}, NOT signed \(no signing key yet[^)]*\)\n", stdout), stdout
    return out


def test_verify_success_and_failure_lines(exported, tmp_path):
    out, err = facility(["verify", exported, "--config", tmp_path / "none.toml"])
    assert re.fullmatch(rf"{re.escape(str(exported))}: ok: \d+ files, \d+ rows, audit slice"
                        r" \d+ rows continuity only \(no key\); chain head #\d+ [0-9a-f]{12};"
                        r" 3 cycles cross-checked against their digest rows; unsigned;"
                        r" integrity only: origin not checked \(no trusted key\)\n",
                        out), out
    assert err == ""
    bad = tmp_path / "bad"
    shutil.copytree(exported, bad)
    lines = (bad / "samples.csv").read_text(encoding="utf-8").split("\n")
    fields = lines[3].split(",")
    fields[6] = str(float(fields[6]) + 1)
    lines[3] = ",".join(fields)
    (bad / "samples.csv").write_text("\n".join(lines), encoding="utf-8")
    out, err = facility(["verify", bad, "--config", tmp_path / "none.toml"], code=1)
    assert out == ""
    assert err == f"{bad}: samples.csv row 3: sha256 mismatch (changed, deleted, inserted or moved)\n"


def test_verify_a_folder_that_is_not_there_is_exit_2(tmp_path):
    out, err = facility(["verify", tmp_path / "nope"], code=2)
    assert (out, err) == ("", f"{tmp_path / 'nope'}: no such folder\n")


def test_audit_verify_ok_line(exported, small):
    out, err = facility(["audit", "verify", "--config", small])
    assert re.fullmatch(r"audit trail ok: \d+ rows, continuity and content \(no key\) checked\n"
                        r"checked \d+ audit rows, 1 partitions, 3 cycles, 30 samples, 0 events,"
                        r" 0 alarms in \d+\.\d\d s\n", out), out


# -- operator actions: one line from the service, exit 2 when refused, 3 when it is not there
ACTIONS = [
    (["ack", "Z1.dp_cascade:action_low#3"],
     {"action": "ack", "alarm": "Z1.dp_cascade:action_low", "occurrence": 3}),
    (["reset", "Z1.dp_cascade:action_low#3"],
     {"action": "reset", "alarm": "Z1.dp_cascade:action_low", "occurrence": 3}),
    (["comment", "Z1.dp_cascade:action_low#3"],
     {"action": "comment", "alarm": "Z1.dp_cascade:action_low", "occurrence": 3}),
    (["unshelve", "Z1.dp_cascade:action_low#3"],
     {"action": "unshelve", "alarm": "Z1.dp_cascade:action_low", "occurrence": 3}),
    (["suppress", "Z1.dp_cascade:action_low#3", "--for", "2h"],
     {"action": "suppress", "alarm": "Z1.dp_cascade:action_low", "occurrence": 3,
      "duration_s": 7200.0}),
    (["unsuppress", "Z1.dp_cascade:action_low#3"],
     {"action": "unsuppress", "alarm": "Z1.dp_cascade:action_low", "occurrence": 3}),
    (["shelve", "Z1.dp_cascade:action_low#3", "--for", "30m"],
     {"action": "shelve", "alarm": "Z1.dp_cascade:action_low", "occurrence": 3,
      "duration_s": 1800.0}),
    (["oos", "DP-1"], {"action": "oos", "device": "DP-1"}),
    (["return", "DP-1"], {"action": "return", "device": "DP-1"}),
    (["mode", "Z1", "at_rest"], {"action": "mode", "zone": "Z1", "mode": "at_rest"}),
]


@pytest.mark.parametrize("args,payload", ACTIONS, ids=[a[0] for a, _ in ACTIONS])
def test_action_line_and_request(args, payload, small, tmp_path, action_server):
    rec = action_server(tmp_path / "fms.db", {"ok": True, "message": f"{args[0]} done"})
    out, err = facility([*args, "--reason", "filter change", "--config", small])
    assert (out, err) == (f"{args[0]} done (by {current_login()})\n", "")
    assert rec.calls == [(current_login(), {**payload, "reason": "filter change"})]


def test_action_current_occurrence_is_read_from_the_database(with_alarms, tmp_path,
                                                            action_server):
    rec = action_server(tmp_path / "fms.db")
    facility(["ack", "Z1.dp_cascade:action_low", "--reason", "seen", "--config", with_alarms])
    assert rec.calls[0][1]["occurrence"] == 3


def test_refused_action_is_one_line_exit_2(small, tmp_path, action_server):
    action_server(tmp_path / "fms.db", {"ok": False, "message": "occurrence #3 superseded by #4"})
    out, err = facility(["ack", "Z1.dp_cascade:action_low#3", "--reason", "late",
                         "--config", small], code=2)
    assert (out, err) == ("", "refused: occurrence #3 superseded by #4\n")


def test_action_without_a_service_is_one_line_exit_3(small, tmp_path):
    out, err = facility(["ack", "Z1.dp_cascade:action_low#3", "--reason", "nobody home",
                         "--config", small], code=3)
    assert out == "" and err.count("\n") == 1 and str(tmp_path / "fms.db") in err


def test_bad_duration_and_unknown_alarm_are_exit_2(with_alarms, tmp_path, action_server):
    rec = action_server(tmp_path / "fms.db")
    out, err = facility(["shelve", "Z1.dp_cascade:action_low#3", "--for", "soon", "--reason", "x",
                         "--config", with_alarms], code=2)
    assert out == "" and err.count("\n") == 1 and "'soon'" in err
    out, err = facility(["ack", "NOPE:x", "--reason", "x", "--config", with_alarms], code=2)
    assert out == "" and err.count("\n") == 1 and "'NOPE:x'" in err
    assert rec.calls == []  # nothing reached the service
