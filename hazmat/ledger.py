"""The dangerous-goods stock ledger: containers, movements and their audit rows in SQLite.

Every movement (receive, issue, move) runs in ONE ``BEGIN IMMEDIATE`` transaction that
validates against the current rows, changes the container, writes one ``hazmat_movements``
row and appends one audit row (Annex 11 §9 / Part 11 §11.10(e): who, when, why). The write
lock is taken before anything is read, so two processes issuing from the same container
serialise and can never both pass the "enough stock" check. A refused request raises
:class:`HazmatError` before anything is written and rolls back: nothing of it remains.

Quantities are rounded to :data:`DECIMALS` places so repeated partial issues cannot drift
(0.1 issued ten times empties a 1 L bottle exactly).

Every function takes a :class:`facility.store.Store` or a bare connection (``Db``). The
service passes its own store, on its writer thread, so it stays the one writer while it runs
(``facility hazmat receive|issue|move`` reach it over the action socket); with a Store, the
write lock is taken through ``Store.transaction`` so a lock timeout is ``StoreLocked``.
"""

from __future__ import annotations

import math
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Union

from facility.config.schema import HazmatCfg
from facility.domain.model import now_ms
from facility.store import Store, audit
from hazmat.classes import HazmatError

Db = Union[Store, sqlite3.Connection]
"""A store (the service's, or a command's read-only open) or a bare connection (tests, tools)."""

NAMESPACE = "hazmat"
"""Migration namespace passed to ``Store.add_migrations``."""

DECIMALS = 6

LEDGER_MIGRATIONS: list[str] = [
    # 1: containers (current state) and movements (the history that explains it)
    """
    CREATE TABLE hazmat_containers (
        container_id TEXT PRIMARY KEY,
        substance TEXT NOT NULL,
        store TEXT NOT NULL,
        compartment TEXT NOT NULL,
        quantity REAL NOT NULL CHECK (quantity >= 0),
        unit TEXT NOT NULL CHECK (unit IN ('L', 'kg', 'L_wc')),
        received_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE INDEX hazmat_containers_place ON hazmat_containers (store, compartment);
    CREATE TABLE hazmat_movements (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        container_id TEXT NOT NULL REFERENCES hazmat_containers (container_id),
        substance TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('receive', 'issue', 'move')),
        quantity REAL NOT NULL CHECK (quantity >= 0),
        unit TEXT NOT NULL,
        from_store TEXT,
        from_compartment TEXT,
        to_store TEXT,
        to_compartment TEXT,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        audit_id INTEGER NOT NULL
    );
    CREATE INDEX hazmat_movements_container ON hazmat_movements (container_id, ts_ms);
    """,
]
"""Numbered migrations of the ledger (never edit a shipped one; append)."""


@dataclass(frozen=True)
class Movement:
    """One stored movement, as returned to the caller."""

    id: int
    ts_ms: int
    container_id: str
    substance: str
    kind: str  # receive | issue | move
    quantity: float
    unit: str
    from_store: str | None
    from_compartment: str | None
    to_store: str | None
    to_compartment: str | None
    actor: str
    reason: str
    audit_id: int
    remaining: float  # the container's quantity after the movement


@dataclass(frozen=True)
class Container:
    """One container (bottle, drum, cylinder) as it stands now."""

    container_id: str
    substance: str
    store: str
    compartment: str
    quantity: float
    unit: str
    received_ms: int


def ensure_schema(conn: sqlite3.Connection) -> list[int]:
    """Apply the ledger migrations (and the audit table) on a bare connection.

    The service uses ``Store.add_migrations(NAMESPACE, LEDGER_MIGRATIONS)`` instead; this is
    for tools and tests that hold only a connection. Idempotent.
    """
    from facility.store.schema import apply_migrations

    conn.execute(audit.AUDIT_DDL)
    return apply_migrations(conn, NAMESPACE, LEDGER_MIGRATIONS)


def _conn(db: Db) -> sqlite3.Connection:
    """The connection behind a Store, or the connection itself."""
    return getattr(db, "conn", db)


