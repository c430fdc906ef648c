"""The store's read API on a real SQLite store, and "readers never speak SQL" as a scan.

import-linter only sees imports: a reader handed a connection could still run its own SQL.
The scan reads every module of the reader packages (the TUI, the records, the command line,
the launcher) and fails on SQL text or an ``.execute`` call, so the schema stays the
store's business (docs/ARCHITECTURE.md "Import rules").
"""

from __future__ import annotations

import ast
import re
import sqlite3
from pathlib import Path

import pytest

from facility.config.schema import HazmatCfg, Substance
from facility.config.schema import Store as DgStore
from facility.domain.model import PointInfo, Sample, now_ms
from facility.store import Cycle, Store, StoreError, StoreMissing
from hazmat import ledger

ROOT = Path(__file__).resolve().parents[3]
READERS = ("tui", "facility/records", "facility/cli", "facility/launch.py")
# Upper case, as SQL is written here; a lower-case "select a zone" in a label is not SQL.
SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|BEGIN|COMMIT|ROLLBACK|CREATE"
                       r"|DROP|ALTER|WITH|ATTACH|REPLACE|VACUUM)\b")
EXECUTE = {"execute", "executemany", "executescript"}


def sql_in(source: str, name: str = "<source>") -> list[str]:
    """``line: what`` for every SQL string constant or ``.execute`` call in the source."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if SQL_START.match(node.value):
                found.append(f"{node.lineno}: SQL text {node.value.strip()[:40]!r}")
        elif isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and SQL_START.match(str(head.value)):
                found.append(f"{node.lineno}: SQL f-string {str(head.value).strip()[:40]!r}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in EXECUTE):
            found.append(f"{node.lineno}: .{node.func.attr}(...) call")
    return found


def reader_modules() -> list[Path]:
    out: list[Path] = []
    for rel in READERS:
        path = ROOT / rel
        out.extend([path] if path.suffix == ".py" else sorted(path.rglob("*.py")))
    return out


def test_the_scan_sees_sql_text_fstrings_and_execute_calls():
    src = ('q = "SELECT * FROM points"\n'
           'def f(conn, t):\n'
           '    conn.execute(f"DELETE FROM {t}")\n'
           '    conn.executemany("x", [])\n'
           'label = "Select a zone"  # not SQL\n'
           '"""BEGIN a docstring is still SQL text"""\n')
    found = sql_in(src)
    assert sorted({int(f.split(":")[0]) for f in found}) == [1, 3, 4, 6], found
    assert {f for f in found if f.startswith("3:")} >= {"3: .execute(...) call",
                                                        "3: SQL f-string 'DELETE FROM'"}


def test_no_reader_module_speaks_sql():
    modules = reader_modules()
    assert len(modules) > 20  # the scan really walks the packages
    problems = [f"{p.relative_to(ROOT)}:{hit}" for p in modules
                for hit in sql_in(p.read_text(encoding="utf-8"), str(p))]
    assert problems == [], "readers must use the store's read API:\n" + "\n".join(problems)


# ---- the read API on a real store ----------------------------------------------------------

KEY = b"k" * 32
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
POINTS = [PointInfo("D.a", "D", "S", "Z", "temperature", "C", 1),
          PointInfo("D.b", "D", "S", "Z", "humidity", "%RH", 1)]
HZ = HazmatCfg(substances=(Substance("ipa", "Isopropanol", "UN1219", "3", unit="L"),),
               stores=(DgStore("S1", "MEC", compartments=("flammables", "spare")),))


@pytest.fixture
def db(tmp_path):
    """A writer store with two points, a config version and three cycles; and its path."""
    path = str(tmp_path / "facility.db")
    w = Store(path, key=KEY)
    w.register_points(POINTS)
    w.record_config("[facility]\nid = 't'\n", "a" * 64)
    for i in range(3):
        w.write_cycle(Cycle(
            samples=[Sample("D.a", T0 + i * 1000, 20.0 + i), Sample("D.b", T0 + i * 1000, 40.0)],
            events=[{"alarm_id": "D.a:action_high", "occurrence": 1, "event": f"e{i}",
                     "ts_ms": T0 + i * 1000, "detected_ms": T0 + i * 1000}],
            service_state={"heartbeat": {"ts_ms": T0 + i * 1000, "pid": 4242}}))
    yield w, path
    w.close()


def test_missing_database_is_store_missing_and_says_what_to_do(tmp_path):
    with pytest.raises(StoreMissing) as exc:
        Store(str(tmp_path / "nope.db"), readonly=True)
    assert "does not exist" in str(exc.value) and "facility run" in str(exc.value)
    assert not (tmp_path / "nope.db").exists()  # a reader never creates a database


def test_snapshot_sees_one_commit_until_it_ends(db):
    w, path = db
    with Store(path, readonly=True) as r:
        with r.snapshot():
            before = {row.point_id: row.value for row in r.latest_rows()}
            w.write_cycle(Cycle(samples=[Sample("D.a", T0 + 9000, 99.0)]))
            assert {row.point_id: row.value for row in r.latest_rows()} == before
            assert r.heartbeat()["ts_ms"] == T0 + 2000
        after = {row.point_id: row.value for row in r.latest_rows()}
    assert before[1] == 22.0 and after[1] == 99.0


def test_snapshot_turns_sqlite_errors_into_store_errors(db):
    w, path = db
    with Store(path, readonly=True) as r:
        raw = sqlite3.connect(path)
        raw.execute("DROP TABLE zone_modes")
        raw.commit()
        raw.close()
        with pytest.raises(StoreError, match="no such table"):
            with r.snapshot():
                r.zone_modes()
        assert not r.conn.in_transaction
        with r.snapshot():  # the store stays usable
            assert len(r.points()) == 2


def test_points_signature_moves_when_a_point_is_registered(db):
    w, path = db
    with Store(path, readonly=True) as r:
        sig = r.points_signature()
        assert sig == (2, 2)
        w.register_points([PointInfo("D.c", "D", "S", "Z", "pressure_diff", "Pa", 1)])
        assert r.points_signature() == (3, 3)


def test_latest_rows_incremental_by_updated_ms(db):
    w, path = db
    with Store(path, readonly=True) as r:
        rows = r.latest_rows()
        assert sorted((x.point_id, x.ts_ms, x.value, x.quality) for x in rows) == [
            (1, T0 + 2000, 22.0, 0), (2, T0 + 2000, 40.0, 0)]
        assert all(x.good_ts_ms == x.ts_ms and x.good_value == x.value for x in rows)
        mark = max(x.updated_ms for x in rows)
        assert r.latest_rows(updated_after_ms=mark) == []
        while now_ms() <= mark:  # the next write must get a later updated_ms than the mark
            pass
        w.write_cycle(Cycle(samples=[Sample("D.b", T0 + 5000, None, 2)]))  # a comm failure
        (b,) = r.latest_rows(updated_after_ms=mark)  # only what moved, not D.a
        assert (b.point_id, b.value, b.quality) == (2, None, 2)
        assert (b.good_value, b.good_ts_ms) == (40.0, T0 + 2000)  # the newest good one stays


def test_heartbeat_and_an_unreadable_one(db):
    w, path = db
    with Store(path, readonly=True) as r:
        assert r.heartbeat() == {"ts_ms": T0 + 2000, "pid": 4242}
        w.write_cycle(Cycle(service_state={"heartbeat": "soon"}))
        assert r.heartbeat() is None


def test_recent_events_newest_n_oldest_first(db):
    _w, path = db
    with Store(path, readonly=True) as r:
        assert [e["event"] for e in r.recent_events(2)] == ["e1", "e2"]
        assert [e["event"] for e in r.recent_events()] == ["e0", "e1", "e2"]


def test_audit_span_iteration_in_chunks_and_head(db):
    w, path = db
    with Store(path, readonly=True) as r:
        every = r.audit_rows()
        assert [a["action"] for a in every] == ["config_loaded"] + ["cycle_digest"] * 3
        lo, hi = r.audit_span(0, 2**62)
        assert (lo, hi) == (every[0]["id"], every[-1]["id"])
        assert list(r.iter_audit(lo, hi, chunk=2)) == every
        assert [a["id"] for a in r.iter_audit(lo + 1, hi - 1, chunk=1)] == [
            a["id"] for a in every[1:-1]]
        assert r.audit_span(0, 1) is None
        assert r.audit_head() == {"id": every[-1]["id"], "hash": every[-1]["hash"]}
        assert r.verify_audit(KEY).ok


def test_config_versions_and_archived_days(db):
    w, path = db
    w.record_config("[facility]\nid = 't2'\n", "b" * 64)
    w.record_archive("2026-01-01", "/x", "c" * 64, 6, verified=True)
    w.record_archive("2026-01-02", "/y", "d" * 64, 0, verified=False)
    with Store(path, readonly=True) as r:
        assert [(v["id"], v["sha256"][:1]) for v in r.config_versions()] == [(1, "a"), (2, "b")]
        assert r.config_text(2) == "[facility]\nid = 't2'\n"
        assert r.archived_days() == {"2026-01-01"}


def test_hazmat_readers_before_and_after_the_ledger_exists(db):
    w, path = db
    with Store(path, readonly=True) as r:
        assert not r.has_hazmat_ledger()
        assert r.hazmat_totals() is None and list(r.iter_hazmat_movements(0, 2**62)) == []
        assert ledger.stock(r) == []  # the ledger's own reader, on a read-only store
    w.add_migrations(ledger.NAMESPACE, ledger.LEDGER_MIGRATIONS)
    for i, qty in enumerate((10.0, 5.0, 2.0)):
        ledger.receive(w, HZ, actor="alice", container=f"B{i}", substance="ipa", quantity=qty,
                       unit="L", store="S1", compartment="flammables", reason="delivery",
                       key=KEY, ts_ms=T0 + i)
    ledger.issue(w, HZ, actor="bob", container="B2", quantity=2.0, unit="L", reason="used",
                 key=KEY, ts_ms=T0 + 10)
    with Store(path, readonly=True) as r:
        assert r.has_hazmat_ledger()
        assert r.hazmat_totals() == [{"store": "S1", "substance": "ipa", "unit": "L",
                                      "quantity": 15.0, "containers": 2}]
        moves = list(r.iter_hazmat_movements(T0, T0 + 11, chunk=2))
        assert [(m["kind"], m["container_id"]) for m in moves] == [
            ("receive", "B0"), ("receive", "B1"), ("receive", "B2"), ("issue", "B2")]
        assert [m["id"] for m in r.iter_hazmat_movements(T0 + 1, T0 + 10, chunk=1)] == [
            moves[1]["id"], moves[2]["id"]]
        assert moves[3]["actor"] == "bob" and moves[3]["audit_id"] > moves[2]["audit_id"]
        assert r.verify_audit(KEY).ok
        with pytest.raises(StoreError, match="read-only"):  # a reader can never write
            ledger.move(r, HZ, actor="bob", container="B0", store="S1", compartment="spare",
                        reason="tidy", key=KEY)
