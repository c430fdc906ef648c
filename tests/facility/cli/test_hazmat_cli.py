"""``facility hazmat``: one writer. With a service the movement goes over its socket; without
one the command books it through the store; readers open the store read-only."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from facility.cli import cli
from facility.service.socket import current_login
from facility.store import Store
from tests.fixtures.config import operator

HAZMAT = {"substances": [{"id": "ipa", "name": "Isopropanol", "un": "UN1219", "class": "3",
                          "unit": "L"},
                         {"id": "h2o2", "name": "Hydrogen peroxide", "un": "UN2014",
                          "class": "5.1", "unit": "L"}],
          "stores": [{"id": "DGS", "site": "S", "premises": "industrial", "licence": "DG-1",
                      "licensed_max": {"3": 400.0, "5.1": 100.0},
                      "compartments": ["flammables", "oxidisers"]}]}


@pytest.fixture
def facility(config_file, tmp_path):
    """(config path, db path) for a facility whose operator is this login, with role hazmat."""
    path = config_file(storage={"path": str(tmp_path / "facility.db")}, hazmat=HAZMAT,
                       operators=[operator(current_login(), "Me", ["technician", "hazmat"])])
    return path, str(tmp_path / "facility.db")


def run(path, *args):
    return CliRunner().invoke(cli, ["hazmat", *args, "--config", str(path)])


def receive(path, container="B1", substance="ipa", qty="10", compartment="flammables"):
    return run(path, "receive", "--container", container, "--substance", substance,
               "--quantity", qty, "--unit", "L", "--store", "DGS", "--compartment", compartment,
               "--reason", "delivery note 4711")


def table_count(db: str, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_without_a_service_the_command_books_through_the_store(facility):
    path, db = facility
    Store(db).close()  # a database the service created before the ledger existed
    me = current_login()
    r = receive(path)
    assert r.exit_code == 0, r.output
    assert r.stdout == f"receive #1: B1 ipa 10 L into DGS/flammables by {me} (audit #1)\n"
    assert r.stderr == ""
    mixed = receive(path, "B2", "h2o2", "5")  # an oxidiser beside a flammable: warned, booked
    assert mixed.exit_code == 0 and mixed.stdout.startswith("receive #2: B2 h2o2 5 L")
    assert mixed.stderr.startswith("warning: ") and "flammables" in mixed.stderr
    r = run(path, "issue", "--container", "B1", "--quantity", "2.5", "--unit", "L",
            "--reason", "etch line")
    assert r.exit_code == 0 and r.stdout == (
        f"issue #3: B1 ipa 2.5 L from DGS/flammables, 7.5 L left by {me} (audit #3)\n")
    r = run(path, "move", "--container", "B2", "--store", "DGS", "--compartment", "oxidisers",
            "--reason", "segregate")
    assert r.exit_code == 0 and r.stdout == (
        f"move #4: B2 h2o2 5 L DGS/flammables -> DGS/oxidisers by {me} (audit #4)\n")
    assert r.stderr == ""
    before = run(path, "stock").stdout
    refused = run(path, "issue", "--container", "B1", "--quantity", "500", "--unit", "L",
                  "--reason", "too much")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr == ("refused: issue from B1: 500 L requested but the container holds"
                              " 7.5 L; nothing was issued\n")
    assert run(path, "stock").stdout == before and "7.5 L" in before
    assert table_count(db, "hazmat_movements") == 4
    check = run(path, "check")
    assert check.exit_code == 0, check.output
    verify = CliRunner().invoke(cli, ["audit", "verify", "--config", str(path)])
    assert verify.exit_code == 0, verify.output


def test_with_a_service_the_movement_goes_over_its_socket(facility, action_server):
    path, db = facility
    Store(db).close()
    recorder = action_server(db, reply={"ok": True, "message": "issue #9: B1 ...",
                                        "lines": ["issue #9: B1 ...", "warning: beside x"]})
    r = run(path, "issue", "--container", "B1", "--quantity", "2.5", "--unit", "L",
            "--reason", "etch line")
    assert r.exit_code == 0, r.output
    assert (r.stdout, r.stderr) == ("issue #9: B1 ...\n", "warning: beside x\n")
    ((login, req),) = recorder.calls
    assert login == current_login()
    assert req == {"action": "hazmat", "movement": "issue", "container": "B1", "quantity": 2.5,
                   "unit": "L", "reason": "etch line"}
    with Store(db, readonly=True) as store:  # the command itself wrote nothing
        assert not store.has_hazmat_ledger()
    recorder.reply = {"ok": False, "message": "issue from B1: container 'B1' is not in the ledger"}
    r = run(path, "issue", "--container", "B1", "--quantity", "1", "--unit", "L", "--reason", "r")
    assert r.exit_code == 2
    assert r.stderr == "refused: issue from B1: container 'B1' is not in the ledger\n"


def test_a_login_without_the_role_is_refused_before_anything_is_sent(config_file, tmp_path,
                                                                      action_server):
    db = str(tmp_path / "facility.db")
    path = config_file(storage={"path": db}, hazmat=HAZMAT,
                       operators=[operator(current_login(), "Me", ["technician"])])
    recorder = action_server(db)
    r = receive(path)
    assert r.exit_code == 2 and recorder.calls == []
    assert r.stderr == f"{current_login()} lacks role 'hazmat' needed to book dangerous goods\n"


def test_missing_database_exits_3_and_creates_nothing(facility, tmp_path):
    path, db = facility
    for args in (("stock",), ("check",)):
        r = run(path, *args)
        assert r.exit_code == 3 and "does not exist" in r.stderr, r.output
    r = receive(path)
    assert r.exit_code == 3 and "does not exist" in r.stderr and "facility run" in r.stderr
    assert not (tmp_path / "facility.db").exists()
