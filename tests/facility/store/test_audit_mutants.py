"""The audit trail's functions on their own: stored fields, messages, chunked reads, keys.

docs/ARCHITECTURE.md "Audit trail": what ``append`` stores is what ``canonical`` hashes, so
every field an entry names must land in its column unchanged; ``verify_chain`` must name the
first bad row and how many were good before it, read a long chain in chunks, and tell a
deletion, a reordering, an insertion and an edit apart.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest

from facility.domain.model import now_ms
from facility.store import audit
from facility.store.errors import AuditKeyError, StoreError

KEY = b"0123456789abcdef0123456789abcdef"


@pytest.fixture
def conn():
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.execute(audit.AUDIT_DDL)
    yield c
    c.close()


def add(conn, n=1, key=KEY, **entry):
    rows = []
    conn.execute("BEGIN IMMEDIATE")
    for i in range(n):
        e = {"action": "comment", "actor": "bob", "subject": f"A{i}:x", "reason": f"r{i}"}
        rows.append(audit.append(conn, e | entry, key))
    conn.execute("COMMIT")
    return rows


def stored(conn, rid):
    cur = conn.execute(f"SELECT {audit._COLS} FROM audit WHERE id = ?", (rid,))
    return dict(zip([d[0] for d in cur.description], cur.fetchone()))


def rows_of(conn):
    cur = conn.execute(f"SELECT {audit._COLS} FROM audit ORDER BY id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


# -- append ---------------------------------------------------------------------------------
def test_append_stores_every_field_it_is_given(conn):
    (row,) = add(conn, ts_ms=1_700_000_000_123, subject="Z1:action_low#2", reason="door open",
                 config_version=7, actor="alice", action="ack")
    db = stored(conn, 1)
    assert db == row
    assert (db["id"], db["ts_ms"], db["actor"], db["action"], db["subject"], db["reason"],
            db["config_version"], db["details"]) == (
        1, 1_700_000_000_123, "alice", "ack", "Z1:action_low#2", "door open", 7, None)
    assert db["prev_hash"] == audit.GENESIS
    canon = audit.canonical(db)
    assert db["row_sha256"] == audit.hashlib.sha256(canon).hexdigest()
    assert db["hash"] == audit.chain_hash(KEY, audit.GENESIS, canon)


def test_append_defaults_and_conversions(conn):
    before = now_ms()
    conn.execute("BEGIN IMMEDIATE")
    row = audit.append(conn, {"action": 5, "actor": 42}, None)
    conn.execute("COMMIT")
    assert before <= row["ts_ms"] <= now_ms()
    assert (row["actor"], row["action"], row["subject"], row["reason"], row["config_version"]) \
        == ("42", "5", None, None, None)
    # without a key the hash is the plain SHA-256 of the same bytes
    canon = audit.canonical(row)
    assert row["hash"] == audit.hashlib.sha256(audit.GENESIS.encode() + canon).hexdigest()


def test_details_are_stored_as_canonical_json(conn):
    add(conn, details={"b": 1, "a": "é", "c": [1, 2]})
    add(conn, details='{ "z": 1,  "y": {"x": 2} }')
    add(conn, details=None)
    assert stored(conn, 1)["details"] == '{"a":"é","b":1,"c":[1,2]}'
    assert stored(conn, 2)["details"] == '{"y":{"x":2},"z":1}'
    assert stored(conn, 3)["details"] is None
    assert audit.verify_chain(conn, KEY).ok


def test_rows_link_to_their_predecessor(conn):
    a, b = add(conn, n=2)
    assert (a["id"], b["id"]) == (1, 2)
    assert b["prev_hash"] == a["hash"]


def test_append_refuses_outside_a_transaction(conn):
    with pytest.raises(StoreError) as info:
        audit.append(conn, {"action": "x", "actor": "y"}, KEY)
    assert str(info.value) == "audit.append: call inside BEGIN IMMEDIATE so the head cannot move"


@pytest.mark.parametrize("missing", ["action", "actor"])
def test_append_names_a_missing_required_field(conn, missing):
    entry = {"action": "x", "actor": "y"}
    entry[missing] = ""
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreError) as info:
        audit.append(conn, entry, KEY)
    conn.execute("ROLLBACK")
    assert str(info.value) == f"audit entry {entry!r}: {missing!r} is required"


def test_append_names_unknown_keys_and_the_allowed_ones(conn):
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreError) as info:
        audit.append(conn, {"action": "x", "actor": "y", "who": 1, "id": 5}, KEY)
    conn.execute("ROLLBACK")
    # id is canonical but not the caller's: it is not offered, yet accepted as known
    assert str(info.value) == ("audit entry: unknown keys ['who']; allowed: ts_ms, actor, action,"
                               " subject, reason, details, config_version")


# -- verify_chain -----------------------------------------------------------------------------
def test_long_chain_is_read_in_chunks(conn):
    add(conn, n=5003, key=None)
    res = audit.verify_chain(conn)
    assert (res.ok, res.checked, res.first_bad_id, res.problem) == (True, 5003, None, None)


def test_rows_from_a_generator(conn):
    add(conn, n=4)
    res = audit.verify_chain(r for r in rows_of(conn))
    assert (res.ok, res.checked) == (True, 4)


@pytest.mark.parametrize("gone,problem,first", [
    ([3], "row 3 deleted (next is 4)", 3),
    ([3, 4, 5], "row 3-5 deleted (next is 6)", 3),
    ([1], "row 1 deleted (next is 2)", 1),
])
def test_deletion_names_the_missing_ids(conn, gone, problem, first):
    add(conn, n=7)
    for rid in gone:
        conn.execute("DELETE FROM audit WHERE id = ?", (rid,))
    for source in (conn, rows_of(conn)):
        res = audit.verify_chain(source, KEY)
        assert (res.ok, res.checked, res.first_bad_id, res.problem) == (
            False, first - 1, first, problem)


def test_duplicate_id_is_out_of_sequence(conn):
    add(conn, n=3)
    rows = rows_of(conn)
    res = audit.verify_chain(rows + [dict(rows[1])], KEY)
    assert (res.ok, res.checked, res.first_bad_id, res.problem) == (
        False, 2, 2, "row 2: id out of sequence")


def _relink(rows, rid, to_hash):
    out = [dict(r) for r in rows]
    out[rid - 1]["prev_hash"] = to_hash
    return out


@pytest.mark.parametrize("target,problem", [
    (None, "row 4: prev_hash matches no row (row inserted or prev_hash edited)"),
    (6, "row 4: follows row 6, which comes later (rows reordered)"),
    (4, "row 4: prev_hash does not match row 4's hash (edited)"),
    (2, "row 4: follows row 2, rows in between were inserted"),
    (1, "row 4: follows row 1, rows in between were inserted"),
])
def test_broken_link_is_explained(conn, target, problem):
    add(conn, n=6)
    rows = rows_of(conn)
    to = "f" * 64 if target is None else rows[target - 1]["hash"]
    bad = _relink(rows, 4, to)
    res = audit.verify_chain(bad, KEY)  # a list: predecessors are looked up in it
    assert (res.ok, res.checked, res.first_bad_id, res.problem) == (False, 3, 4, problem)
    if target in (None, 6):  # prev_hash is UNIQUE: only these can be written to the table
        conn.execute("UPDATE audit SET prev_hash = ? WHERE id = 4", (to,))
        res = audit.verify_chain(conn, KEY)  # a database: looked up by query
        assert (res.ok, res.checked, res.first_bad_id, res.problem) == (False, 3, 4, problem)


def test_unreadable_content(conn):
    add(conn, n=3)
    rows = rows_of(conn)
    rows[1]["details"] = "{not json"
    res = audit.verify_chain(rows, KEY)
    assert (res.ok, res.checked, res.first_bad_id) == (False, 1, 2)
    assert res.problem.startswith("row 2: unreadable content (") and res.problem.endswith(
        ") (edited)")


def test_content_edit(conn):
    add(conn, n=3)
    conn.execute("UPDATE audit SET reason = 'changed' WHERE id = 3")
    res = audit.verify_chain(conn)
    assert (res.ok, res.checked, res.first_bad_id, res.problem) == (
        False, 2, 3, "row 3: content differs from row_sha256 (edited)")


def test_forged_row_needs_the_key_to_be_found(conn):
    add(conn, n=3)
    rows = rows_of(conn)
    rows[2]["reason"] = "forged"
    canon = audit.canonical(rows[2])
    rows[2]["row_sha256"] = audit.hashlib.sha256(canon).hexdigest()  # recomputed by the forger
    assert audit.verify_chain(rows).ok
    res = audit.verify_chain(rows, KEY)
    assert (res.ok, res.checked, res.first_bad_id, res.problem) == (
        False, 2, 3, "row 3: HMAC does not match (forged, inserted or edited)")


# -- keys ---------------------------------------------------------------------------------
def _key_file(tmp_path, content: bytes, name="audit.key"):
    path = tmp_path / name
    path.write_bytes(content)
    os.chmod(path, 0o600)
    return path


def test_key_length_boundary(tmp_path, monkeypatch):
    monkeypatch.setenv("T_AUDIT_KEY", str(_key_file(tmp_path, b"a" * 16 + b"\n")))
    assert audit.load_key("T_AUDIT_KEY") == b"a" * 16
    short = _key_file(tmp_path, b"a" * 15 + b"\n", "short.key")
    monkeypatch.setenv("T_AUDIT_KEY", str(short))
    with pytest.raises(AuditKeyError) as info:
        audit.load_key("T_AUDIT_KEY")
    assert str(info.value) == f"$T_AUDIT_KEY={short}: audit key is shorter than 16 bytes"


def test_ensure_key_creates_a_private_random_key_in_a_new_folder(tmp_path):
    path = tmp_path / "etc" / "facility" / "audit.key"
    key = audit.ensure_key(str(path))
    assert len(key) == 64 and int(key, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == key + b"\n"
    assert audit.ensure_key(str(path)) == key  # an existing key is kept
    assert audit.ensure_key(str(tmp_path / "second.key")) != key  # folder exists already


def test_ensure_key_tightens_an_existing_key_file(tmp_path):
    path = tmp_path / "audit.key"
    path.write_bytes(b"x" * 32 + b"\n")
    os.chmod(path, 0o644)
    assert audit.ensure_key(str(path)) == b"x" * 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_canonical_doc_is_compact_sorted_utf8():
    assert audit.canonical_doc({"b": 1.5, "a": "é"}) == '{"a":"é","b":"1.5"}'.encode("utf-8")
    assert json.loads(audit.canonical({"id": 1})) == {n: (1 if n == "id" else None)
                                                      for n in audit.CANONICAL_FIELDS}


def test_a_value_without_canonical_form_is_named():
    with pytest.raises(TypeError) as info:
        audit.canonical({"id": 1, "details": {"tags": {"a"}}})
    assert str(info.value) == "audit: set value {'a'} has no canonical form"