@contextmanager
def _immediate(db: Db) -> Iterator[sqlite3.Connection]:
    conn = _conn(db)
    if conn.in_transaction:
        raise HazmatError("hazmat ledger: a movement must start its own transaction; commit first")
    if isinstance(db, Store):  # its transaction maps busy/locked to StoreLocked (exit 3)
        with db.transaction() as c:
            yield c
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def _qty(quantity: float, what: str) -> float:
    try:
        q = float(quantity)
    except (TypeError, ValueError):
        raise HazmatError(f"{what}: quantity {quantity!r} is not a number") from None
    if not math.isfinite(q) or q <= 0:
        raise HazmatError(f"{what}: quantity {quantity!r} must be a finite number > 0")
    return round(q, DECIMALS)


def _text(value: str | None, name: str, what: str) -> str:
    if value is None or not str(value).strip():
        raise HazmatError(f"{what}: {name} is required (Annex 11 §9: who and why)")
    return str(value).strip()


def _place(hz: HazmatCfg, store: str, compartment: str, what: str) -> None:
    st = next((s for s in hz.stores if s.id == store), None)
    if st is None:
        known = ", ".join(s.id for s in hz.stores) or "none configured"
        raise HazmatError(f"{what}: store {store!r} is not in [[hazmat.stores]]; known: {known}")
    if compartment not in st.compartments:
        raise HazmatError(
            f"{what}: compartment {compartment!r} is not one of store {store}'s "
            f"compartments ({', '.join(st.compartments)})"
        )


def _container(conn: sqlite3.Connection, container_id: str, what: str) -> Container:
    row = conn.execute(
        "SELECT container_id, substance, store, compartment, quantity, unit, received_ms"
        " FROM hazmat_containers WHERE container_id = ?",
        (container_id,),
    ).fetchone()
    if row is None:
        raise HazmatError(f"{what}: container {container_id!r} is not in the ledger; receive it first")
    return Container(*row)


def _record(conn, *, kind, ts_ms, c: Container, quantity, frm, to, actor, reason, remaining,
            key, config_version) -> Movement:
    """Write the movement row and its audit row (same transaction)."""
    details = {
        "substance": c.substance, "quantity": quantity, "unit": c.unit,
        "from": f"{frm[0]}/{frm[1]}" if frm[0] else None,
        "to": f"{to[0]}/{to[1]}" if to[0] else None, "remaining": remaining,
    }
    entry = {"ts_ms": ts_ms, "actor": actor, "action": f"hazmat_{kind}",
             "subject": c.container_id, "reason": reason, "details": details}
    if config_version is not None:
        entry["config_version"] = config_version
    arow = audit.append(conn, entry, key)
    cur = conn.execute(
        "INSERT INTO hazmat_movements (ts_ms, container_id, substance, kind, quantity, unit,"
        " from_store, from_compartment, to_store, to_compartment, actor, reason, audit_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (ts_ms, c.container_id, c.substance, kind, quantity, c.unit, frm[0], frm[1], to[0], to[1],
         actor, reason, arow["id"]),
    )
    return Movement(cur.lastrowid, ts_ms, c.container_id, c.substance, kind, quantity, c.unit,
                    frm[0], frm[1], to[0], to[1], actor, reason, arow["id"], remaining)


