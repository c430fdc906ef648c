"""The alarm list marks a chattering alarm (ISA-18.2: 3 or more raises in 60 s).

The mark comes from the pager's own record (``alarms.chatter``, the ``page_chatter`` table
the service keeps in its database), read by the TUI's read-only reader in its snapshot.
Real parts: the sample database written by the real store, the outbox migrations applied
by the store as the service applies them, raises recorded by the chattering module itself.
"""

from __future__ import annotations

import os

import pytest

from alarms import chatter
from alarms.outbox import OUTBOX_MIGRATIONS, OUTBOX_NAMESPACE
from facility.config import load_config
from facility.store import Store
from tests.fixtures import sample_db
from tui.data import DbReader
from tui.views.alarms import alarm_rows

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "config.toml")
T0 = sample_db.T0
ALERT = "MEC-PC-01.pc_0_5um:alert_high"  # UNACK in the sample database
ACTION = "MEC-PC-02.pc_0_5um:action_high"  # UNACK, raised once


@pytest.fixture
def db(tmp_path):
    cfg = load_config(CONFIG)
    path = str(tmp_path / "facility.db")
    sample_db.build(cfg, path)
    with Store(path) as store:
        store.add_migrations(OUTBOX_NAMESPACE, OUTBOX_MIGRATIONS)
    return cfg, path


def record_raises(path: str, alarm_id: str, seconds: list[int]) -> None:
    with Store(path) as store:
        conn = store.conn
        conn.execute("BEGIN IMMEDIATE")
        for s in seconds:
            chatter.note_raise(conn, alarm_id, f"hk:{alarm_id}#3", T0 + s * 1000, 300_000, None)
        conn.execute("COMMIT")


def states(cfg, path: str) -> dict[str, str]:
    reader = DbReader(path)
    try:
        snap = reader.read(T0 + 60_000)
    finally:
        reader.close()
    assert snap.error is None, snap.error
    return {aid: cells[1].plain for aid, cells in alarm_rows(cfg, snap)}


def test_a_chattering_alarm_is_marked_and_others_are_not(db):
    cfg, path = db
    assert states(cfg, path)[ALERT] == "UNACK"  # nothing recorded yet
    record_raises(path, ALERT, [0, 20, 40])
    record_raises(path, ACTION, [0, 50])  # twice in a minute is not chattering
    got = states(cfg, path)
    assert got[ALERT] == "UNACK CHAT"
    assert got[ACTION] == "UNACK"


def test_a_database_without_paging_tables_shows_no_mark(tmp_path):
    cfg = load_config(CONFIG)
    path = str(tmp_path / "facility.db")
    sample_db.build(cfg, path)  # no service has run: no outbox tables
    assert "CHAT" not in " ".join(states(cfg, path).values())
