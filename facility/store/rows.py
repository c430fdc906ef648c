"""Alarm and event rows written by a cycle (columns as in docs/ARCHITECTURE.md "Alarm lifecycle")."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from facility.domain.model import now_ms
from facility.store.errors import StoreError

ALARM_COLUMNS = (
    "state priority occurrence active acked onset_ms detected_ms limit source zone site point "
    "shelved_until_ms latched config_version ack_by ack_reason ack_ms updated_ms details"
).split()
EVENT_COLUMNS = (
    "alarm_id occurrence event state_from state_to ts_ms detected_ms value limit source actor "
    "reason config_version details actor_name actor_roles"
).split()
ZONE_MODE_COLUMNS = ("zone", "mode", "since_ms", "actor", "reason")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def upsert_alarm(conn: sqlite3.Connection, alarm: dict) -> None:
    """Insert or update one alarm by id; only the given columns change."""
    if "id" not in alarm:
        raise StoreError(f"alarm upsert {alarm!r}: 'id' (<subject>:<kind>) is required")
    cols = [c for c in alarm if c != "id"]
    unknown = set(cols) - set(ALARM_COLUMNS)
    if unknown:
        raise StoreError(f"alarm {alarm['id']}: unknown columns {sorted(unknown)}; "
                         f"allowed: {', '.join(ALARM_COLUMNS)}")
    row = dict(alarm)
    row.setdefault("updated_ms", now_ms())
    if "updated_ms" not in cols:
        cols.append("updated_ms")
    if isinstance(row.get("details"), (dict, list)):
        row["details"] = _dumps(row["details"])
    q = ", ".join(f'"{c}"' for c in cols)
    conn.execute(
        f'INSERT INTO alarms (id, {q}) VALUES (:id, {", ".join(":" + c for c in cols)})'
        f" ON CONFLICT (id) DO UPDATE SET "
        + ", ".join(f'"{c}" = excluded."{c}"' for c in cols),
        row,
    )


def insert_event(conn: sqlite3.Connection, event: dict, config_version: int | None) -> int:
    """Append one event row; its config_version defaults to the current one. Returns its id."""
    unknown = set(event) - set(EVENT_COLUMNS)
    if unknown:
        raise StoreError(f"event {event!r}: unknown columns {sorted(unknown)}; "
                         f"allowed: {', '.join(EVENT_COLUMNS)}")
    row = {c: event.get(c) for c in EVENT_COLUMNS}
    if row["config_version"] is None:
        row["config_version"] = config_version
    if isinstance(row["details"], (dict, list)):
        row["details"] = _dumps(row["details"])
    cols = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    return conn.execute(
        f"INSERT INTO events ({cols}) VALUES ({', '.join(':' + c for c in EVENT_COLUMNS)})",
        row,
    ).lastrowid
