"""Audit trail: canonical form test vector, chain verification, tamper detection, no forks."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from facility.store import audit
from facility.store.database import Store
from facility.store.errors import AuditKeyError, StoreError

VECTOR = json.loads((Path(__file__).parent / "audit_vector.json").read_text(encoding="utf-8"))
KEY = b"k" * 32


def test_canonical_vector():
    canon = audit.canonical(VECTOR["row"])
    assert canon == VECTOR["canonical_utf8"].encode("utf-8")
    assert hashlib.sha256(canon).hexdigest() == VECTOR["row_sha256"]
    key = VECTOR["key"].encode()
    assert audit.chain_hash(key, VECTOR["prev_hash"], canon) == VECTOR["hmac_sha256"]


def test_canonical_rules():
    # floats as repr strings, keys sorted, no whitespace, details given as JSON text or dict
    a = audit.canonical({"id": 1, "details": {"b": 1.0, "a": 1e-7}})
    b = audit.canonical({"id": 1, "details": '{"a": 1e-07, "b": 1.0}'})
    assert a == b
    assert b'"a":"1e-07","b":"1.0"' in a and b" " not in a


def _chain(tmp_path, n=8, key=KEY) -> Store:
    store = Store(str(tmp_path / "f.db"), key=key)
    for i in range(n):
        store.append_audit({"action": "comment", "actor": "bob", "subject": f"A{i}:x",
                            "reason": f"note {i}", "details": {"i": i, "v": i / 3}})
    return store


def _raw(store: Store) -> sqlite3.Connection:
    conn = sqlite3.connect(store.path, isolation_level=None)
    return conn


def test_chain_verifies_with_and_without_key(tmp_path):
    store = _chain(tmp_path)
    assert store.verify_audit().ok
    res = store.verify_audit(KEY)
    assert res.ok and res.checked == 8
    wrong = store.verify_audit(b"x" * 32)
    assert not wrong.ok and wrong.first_bad_id == 1
    store.close()


def test_edit_detected(tmp_path):
    store = _chain(tmp_path)
    _raw(store).execute("UPDATE audit SET reason = 'nothing happened' WHERE id = 5")
    for key in (None, KEY):
        res = store.verify_audit(key)
        assert (res.ok, res.first_bad_id) == (False, 5) and "edited" in res.problem
    store.close()


def test_delete_detected(tmp_path):
    store = _chain(tmp_path)
    _raw(store).execute("DELETE FROM audit WHERE id = 4")
    res = store.verify_audit()
    assert (res.ok, res.first_bad_id) == (False, 4) and "deleted" in res.problem
    store.close()


def test_reorder_detected(tmp_path):
    store = _chain(tmp_path)
    raw = _raw(store)
    raw.execute("UPDATE audit SET id = -1 WHERE id = 6")
    raw.execute("UPDATE audit SET id = 6 WHERE id = 5")
    raw.execute("UPDATE audit SET id = 5 WHERE id = -1")
    res = store.verify_audit()
    assert (res.ok, res.first_bad_id) == (False, 5) and "reordered" in res.problem
    store.close()


def _forge(rows: list[dict], at: int) -> list[dict]:
    """Insert a forged row at id ``at``, renumbering later rows and fixing what needs no key."""
    out = [dict(r) for r in rows if r["id"] < at]
    forged = {"id": at, "ts_ms": rows[at - 1]["ts_ms"], "actor": "mallory", "action": "ack",
              "subject": "A:x", "reason": "forged", "details": None, "config_version": None,
              "prev_hash": out[-1]["hash"]}
    canon = audit.canonical(forged)
    forged["row_sha256"] = hashlib.sha256(canon).hexdigest()
    forged["hash"] = audit.chain_hash(None, forged["prev_hash"], canon)  # no key: a guess
    out.append(forged)
    for r in rows[at - 1:]:
        r = dict(r, id=r["id"] + 1)
        r["row_sha256"] = hashlib.sha256(audit.canonical(r)).hexdigest()
        out.append(r)
    out[at]["prev_hash"] = forged["hash"]
    return out


def test_insert_detected(tmp_path):
    store = _chain(tmp_path)
    rows = store.audit_rows()
    # naive insertion: later rows left alone -> the link after it is broken
    naive = [dict(r) for r in rows[:3]] + [dict(rows[3], id=4, reason="forged", prev_hash="f" * 64)]
    naive[-1]["row_sha256"] = hashlib.sha256(audit.canonical(naive[-1])).hexdigest()
    naive += [dict(r, id=r["id"] + 1) for r in rows[3:]]
    res = audit.verify_chain(naive)
    assert (res.ok, res.first_bad_id) == (False, 4) and "inserted" in res.problem
    # careful insertion (row_sha256 and links recomputed): only the key can tell
    careful = _forge(rows, 4)
    assert audit.verify_chain(careful).ok
    res = audit.verify_chain(careful, KEY)
    assert (res.ok, res.first_bad_id) == (False, 4) and "inserted" in res.problem
    store.close()


def test_append_needs_transaction(tmp_path):
    store = _chain(tmp_path, n=0)
    with pytest.raises(StoreError, match="BEGIN IMMEDIATE"):
        audit.append(store.conn, {"action": "x", "actor": "y"}, KEY)
    store.close()


def test_prev_hash_unique_prevents_fork(tmp_path):
    store = _chain(tmp_path, n=2)
    head = store.audit_rows()[-1]
    with pytest.raises(sqlite3.IntegrityError):
        _raw(store).execute(
            "INSERT INTO audit (id, ts_ms, actor, action, prev_hash, hash, row_sha256)"
            " VALUES (99, 0, 'm', 'x', ?, 'h', 'r')", (head["prev_hash"],))
    store.close()


def test_two_writers_never_fork(tmp_path):
    path = str(tmp_path / "f.db")
    Store(path, key=KEY).close()
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            with Store(path, key=KEY) as s:
                for i in range(40):
                    s.append_audit({"action": "comment", "actor": name, "reason": str(i)})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("w1", "w2", "w3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with Store(path, readonly=True) as r:
        res = r.verify_audit(KEY)
        assert res.ok and res.checked == 120
        prevs = [row["prev_hash"] for row in r.audit_rows()]
        assert len(set(prevs)) == 120


def test_key_files(tmp_path, monkeypatch):
    path = tmp_path / "keys" / "audit.key"
    key = audit.ensure_key(str(path))
    assert len(key) == 64 and (os.stat(path).st_mode & 0o777) == 0o600
    assert audit.ensure_key(str(path)) == key
    monkeypatch.setenv("FAC_KEY", str(path))
    assert audit.load_key("FAC_KEY") == key
    monkeypatch.delenv("FAC_KEY")
    assert audit.load_key("FAC_KEY") is None
    os.chmod(path, 0o644)
    monkeypatch.setenv("FAC_KEY", str(path))
    with pytest.raises(AuditKeyError, match="chmod 600"):
        audit.load_key("FAC_KEY")
    monkeypatch.setenv("FAC_KEY", str(tmp_path / "absent"))
    with pytest.raises(AuditKeyError, match="cannot read"):
        audit.load_key("FAC_KEY")
