"""``facility audit verify`` against the signed chain witness (tail truncation) and ``--from/--to``.

Real SQLite files written by ``Store.write_cycle``, a real Ed25519 key and witness file written
by the service's writer (``append_checkpoint``), audit rows deleted with sqlite3 while nothing
runs (the service stopped).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3

import pytest
from click.testing import CliRunner

from facility.cli import cli
from facility.config.loader import load_config
from facility.domain.model import PointInfo, Sample, now_ms
from facility.store.database import Cycle, Store
from facility.store.keys import signing_key
from facility.store.partitions import partition_path
from facility.store.witness import append_checkpoint, witness_path
from tests.fixtures.wait import wait_for

T0 = 1_740_830_400_000  # 2025-03-01T12:00Z
POINTS = [
    PointInfo("MEC-DP-01.dp", "MEC-DP-01", "MEC", "MEC-LITHO", "pressure_diff", "Pa", 1),
]
DP = POINTS[0].id


@pytest.fixture
def site(store, config_file, monkeypatch):
    """Four cycles of 5 samples, each digest row written in a later millisecond than the
    last; the site's signing key and one witness checkpoint of the head; store closed."""
    for c in range(4):
        if c:
            last = store.audit_head()
            ts = store.conn.execute("SELECT ts_ms FROM audit WHERE id = ?", (last["id"],)).fetchone()[0]
            assert wait_for(lambda ts=ts: now_ms() > ts)
        store.write_cycle(Cycle(samples=[Sample(DP, T0 + c * 10_000 + k * 1000, 1.0 + k)
                                         for k in range(5)]))
    head = store.audit_head()
    stamps = [ts for (ts,) in store.conn.execute(
        "SELECT ts_ms FROM audit WHERE action = 'cycle_digest' ORDER BY id")]
    store.close()
    monkeypatch.delenv("FACILITY_SIGNING_KEY_FILE", raising=False)
    cfg_path = config_file(storage={"path": store.path})
    cfg = load_config(cfg_path)
    key = signing_key(cfg, create=True)  # what the service does on first start
    append_checkpoint(witness_path(cfg), key, head["id"], head["hash"])
    return store.path, str(cfg_path), cfg, head, stamps


def verify(cfg_path, *extra):
    return CliRunner().invoke(cli, ["audit", "verify", "--config", cfg_path, *extra])


def test_untouched_store_passes_against_the_witness(site):
    _path, cfg_path, *_ = site
    ok = verify(cfg_path)
    assert ok.exit_code == 0, (ok.stdout, ok.stderr, ok.exception)
    assert ok.stderr == ""
    assert re.search(r"^checked \d+ audit rows, 1 partitions, 4 cycles, 20 samples,", ok.stdout,
                     re.M), ok.stdout


def test_last_three_audit_rows_deleted_while_stopped_are_named_by_the_witness(site):
    path, cfg_path, _cfg, head, _ = site
    conn = sqlite3.connect(path)
    try:  # the tail cut off cleanly: the remaining chain is still whole
        assert conn.execute("DELETE FROM audit WHERE id > ?", (head["id"] - 3,)).rowcount == 3
        conn.commit()
    finally:
        conn.close()
    bad = verify(cfg_path)
    assert bad.exit_code == 1, (bad.stdout, bad.stderr, bad.exception)
    assert "audit trail ok" in bad.stdout  # the chain alone cannot see it
    at = re.escape(json.loads(open(witness_path(_cfg)).read().splitlines()[-1])["at"])
    assert re.search(rf"^audit rows {head['id'] - 2}\.\.{head['id']} missing \(witness at {at}\)$",
                     bad.stderr, re.M), bad.stderr


def test_a_rewritten_head_row_differs_from_the_checkpoint(site):
    path, cfg_path, cfg, head, _ = site
    with Store(path) as s:  # a new head written after the checkpoint: fine ...
        s.write_cycle(Cycle(samples=[Sample(DP, T0 + 90_000, 9.0)]))
    assert verify(cfg_path).exit_code == 0
    # ... but the witnessed row itself is not what was signed
    append_checkpoint(witness_path(cfg), signing_key(cfg), head["id"] + 1, "0" * 64)
    bad = verify(cfg_path)
    assert bad.exit_code == 1
    assert re.search(rf"^audit row {head['id'] + 1} differs from the witness checkpoint of ",
                     bad.stderr, re.M), bad.stderr


def test_a_broken_witness_file_is_one_finding(site):
    _path, cfg_path, cfg, _head, _ = site
    wp = witness_path(cfg)
    raw = open(wp).read().replace('"seq":1', '"seq":2')
    open(wp, "w").write(raw)
    bad = verify(cfg_path)
    assert bad.exit_code == 1
    lines = [ln for ln in bad.stderr.splitlines() if ln.startswith("witness file broken: ")]
    assert len(lines) == 1 and "line 1" in lines[0], bad.stderr


def test_no_witness_file_is_a_note_not_a_failure(site):
    _path, cfg_path, cfg, _head, _ = site
    os.remove(witness_path(cfg))
    ok = verify(cfg_path)
    assert ok.exit_code == 0, ok.stderr
    assert ok.stderr == "note: no witness file: tail truncation not checked\n"


def test_from_to_limits_the_cycles_checked(site):
    path, cfg_path, _cfg, _head, stamps = site

    def secs(ms):
        return f"{ms / 1000:.3f}"

    part = verify(cfg_path, "--from", secs(stamps[1]), "--to", secs(stamps[3]))
    assert part.exit_code == 0, (part.stdout, part.stderr, part.exception)
    assert re.search(r"^checked \d+ audit rows, 1 partitions, 2 cycles, 10 samples,", part.stdout,
                     re.M), part.stdout
    # a sample of cycle 1 changed: named inside the range, not seen outside it
    conn = sqlite3.connect(partition_path(path, "2025-03-01"))
    try:
        assert conn.execute("UPDATE samples SET value = 99 WHERE ts_ms = ?", (T0,)).rowcount == 1
        conn.commit()
    finally:
        conn.close()
    assert verify(cfg_path, "--from", secs(stamps[1]), "--to", secs(stamps[3])).exit_code == 0
    inside = verify(cfg_path, "--from", secs(stamps[0]), "--to", secs(stamps[1]))
    assert inside.exit_code == 1 and "cycle #" in inside.stderr, inside.stderr
    assert re.search(r"1 partitions, 1 cycles, 5 samples,", inside.stdout), inside.stdout
    assert verify(cfg_path, "--from", secs(stamps[0])).exit_code == 2
