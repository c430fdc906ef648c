"""Records say which person acted, in words a person reads (Part 11 §11.10(e), ALCOA+
"attributable"; docs/ARCHITECTURE.md "Audit trail").

Operator requests go through the real handler, book and SQLite store (``tests.fixtures.desk``);
the event rows, the chained audit rows, the store's read API, an export of the database and
the auditor's ``facility verify`` and ``facility audit verify`` are then read back as they are.
check-config's refusal of shared and role logins is checked on real TOML.
"""

from __future__ import annotations

import csv
import sqlite3

import pytest
from click.testing import CliRunner

from facility.cli import cli
from facility.config import ConfigError, load_config, parse_config
from facility.domain.display import person
from facility.store.audit import canonical_doc
from facility.store.digest import event_doc
from facility.store.digest_check import check_digests
from tests.fixtures.config import device, facility_toml, zone
from tests.fixtures.desk import Desk

TEMP = "T-1.temp:action_high"
TECH = {"login": "tmchan", "name": "Chan Tai Man", "roles": ["technician", "engineer"]}
LEAD = {"login": "kylee", "name": "Lee Ka Yan", "roles": ["technician", "shelve_critical"]}


def config_text(db: str, operators=(TECH, LEAD)) -> str:
    return facility_toml(
        storage={"path": db},
        zones=[zone("Z1", iso_class=7, area_m2=10)],
        devices=[device("T-1", 15030, zone="Z1", points=[{
            "name": "temp", "table": "holding", "address": 0, "type": "float32",
            "unit": "C", "quantity": "temperature",
            "limits": {"action_high": {"limit": 25.0}}}])],
        operators=list(operators))


@pytest.fixture
def desk(tmp_path):
    db = str(tmp_path / "fms.db")
    (tmp_path / "config.toml").write_text(config_text(db))
    d = Desk(parse_config(config_text(db), base_dir=str(tmp_path)), db)
    yield d
    d.close()


def _events(db: str, event: str) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM events WHERE event = ?", (event,))]
    finally:
        conn.close()


def test_person_reads_name_then_login():
    assert person("Chan Tai Man", "tmchan") == "Chan Tai Man (tmchan)"
    assert person(None, "tmchan") == "tmchan"
    assert person("timer", "timer") == "timer"
    assert person(None, None) == ""


def test_every_action_row_carries_name_and_roles_as_configured(desk):
    db = desk.store.path
    desk.raise_(TEMP)
    occ = desk.state(TEMP).occurrence
    assert desk.act("tmchan", {"action": "ack", "alarm": TEMP, "occurrence": occ,
                               "reason": "seen on the floor"})["ok"]
    assert desk.act("tmchan", {"action": "comment", "alarm": TEMP, "occurrence": occ,
                               "reason": "door left open"})["ok"]
    assert desk.act("kylee", {"action": "mode", "zone": "Z1", "mode": "in_operation",
                              "reason": "shift start"})["ok"]
    assert desk.act("tmchan", {"action": "oos", "device": "T-1", "duration_s": 600,
                               "reason": "probe swap"})["ok"]
    refused = desk.act("kylee", {"action": "suppress", "alarm": TEMP, "duration_s": 60,
                                 "reason": "nuisance"})
    assert not refused["ok"]

    ack = _events(db, "ack")[-1]
    assert (ack["actor"], ack["actor_name"], ack["actor_roles"]) == (
        "tmchan", "Chan Tai Man", "technician,engineer")
    comment = _events(db, "comment")[-1]
    assert (comment["actor_name"], comment["actor_roles"]) == ("Chan Tai Man",
                                                               "technician,engineer")
    raised = _events(db, "raise")[-1]  # the engine's own transition names no person
    assert raised["actor_name"] is None and raised["actor_roles"] is None

    rows = {r["action"]: r for r in desk.audit() if r["actor"] in ("tmchan", "kylee")}
    for action, who in (("ack", TECH), ("comment", TECH), ("mode", LEAD), ("oos", TECH),
                        ("refused:suppress", LEAD)):
        d = rows[action]["details"]
        assert (d["name"], d["roles"]) == (who["name"], who["roles"]), (action, d)
        assert "shared" not in d

    acts = desk.store.operator_actions(0, 2**62)
    seen = [(a["action"], a["login"], a["name"]) for a in acts]
    assert ("ack", "tmchan", "Chan Tai Man") in seen
    assert ("mode", "kylee", "Lee Ka Yan") in seen
    assert ("refused:suppress", "kylee", "Lee Ka Yan") in seen
    assert all(a["login"] not in ("service", "timer", "schedule", "engine") for a in acts)
    assert not any(a["action"] == "cycle_digest" for a in acts)


def test_the_names_are_covered_by_the_digests_and_old_rows_still_verify(desk):
    desk.raise_(TEMP)
    assert desk.act("tmchan", {"action": "ack", "alarm": TEMP,
                               "occurrence": desk.state(TEMP).occurrence, "reason": "seen"})["ok"]
    db = desk.store.path
    conn = sqlite3.connect(db)
    try:
        assert check_digests(conn, db).ok
        conn.execute("UPDATE events SET actor_name = 'Someone Else' WHERE event = 'ack'")
        conn.commit()
        result = check_digests(conn, db)
        assert not result.ok  # a changed name is a changed event
    finally:
        conn.close()
    # an event stored before the columns existed (null there) hashes as it did then
    old = {"id": 7, "alarm_id": TEMP, "event": "raise", "actor": None, "value": 1.0}
    assert event_doc({**old, "actor_name": None, "actor_roles": None}) == canonical_doc(old)


