"""Append-only, hash-chained audit trail (docs/ARCHITECTURE.md "Storage", "Audit trail").

Each row holds ``prev_hash`` (the previous row's ``hash``; 64 zeros for the first row),
``row_sha256 = SHA-256(canonical(row))`` and ``hash = HMAC-SHA-256(key, prev_hash +
canonical(row))``. Without the key, :func:`verify_chain` still finds edits (content vs
``row_sha256``), deletions (a gap in ids or a broken link), reordering and naive insertions
(a broken link); with the key it also proves authenticity, which catches a forger who
recomputed ``row_sha256``. With no key configured, ``hash`` is the plain SHA-256 of the same
bytes, so continuity still holds and a key can be introduced later only for new stores.

The ``UNIQUE`` constraint on ``prev_hash`` plus reading the head inside the caller's
``BEGIN IMMEDIATE`` make a fork impossible: two writers serialise on the write lock, and a
second row claiming the same predecessor is rejected by SQLite.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import stat
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from facility.domain.model import now_ms
from facility.store.errors import AuditKeyError, StoreError

GENESIS = "0" * 64
"""``prev_hash`` of the first row of a chain."""

# The columns covered by canonical(row); prev_hash, hash and row_sha256 are the chain itself.
CANONICAL_FIELDS: tuple[str, ...] = (
    "id",
    "ts_ms",
    "actor",
    "action",
    "subject",
    "reason",
    "details",
    "config_version",
)

AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    reason TEXT,
    details TEXT,
    config_version INTEGER,
    prev_hash TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL,
    row_sha256 TEXT NOT NULL
)
"""


def _canon_value(value: Any) -> Any:
    """Floats become their ``repr`` string (exact, and the same on every platform)."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _canon_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon_value(v) for v in value]
    raise TypeError(f"audit: {type(value).__name__} value {value!r} has no canonical form")


def canonical(row: Mapping[str, Any]) -> bytes:
    """Canonical bytes of an audit row: JSON, keys sorted, UTF-8, no whitespace, floats as repr.

    Only :data:`CANONICAL_FIELDS` are covered (absent ones count as null); ``details`` may be
    a dict or its JSON text. Times are integer milliseconds already.
    """
    doc: dict[str, Any] = {}
    for name in CANONICAL_FIELDS:
        value = row.get(name)
        if name == "details" and isinstance(value, str):
            value = json.loads(value)
        doc[name] = value
    return canonical_doc(doc)


def canonical_doc(doc: Mapping[str, Any]) -> bytes:
    """Canonical bytes of any JSON-able mapping (same rules as :func:`canonical`)."""
    return json.dumps(
        _canon_value(doc), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def chain_hash(key: bytes | None, prev_hash: str, canon: bytes) -> str:
    """``HMAC-SHA-256(key, prev_hash + canonical)`` in hex; plain SHA-256 when there is no key."""
    data = prev_hash.encode("ascii") + canon
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _details_json(details: Any) -> str | None:
    if details is None:
        return None
    if isinstance(details, str):
        details = json.loads(details)
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def append(conn: sqlite3.Connection, entry: Mapping[str, Any], key: bytes | None) -> dict:
    """Append one row; call inside the caller's ``BEGIN IMMEDIATE`` (it reads the head there).

    ``entry`` holds ``action`` and ``actor`` (required), and optionally ``subject``,
    ``reason``, ``details`` (JSON-able), ``config_version`` and ``ts_ms`` (default now).
    Returns the stored row as a dict.
    """
    if not conn.in_transaction:
        raise StoreError("audit.append: call inside BEGIN IMMEDIATE so the head cannot move")
    for required in ("action", "actor"):
        if not entry.get(required):
            raise StoreError(f"audit entry {dict(entry)!r}: {required!r} is required")
    unknown = set(entry) - set(CANONICAL_FIELDS)
    if unknown:
        raise StoreError(
            f"audit entry: unknown keys {sorted(unknown)}; allowed: {', '.join(CANONICAL_FIELDS[1:])}"
        )
    head = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    prev_id, prev_hash = (head[0], head[1]) if head else (0, GENESIS)
    details = _details_json(entry.get("details"))
    row = {
        "id": prev_id + 1,
        "ts_ms": int(entry.get("ts_ms") or now_ms()),
        "actor": str(entry["actor"]),
        "action": str(entry["action"]),
        "subject": entry.get("subject"),
        "reason": entry.get("reason"),
        "details": details,
        "config_version": entry.get("config_version"),
    }
    canon = canonical(row)
    row["prev_hash"] = prev_hash
    row["row_sha256"] = hashlib.sha256(canon).hexdigest()
    row["hash"] = chain_hash(key, prev_hash, canon)
    conn.execute(
        "INSERT INTO audit (id, ts_ms, actor, action, subject, reason, details, config_version,"
        " prev_hash, hash, row_sha256) VALUES (:id, :ts_ms, :actor, :action, :subject, :reason,"
        " :details, :config_version, :prev_hash, :hash, :row_sha256)",
        row,
    )
    return row


def load_key(env_var: str) -> bytes | None:
    """Read the key file named by ``$env_var``; None when the variable is unset or empty.

    Raises :class:`AuditKeyError` when the file is missing, empty, or readable by group or
    others (the key must be readable only by the service account).
    """
    path = os.environ.get(env_var, "").strip()
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError as exc:
        raise AuditKeyError(
            f"${env_var}={path}: cannot read audit key ({exc.strerror}); "
            f"create one with ensure_key or unset {env_var}"
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditKeyError(
            f"${env_var}={path}: audit key is accessible by group/others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); fix: chmod 600 {path}"
        )
    with open(path, "rb") as fh:
        key = fh.read().strip()
    if len(key) < 16:
        raise AuditKeyError(f"${env_var}={path}: audit key is shorter than 16 bytes")
    return key


def ensure_key(path: str) -> bytes:
    """Return the key at ``path``, creating a random 0600 key file (64 hex chars) if absent."""
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode("ascii") + b"\n")
    os.chmod(path, 0o600)
    with open(path, "rb") as fh:
        return fh.read().strip()


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_chain`: ``first_bad_id`` names the first row found wrong."""

    ok: bool
    checked: int
    first_bad_id: int | None = None
    problem: str | None = None