def receive(db: Db, hz: HazmatCfg, *, actor: str, container: str,
            substance: str, quantity: float, unit: str, store: str, compartment: str,
            reason: str, key: bytes | None = None, ts_ms: int | None = None,
            config_version: int | None = None) -> Movement:
    """Book a new container into a store compartment."""
    what = f"receive {container}"
    actor, reason = _text(actor, "actor", what), _text(reason, "reason", what)
    container = _text(container, "container id", what)
    q = _qty(quantity, what)
    sub = next((s for s in hz.substances if s.id == substance), None)
    if sub is None:
        known = ", ".join(s.id for s in hz.substances) or "none configured"
        raise HazmatError(f"{what}: substance {substance!r} is not in [[hazmat.substances]]; known: {known}")
    if unit != sub.unit:
        raise HazmatError(f"{what}: unit {unit!r} does not match {substance}'s unit {sub.unit!r}; "
                          f"give the quantity in {sub.unit}")
    _place(hz, store, compartment, what)
    ts = int(ts_ms if ts_ms is not None else now_ms())
    with _immediate(db) as conn:
        if conn.execute("SELECT 1 FROM hazmat_containers WHERE container_id = ?",
                        (container,)).fetchone():
            raise HazmatError(f"{what}: container id {container!r} is already in the ledger; "
                              "container ids are unique, use a new one")
        conn.execute(
            "INSERT INTO hazmat_containers (container_id, substance, store, compartment, quantity,"
            " unit, received_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (container, substance, store, compartment, q, unit, ts, ts))
        c = Container(container, substance, store, compartment, q, unit, ts)
        return _record(conn, kind="receive", ts_ms=ts, c=c, quantity=q, frm=(None, None),
                       to=(store, compartment), actor=actor, reason=reason, remaining=q, key=key,
                       config_version=config_version)


def issue(db: Db, hz: HazmatCfg, *, actor: str, container: str,  # noqa: ARG001 - as receive/move
          quantity: float, unit: str, reason: str, key: bytes | None = None,
          ts_ms: int | None = None, config_version: int | None = None) -> Movement:
    """Take a quantity out of a container (to use it); refuses more than it holds."""
    what = f"issue from {container}"
    actor, reason = _text(actor, "actor", what), _text(reason, "reason", what)
    q = _qty(quantity, what)
    ts = int(ts_ms if ts_ms is not None else now_ms())
    with _immediate(db) as conn:
        c = _container(conn, container, what)
        if unit != c.unit:
            raise HazmatError(f"{what}: unit {unit!r} does not match the container's unit "
                              f"{c.unit!r}; give the quantity in {c.unit}")
        if q > c.quantity:
            raise HazmatError(f"{what}: {q:g} {unit} requested but the container holds "
                              f"{c.quantity:g} {c.unit}; nothing was issued")
        left = round(c.quantity - q, DECIMALS)
        conn.execute("UPDATE hazmat_containers SET quantity = ?, updated_ms = ? WHERE container_id = ?",
                     (left, ts, c.container_id))
        return _record(conn, kind="issue", ts_ms=ts, c=c, quantity=q,
                       frm=(c.store, c.compartment), to=(None, None), actor=actor,
                       reason=reason, remaining=left, key=key, config_version=config_version)


def move(db: Db, hz: HazmatCfg, *, actor: str, container: str, store: str,
         compartment: str, reason: str, key: bytes | None = None, ts_ms: int | None = None,
         config_version: int | None = None) -> Movement:
    """Move a whole container to another store or compartment."""
    what = f"move {container}"
    actor, reason = _text(actor, "actor", what), _text(reason, "reason", what)
    _place(hz, store, compartment, what)
    ts = int(ts_ms if ts_ms is not None else now_ms())
    with _immediate(db) as conn:
        c = _container(conn, container, what)
        if (c.store, c.compartment) == (store, compartment):
            raise HazmatError(f"{what}: already in {store}/{compartment}; nothing to move")
        conn.execute("UPDATE hazmat_containers SET store = ?, compartment = ?, updated_ms = ?"
                     " WHERE container_id = ?", (store, compartment, ts, c.container_id))
        return _record(conn, kind="move", ts_ms=ts, c=c, quantity=c.quantity,
                       frm=(c.store, c.compartment), to=(store, compartment), actor=actor,
                       reason=reason, remaining=c.quantity, key=key,
                       config_version=config_version)


def stock(db: Db, store: str | None = None,
          include_empty: bool = False) -> list[Container]:
    """Containers as they stand (one SELECT, so one consistent snapshot), ordered by place.

    Empty where the ledger was never created (a database the service has not opened since
    the ledger existed): nothing is stocked there.
    """
    sql = ("SELECT container_id, substance, store, compartment, quantity, unit, received_ms"
           " FROM hazmat_containers WHERE (? IS NULL OR store = ?)")
    if not include_empty:
        sql += " AND quantity > 0"
    sql += " ORDER BY store, compartment, substance, container_id"
    try:
        return [Container(*r) for r in _conn(db).execute(sql, (store, store))]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


def stock_rows(containers: list[Container]) -> list[tuple[str, str, float, str]]:
    """``(store, substance, quantity, unit)`` per container, as :mod:`hazmat.licence` wants."""
    return [(c.store, c.substance, c.quantity, c.unit) for c in containers]


def movements(db: Db, container: str | None = None) -> list[Movement]:
    """Movement history (oldest first), optionally of one container; ``remaining`` is NaN."""
    rows = _conn(db).execute(
        "SELECT id, ts_ms, container_id, substance, kind, quantity, unit, from_store,"
        " from_compartment, to_store, to_compartment, actor, reason, audit_id"
        " FROM hazmat_movements WHERE (? IS NULL OR container_id = ?) ORDER BY id",
        (container, container)).fetchall()
    return [Movement(*r, math.nan) for r in rows]