def test_export_shows_the_person_and_verify_checks_the_names(desk, tmp_path):
    desk.raise_(TEMP)
    assert desk.act("tmchan", {"action": "ack", "alarm": TEMP,
                               "occurrence": desk.state(TEMP).occurrence, "reason": "seen"})["ok"]
    desk.store.close()
    cfg_path = tmp_path / "config.toml"
    out = tmp_path / "export"
    runner = CliRunner()
    res = runner.invoke(cli, ["export", "--config", str(cfg_path), "--out", str(out),
                              "--from", "2000-01-01", "--to", "2100-01-01"])
    assert res.exit_code == 0, (res.stdout, res.stderr)
    with open(out / "alarms.csv", encoding="utf-8", newline="") as fh:
        alarms = list(csv.DictReader(fh))
    assert [a["acknowledged_by"] for a in alarms] == ["Chan Tai Man (tmchan)"]
    with open(out / "events.csv", encoding="utf-8", newline="") as fh:
        acks = [e for e in csv.DictReader(fh) if e["event"] == "ack"]
    assert [(e["actor"], e["actor_name"], e["actor_roles"]) for e in acks] == [
        ("tmchan", "Chan Tai Man", "technician,engineer")]
    res = runner.invoke(cli, ["verify", str(out)])
    assert res.exit_code == 0, (res.stdout, res.stderr)
    # a name changed in the export is caught against the signed digest rows
    path = out / "events.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("Chan Tai Man", "Chan Tai Mun"),
                    encoding="utf-8")
    res = runner.invoke(cli, ["verify", str(out)])
    assert res.exit_code == 1, (res.stdout, res.stderr)


def test_alarm_list_names_who_acknowledged(desk, tmp_path):
    desk.raise_(TEMP)
    assert desk.act("tmchan", {"action": "ack", "alarm": TEMP,
                               "occurrence": desk.state(TEMP).occurrence, "reason": "seen"})["ok"]
    res = CliRunner().invoke(cli, ["alarms", "--config", str(tmp_path / "config.toml")])
    assert res.exit_code == 0, (res.stdout, res.stderr)
    assert "acked by Chan Tai Man (tmchan): seen" in res.stdout
    res = CliRunner().invoke(cli, ["alarms", "--json", "--config",
                                   str(tmp_path / "config.toml")])
    assert '"ack_by_name": "Chan Tai Man"' in res.stdout


# -- check-config: one login, one person ----------------------------------------------------
def _problems(tmp_path, ops) -> str:
    path = tmp_path / "c.toml"
    path.write_text(config_text(str(tmp_path / "x.db"), ops))
    with pytest.raises(ConfigError) as exc:
        load_config(str(path))
    return str(exc.value)


@pytest.mark.parametrize("login", ["root", "technician", "admin", "Operator"])
def test_a_shared_or_role_login_is_refused_unless_declared(tmp_path, login):
    msg = _problems(tmp_path, [{"login": login, "name": "Someone", "roles": ["technician"]}])
    assert "operators[0].login" in msg and "shared or role login" in msg, msg
    msg = _problems(tmp_path, [{"login": login, "name": "Someone", "roles": ["technician"],
                                "shared": True}])
    assert "operators[0].justification" in msg and "is required with shared = true" in msg
    path = tmp_path / "ok.toml"
    path.write_text(config_text(str(tmp_path / "x.db"), [{
        "login": login, "name": "Night shift console", "roles": ["technician"], "shared": True,
        "justification": "kiosk in the gowning room, badge log identifies the person"}]))
    assert load_config(str(path)).operators[0].shared is True


def test_a_login_the_service_acts_under_is_refused(tmp_path):
    msg = _problems(tmp_path, [{"login": "timer", "name": "T", "roles": ["technician"]}])
    assert "operators[0].login" in msg and "a name the service acts under" in msg


def test_a_shared_login_is_marked_shared_in_its_records(tmp_path):
    db = str(tmp_path / "fms.db")
    ops = [{"login": "root", "name": "Local administrator", "roles": ["technician"],
            "shared": True, "justification": "console of the service box"}]
    d = Desk(parse_config(config_text(db, ops), base_dir=str(tmp_path)), db)
    try:
        d.raise_(TEMP)
        assert d.act("root", {"action": "ack", "alarm": TEMP, "reason": "seen"})["ok"]
        row = [r for r in d.audit("ack") if r["actor"] == "root"][-1]
        assert row["details"]["shared"] is True
        assert row["details"]["name"] == "Local administrator"
    finally:
        d.close()


def test_the_shipped_config_uses_named_logins():
    cfg = load_config("config.toml")
    from facility.domain.vocab import SHARED_LOGINS

    assert cfg.operators and not any(o.shared for o in cfg.operators)
    assert not {o.login for o in cfg.operators} & SHARED_LOGINS
    assert all(o.name and o.name != o.login for o in cfg.operators)