_COLS = "id, ts_ms, actor, action, subject, reason, details, config_version, prev_hash, hash, row_sha256"


def _iter_rows(source: sqlite3.Connection | Iterable[Mapping[str, Any]], chunk: int = 5000):
    if not isinstance(source, sqlite3.Connection):
        yield from sorted((dict(r) for r in source), key=lambda r: r["id"])
        return
    names = [c.strip() for c in _COLS.split(",")]
    last = -(2**63)
    while True:  # short read transactions, so checkpoints are never starved
        rows = source.execute(
            f"SELECT {_COLS} FROM audit WHERE id > ? ORDER BY id LIMIT ?", (last, chunk)
        ).fetchall()
        if not rows:
            return
        for r in rows:
            yield dict(zip(names, r))
        last = rows[-1][0]


def _explain_break(row: dict, by_hash: dict[str, int] | None, find) -> str:
    """Name what a broken link means: which row the row claims as predecessor."""
    target = by_hash.get(row["prev_hash"]) if by_hash is not None else find(row["prev_hash"])
    if target is None:
        return f"row {row['id']}: prev_hash matches no row (row inserted or prev_hash edited)"
    if target > row["id"]:
        return f"row {row['id']}: follows row {target}, which comes later (rows reordered)"
    if target < row["id"] - 1:
        return f"row {row['id']}: follows row {target}, rows in between were inserted"
    return f"row {row['id']}: prev_hash does not match row {target}'s hash (edited)"


def verify_chain(
    source: sqlite3.Connection | Iterable[Mapping[str, Any]], key: bytes | None = None
) -> VerifyResult:
    """Check the whole chain in id order; stop at the first problem.

    ``source`` is a connection (rows read in short chunks) or an iterable of row dicts.
    Checks per row: ids consecutive from 1 (a gap is a deletion), ``prev_hash`` equals the
    previous row's ``hash`` (else reordering or insertion), content vs ``row_sha256`` (edit),
    and with ``key`` the HMAC (authenticity: catches forged or inserted rows).
    """
    by_hash: dict[str, int] | None = None
    rows_list: list[dict] | None = None
    if not isinstance(source, sqlite3.Connection):
        rows_list = list(_iter_rows(source))
        by_hash = {r["hash"]: r["id"] for r in rows_list}

    def find(h: str) -> int | None:
        hit = source.execute("SELECT id FROM audit WHERE hash = ?", (h,)).fetchone()
        return hit[0] if hit else None

    prev_id, prev_hash, checked = 0, GENESIS, 0
    for row in rows_list if rows_list is not None else _iter_rows(source):
        rid = row["id"]
        if rid != prev_id + 1:
            if rid > prev_id + 1:
                gone = f"{prev_id + 1}" if rid == prev_id + 2 else f"{prev_id + 1}-{rid - 1}"
                return VerifyResult(False, checked, prev_id + 1, f"row {gone} deleted (next is {rid})")
            return VerifyResult(False, checked, rid, f"row {rid}: id out of sequence")
        if row["prev_hash"] != prev_hash:
            return VerifyResult(False, checked, rid, _explain_break(row, by_hash, find))
        try:
            canon = canonical(row)
        except (ValueError, TypeError) as exc:
            return VerifyResult(False, checked, rid, f"row {rid}: unreadable content ({exc}) (edited)")
        if hashlib.sha256(canon).hexdigest() != row["row_sha256"]:
            return VerifyResult(False, checked, rid, f"row {rid}: content differs from row_sha256 (edited)")
        if key is not None and not hmac.compare_digest(
            chain_hash(key, row["prev_hash"], canon), row["hash"] or ""
        ):
            return VerifyResult(
                False, checked, rid, f"row {rid}: HMAC does not match (forged, inserted or edited)"
            )
        prev_id, prev_hash = rid, row["hash"]
        checked += 1
    return VerifyResult(True, checked)

