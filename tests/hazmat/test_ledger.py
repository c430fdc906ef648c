"""The stock ledger on real SQLite files: one transaction per movement, refusals write nothing,
exactly one audit row per movement, and concurrent writers keep stock consistent."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading

import pytest

from facility.config.schema import HazmatCfg, Store, Substance
from facility.store import audit
from hazmat import ledger
from hazmat.classes import HazmatError

HZ = HazmatCfg(
    substances=(Substance("ipa", "Isopropanol", "UN1219", "3", unit="L"),
                Substance("h2o2", "Hydrogen peroxide", "UN2014", "5.1", ("8",), unit="L"),
                Substance("silane", "Silane", "UN2203", "2.1", unit="L_wc")),
    stores=(Store("S1", "MEC", licence="L1", licensed_max={"3": 400.0},
                  compartments=("flammables", "oxidisers")),
            Store("S2", "MEC", compartments=("main",))),
)
KEY = b"k" * 32


def connect(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "facility.db")
    conn = connect(path)
    ledger.ensure_schema(conn)
    yield path, conn
    conn.close()


def counts(conn):
    return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                 for t in ("hazmat_containers", "hazmat_movements", "audit"))


def rx(conn, cid="B1", qty=10.0, **kw):
    args = dict(actor="alice", container=cid, substance="ipa", quantity=qty, unit="L", store="S1",
                compartment="flammables", reason="delivery PO-1", key=KEY)
    args.update(kw)
    return ledger.receive(conn, HZ, **args)


def test_receive_issue_move_one_movement_and_one_audit_row_each(db):
    _, conn = db
    m1 = rx(conn)
    m2 = ledger.issue(conn, HZ, actor="bob", container="B1", quantity=2.5, unit="L",
                      reason="etch line", key=KEY)
    m3 = ledger.move(conn, HZ, actor="bob", container="B1", store="S2", compartment="main",
                     reason="relocate", key=KEY)
    assert counts(conn) == (1, 3, 3)
    assert (m2.remaining, m3.quantity) == (7.5, 7.5)
    rows = conn.execute("SELECT m.kind, a.action, a.actor, a.subject, a.reason FROM hazmat_movements m"
                        " JOIN audit a ON a.id = m.audit_id ORDER BY m.id").fetchall()
    assert rows == [("receive", "hazmat_receive", "alice", "B1", "delivery PO-1"),
                    ("issue", "hazmat_issue", "bob", "B1", "etch line"),
                    ("move", "hazmat_move", "bob", "B1", "relocate")]
    assert [m.id for m in ledger.movements(conn, "B1")] == [m1.id, m2.id, m3.id]
    (c,) = ledger.stock(conn)
    assert (c.store, c.compartment, c.quantity) == ("S2", "main", 7.5)
    assert audit.verify_chain(conn, KEY).ok


def test_partial_issues_do_not_drift(db):
    _, conn = db
    rx(conn, qty=1.0)
    for _ in range(10):
        ledger.issue(conn, HZ, actor="a", container="B1", quantity=0.1, unit="L", reason="r")
    assert ledger.stock(conn) == [] and ledger.stock(conn, include_empty=True)[0].quantity == 0.0


@pytest.mark.parametrize("call,message", [
    (lambda c: ledger.issue(c, HZ, actor="a", container="B1", quantity=10.5, unit="L", reason="r"),
     "10.5 L requested but the container holds 10 L"),
    (lambda c: ledger.issue(c, HZ, actor="a", container="B1", quantity=1, unit="kg", reason="r"),
     "unit 'kg' does not match the container's unit 'L'"),
    (lambda c: ledger.issue(c, HZ, actor="a", container="NOPE", quantity=1, unit="L", reason="r"),
     "container 'NOPE' is not in the ledger"),
    (lambda c: ledger.issue(c, HZ, actor="a", container="B1", quantity=-1, unit="L", reason="r"),
     "must be a finite number > 0"),
    (lambda c: ledger.issue(c, HZ, actor="a", container="B1", quantity=float("nan"), unit="L", reason="r"),
     "must be a finite number > 0"),
    (lambda c: ledger.issue(c, HZ, actor="a", container="B1", quantity=1, unit="L", reason=" "),
     "reason is required"),
    (lambda c: rx(c, "B2", substance="unobtainium"), "substance 'unobtainium' is not in"),
    (lambda c: rx(c, "B2", unit="kg"), "unit 'kg' does not match ipa's unit 'L'"),
    (lambda c: rx(c, "B1"), "container id 'B1' is already in the ledger"),
    (lambda c: rx(c, "B2", store="S9"), "store 'S9' is not in"),
    (lambda c: rx(c, "B2", compartment="roof"), "compartment 'roof' is not one of store S1"),
    (lambda c: rx(c, "B2", actor=""), "actor is required"),
    (lambda c: ledger.move(c, HZ, actor="a", container="B1", store="S1", compartment="flammables",
                           reason="r"), "already in S1/flammables"),
    (lambda c: ledger.move(c, HZ, actor="a", container="NOPE", store="S2", compartment="main",
                           reason="r"), "container 'NOPE' is not in the ledger"),
])
def test_refusals_write_nothing(db, call, message):
    _, conn = db
    rx(conn)
    before = counts(conn)
    snapshot = conn.execute("SELECT * FROM hazmat_containers").fetchall()
    with pytest.raises(HazmatError) as exc:
        call(conn)
    assert message in str(exc.value)
    assert counts(conn) == before
    assert conn.execute("SELECT * FROM hazmat_containers").fetchall() == snapshot
    assert not conn.in_transaction


def test_refuses_to_run_inside_someone_elses_transaction(db):
    _, conn = db
    conn.execute("BEGIN")
    with pytest.raises(HazmatError, match="own transaction"):
        rx(conn)
    conn.execute("ROLLBACK")


def _issue_many(path: str, n: int, results) -> None:
    conn = connect(path)
    ok = refused = 0
    for i in range(n):
        try:
            ledger.issue(conn, HZ, actor="w", container="B1", quantity=1.0, unit="L",
                         reason=f"batch {i}", key=KEY)
            ok += 1
        except HazmatError:
            refused += 1
        if i % 5 == 0:  # interleave moves of another container
            try:
                ledger.move(conn, HZ, actor="w", container="B2",
                            store="S2" if i % 2 else "S1",
                            compartment="main" if i % 2 else "oxidisers", reason="shuffle", key=KEY)
            except HazmatError:
                pass  # already there: refused, nothing written
    conn.close()
    results.put((ok, refused))


def _check_consistent(conn, issued_ok: int, start: float):
    (qty,) = conn.execute("SELECT quantity FROM hazmat_containers WHERE container_id='B1'").fetchone()
    (issued,) = conn.execute("SELECT SUM(quantity) FROM hazmat_movements WHERE kind='issue'").fetchone()
    assert qty == start - issued_ok == start - issued
    assert qty >= 0
    (moves,) = conn.execute("SELECT COUNT(*) FROM hazmat_movements").fetchone()
    (audits,) = conn.execute("SELECT COUNT(*) FROM audit").fetchone()
    assert moves == audits  # exactly one audit row per movement
    assert conn.execute("SELECT COUNT(*) FROM hazmat_movements m LEFT JOIN audit a"
                        " ON a.id = m.audit_id WHERE a.id IS NULL").fetchone()[0] == 0
    assert audit.verify_chain(conn, KEY).ok


def test_concurrent_threads_keep_stock_consistent(db):
    path, conn = db
    rx(conn, "B1", qty=30.0)
    rx(conn, "B2", qty=5.0, substance="h2o2", compartment="oxidisers")
    import queue
    results: queue.Queue = queue.Queue()
    threads = [threading.Thread(target=_issue_many, args=(path, 10, results)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = [results.get() for _ in threads]
    ok = sum(o for o, _ in outcomes)
    assert ok == 30 and sum(r for _, r in outcomes) == 10  # 40 attempts on 30 L
    _check_consistent(conn, ok, 30.0)


def test_concurrent_processes_keep_stock_consistent(db):
    path, conn = db
    rx(conn, "B1", qty=15.0)
    rx(conn, "B2", qty=5.0, substance="h2o2", compartment="oxidisers")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_issue_many, args=(path, 10, results)) for _ in range(2)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ok = sum(o for o, _ in outcomes)
    assert ok == 15
    _check_consistent(conn, ok, 15.0)


def test_with_the_real_store(tmp_path):
    from facility.store import Store

    st = Store(str(tmp_path / "f.db"), key=KEY)
    try:
        assert st.add_migrations(ledger.NAMESPACE, ledger.LEDGER_MIGRATIONS) == [1]
        assert st.add_migrations(ledger.NAMESPACE, ledger.LEDGER_MIGRATIONS) == []
        before = st.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        rx(st.conn)
        assert st.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == before + 1
    finally:
        st.close()
